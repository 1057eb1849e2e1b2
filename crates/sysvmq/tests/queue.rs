//! Integration tests against real kernel queues, non-blocking behaviour.
//! Each test makes its own queues and a guard removes them, even when an
//! assertion fails.

mod common;

use std::time::{Duration, Instant};

use common::{frame, limits, take};
use sysvmq::{Error, Message, Queue, HEADER_LEN};
use testkit::queue::{KeyGuard, TestQueue};

#[test]
fn open_missing_key_is_not_found() {
    let guard = KeyGuard::new();
    let key = guard.key();
    match Queue::open(key) {
        Err(Error::NotFound { key: reported }) => assert_eq!(reported, key),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn create_existing_is_already_exists() {
    let queue = TestQueue::new();
    match Queue::create(queue.key(), 0o600) {
        Err(err @ Error::AlreadyExists { .. }) => {
            assert!(err.to_string().contains(&format!("{:#010x}", queue.key())))
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(Queue::open(queue.key()).expect("open").id(), queue.id());
    assert_eq!(
        Queue::open_or_create(queue.key(), 0o600)
            .expect("open_or_create")
            .id(),
        queue.id()
    );
}

#[test]
fn binary_bodies_round_trip_including_nul_bytes() {
    let queue = TestQueue::private();
    let body: Vec<u8> = (0..=255u8).chain([0, 0, 0]).collect();
    queue.try_send_frame(&frame(5, &body)).expect("send frame");
    queue
        .try_send(&Message::with_body(6, b"\0a\0"))
        .expect("send message");
    queue.send(&Message::new(7)).expect("send empty body");

    assert_eq!(take(&queue, 0, 1024), Some((5, body)));
    let mut msg = Message::new(1);
    assert!(queue.try_receive(&mut msg, 0).expect("try_receive"));
    assert_eq!((msg.mtype(), msg.body()), (6, &b"\0a\0"[..]));
    queue.receive(&mut msg, 0).expect("receive");
    assert_eq!((msg.mtype(), msg.body()), (7, &b""[..]));
}

#[test]
fn messages_keep_send_order() {
    let queue = TestQueue::private();
    for i in 0..20u8 {
        queue.try_send_frame(&frame(1, &[i])).expect("send");
    }
    let bodies: Vec<Vec<u8>> = (0..20)
        .map(|_| take(&queue, 0, 8).expect("a message").1)
        .collect();
    assert_eq!(bodies, (0..20u8).map(|i| vec![i]).collect::<Vec<_>>());
}

#[test]
fn mtype_selects_exact_type_lowest_type_or_any() {
    let queue = TestQueue::private();
    for (mtype, body) in [(3, b"c"), (1, b"a"), (2, b"b"), (1, b"d")] {
        queue.try_send_frame(&frame(mtype, body)).expect("send");
    }
    assert_eq!(take(&queue, 2, 8), Some((2, b"b".to_vec())));
    assert_eq!(take(&queue, 2, 8), None, "no second message of type 2");
    assert_eq!(
        take(&queue, -3, 8),
        Some((1, b"a".to_vec())),
        "negative: lowest type <= 3"
    );
    assert_eq!(
        take(&queue, 0, 8),
        Some((3, b"c".to_vec())),
        "zero: oldest of any type"
    );
    assert_eq!(take(&queue, 0, 8), Some((1, b"d".to_vec())));
}

#[test]
fn empty_queue_receives_nothing_without_blocking() {
    let queue = TestQueue::private();
    assert_eq!(take(&queue, 0, 8), None);
    assert!(!queue
        .try_receive(&mut Message::new(1), 0)
        .expect("try_receive"));
}

#[test]
fn full_queue_returns_full_without_blocking() {
    let queue = TestQueue::private();
    queue.set_capacity(64).expect("lower capacity");
    queue
        .try_send_frame(&frame(1, &[1; 40]))
        .expect("first send fits");
    let started = Instant::now();
    match queue.try_send_frame(&frame(1, &[2; 40])) {
        Err(err @ Error::Full { .. }) => assert!(err.to_string().contains("capacity"), "{err}"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(queue.stat().expect("stat").messages, 1);
}

#[test]
fn message_larger_than_msgmax_is_too_large() {
    let queue = TestQueue::private();
    let msgmax = limits().msgmax;
    let size = msgmax as usize + 1;
    match queue.try_send_frame(&frame(1, &vec![0; size])) {
        Err(Error::TooLarge {
            size: reported,
            limit,
            ..
        }) => assert_eq!((reported, limit), (size, msgmax)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    if queue.stat().expect("stat").capacity >= msgmax {
        queue
            .try_send_frame(&frame(1, &vec![0; msgmax as usize]))
            .expect("exactly msgmax fits");
    }
}

#[test]
fn receive_buffer_too_small_leaves_message_in_queue() {
    let queue = TestQueue::private();
    queue.try_send_frame(&frame(4, &[7; 100])).expect("send");
    let mut small = vec![0u8; HEADER_LEN + 10];
    match queue.try_receive_into(&mut small, 0) {
        Err(Error::BufferTooSmall { capacity, .. }) => assert_eq!(capacity, 10),
        other => panic!("expected BufferTooSmall, got {other:?}"),
    }
    let mut msg = Message::with_capacity(1, 99);
    assert!(matches!(
        queue.try_receive(&mut msg, 0),
        Err(Error::BufferTooSmall { capacity: 99, .. })
    ));
    assert_eq!(
        msg.mtype(),
        1,
        "a failed receive leaves the message unchanged"
    );
    assert_eq!(queue.stat().expect("stat").messages, 1);
    assert_eq!(take(&queue, 0, 100), Some((4, vec![7; 100])));
}

#[test]
fn receiving_into_a_message_reuses_its_buffer() {
    let queue = TestQueue::private();
    let mut msg = Message::new(1);
    queue.try_send_frame(&frame(2, b"first")).expect("send");
    assert!(queue.try_receive(&mut msg, 0).expect("receive"));
    assert_eq!(msg.receive_capacity(), Some(limits().msgmax as usize));
    let buffer = msg.frame().as_ptr();
    queue.try_send_frame(&frame(3, b"second")).expect("send");
    assert!(queue.try_receive(&mut msg, 0).expect("receive"));
    assert_eq!(
        (msg.mtype(), msg.body(), msg.frame().as_ptr()),
        (3, &b"second"[..], buffer)
    );
}

#[test]
fn removed_queue_reports_removed() {
    let queue = TestQueue::private();
    let handle = *queue;
    handle.remove().expect("remove");
    let removed = |result: Result<(), Error>| matches!(result, Err(Error::Removed { .. }));
    assert!(removed(queue.try_send_frame(&frame(1, b"x"))));
    assert!(removed(queue.try_receive_into(&mut [0; 16], 0).map(drop)));
    assert!(removed(queue.stat().map(drop)));
    assert!(removed(queue.set_capacity(100)));
    assert!(removed(queue.remove()));
}

#[test]
fn copy_by_position_peeks_without_removing() {
    let queue = TestQueue::private();
    for body in [b"zero", b"one!", b"two!"] {
        queue.try_send_frame(&frame(1, body)).expect("send");
    }
    let mut buf = [0u8; HEADER_LEN + 16];
    match queue.copy_into(1, &mut buf) {
        Ok(Some(len)) => assert_eq!(&buf[HEADER_LEN..HEADER_LEN + len], b"one!"),
        Err(Error::Unsupported { op }) => {
            // Kernels without CONFIG_CHECKPOINT_RESTORE lack MSG_COPY.
            assert!(op.contains("MSG_COPY"), "{op}");
            return;
        }
        other => panic!("expected a copy, got {other:?}"),
    }
    assert_eq!(
        queue.copy_into(3, &mut buf).expect("copy past the end"),
        None
    );
    assert!(matches!(
        queue.copy_into(0, &mut [0; HEADER_LEN + 2]),
        Err(Error::BufferTooSmall { .. })
    ));
    assert_eq!(
        queue.stat().expect("stat").messages,
        3,
        "copying removes nothing"
    );
    assert_eq!(take(&queue, 0, 16), Some((1, b"zero".to_vec())));
}

#[test]
fn stat_reports_depth_bytes_capacity_and_pids() {
    let queue = TestQueue::private();
    let before = queue.stat().expect("stat");
    assert_eq!(
        (before.messages, before.bytes, before.last_send_pid),
        (0, 0, 0)
    );
    assert_eq!(
        before.capacity,
        limits().msgmnb,
        "new queues get kernel.msgmnb"
    );
    assert_eq!(
        (before.last_send_time, before.last_receive_time),
        (None, None)
    );
    assert!(before.last_change_time.is_some());
    // SAFETY: these identity getters have no preconditions.
    let (pid, uid, gid) = unsafe { (libc::getpid(), libc::geteuid(), libc::getegid()) };
    assert_eq!((before.mode, before.uid, before.gid), (0o600, uid, gid));

    queue.try_send_frame(&frame(1, &[0; 10])).expect("send");
    queue.try_send_frame(&frame(1, &[0; 20])).expect("send");
    let sent = queue.stat().expect("stat");
    assert_eq!(
        (
            sent.messages,
            sent.bytes,
            sent.last_send_pid,
            sent.last_receive_pid
        ),
        (2, 30, pid, 0)
    );
    assert!(sent.last_send_time.is_some());

    take(&queue, 0, 64).expect("a message");
    let received = queue.stat().expect("stat");
    assert_eq!(
        (received.messages, received.bytes, received.last_receive_pid),
        (1, 20, pid)
    );
    assert!(received.last_receive_time.is_some());
}

#[test]
fn set_capacity_below_msgmnb_takes_effect() {
    let queue = TestQueue::private();
    queue.set_capacity(1000).expect("lower capacity");
    assert_eq!(queue.stat().expect("stat").capacity, 1000);
}

#[test]
fn set_capacity_above_msgmnb_is_permission_denied_or_succeeds_as_root() {
    let queue = TestQueue::private();
    let wanted = limits().msgmnb + 4096;
    match queue.set_capacity(wanted) {
        // With CAP_SYS_RESOURCE the kernel allows it.
        Ok(()) => assert_eq!(queue.stat().expect("stat").capacity, wanted),
        Err(err @ Error::PermissionDenied { hint, .. }) => {
            assert!(
                hint.contains("CAP_SYS_RESOURCE") && hint.contains("kernel.msgmnb"),
                "{err}"
            );
        }
        Err(err) => panic!("expected PermissionDenied, got {err:?}"),
    }
}

#[test]
fn malformed_frames_and_modes_are_invalid_arguments() {
    let queue = TestQueue::private();
    let invalid = |result: Result<(), Error>| matches!(result, Err(Error::InvalidArgument { .. }));
    assert!(invalid(queue.try_send_frame(&[1, 0])));
    assert!(invalid(queue.try_send_frame(&frame(0, b"x"))));
    assert!(invalid(queue.send_frame(&frame(-1, b"x"))));
    assert!(invalid(queue.try_receive_into(&mut [0; 3], 0).map(drop)));
    assert!(invalid(
        Queue::create_private(libc::IPC_CREAT as u32 | 0o600).map(drop)
    ));
}
