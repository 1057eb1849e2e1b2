//! Issue 9, item 8: "locks taken on threads that released the GVL (socket
//! `flush`, direct `take_logs`) can be held at `fork`, which would deadlock
//! the child's first emit". A thread calls them in a loop, as a Ruby thread
//! without the GVL would, while the main thread forks; each child emits
//! once under an alarm. A child killed by the alarm was deadlocked.
//!
//! One test per file binary would be ideal for forking; the two tests here
//! run one at a time (a lock) and fork only from their own thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use shopify_events_core::direct::{DirectConfig, DirectProducer};
use shopify_events_core::proxy::{ClientConfig, ProxyAddress, SocketClient};
use shopify_events_core::transport::FrameSink;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const FORKS: usize = 200;

/// Forks `FORKS` times while `busy` runs in a loop on another thread; each
/// child runs `emit` under a 5 s alarm. Returns how many children the alarm
/// killed.
fn deadlocked_children(busy: impl Fn() + Send + 'static, emit: impl Fn()) -> usize {
    let stop = Arc::new(AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                busy();
            }
        })
    };
    thread::sleep(Duration::from_millis(50));
    let mut deadlocked = 0;
    for _ in 0..FORKS {
        // SAFETY: the child only emits and exits with _exit; fork in a
        // threaded process is what the test is about.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: in the child: alarm and _exit are async-signal-safe.
            unsafe { libc::alarm(5) };
            emit();
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
            deadlocked += 1;
        } else {
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "child ended with status {status:#x}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    looping.join().unwrap();
    deadlocked
}

#[test]
fn a_fork_during_a_socket_flush_on_another_thread_leaves_the_child_able_to_emit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let address = ProxyAddress::Unix(dir.path().join("nobody-listens.sock"));
    let client = Arc::new(SocketClient::new(ClientConfig::new(address)).unwrap());
    let flusher = client.clone();
    let never = Arc::new(AtomicBool::new(false));
    let deadlocked = deadlocked_children(
        move || {
            flusher.flush(Duration::ZERO, &never);
        },
        || {
            let mut frame = Vec::new();
            client.begin_frame(&mut frame);
            frame.extend_from_slice(b"not sent: the child only buffers it");
            let _ = client.send_frame(&mut frame);
        },
    );
    assert_eq!(deadlocked, 0, "{deadlocked} of {FORKS} children deadlocked");
}

#[test]
fn a_fork_during_direct_take_logs_on_another_thread_leaves_the_child_able_to_emit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let settings = [("bootstrap.servers".to_owned(), "127.0.0.1:9".to_owned())];
    let mut config = DirectConfig::new(settings.into_iter().collect());
    config.shutdown_grace = Duration::ZERO;
    let producer = Arc::new(DirectProducer::new(config).unwrap());
    let logs = producer.clone();
    let never = Arc::new(AtomicBool::new(false));
    let deadlocked = deadlocked_children(
        move || {
            logs.take_logs(Duration::ZERO, &never);
        },
        || {
            let _ = producer.stats();
        },
    );
    assert_eq!(deadlocked, 0, "{deadlocked} of {FORKS} children deadlocked");
}
