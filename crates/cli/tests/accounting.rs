//! End-to-end loss accounting against a real drain (stdout sink): events
//! taken out of the queue behind the drain's back are reported as exactly
//! that many gaps; events the transport refused (queue full, no spool: the
//! app's drop policy) are not gaps; a drain restart keeps the accounting,
//! with no false gaps and no false duplicates; `kill -9` storms count no
//! gap; a producer that moves between the queue and its spool, and
//! clients of the proxy, count none either; frames a client sends again
//! after a proxy `kill -9` are duplicates, never gaps; a healthy run of a
//! million events reports zero.
//!
//! The emitting side is this test process's own `SysvEmitter`, the
//! transport the gem uses: it numbers what it accepts.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;
use shopify_events_core::envelope::encode;
use shopify_events_core::event_id::EventId;
use shopify_events_core::proxy::wire::ProxyAddress;
use shopify_events_core::proxy::{ClientConfig, SocketClient};
use shopify_events_core::spool::SpoolOptions;
use shopify_events_core::transport::{FrameSink, SendError, SysvEmitter};
use sysvmq::Message;
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::queue::TestQueue;
use testkit::wait::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");

fn spec(queue: &TestQueue, root: &Path) -> DrainSpec {
    DrainSpec::new(BIN, queue.key(), &root.join("state"), root).args(["--accounting-window", "1"])
}

/// Sends one event; whether the transport accepted it.
fn emit(emitter: &SysvEmitter, n: u64) -> bool {
    let mut frame = Vec::new();
    emitter.begin_frame(&mut frame);
    let time = shopify_events_core::clock::now_micros();
    let payload = format!("{{\"n\":{n}}}");
    encode(
        &mut frame,
        EventId::generate(time),
        time,
        "accounting.test",
        None,
        &[],
        payload.as_bytes(),
    )
    .expect("encode");
    match emitter.send_frame(&mut frame) {
        Ok(()) => true,
        Err(SendError::QueueFull { .. }) => false,
        Err(e) => panic!("send: {e}"),
    }
}

/// The accounting section of the drain's snapshot, once it is there.
fn accounting(drain: &DrainSpec) -> Option<Value> {
    drain.snapshot()?.get("accounting").cloned()
}

fn field(accounting: &Value, path: &[&str]) -> u64 {
    let mut v = accounting;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} in {accounting}"))
}

/// Waits until the drain admitted `admitted` events in all and settled
/// them past the window; returns the accounting.
fn settled(drain: &DrainSpec, process: &mut DrainProcess, admitted: u64) -> Value {
    settled_within(drain, process, admitted, Duration::from_secs(30))
}

/// [`settled`], waiting up to `timeout` for the admissions.
fn settled_within(
    drain: &DrainSpec,
    process: &mut DrainProcess,
    admitted: u64,
    timeout: Duration,
) -> Value {
    let mut last = None;
    let ok = wait_until(timeout, || {
        process.assert_running();
        last = accounting(drain);
        last.as_ref()
            .is_some_and(|a| field(a, &["admitted"]) == admitted)
    });
    assert!(ok, "the drain did not admit {admitted} events: {last:?}");
    // Past the window (1 s) and a tick: whatever is missing is a gap now.
    std::thread::sleep(Duration::from_millis(2500));
    accounting(drain).expect("accounting")
}

#[test]
fn a_message_removed_behind_the_drains_back_is_exactly_one_gap_and_drops_are_none() {
    let root = tempfile::tempdir().unwrap();
    let queue = TestQueue::with_capacity(4096);
    let emitter = SysvEmitter::new(queue.key(), 0o600);

    // Fill the queue until it refuses: those refusals are drops (the app
    // counts them), they take no number.
    let mut accepted = 0;
    let mut dropped = 0;
    for n in 0..60 {
        if emit(&emitter, n) {
            accepted += 1;
        } else {
            dropped += 1;
        }
    }
    assert!(
        dropped > 0 && accepted > 4,
        "{accepted} accepted, {dropped} dropped"
    );

    // Behind the drain's back: take every message, put back all but one in
    // the middle (msgrcv by someone else).
    let mut msg = Message::with_capacity(1, sysvmq::message_size_limit() as usize);
    let mut frames = Vec::new();
    while queue.try_receive(&mut msg, 0).expect("receive") {
        frames.push(msg.frame().to_vec());
    }
    assert_eq!(frames.len() as u64, accepted);
    frames.remove(2);
    for frame in &frames {
        queue.try_send_frame(frame).expect("put back");
    }

    let spec = spec(&queue, root.path());
    let mut drain = spec.spawn(0);
    let a = settled(&spec, &mut drain, accepted - 1);
    assert_eq!(field(&a, &["missing"]), 1, "{a}");
    assert_eq!(field(&a, &["gaps"]), 1, "{a}");
    assert_eq!(field(&a, &["duplicates"]), 0, "{a}");
    // `stats` shows the same, as JSON and as text.
    let stats = spec.stats_json();
    assert_eq!(stats["drain"]["accounting"]["missing"], 1, "{stats}");
    let text = std::process::Command::new(BIN)
        .args(["stats", "--queue-key", &queue.hex(), "--state-dir"])
        .arg(root.path().join("state"))
        .output()
        .expect("stats");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("accounting      1 missing (1 gap, 0 late), 0 duplicates"),
        "{text}"
    );

    // A clean restart keeps it: more events, no new gap, no duplicate.
    drain.terminate(Duration::from_secs(20)).expect("stopped");
    for n in 0..5 {
        assert!(emit(&emitter, 100 + n));
    }
    let mut drain = spec.spawn(1);
    let a = settled(&spec, &mut drain, accepted - 1 + 5);
    assert_eq!(field(&a, &["missing"]), 1, "{a}");
    assert_eq!(field(&a, &["duplicates"]), 0, "{a}");
    drain.terminate(Duration::from_secs(20)).expect("stopped");
}

