//! `shopify-events setup` and `stats` library code against real SysV queues.
//!
//! Each test uses its own key and removes its queue on drop, even when it
//! fails. The host's sysctls are only read: `--apply-sysctls` writes into a
//! stand-in `/proc/sys` in a temp dir.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use shopify_events_core::metrics::DrainMetrics;
use shopify_events_core::ops::DrainSnapshot;
use shopify_events_core::ops::{
    self, has_cap_sys_resource, parse_size, queue_stats, read_drain_snapshot, write_drain_snapshot,
    Outcome, SetupError, SetupPlan, SizeError, SysctlFs,
};
use shopify_events_core::state_dir::StateDir;
use sysvmq::{Limits, Message, Queue};
use testkit::queue::KeyGuard;

/// A key no other test (or test process) uses; its queue is removed on drop.
fn unique_key() -> KeyGuard {
    KeyGuard::new()
}

fn limits() -> Limits {
    Limits::read().expect("read /proc/sys/kernel/msg*")
}

/// A stand-in /proc/sys with the kernel defaults.
fn fake_proc_sys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("kernel")).expect("kernel dir");
    for (name, value) in [("msgmax", 8192), ("msgmnb", 16384), ("msgmni", 32000)] {
        std::fs::write(dir.path().join("kernel").join(name), format!("{value}\n")).expect("write");
    }
    dir
}

fn read_fake(root: &Path, name: &str) -> String {
    std::fs::read_to_string(root.join("kernel").join(name)).expect("read fake sysctl")
}

fn send(queue: &Queue, body_len: usize) {
    queue
        .try_send(&Message::with_body(1, &vec![b'x'; body_len]))
        .expect("send");
}

#[test]
fn parse_size_accepts_bytes_binary_and_decimal_units_in_any_case() {
    let table: &[(&str, u64)] = &[
        ("1048576", 1_048_576),
        ("0", 0),
        ("512B", 512),
        ("64KiB", 64 << 10),
        ("512MiB", 512 << 20),
        ("2GiB", 2 << 30),
        ("2gib", 2 << 30),
        ("2 GiB", 2 << 30),
        (" 3Gi ", 3 << 30),
        ("1TiB", 1 << 40),
        ("1K", 1_000),
        ("1kb", 1_000),
        ("5M", 5_000_000),
        ("1G", 1_000_000_000),
        ("1GB", 1_000_000_000),
        ("2T", 2_000_000_000_000),
    ];
    for &(text, bytes) in table {
        assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
    }
}

#[test]
fn parse_size_rejects_garbage_naming_the_input_and_the_accepted_forms() {
    for text in ["", "GiB", "-1", "1.5GiB", "12 parsecs", "1GiBs", "0x10"] {
        let err = parse_size(text).expect_err(text);
        let message = err.to_string();
        assert!(
            matches!(err, SizeError::Invalid { .. }),
            "{text:?}: {err:?}"
        );
        assert!(message.contains(&format!("{text:?}")), "{message}");
        assert!(
            message.contains("2GiB") && message.contains("1GB"),
            "{message}"
        );
    }
    let err = parse_size("99999999999999999999").expect_err("overflow");
    assert!(matches!(err, SizeError::TooLarge { .. }), "{err:?}");
    let err = parse_size("16EiB").expect_err("unit");
    assert!(err.to_string().contains("\"16EiB\""), "{err}");
    let err = parse_size("17179869184GiB").expect_err("overflow after unit");
    assert!(matches!(err, SizeError::TooLarge { .. }), "{err:?}");
}

#[test]
fn setup_creates_the_queue_with_the_requested_capacity_when_it_fits_under_msgmnb() {
    let guard = unique_key();
    let limits = limits();
    let capacity = limits.msgmax + limits.msgmnb.saturating_sub(limits.msgmax) / 2;
    let report = ops::setup(guard.key(), capacity, 0o640, None).expect("setup");
    assert_eq!(report.outcome, Outcome::Created, "{report}");
    assert!(report.is_ready() && report.advice.is_empty(), "{report}");
    let stat = Queue::open(guard.key())
        .expect("created")
        .stat()
        .expect("stat");
    assert_eq!((stat.capacity, stat.mode), (capacity, 0o640));
    let queue = report.queue.as_ref().expect("queue in report");
    assert_eq!((queue.capacity, queue.mode.as_str()), (capacity, "0640"));
}

