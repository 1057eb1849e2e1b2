//! The save at stop against sysctls changed underneath: `kernel.msgmax`
//! lowered while the queue holds messages sent under the higher limit
//! (`sysctl --system` putting the defaults back, say). The save is what a
//! planned reboot relies on, so it must take every message, whatever the
//! limit says now.
//!
//! Runs itself again inside `unshare -i` (a private IPC namespace), where
//! it may set the sysctls without touching the host's. Needs root; no
//! broker (Kafka is unreachable on purpose).

mod drain_spool_support;

use std::time::Duration;

use drain_spool_support::{spec, Dirs};
use shopify_events_core::envelope::encode;
use shopify_events_core::event_id::EventId;
use testkit::net::free_port;
use testkit::queue::TestQueue;

/// Set in the copy of this test binary that runs inside `unshare -i`.
const IN_PRIVATE_IPC: &str = "SHOPIFY_EVENTS_SAVE_TEST_IN_PRIVATE_IPC";

/// Runs test `name` of this binary again in a private IPC namespace;
/// `false` when already inside it (the caller then does the work).
fn rerun_in_private_ipc(name: &str) -> bool {
    if std::env::var_os(IN_PRIVATE_IPC).is_some() {
        return false;
    }
    let unshare = |args: &[&str]| std::process::Command::new("unshare").args(args).status();
    if !unshare(&["-i", "true"]).is_ok_and(|status| status.success()) {
        eprintln!("skipped: `unshare -i` is not available here");
        return true;
    }
    let status = std::process::Command::new("unshare")
        .arg("-i")
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--nocapture", "--include-ignored"])
        .env(IN_PRIVATE_IPC, "1")
        .status()
        .expect("run in a private IPC namespace");
    assert!(status.success(), "inner run failed: {status}");
    true
}

fn set_sysctl(name: &str, value: u64) {
    std::fs::write(format!("/proc/sys/kernel/{name}"), value.to_string())
        .unwrap_or_else(|e| panic!("set kernel.{name} to {value}: {e}"));
}

fn send(queue: &TestQueue, seq: u64, payload_len: usize) {
    let time = 1_700_000_000_000_000 + seq as i64;
    let mut body = Vec::new();
    let payload = vec![b'x'; payload_len];
    encode(
        &mut body,
        EventId::generate(time),
        time,
        "save.sysctl",
        None,
        &[],
        &payload,
    )
    .expect("encode");
    queue
        .try_send(&sysvmq::Message::with_body(1, &body))
        .expect("send");
}

#[test]
fn the_save_at_stop_takes_messages_above_a_lowered_msgmax_and_everything_after_them() {
    let name = "the_save_at_stop_takes_messages_above_a_lowered_msgmax_and_everything_after_them";
    if rerun_in_private_ipc(name) {
        return;
    }
    set_sysctl("msgmax", 64 << 10);
    let queue = TestQueue::with_capacity(4 << 20);
    // More than the drain's small journal takes while Kafka is down, then
    // one message of 20 KiB, then more.
    for seq in 0..2_000 {
        send(&queue, seq, 200);
    }
    send(&queue, 2_000, 20 << 10);
    for seq in 2_001..2_500 {
        send(&queue, seq, 200);
    }
    // The limit goes back to its default under the queued messages.
    set_sysctl("msgmax", 8192);

    let dirs = Dirs::new("drain-save-sysctl-");
    let mut drain = spec(&queue, &dirs)
        .brokers(&format!("127.0.0.1:{}", free_port()))
        .args([
            "--journal-size",
            "256KiB",
            "--save-on-stop",
            "--shutdown-timeout",
            "0",
        ])
        .spawn(0);
    std::thread::sleep(Duration::from_secs(2));
    drain.assert_running();
    let status = drain.terminate(Duration::from_secs(30));
    let log = drain.log_text();
    assert!(status.is_some_and(|s| s.success()), "{log}");
    assert_eq!(
        queue.depth(),
        0,
        "the save left messages in the queue, which a reboot loses\n{log}"
    );
    assert!(!log.contains("stopped early"), "{log}");

    // The reboot: the queue is gone; the next start delivers what was saved.
    queue.remove().expect("ipcrm the queue");
    let mut drain = spec(&queue, &dirs).args(["--sink", "stdout"]).spawn(1);
    let delivered = || drain.stdout_text().lines().count();
    assert!(
        testkit::wait::wait_until(Duration::from_secs(30), || delivered() >= 2_500),
        "{} of 2500 delivered after the restart\n{}",
        delivered(),
        drain.log_text()
    );
    let big = drain
        .stdout_text()
        .lines()
        .filter(|line| line.len() > 20 << 10)
        .count();
    assert_eq!(big, 1, "the 20 KiB event arrives whole");
    drain.terminate(Duration::from_secs(30));
}
