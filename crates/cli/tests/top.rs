//! `shopify-events top` against a running pipeline: in a real terminal
//! (tmux: what the screen shows, and that `q` quits and gives the terminal
//! back), and as plain text when stdout is not a terminal.
//!
//! The pipeline is a real drain (stdout sink) on a fresh queue, fed by a
//! thread of this process emitting through the sysv transport at a steady
//! pace. Every queue is removed and every process killed on drop.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;
use shopify_events_core::clock::now_micros;
use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use shopify_events_core::ops::ProxySnapshotWriter;
use shopify_events_core::proxy::ProxyMetrics;
use shopify_events_core::state_dir::StateDir;
use shopify_events_core::transport::{FrameSink, SysvEmitter};
use testkit::command::run_ok;
use testkit::drain::DrainSpec;
use testkit::events::event_frame;
use testkit::queue::TestQueue;
use testkit::terminal::Tmux;
use testkit::wait::{serial, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");

/// Emits about `per_sec` events a second into `queue` (two topics) until
/// dropped.
struct Emitter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Emitter {
    fn start(queue: &TestQueue, per_sec: u64) -> Emitter {
        let stop = Arc::new(AtomicBool::new(false));
        let emitter = SysvEmitter::new(queue.key(), 0o600);
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut frame = Vec::new();
            let mut sent = 0u64;
            while !flag.load(Relaxed) {
                for i in 0..per_sec / 20 {
                    let topic = if i % 4 == 0 {
                        "users.updated"
                    } else {
                        "orders.created"
                    };
                    event_frame(
                        &mut frame,
                        topic,
                        None,
                        b"{\"id\":1234,\"total\":\"12.50\"}",
                    );
                    if emitter.send_frame(&mut frame).is_ok() {
                        sent += 1;
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
            sent
        });
        Emitter {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Relaxed);
        self.thread.take().map_or(0, |t| t.join().expect("emitter"))
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

fn top_command(queue: &TestQueue, dir: &Path, extra: &str) -> String {
    format!(
        "{BIN} top --queue-key {} --state-dir {} --run-dir {} {extra}",
        queue.hex(),
        dir.join("state").display(),
        dir.join("run").display()
    )
}

#[test]
fn top_in_a_terminal_shows_a_running_pipeline_and_q_quits_giving_the_terminal_back() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("dir");
    let queue = TestQueue::new();
    let spec = DrainSpec::new(BIN, queue.key(), &dir.path().join("state"), dir.path());
    let mut drain = spec.spawn(0);
    assert!(
        wait_until(Duration::from_secs(20), || spec.snapshot().is_some()),
        "no drain snapshot\n{}",
        drain.log_text()
    );
    let emitter = Emitter::start(&queue, 400);
    // The proxy's snapshot, written by the proxy's own writer from this
    // process: top reads it like any other (no proxy process needed here).
    let proxy_metrics = Arc::new(ProxyMetrics::for_queue(queue.key()));
    proxy_metrics.connections_open.add(2);
    let proxy_stop = Arc::new(AtomicBool::new(false));
    let proxy_writer = ProxySnapshotWriter::spawn(
        StateDir::new(dir.path().join("run"), queue.key()),
        vec!["unix:///run/shopify-events/proxy.sock".into()],
        proxy_metrics,
        proxy_stop.clone(),
    )
    .expect("proxy snapshot writer");
    let exit = dir.path().join("top.exit");
    let tmux = Tmux::start(
        100,
        30,
        &format!(
            "{}; echo \"top exited $?\" > {}; echo 'top exited'; sleep 30",
            top_command(&queue, dir.path(), "--interval 0.5"),
            exit.display()
        ),
    );
    let pid_line = format!("Drain     up · pid {}", drain.pid());
    // Rates need two drain snapshots a second apart, over a window of up to 5 s.
    let (screen, ok) = tmux.wait_for(Duration::from_secs(30), |s| {
        s.contains(&pid_line) && s.contains("drain's counters") && !s.contains("delivered -")
    });
    drain.assert_running();
    assert!(
        ok,
        "top did not show the running drain with rates:\n{screen}"
    );
    for expected in [
        &format!("shopify-events top · queue {}", queue.hex()),
        "Queue     ",
        "Fill      ",
        "In        ",
        "Out       ",
        "from the drain's counters",
        "Full in   ",
        "Empty in  ",
        "Delivery  p50 ",
        "in flight ",
        "dead letters 0",
        "stdout (JSON lines)",
        &format!("Proxy     up · pid {}", std::process::id()),
        "unix:///run/shopify-events/proxy.sock",
        "2 connections",
        "q quits",
    ] {
        assert!(
            screen.contains(expected),
            "{expected:?} missing from:\n{screen}"
        );
    }
    let delivered = screen
        .split("delivered ")
        .nth(1)
        .and_then(|rest| rest.split("/s").next())
        .unwrap_or("-");
    let delivered: f64 = delivered
        .trim_end_matches('k')
        .parse()
        .unwrap_or_else(|_| panic!("delivered rate {delivered:?} in:\n{screen}"));
    assert!(delivered > 0.0, "nothing delivered per second:\n{screen}");
    let counts_topics = spec.snapshot().is_some_and(|s| s.get("topics").is_some());
    let screen = if counts_topics {
        let (screen, ok) = tmux.wait_for(Duration::from_secs(10), |s| {
            s.contains("orders.created") && s.contains("users.updated") && s.contains("KiB/s ·")
        });
        assert!(ok, "the drain counts topics but top lists none:\n{screen}");
        screen
    } else {
        assert!(
            screen.contains("(the drain reports no per-topic counts yet)"),
            "{screen}"
        );
        screen
    };
    // For docs/OPERATIONS.md: the screen as an operator sees it.
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("top-screen.txt"),
        &screen,
    )
    .expect("save screen");

    tmux.send_keys("q");
    let (after, quit) = tmux.wait_for(Duration::from_secs(10), |s| s.contains("top exited"));
    assert!(quit, "q did not quit top:\n{after}");
    assert_eq!(
        std::fs::read_to_string(&exit).expect("exit status").trim(),
        "top exited 0"
    );
    assert!(
        !after.contains("shopify-events top ·"),
        "the terminal was not given back (alternate screen left on):\n{after}"
    );
    let sent = emitter.stop();
    assert!(sent > 0);
    proxy_stop.store(true, Relaxed);
    proxy_writer.join().expect("proxy snapshot writer");
}

#[test]
fn top_without_a_drain_peeks_at_the_head_for_the_oldest_age_and_leaves_it_queued() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("dir");
    let queue = TestQueue::new();
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    let mut frame = Vec::new();
    emitter.begin_frame(&mut frame);
    let emitted = now_micros() - 90_000_000;
    let id = EventId::generate(emitted);
    envelope::encode(&mut frame, id, emitted, "orders.created", None, &[], b"{}").expect("encode");
    emitter.send_frame(&mut frame).expect("send");
    let before = queue.stat().expect("stat");

    let out = run_ok(
        Command::new("sh").args([
            "-c",
            &top_command(&queue, dir.path(), "--once --json --interval 0.2"),
        ]),
        "top --once --json",
    );
    let view: Value = serde_json::from_slice(&out).expect("one JSON object");
    assert_eq!(view["queue"]["depth"], 1);
    assert_eq!(view["queue"]["oldest_source"], "peek");
    let age = view["queue"]["oldest_age"].as_f64().expect("age");
    assert!((90.0..120.0).contains(&age), "oldest age {age}");
    assert_eq!(view["drain"]["state"], "down");
    assert_eq!(view["rates"]["basis"], "queue");

    let after = queue.stat().expect("stat");
    assert_eq!(after.messages, 1, "peeking took the message");
    assert_eq!(
        (after.last_receive_pid, after.last_receive_time),
        (before.last_receive_pid, before.last_receive_time),
        "peeking counted as a receive"
    );
}

#[test]
fn top_on_a_pipe_prints_a_line_per_refresh_and_survives_a_missing_queue() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("dir");
    let queue = TestQueue::new();
    let out = run_ok(
        Command::new("sh").args([
            "-c",
            &top_command(&queue, dir.path(), "--count 3 --interval 0.2"),
        ]),
        "top --count 3",
    );
    let text = String::from_utf8(out).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines {
        assert!(line.starts_with("time="), "{line}");
        assert!(
            line.contains(&format!(" queue={} depth=0 ", queue.hex())),
            "{line}"
        );
        assert!(line.contains(" drain=down proxy=down"), "{line}");
    }
    assert!(
        lines[0].contains(" in=-,- "),
        "the first line has no rate yet: {}",
        lines[0]
    );
    assert!(lines[2].contains(" in=0/s,0B/s "), "{}", lines[2]);

    let missing = queue.hex();
    drop(queue);
    let out = run_ok(
        Command::new(BIN).args([
            "top",
            "--once",
            "--interval",
            "0.1",
            "--queue-key",
            &missing,
        ]),
        "top of a missing queue",
    );
    let line = String::from_utf8(out).expect("utf-8");
    assert!(line.contains(" depth=- error=queue_unreadable"), "{line}");
}