#[test]
fn setup_grows_an_existing_smaller_queue_in_place_keeping_its_messages() {
    let guard = unique_key();
    let limits = limits();
    let queue = Queue::create(guard.key(), 0o600).expect("create");
    queue.set_capacity(limits.msgmax).expect("shrink");
    send(&queue, 100);
    let report = ops::setup(guard.key(), limits.msgmnb, 0o600, None).expect("setup");
    assert_eq!(
        report.outcome,
        Outcome::Grown {
            from: limits.msgmax
        },
        "{report}"
    );
    let stat = queue.stat().expect("stat");
    assert_eq!((stat.capacity, stat.messages), (limits.msgmnb, 1));
    assert!(report.is_ready(), "{report}");
}

#[test]
fn setup_leaves_a_larger_queue_as_it_is() {
    let guard = unique_key();
    let limits = limits();
    let queue = Queue::create(guard.key(), 0o600).expect("create");
    let report = ops::setup(guard.key(), limits.msgmax, 0o600, None).expect("setup");
    assert_eq!(report.outcome, Outcome::Unchanged, "{report}");
    assert_eq!(queue.stat().expect("stat").capacity, limits.msgmnb);
}

#[test]
fn setup_above_msgmnb_without_apply_advises_the_exact_sysctl_and_creates_no_queue() {
    if has_cap_sys_resource() {
        eprintln!("skipped: with CAP_SYS_RESOURCE setup may exceed kernel.msgmnb");
        return;
    }
    let guard = unique_key();
    let Some(capacity) = above_msgmnb() else {
        return;
    };
    let report = ops::setup(guard.key(), capacity, 0o600, None).expect("setup");
    assert_eq!(report.outcome, Outcome::NotCreated, "{report}");
    assert!(!report.is_ready());
    let advice = &report.advice[0];
    assert_eq!(advice.setting, "kernel.msgmnb");
    assert!(
        advice
            .command
            .starts_with(&format!("sysctl -w kernel.msgmnb={capacity};")),
        "{report}"
    );
    let conf = report.persistent_config.as_ref().expect("sysctl.d snippet");
    assert_eq!(conf.path, "/etc/sysctl.d/60-shopify-events.conf");
    assert!(
        conf.contents
            .contains(&format!("kernel.msgmnb = {capacity}\n")),
        "{report}"
    );
    assert!(matches!(
        Queue::open(guard.key()),
        Err(sysvmq::Error::NotFound { .. })
    ));
}

#[test]
fn setup_above_msgmnb_on_a_queue_with_messages_says_how_many_stay_and_keeps_it() {
    if has_cap_sys_resource() {
        eprintln!("skipped: with CAP_SYS_RESOURCE setup may exceed kernel.msgmnb");
        return;
    }
    let guard = unique_key();
    let queue = Queue::create(guard.key(), 0o600).expect("create");
    send(&queue, 10);
    send(&queue, 10);
    let Some(capacity) = above_msgmnb() else {
        return;
    };
    let report = ops::setup(guard.key(), capacity, 0o600, None).expect("setup");
    assert_eq!(report.outcome, Outcome::TooSmall, "{report}");
    let command = &report.advice[0].command;
    assert!(
        command.contains(&format!("sysctl -w kernel.msgmnb={capacity}")),
        "{command}"
    );
    assert!(command.contains("its 2 messages stay"), "{command}");
    assert_eq!(queue.stat().expect("still there").messages, 2);
}