#[test]
fn kill_9_storms_count_no_gap_and_every_event_once_apart_from_duplicates() {
    let root = tempfile::tempdir().unwrap();
    let queue = TestQueue::with_capacity(256 << 10);
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    let spec = spec(&queue, root.path());
    let mut accepted = 0u64;
    let mut drain = spec.spawn(0);
    for round in 0..6u64 {
        for n in 0..300 {
            assert!(
                emit(&emitter, round * 1000 + n),
                "the queue is large enough"
            );
            accepted += 1;
        }
        // Killed at a different point of its work each round: mid-batch,
        // between saves, just after one.
        std::thread::sleep(Duration::from_millis(350 * round));
        drain.kill9();
        drain = spec.spawn(round as usize + 1);
    }
    let mut last = None;
    let ok = wait_until(Duration::from_secs(30), || {
        drain.assert_running();
        last = accounting(&spec);
        last.as_ref()
            .is_some_and(|a| field(a, &["admitted"]) - field(a, &["duplicates"]) == accepted)
    });
    assert!(ok, "not every event admitted once: {last:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let a = accounting(&spec).expect("accounting");
    assert_eq!(field(&a, &["gaps"]), 0, "{a}");
    assert_eq!(field(&a, &["missing"]), 0, "{a}");
    assert_eq!(field(&a, &["unclassified"]), 0, "{a}");
    assert_eq!(
        field(&a, &["admitted"]) - field(&a, &["duplicates"]),
        accepted,
        "{a}"
    );
    eprintln!(
        "{accepted} events, {} duplicates after 6 kill -9",
        field(&a, &["duplicates"])
    );
    drain.terminate(Duration::from_secs(20)).expect("stopped");
}

/// Emits `n` events through `sink`; all must be accepted.
fn emit_all(sink: &impl FrameSink, n: u64) {
    for i in 0..n {
        let mut frame = Vec::new();
        sink.begin_frame(&mut frame);
        let time = shopify_events_core::clock::now_micros();
        let payload = vec![b'x'; 200 + (i as usize % 7) * 300];
        encode(
            &mut frame,
            EventId::generate(time),
            time,
            "accounting.test",
            None,
            &[],
            &payload,
        )
        .expect("encode");
        sink.send_frame(&mut frame).expect("accepted");
    }
}

#[test]
fn a_producer_moving_between_the_queue_and_its_spool_counts_no_gap() {
    let root = tempfile::tempdir().unwrap();
    let spool = root.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let queue = TestQueue::with_capacity(16 << 10);
    let emitter = SysvEmitter::new(queue.key(), 0o600).with_spool(SpoolOptions {
        segment_min: 64 << 10,
        ..SpoolOptions::new(&spool, queue.key())
    });
    let spec = spec(&queue, root.path()).spool_dir(&spool);
    // Before the drain runs: the queue fills, the rest is spooled.
    emit_all(&emitter, 300);
    assert!(emitter.stats().snapshot().spooled > 0, "nothing spooled");
    let mut drain = spec.spawn(0);
    // While it runs, in bursts: back and forth between queue and spool.
    for _ in 0..5 {
        emit_all(&emitter, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = settled(&spec, &mut drain, 1300);
    assert_eq!(field(&a, &["gaps"]), 0, "{a}");
    assert_eq!(field(&a, &["duplicates"]), 0, "{a}");
    assert_eq!(field(&a, &["producers"]), 1, "{a}");
    drain.terminate(Duration::from_secs(20)).expect("stopped");
}

#[test]
fn events_through_the_proxy_keep_the_apps_numbers_and_count_no_gap() {
    let root = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    let socket = root.path().join("proxy.sock");
    let mut proxy = std::process::Command::new(BIN)
        .args(["proxy", "--queue-key", &queue.hex(), "--run-dir"])
        .arg(root.path())
        .arg("--spool-dir")
        .arg(root.path().join("spool"))
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the proxy");
    assert!(wait_until(Duration::from_secs(10), || socket.exists()));
    let spec = spec(&queue, root.path());
    let mut drain = spec.spawn(0);
    let clients: Vec<SocketClient> = (0..3)
        .map(|_| SocketClient::new(ClientConfig::new(ProxyAddress::Unix(socket.clone()))).unwrap())
        .collect();
    for client in &clients {
        emit_all(client, 400);
    }
    let never = AtomicBool::new(false);
    for client in &clients {
        assert!(client.flush(Duration::from_secs(20), &never));
    }
    let a = settled(&spec, &mut drain, 1200);
    assert_eq!(field(&a, &["gaps"]), 0, "{a}");
    assert_eq!(field(&a, &["duplicates"]), 0, "{a}");
    assert_eq!(field(&a, &["unaccounted"]), 0, "{a}");
    assert_eq!(field(&a, &["producers"]), 3, "{a}");
    drain.terminate(Duration::from_secs(20)).expect("stopped");
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[test]
fn a_healthy_run_of_a_million_events_reports_zero() {
    const EVENTS: u64 = 1_000_000;
    let root = tempfile::tempdir().unwrap();
    let queue = TestQueue::with_capacity(256 << 10);
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    let spec = spec(&queue, root.path());
    let mut drain = spec.spawn(0);
    let mut frame = Vec::new();
    for n in 0..EVENTS {
        emitter.begin_frame(&mut frame);
        let time = shopify_events_core::clock::now_micros();
        encode(
            &mut frame,
            EventId::generate(time),
            time,
            "accounting.test",
            None,
            &[],
            b"{}",
        )
        .expect("encode");
        // A full queue refuses without taking a number: wait and send the
        // same event again (a retrying app, not a drop).
        loop {
            match emitter.send_frame(&mut frame) {
                Ok(()) => break,
                Err(SendError::QueueFull { .. }) => std::thread::yield_now(),
                Err(e) => panic!("event {n}: {e}"),
            }
        }
    }
    let a = settled_within(&spec, &mut drain, EVENTS, Duration::from_secs(300));
    for counter in [
        "gaps",
        "missing",
        "duplicates",
        "unaccounted",
        "unclassified",
    ] {
        assert_eq!(field(&a, &[counter]), 0, "{counter}: {a}");
    }
    drain.terminate(Duration::from_secs(20)).expect("stopped");
}

/// `shopify-events proxy` for `queue` on `address`, its stderr discarded.
fn spawn_proxy(queue: &TestQueue, run_dir: &Path, address: &str) -> std::process::Child {
    std::process::Command::new(BIN)
        .args([
            "proxy",
            "--queue-key",
            &queue.hex(),
            "--listen",
            address,
            "--run-dir",
        ])
        .arg(run_dir)
        // The drain's spool directory (DrainSpec's default, ROOT/spool):
        // what the proxy spools, the drain reads; never the host's.
        .arg("--spool-dir")
        .arg(run_dir.join("spool"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the proxy")
}

#[test]
fn frames_a_client_sends_again_after_a_proxy_kill_9_are_duplicates_never_gaps() {
    let root = tempfile::tempdir().unwrap();
    let queue = TestQueue::with_capacity(1 << 20);
    let address = format!("tcp://127.0.0.1:{}", testkit::net::free_port());
    let mut proxy = spawn_proxy(&queue, root.path(), &address);
    let spec = spec(&queue, root.path());
    let mut drain = spec.spawn(0);
    let client =
        SocketClient::new(ClientConfig::new(address.parse().expect("address"))).expect("client");
    let mut accepted = 0;
    for round in 0..4u64 {
        emit_all(&client, 500);
        accepted += 500;
        // Killed while frames are on the wire or in msgsnd, not yet acked:
        // the client sends them again to the next proxy.
        std::thread::sleep(Duration::from_millis(5 * round));
        let _ = proxy.kill();
        let _ = proxy.wait();
        proxy = spawn_proxy(&queue, root.path(), &address);
    }
    let never = AtomicBool::new(false);
    assert!(
        client.flush(Duration::from_secs(30), &never),
        "{:?}",
        client.snapshot()
    );
    let mut last = None;
    let ok = wait_until(Duration::from_secs(30), || {
        drain.assert_running();
        last = accounting(&spec);
        last.as_ref()
            .is_some_and(|a| field(a, &["admitted"]) - field(a, &["duplicates"]) == accepted)
    });
    assert!(ok, "not every event admitted once: {last:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let a = accounting(&spec).expect("accounting");
    assert_eq!(field(&a, &["missing"]), 0, "{a}");
    assert_eq!(field(&a, &["gaps"]), 0, "{a}");
    eprintln!(
        "{accepted} events through 4 proxy kill -9s, {} duplicates",
        field(&a, &["duplicates"])
    );
    drain.terminate(Duration::from_secs(20)).expect("stopped");
    let _ = proxy.kill();
    let _ = proxy.wait();
}
