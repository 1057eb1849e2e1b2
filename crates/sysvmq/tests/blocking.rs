//! Integration tests of blocking calls: a signal interrupts them, and
//! removing the queue wakes them.

mod common;

use std::thread;
use std::time::Duration;

use common::{frame, interrupt};
use sysvmq::Error;
use testkit::queue::TestQueue;

#[test]
fn blocking_receive_reports_removed_when_queue_is_removed_meanwhile() {
    let queue = TestQueue::private();
    let handle = *queue;
    let waiter = thread::spawn(move || handle.receive_into(&mut [0; 64], 0));
    thread::sleep(Duration::from_millis(100));
    handle.remove().expect("remove");
    assert!(matches!(
        waiter.join().expect("join"),
        Err(Error::Removed { .. })
    ));
}

#[test]
fn blocking_receive_is_interrupted_by_a_signal() {
    let queue = TestQueue::private();
    let handle = *queue;
    let result = interrupt(move || handle.receive_into(&mut [0; 64], 0));
    assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
}

#[test]
fn blocking_send_to_full_queue_is_interrupted_by_a_signal() {
    let queue = TestQueue::private();
    queue.set_capacity(16).expect("lower capacity");
    queue.try_send_frame(&frame(1, &[0; 10])).expect("fill");
    let handle = *queue;
    let result = interrupt(move || handle.send_frame(&frame(1, &[0; 10])));
    assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
    assert_eq!(queue.stat().expect("stat").messages, 1);
}
