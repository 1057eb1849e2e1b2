//! Helpers of sysvmq's own integration tests: frames, limits, a raw
//! receive, and a way to interrupt a blocking call with a signal. Queues
//! that remove themselves and fresh keys come from `testkit::queue`.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::{mpsc, Once};
use std::thread;
use std::time::{Duration, Instant};

use sysvmq::{Limits, Message, Queue, HEADER_LEN};

pub fn frame(mtype: i64, body: &[u8]) -> Vec<u8> {
    Message::with_body(mtype, body).frame().to_vec()
}

pub fn limits() -> Limits {
    Limits::read().expect("read /proc/sys/kernel/msg*")
}

/// Receives without blocking into a frame of `capacity` body bytes.
pub fn take(queue: &Queue, mtype: i64, capacity: usize) -> Option<(i64, Vec<u8>)> {
    let mut buf = vec![0u8; HEADER_LEN + capacity];
    let len = queue
        .try_receive_into(&mut buf, mtype)
        .expect("try_receive_into")?;
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&buf[..HEADER_LEN]);
    Some((
        i64::from_ne_bytes(header),
        buf[HEADER_LEN..HEADER_LEN + len].to_vec(),
    ))
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// A SIGUSR1 handler without SA_RESTART, so the signal interrupts msgrcv/msgsnd.
fn install_sigusr1_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler does nothing, so it
        // is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                0
            );
        }
    });
}

/// Runs `blocking` on a thread and sends it SIGUSR1 until it returns. The
/// signal repeats because the first may land before the thread blocks.
pub fn interrupt<T: Send + 'static>(blocking: impl FnOnce() -> T + Send + 'static) -> T {
    install_sigusr1_handler();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    // The handle stays unjoined until the end, so the pthread_t stays valid.
    let handle = thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tid_tx
            .send(unsafe { libc::pthread_self() })
            .expect("send tid");
        done_tx.send(blocking()).expect("send result");
    });
    let tid = tid_rx.recv().expect("receive tid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        match done_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(result) => break result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(
                    Instant::now() < deadline,
                    "the blocking call ignored SIGUSR1"
                );
                // SAFETY: `tid` names a thread not yet joined.
                unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the blocking thread panicked"),
        }
    };
    handle.join().expect("join");
    result
}