#[test]
fn setup_refuses_a_capacity_that_cannot_hold_one_message() {
    let guard = unique_key();
    let err = ops::setup(guard.key(), 1024, 0o600, None).expect_err("too small");
    assert!(
        matches!(err, SetupError::CapacityBelowMessage { capacity: 1024, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--capacity of at least"), "{err}");
    let err = ops::setup(guard.key(), 16384, 0o600, Some(65536)).expect_err("below max event");
    assert!(
        err.to_string().contains("65536 bytes (--max-event)"),
        "{err}"
    );
    assert!(matches!(
        Queue::open(guard.key()),
        Err(sysvmq::Error::NotFound { .. })
    ));
}

#[test]
fn setup_without_apply_advises_raising_msgmax_for_a_larger_max_event() {
    let guard = unique_key();
    let proc_sys = fake_proc_sys();
    let plan = SetupPlan {
        max_event: Some(12288),
        sysctl: SysctlFs::at(proc_sys.path()),
        ..SetupPlan::new(guard.key(), 16384)
    };
    let report = plan.run().expect("setup");
    assert_eq!(report.outcome, Outcome::Created, "{report}");
    assert_eq!(report.advice[0].command, "sysctl -w kernel.msgmax=12288");
    assert!(!report.is_ready());
    assert_eq!(read_fake(proc_sys.path(), "msgmax"), "8192\n");
}

#[test]
fn apply_sysctls_writes_msgmnb_and_msgmax_into_the_given_proc_root() {
    let guard = unique_key();
    let proc_sys = fake_proc_sys();
    let plan = SetupPlan {
        max_event: Some(64 << 10),
        raise_sysctls: true,
        sysctl: SysctlFs::at(proc_sys.path()),
        ..SetupPlan::new(guard.key(), 1 << 20)
    };
    let report = plan.run().expect("setup");
    assert_eq!(read_fake(proc_sys.path(), "msgmnb"), "1048576\n");
    assert_eq!(read_fake(proc_sys.path(), "msgmax"), "65536\n");
    assert_eq!(report.sysctls_written.len(), 2, "{report}");
    assert_eq!(
        (report.limits.msgmnb, report.limits.msgmax),
        (1 << 20, 64 << 10)
    );
    let conf = &report.persistent_config.as_ref().expect("snippet").contents;
    assert!(
        conf.contains("kernel.msgmax = 65536\nkernel.msgmnb = 1048576\n"),
        "{conf}"
    );
    // The real kernel still has its own msgmnb: without CAP_SYS_RESOURCE it
    // refuses the size, and setup must not leave a too-small queue behind.
    if !has_cap_sys_resource() && limits().msgmnb < 1 << 20 {
        assert_eq!(report.outcome, Outcome::NotCreated, "{report}");
        assert!(matches!(
            Queue::open(guard.key()),
            Err(sysvmq::Error::NotFound { .. })
        ));
    }
}

#[test]
fn apply_sysctls_refuses_a_msgmnb_above_the_kernel_maximum_of_2_gib_minus_one() {
    if has_cap_sys_resource() {
        eprintln!("skipped: with CAP_SYS_RESOURCE no sysctl is needed above 2 GiB");
        return;
    }
    let guard = unique_key();
    let proc_sys = fake_proc_sys();
    let plan = SetupPlan {
        raise_sysctls: true,
        max_event: Some(65536),
        sysctl: SysctlFs::at(proc_sys.path()),
        ..SetupPlan::new(guard.key(), parse_size("2GiB").expect("size"))
    };
    let err = plan.run().expect_err("2 GiB is one byte over INT_MAX");
    assert!(
        matches!(
            err,
            SetupError::SysctlOutOfRange {
                value: 2147483648,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("2147483647"), "{err}");
    assert_eq!(read_fake(proc_sys.path(), "msgmnb"), "16384\n");
    assert_eq!(
        read_fake(proc_sys.path(), "msgmax"),
        "8192\n",
        "nothing written"
    );
}

/// Set in the copy of this test binary that runs inside `unshare -i`.
const IN_PRIVATE_IPC: &str = "SHOPIFY_EVENTS_OPS_TEST_IN_PRIVATE_IPC";

/// The real `/proc/sys` of a fresh IPC namespace (the host's is untouched):
/// no CAP_SYS_RESOURCE needed, raising kernel.msgmnb is enough both for a new
/// queue and, in place, for an existing one that holds messages.
#[test]
fn apply_sysctls_in_a_private_ipc_namespace_creates_and_grows_queues_above_the_default() {
    if std::env::var_os(IN_PRIVATE_IPC).is_none() {
        let unshare = |args: &[&str]| std::process::Command::new("unshare").args(args).status();
        if !unshare(&["-i", "true"]).is_ok_and(|status| status.success()) {
            eprintln!("skipped: `unshare -i` is not available here");
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let name =
            "apply_sysctls_in_a_private_ipc_namespace_creates_and_grows_queues_above_the_default";
        let status = std::process::Command::new("unshare")
            .arg("-i")
            .arg(exe)
            .args(["--exact", name, "--nocapture"])
            .env(IN_PRIVATE_IPC, "1")
            .status()
            .expect("run in a private IPC namespace");
        assert!(status.success(), "inner run failed: {status}");
        return;
    }
    let grown = unique_key();
    let queue = Queue::create(grown.key(), 0o600).expect("create");
    send(&queue, 100);
    let fresh = unique_key();
    for (key, outcome) in [
        (grown.key(), Outcome::Grown { from: 16384 }),
        (fresh.key(), Outcome::Created),
    ] {
        let plan = SetupPlan {
            raise_sysctls: true,
            max_event: Some(64 << 10),
            ..SetupPlan::new(key, 1 << 20)
        };
        let report = plan.run().expect("setup");
        assert_eq!(report.outcome, outcome, "{report}");
        assert!(report.is_ready(), "{report}");
        let stat = Queue::open(key).expect("open").stat().expect("stat");
        assert_eq!(stat.capacity, 1 << 20);
    }
    assert_eq!(
        queue.stat().expect("stat").messages,
        1,
        "growing kept the message"
    );
    assert_eq!(limits().msgmax, 64 << 10);
}

#[test]
fn queue_stats_reports_depth_bytes_capacity_and_fill_after_sends() {
    let guard = unique_key();
    let queue = Queue::create(guard.key(), 0o600).expect("create");
    queue.set_capacity(10_000).expect("capacity");
    for _ in 0..3 {
        send(&queue, 100);
    }
    let stats = queue_stats(guard.key()).expect("stats");
    assert_eq!((stats.depth, stats.bytes, stats.capacity), (3, 300, 10_000));
    assert!(
        (stats.fill_percent - 3.0).abs() < 1e-9,
        "{}",
        stats.fill_percent
    );
    assert_eq!(stats.key, format!("{:#010x}", guard.key()));
    assert_eq!(stats.last_send_pid, std::process::id() as i32);
    assert!(stats.last_send_time.is_some() && stats.last_receive_time.is_none());
    assert_eq!(stats.mode, "0600");
    let json = serde_json::to_value(&stats).expect("json");
    assert_eq!(json["depth"], 3);
    assert!(json["drain"].is_null());
    let text = stats.to_string();
    assert!(
        text.contains("9.8 KiB (10000 bytes)") && text.contains("3.0 %"),
        "{text}"
    );
}

#[test]
fn queue_stats_of_a_missing_queue_is_not_found() {
    let guard = unique_key();
    let err = queue_stats(guard.key()).expect_err("missing");
    assert!(matches!(err, sysvmq::Error::NotFound { .. }), "{err:?}");
}

/// A capacity above the current kernel.msgmnb that the sysctl could still be
/// raised to (other tests on this host may have raised msgmnb already).
fn above_msgmnb() -> Option<u64> {
    let msgmnb = limits().msgmnb;
    if msgmnb >= ops::SYSCTL_MAX {
        eprintln!("skipped: kernel.msgmnb is already at its maximum");
        return None;
    }
    Some((msgmnb * 4).min(ops::SYSCTL_MAX))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A snapshot as the drain writes it, by `pid` at `updated_at`.
fn snapshot(pid: u32, updated_at: f64) -> DrainSnapshot {
    let metrics = DrainMetrics::for_queue(7);
    metrics.produced.add(42);
    metrics.delivery_latency.observe(0.25);
    let mut snapshot = DrainSnapshot::now("stdout (JSON lines)".into(), metrics.snapshot());
    (snapshot.pid, snapshot.updated_at) = (pid, updated_at);
    snapshot
}

#[test]
fn drain_snapshot_is_read_back_when_fresh_and_its_pid_alive() {
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), 0x5345_5600);
    // A whole number of seconds: serde_json's default float parsing is not
    // round-trip exact, and this test is about freshness, not precision.
    let written = snapshot(std::process::id(), now().floor());
    write_drain_snapshot(&state, &written).expect("write");
    assert!(state.stats_snapshot().ends_with("drain-53455600.json"));
    assert_eq!(read_drain_snapshot(&state), Some(written));
    let leftovers = std::fs::read_dir(dir.path()).expect("list").count();
    assert_eq!(leftovers, 1, "the temp file was renamed away");
}

#[test]
fn drain_snapshot_is_one_flat_json_object_with_the_metrics_beside_pid_and_sink() {
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), 7);
    write_drain_snapshot(&state, &snapshot(std::process::id(), now())).expect("write");
    let text = std::fs::read_to_string(state.stats_snapshot()).expect("read");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "dead_letter_failures",
            "dead_letter_files_dropped",
            "dead_lettered",
            "delivery_latency",
            "duplicates",
            "gaps",
            "in_flight",
            "journal_damaged",
            "journal_pending_bytes",
            "late",
            "oldest_event_age",
            "pid",
            "produced",
            "queue_bytes",
            "queue_capacity",
            "queue_depth",
            "received",
            "recovered",
            "retried",
            "saved",
            "sink",
            "spool_backlog_bytes",
            "spool_backlog_segments",
            "spool_damaged",
            "spool_given_up_bytes",
            "spool_oldest_event_age",
            "spool_read",
            "spool_reclaimed",
            "unaccounted",
            "updated_at",
        ]
    );
    assert_eq!(value["produced"], json!(42));
    assert_eq!(value["delivery_latency"]["count"], json!(1));
}

#[test]
fn drain_snapshot_carries_the_loss_accounting_as_one_object_read_back_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), 7);
    let mut written = snapshot(std::process::id(), now().floor());
    let mut accounting = shopify_events_core::accounting::AccountingSnapshot::default();
    accounting.totals.gaps = 3;
    accounting.totals.late = 1;
    accounting.missing = 2;
    accounting.totals.duplicates = 5;
    written.accounting = Some(accounting);
    write_drain_snapshot(&state, &written).expect("write");
    let text = std::fs::read_to_string(state.stats_snapshot()).expect("read");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(value["accounting"]["missing"], json!(2));
    assert_eq!(value["accounting"]["gaps"], json!(3));
    assert_eq!(value["accounting"]["duplicates"], json!(5));
    assert_eq!(read_drain_snapshot(&state), Some(written));
}

#[test]
fn drain_snapshot_is_ignored_when_stale() {
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), 7);
    write_drain_snapshot(&state, &snapshot(std::process::id(), now() - 11.0)).expect("write");
    assert_eq!(read_drain_snapshot(&state), None);
}

#[test]
fn drain_snapshot_is_ignored_when_its_pid_has_exited() {
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("reap");
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), 7);
    write_drain_snapshot(&state, &snapshot(pid, now())).expect("write");
    assert_eq!(read_drain_snapshot(&state), None);
}

#[test]
fn drain_snapshot_is_ignored_when_missing_or_malformed() {
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), 7);
    assert_eq!(read_drain_snapshot(&state), None);
    std::fs::write(state.stats_snapshot(), "{\"pid\": 0").expect("write");
    assert_eq!(read_drain_snapshot(&state), None);
    let fields_missing = json!({"pid": std::process::id(), "updated_at": now()});
    std::fs::write(state.stats_snapshot(), fields_missing.to_string()).expect("write");
    assert_eq!(read_drain_snapshot(&state), None);
    write_drain_snapshot(&state, &snapshot(0, now())).expect("write");
    assert_eq!(read_drain_snapshot(&state), None);
}
