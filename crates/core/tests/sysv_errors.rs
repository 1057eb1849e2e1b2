//! The sysv transport's failures once its queue is open, when `msgsnd`
//! runs at once with the cached id and the sizes are checked only after the
//! kernel refused: a full queue is `QueueFull` (droppable, counted), a frame
//! the queue could never hold is `TooLarge` naming the queue's capacity or
//! `kernel.msgmax` (a programming error, never "full"), and neither takes a
//! number.

use shopify_events_core::envelope::{encode_bytes, Seal};
use shopify_events_core::event_id::EventId;
use shopify_events_core::topic::Topic;
use shopify_events_core::transport::{FrameSink, SendError, SysvEmitter};
use testkit::queue::TestQueue;

fn frame(sink: &impl FrameSink, payload_len: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    sink.begin_frame(&mut buf);
    let time = 1_700_000_000_000_000;
    let payload = vec![b'p'; payload_len];
    encode_bytes(
        &mut buf,
        EventId::generate(time),
        time,
        &Topic::new("sysv.errors").unwrap(),
        None,
        &payload,
        Seal::ByStamp,
    )
    .expect("encode");
    buf
}

#[test]
fn once_the_queue_is_open_each_refusal_is_named_for_what_it_is() {
    let msgmax = sysvmq::message_size_limit() as usize;
    assert!(
        msgmax > 4096 + 200,
        "kernel.msgmax {msgmax} leaves no room between it and the queue"
    );
    let queue = TestQueue::new();
    queue.set_capacity(4096).unwrap();
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    // The first send opens the queue (the checked path); the rest go
    // straight to msgsnd with the cached id.
    emitter
        .send_frame(&mut frame(&emitter, 100))
        .expect("opens and sends");

    // Larger than the queue's capacity, within kernel.msgmax: the kernel
    // says EAGAIN, as for a full queue, but no drain could ever make room.
    match emitter.send_frame(&mut frame(&emitter, 4096)) {
        Err(SendError::TooLarge { limit, setting, .. }) => {
            assert_eq!(limit, 4096);
            assert!(setting.contains("capacity"), "{setting}");
        }
        other => panic!("expected TooLarge for the capacity, got {other:?}"),
    }
    // Larger than kernel.msgmax: EINVAL from the kernel.
    match emitter.send_frame(&mut frame(&emitter, msgmax)) {
        Err(SendError::TooLarge { limit, setting, .. }) => {
            assert_eq!(limit, msgmax as u64);
            assert!(setting.contains("msgmax"), "{setting}");
        }
        other => panic!("expected TooLarge for kernel.msgmax, got {other:?}"),
    }
    // Full: droppable, counted.
    let mut full = None;
    for _ in 0..100 {
        if let Err(e) = emitter.send_frame(&mut frame(&emitter, 1000)) {
            full = Some(e);
            break;
        }
    }
    let full = full.expect("a 4 KiB queue fills");
    assert!(matches!(full, SendError::QueueFull { .. }), "{full:?}");
    assert!(emitter.droppable(&full));
    let stats = emitter.stats().snapshot();
    assert_eq!(stats.queue_full, 1);
    let sent = queue.bodies().len() as u64;
    assert_eq!(stats.emitted, sent);
    assert_eq!(
        emitter.sequencer().accepted(),
        sent,
        "refusals take no number"
    );
}
