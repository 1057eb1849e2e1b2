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

#[test]
fn a_queue_grown_in_place_while_open_is_full_not_too_large_when_it_fills() {
    // `shopify-events setup` grows a queue in place (IPC_SET) under
    // running apps. A frame over the capacity the app read at open time
    // but within the grown one is an event like any other: sent while
    // there is room, and "full" (droppable, counted) when there is not,
    // never a TooLarge raised from `emit` only while the queue is full.
    let msgmax = sysvmq::message_size_limit() as usize;
    assert!(
        msgmax >= 6000 + 200,
        "kernel.msgmax {msgmax} leaves no room for the 6000-byte payload"
    );
    let queue = TestQueue::with_capacity(4096);
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    emitter
        .send_frame(&mut frame(&emitter, 100))
        .expect("opens and sends");
    queue.set_capacity(8192).expect("the operator grows it");

    emitter
        .send_frame(&mut frame(&emitter, 6000))
        .expect("the grown queue takes it");
    let mut full = None;
    for _ in 0..100 {
        if let Err(e) = emitter.send_frame(&mut frame(&emitter, 1000)) {
            full = Some(e);
            break;
        }
    }
    assert!(
        matches!(full, Some(SendError::QueueFull { .. })),
        "{full:?}"
    );
    match emitter.send_frame(&mut frame(&emitter, 6000)) {
        Err(e @ SendError::QueueFull { .. }) => assert!(emitter.droppable(&e)),
        other => panic!("expected QueueFull from the grown queue, got {other:?}"),
    }
    assert_eq!(emitter.stats().snapshot().queue_full, 2);
}

#[test]
fn a_queue_shut_to_capacity_0_by_an_operator_is_full_for_every_event_it_held_before() {
    // Capacity 0 shuts senders out (msgsnd finds the queue full) while an
    // operator drains and removes it (the chaos tests' `remove_queue`). An
    // event the queue was too small for all along is still too large; that
    // must not make the events it always took too large too.
    let queue = TestQueue::with_capacity(4096);
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    emitter
        .send_frame(&mut frame(&emitter, 100))
        .expect("opens and sends");
    queue.set_capacity(0).expect("the operator shuts it");
    assert!(matches!(
        emitter.send_frame(&mut frame(&emitter, 5000)),
        Err(SendError::TooLarge { .. })
    ));
    match emitter.send_frame(&mut frame(&emitter, 100)) {
        Err(e @ SendError::QueueFull { .. }) => assert!(emitter.droppable(&e)),
        other => panic!("expected QueueFull while shut, got {other:?}"),
    }
    queue
        .set_capacity(4096)
        .expect("the operator opens it again");
    emitter
        .send_frame(&mut frame(&emitter, 100))
        .expect("taken again");
}
