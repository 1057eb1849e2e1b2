//! End to end: Ruby `ShopifyEvents.emit!` -> SysV queue -> `shopify-events
//! drain` (the real binary) -> a real Kafka-protocol broker (Tansu), read
//! back with librdkafka. Needs root (to raise kernel.msgmnb), `ruby`, the
//! compiled extension in lib/ (`rake compile`) and a tansu binary (see
//! `testkit::tansu`).
//!
//! The tests run one at a time ([`serial`]): each starts a broker, drains
//! and a Ruby process, and the kill and shutdown timings mean little on two
//! busy cores.

use std::collections::{HashMap, HashSet};
use std::thread::sleep;
use std::time::{Duration, Instant};

use base64::Engine as _;
use shopify_events_core::envelope::Envelope;
use testkit::consume::{consume_all, consume_until, unique_topic, Consumed};
use testkit::dirs::Dirs;
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::events::event_frame;
use testkit::net;
use testkit::queue::TestQueue;
use testkit::rng::XorShift;
use testkit::ruby::{by_id, key, payload, read_emitted, Emitted, RubyEmitter};
use testkit::sysctl::MIN_MSGMNB;
use testkit::tansu::Tansu;
use testkit::wait::{now_ms, serial, wait_until};

/// A queue large enough for every test here (~250,000 events).
fn test_queue() -> TestQueue {
    TestQueue::with_capacity(MIN_MSGMNB)
}

fn spec(queue: &TestQueue, dirs: &Dirs) -> DrainSpec {
    let bin = env!("CARGO_BIN_EXE_shopify-events");
    DrainSpec::new(bin, queue.key(), &dirs.state(), dirs.logs())
}

fn kafka_spec(queue: &TestQueue, dirs: &Dirs, tansu: &Tansu) -> DrainSpec {
    spec(queue, dirs).brokers(&tansu.bootstrap)
}

/// SIGTERM, then the exit status within `bound`; panics with the log if
/// the drain is still running or failed.
fn terminate_within(drain: &mut DrainProcess, bound: Duration) -> Duration {
    let start = Instant::now();
    let status = drain.terminate(bound);
    let took = start.elapsed();
    match status {
        Some(s) if s.success() => took,
        Some(s) => panic!("drain exited with {s} after SIGTERM\n{}", drain.log_text()),
        None => panic!(
            "drain still running {bound:?} after SIGTERM\n{}",
            drain.log_text()
        ),
    }
}

fn event_id(record: &Consumed) -> String {
    let id = record.header("event_id").expect("event_id header");
    String::from_utf8(id.to_vec()).expect("event_id is ASCII")
}

/// The headers the user set (everything but the drain's `event_id`).
fn user_headers(record: &Consumed) -> Vec<(String, Vec<u8>)> {
    record
        .headers
        .iter()
        .filter(|(k, _)| k != "event_id")
        .cloned()
        .collect()
}

/// Asserts a consumed record is exactly what Ruby emitted as event `e`.
fn assert_matches(record: &Consumed, e: &Emitted) {
    assert_eq!(record.topic, e.topic, "topic of event {}", e.i);
    assert_eq!(
        record.payload,
        payload(e.i),
        "payload of event {} ({}): {:?}",
        e.i,
        e.id,
        String::from_utf8_lossy(&record.payload)
    );
    assert_eq!(
        record.key.as_deref(),
        Some(&key(e.i)[..]),
        "key of event {}",
        e.i
    );
    assert_eq!(
        user_headers(record),
        vec![("seq".to_owned(), e.i.to_string().into_bytes())],
        "headers of event {}",
        e.i
    );
}

/// Waits until the queue is empty and the (current) drain reports nothing
/// in flight and no pending journal bytes in a stats snapshot written after
/// the queue was seen empty (`shopify-events stats --json`).
fn wait_drained(spec: &DrainSpec, drain: &mut DrainProcess, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut empty_since: Option<f64> = None;
    loop {
        drain.assert_running();
        let stats = spec.stats_json();
        let depth = stats["depth"].as_u64().unwrap_or(u64::MAX);
        let snap = &stats["drain"];
        let now_s = now_ms() as f64 / 1000.0;
        if depth > 0 {
            empty_since = None;
        } else if empty_since.is_none() {
            empty_since = Some(now_s);
        }
        let idle = snap["pid"].as_u64() == Some(u64::from(drain.pid()))
            && snap["in_flight"].as_u64() == Some(0)
            && snap["journal_pending_bytes"].as_u64() == Some(0)
            && matches!((snap["updated_at"].as_f64(), empty_since), (Some(u), Some(e)) if u > e);
        if depth == 0 && idle {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not drained after {timeout:?}: {stats:#}\n{}",
            drain.log_text()
        );
        sleep(Duration::from_millis(200));
    }
}

/// Every emitted event arrived at least once, and every copy equals what
/// Ruby emitted; returns the number of duplicate records.
fn check_at_least_once(records: &[Consumed], emitted: &HashMap<String, Emitted>) -> usize {
    let mut first: HashMap<String, &Consumed> = HashMap::with_capacity(emitted.len());
    let mut duplicates = 0;
    for record in records {
        let id = event_id(record);
        let e = emitted
            .get(&id)
            .unwrap_or_else(|| panic!("record with unknown event id {id}: {record:?}"));
        assert_matches(record, e);
        match first.get(&id) {
            None => {
                first.insert(id, record);
            }
            Some(original) => {
                duplicates += 1;
                assert_eq!(
                    (
                        &original.key,
                        &original.payload,
                        &original.headers,
                        original.timestamp_ms
                    ),
                    (
                        &record.key,
                        &record.payload,
                        &record.headers,
                        record.timestamp_ms
                    ),
                    "duplicate of {id} differs from the original"
                );
            }
        }
    }
    let mut missing: Vec<_> = emitted
        .values()
        .filter(|e| !first.contains_key(&e.id))
        .map(|e| e.i)
        .collect();
    missing.sort_unstable();
    assert!(
        missing.is_empty(),
        "{} of {} events never arrived: i in {}",
        missing.len(),
        emitted.len(),
        ranges(&missing)
    );
    duplicates
}

/// Reads `topic` until every emitted event arrived and then nothing new
/// for 2 s (so duplicates are read too), or `timeout`.
fn consume_emitted(
    bootstrap: &str,
    topic: &str,
    emitted: &HashMap<String, Emitted>,
    timeout: Duration,
) -> Vec<Consumed> {
    let mut seen = HashSet::with_capacity(emitted.len());
    let mut checked = 0;
    consume_until(
        bootstrap,
        topic,
        timeout,
        Duration::from_secs(2),
        |records| {
            for record in &records[checked..] {
                if let Some(id) = record.header("event_id") {
                    let id = String::from_utf8_lossy(id).into_owned();
                    if emitted.contains_key(&id) {
                        seen.insert(id);
                    }
                }
            }
            checked = records.len();
            seen.len() == emitted.len()
        },
    )
}

/// `[1, 2, 3, 7]` as `1-3 7` (at most 40 ranges).
fn ranges(sorted: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    if out.len() > 40 {
        let n = out.len();
        out.truncate(40);
        out.push(format!("... ({n} ranges)"));
    }
    out.join(" ")
}

#[test]
fn ruby_events_reach_kafka_exactly_as_emitted() {
    const N: usize = 100_000;
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let topic = unique_topic("exact");
    tansu.create_topic(&topic, 3);
    let queue = test_queue();
    let dirs = Dirs::new("drain-tansu-");
    let mut drain = kafka_spec(&queue, &dirs, &tansu)
        .args(["--shutdown-timeout", "10"])
        .spawn(0);

    let emit_start_ms = now_ms();
    let mut ruby = RubyEmitter::spawn(&queue, dirs.logs(), "ruby", 0, &[format!("{topic},0,{N}")]);
    ruby.wait(Duration::from_secs(60));
    let emit_end_ms = now_ms();
    let emitted = ruby.emitted();
    assert_eq!(emitted.len(), N, "ruby emitted {} of {N}", emitted.len());
    let emitted = by_id(&emitted);
    eprintln!(
        "emitted {N} in {} ms; {}",
        emit_end_ms - emit_start_ms,
        ruby.log_text().trim()
    );

    let records = consume_all(&tansu.bootstrap, &topic, N, Duration::from_secs(60));
    eprintln!("consumed {} after {:?}", records.len(), started.elapsed());
    drain.assert_running();
    assert_eq!(records.len(), N, "records in Kafka\n{}", drain.log_text());

    let mut seen = HashSet::with_capacity(N);
    // (partition, key) -> (last timestamp, last seq) in offset order.
    let mut per_key: HashMap<(i32, Vec<u8>), (i64, usize)> = HashMap::new();
    for record in &records {
        let id = event_id(record);
        let e = emitted
            .get(&id)
            .unwrap_or_else(|| panic!("unknown event id {id}"));
        assert!(seen.insert(id.clone()), "event {id} delivered twice");
        assert_matches(record, e);
        let ts = record.timestamp_ms.expect("a timestamp");
        assert!(
            (emit_start_ms..=emit_end_ms).contains(&ts),
            "timestamp {ts} of event {} outside the emit window {emit_start_ms}..={emit_end_ms}",
            e.i
        );
        let slot = (record.partition, record.key.clone().unwrap_or_default());
        if let Some(&(last_ts, last_i)) = per_key.get(&slot) {
            assert!(
                ts >= last_ts,
                "timestamps go back for key {:?} in partition {}: {last_ts} then {ts}",
                String::from_utf8_lossy(&slot.1),
                slot.0
            );
            assert!(
                e.i > last_i,
                "key {:?} out of order in partition {}: event {last_i} before {}",
                String::from_utf8_lossy(&slot.1),
                slot.0,
                e.i
            );
        }
        per_key.insert(slot, (ts, e.i));
    }
    assert_eq!(seen.len(), N);

    let took = terminate_within(&mut drain, Duration::from_secs(10));
    eprintln!(
        "drain stopped {took:?} after SIGTERM; test took {:?}",
        started.elapsed()
    );
}

#[test]
fn drain_killed_at_random_moments_loses_no_event() {
    const N: usize = 200_000;
    const KILLS: usize = 10;
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let topic = unique_topic("kill9");
    tansu.create_topic(&topic, 3);
    let queue = test_queue();
    let dirs = Dirs::new("drain-tansu-");
    let spec = kafka_spec(&queue, &dirs, &tansu);
    let mut drain = spec.spawn(0);

    // Sleeping 1 ms every 25 events spreads the emission over the kills.
    let mut ruby = RubyEmitter::spawn(&queue, dirs.logs(), "ruby", 25, &[format!("{topic},0,{N}")]);
    let mut rng = XorShift(0x5eed_1234_abcd_0042);
    let mut kills = Vec::new();
    for n in 1..=KILLS {
        let wait = rng.range(200, 1500);
        sleep(Duration::from_millis(wait));
        drain.assert_running();
        drain.kill9();
        kills.push((wait, read_emitted(&ruby.ids_file).len()));
        drain = spec.spawn(n);
    }
    eprintln!("kills (ms since previous, events emitted so far): {kills:?}");
    ruby.wait(Duration::from_secs(120));
    let emitted = ruby.emitted();
    assert_eq!(emitted.len(), N, "ruby emitted {} of {N}", emitted.len());
    let emitted = by_id(&emitted);
    eprintln!(
        "ruby done after {:?}: {}",
        started.elapsed(),
        ruby.log_text().trim()
    );

    wait_drained(&spec, &mut drain, Duration::from_secs(60));
    sleep(Duration::from_secs(2));
    terminate_within(&mut drain, Duration::from_secs(10));

    let records = consume_emitted(&tansu.bootstrap, &topic, &emitted, Duration::from_secs(90));
    let total = records.len();
    let duplicates = check_at_least_once(&records, &emitted);
    let recovered: Vec<String> = (0..=KILLS)
        .filter_map(|n| {
            let log = std::fs::read_to_string(dirs.logs().join(format!("drain-{n}.log"))).ok()?;
            log.lines()
                .find(|l| l.contains("re-sending"))
                .map(|l| format!("drain {n}: {l}"))
        })
        .collect();
    eprintln!("{}", recovered.join("\n"));
    eprintln!(
        "{N} events, {KILLS} kill -9s: 0 lost, {duplicates} duplicates ({total} records); took {:?}",
        started.elapsed()
    );
}

#[test]
fn event_the_broker_refuses_is_dead_lettered_and_the_rest_flow() {
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let good = unique_topic("good");
    let missing = unique_topic("missing");
    tansu.create_topic(&good, 1);
    let queue = test_queue();
    let dirs = Dirs::new("drain-tansu-");
    let mut ruby = RubyEmitter::spawn(
        &queue,
        dirs.logs(),
        "ruby",
        0,
        &[
            format!("{good},0,10"),
            format!("{missing},10,1"),
            format!("{good},11,10"),
        ],
    );
    ruby.wait(Duration::from_secs(30));
    let emitted = ruby.emitted();
    assert_eq!(emitted.len(), 21);
    let bad = emitted.iter().find(|e| e.topic == missing).unwrap().clone();
    let emitted = by_id(&emitted);

    let mut drain = kafka_spec(&queue, &dirs, &tansu)
        .args(["--kafka", "topic.metadata.propagation.max.ms=1000"])
        .args(["--kafka", "message.timeout.ms=10000"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .spawn(0);
    let metrics = drain.metrics_addr(Duration::from_secs(10));

    let records = consume_all(&tansu.bootstrap, &good, 20, Duration::from_secs(30));
    assert_eq!(records.len(), 20, "good events\n{}", drain.log_text());
    for record in &records {
        let e = &emitted[&event_id(record)];
        assert_ne!(e.id, bad.id);
        assert_matches(record, e);
    }

    let dead_path = spec(&queue, &dirs).state().dead_letters();
    let read_dead = || std::fs::read_to_string(&dead_path).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || !read_dead().is_empty()),
        "no dead letter\n{}",
        drain.log_text()
    );
    let dead_lettered_at = started.elapsed();
    // Nothing else should follow (e.g. the same event dead-lettered again).
    sleep(Duration::from_millis(1500));
    let text = read_dead();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "dead letters:\n{text}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("dead letter is JSON");
    let reason = line["reason"].as_str().expect("reason");
    assert!(
        reason.to_lowercase().contains("unknown topic"),
        "reason {reason:?}"
    );
    assert_eq!(line["event_id"].as_str(), Some(&bad.id[..]));
    assert_eq!(line["topic"].as_str(), Some(&missing[..]));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line["envelope_base64"].as_str().expect("envelope_base64"))
        .expect("envelope_base64 is base64");
    let envelope = Envelope::decode(&bytes).expect("dead letter holds a valid envelope");
    assert_eq!(envelope.id.to_string(), bad.id);
    assert_eq!(envelope.topic, missing);
    assert_eq!(envelope.payload, &payload(bad.i)[..]);
    assert_eq!(envelope.key, Some(&key(bad.i)[..]));

    let body = net::get(&metrics, "/metrics").expect("metrics").body;
    let counter: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("shopify_events_dead_lettered_total"))
        .collect();
    assert_eq!(counter.len(), 1, "metrics:\n{body}");
    assert!(counter[0].ends_with(" 1"), "{}", counter[0]);

    terminate_within(&mut drain, Duration::from_secs(12));
    eprintln!(
        "dead letter after {dead_lettered_at:?} ({reason}); test took {:?}",
        started.elapsed()
    );
}

#[test]
fn removing_the_queue_while_draining_recovers_within_a_second() {
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let topic = unique_topic("rmid");
    tansu.create_topic(&topic, 1);
    let queue = test_queue();
    let dirs = Dirs::new("drain-tansu-");
    let mut drain = kafka_spec(&queue, &dirs, &tansu).spawn(0);

    // One Ruby process: 100 events, then it waits for `go` and sends 100
    // more through the same (by then stale) queue handle.
    let go = dirs.logs().join("go");
    let mut ruby = RubyEmitter::spawn(
        &queue,
        dirs.logs(),
        "ruby",
        0,
        &[
            format!("{topic},0,100"),
            format!("pause:{}", go.display()),
            format!("{topic},100,100"),
        ],
    );
    let ready = dirs.logs().join("go.ready");
    assert!(
        wait_until(Duration::from_secs(20), || ready.exists()),
        "ruby never finished the first batch\n{}",
        ruby.log_text()
    );
    let first = consume_all(&tansu.bootstrap, &topic, 100, Duration::from_secs(20));
    assert_eq!(first.len(), 100, "first batch\n{}", drain.log_text());

    // `ipcrm -Q` by an operator. Events still waiting in the queue at this
    // moment would be gone (the kernel drops them with the queue): that is
    // an operator action outside the delivery contract. The first batch has
    // been delivered already, so nothing is lost here.
    queue.remove().expect("remove the test queue");
    sleep(Duration::from_millis(200));
    std::fs::write(&go, "").unwrap();
    ruby.wait(Duration::from_secs(20));
    let emitted_at = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || queue.depth() == 0),
        "the drain did not take the events from the recreated queue within 1 s (depth {})\n{}",
        queue.depth(),
        drain.log_text()
    );
    let received_in = emitted_at.elapsed();
    drain.assert_running();

    let emitted = ruby.emitted();
    assert_eq!(emitted.len(), 200);
    let emitted = by_id(&emitted);
    let records = consume_all(&tansu.bootstrap, &topic, 200, Duration::from_secs(5));
    let delivered_in = emitted_at.elapsed();
    assert_eq!(records.len(), 200, "records\n{}", drain.log_text());
    let duplicates = check_at_least_once(&records, &emitted);
    assert_eq!(duplicates, 0);
    assert!(
        drain.log_text().contains("was removed; opened it again"),
        "{}",
        drain.log_text()
    );
    terminate_within(&mut drain, Duration::from_secs(12));
    eprintln!(
        "second batch received {received_in:?} and delivered {delivered_in:?} after ruby finished; \
         test took {:?}",
        started.elapsed()
    );
}

#[test]
fn sigterm_waits_for_in_flight_and_exits_zero() {
    const N: usize = 60_000;
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let topic = unique_topic("sigterm");
    tansu.create_topic(&topic, 3);
    let queue = test_queue();
    let dirs = Dirs::new("drain-tansu-");
    let spec = kafka_spec(&queue, &dirs, &tansu).args(["--shutdown-timeout", "5"]);
    let mut drain = spec.spawn(0);
    let mut ruby = RubyEmitter::spawn(&queue, dirs.logs(), "ruby", 20, &[format!("{topic},0,{N}")]);

    // Let events flow, then stop the drain in the middle of the stream.
    assert!(
        wait_until(Duration::from_secs(30), || {
            spec.snapshot()
                .and_then(|s| s["produced"].as_u64())
                .is_some_and(|p| p >= 5_000)
        }),
        "events do not flow\n{}",
        drain.log_text()
    );
    assert!(
        !ruby.finished(),
        "ruby finished before the SIGTERM: emit more"
    );
    let took = terminate_within(&mut drain, Duration::from_millis(6_500));
    let log = drain.log_text();
    let stopped = log
        .lines()
        .find(|l| l.contains("stopped;"))
        .unwrap_or_else(|| panic!("no stop line:\n{log}"))
        .to_owned();
    assert!(
        stopped.contains("stopped; 0 events not yet acknowledged"),
        "the drain did not wait for its in-flight events: {stopped}"
    );
    let snap = spec.snapshot().unwrap_or_default();
    let delivered_first = snap["produced"].as_u64().unwrap_or(0);
    assert_eq!(
        snap["in_flight"].as_u64(),
        Some(0),
        "first drain's last snapshot: {snap}"
    );

    ruby.wait(Duration::from_secs(60));
    let emitted = ruby.emitted();
    assert_eq!(emitted.len(), N);
    let emitted = by_id(&emitted);
    let mut second = spec.spawn(1);
    let records = consume_emitted(&tansu.bootstrap, &topic, &emitted, Duration::from_secs(60));
    second.assert_running();
    terminate_within(&mut second, Duration::from_millis(6_500));
    let duplicates = check_at_least_once(&records, &emitted);
    eprintln!(
        "first drain stopped {took:?} after SIGTERM having delivered {delivered_first}; \
         {duplicates} duplicates; test took {:?}",
        started.elapsed()
    );
}

#[test]
fn stdout_sink_prints_each_event_as_a_json_line() {
    const N: usize = 50;
    let _serial = serial();
    let queue = test_queue();
    let dirs = Dirs::new("drain-tansu-");
    let topic = "orders.created";
    let mut ruby = RubyEmitter::spawn(&queue, dirs.logs(), "ruby", 0, &[format!("{topic},0,{N}")]);
    ruby.wait(Duration::from_secs(30));
    let emitted = ruby.emitted();
    assert_eq!(emitted.len(), N);

    let mut drain = spec(&queue, &dirs).args(["--sink", "stdout"]).spawn(0);
    assert!(
        wait_until(Duration::from_secs(10), || drain
            .stdout_text()
            .lines()
            .count()
            >= N),
        "stdout:\n{}\nlog:\n{}",
        drain.stdout_text(),
        drain.log_text()
    );
    terminate_within(&mut drain, Duration::from_secs(12));
    let out = drain.stdout_text();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), N, "{out}");
    for (line, e) in lines.iter().zip(&emitted) {
        assert_eq!(line["id"].as_str(), Some(&e.id[..]), "{line}");
        assert_eq!(line["topic"].as_str(), Some(topic));
        assert_eq!(line["key"].as_str(), Some(&format!("k{}", e.i % 97)[..]));
        assert_eq!(line["headers"]["seq"].as_str(), Some(&e.i.to_string()[..]));
        assert!(line["timestamp_ms"].as_i64().is_some(), "{line}");
        let expected = if e.i % 2 == 0 {
            serde_json::Value::String(String::from_utf8(payload(e.i)).unwrap())
        } else {
            serde_json::json!({ "i": e.i, "name": format!("ev{}", e.i) })
        };
        assert_eq!(line["payload"], expected, "event {}", e.i);
    }
}

/// Sets `kernel.msgmax` for one test and puts the old value back after it
/// (the tests of this file run one at a time; see [`serial`]).
struct MsgmaxGuard {
    old: u64,
}

impl MsgmaxGuard {
    const PATH: &'static str = "/proc/sys/kernel/msgmax";

    fn current() -> u64 {
        std::fs::read_to_string(Self::PATH)
            .expect("read kernel.msgmax")
            .trim()
            .parse()
            .expect("parse kernel.msgmax")
    }

    fn set(value: u64) -> MsgmaxGuard {
        let old = Self::current();
        std::fs::write(Self::PATH, value.to_string())
            .unwrap_or_else(|e| panic!("cannot set kernel.msgmax to {value} ({e}); run as root"));
        MsgmaxGuard { old }
    }
}

impl Drop for MsgmaxGuard {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, self.old.to_string());
    }
}

#[test]
fn raising_msgmax_with_events_in_flight_resizes_the_journal_and_loses_nothing() {
    const SMALL: usize = 200;
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("msgmax");
    tansu.create_topic(&topic, 3);
    let queue = test_queue();
    let host = *queue;
    let dirs = Dirs::new("drain-tansu-");
    let old_msgmax = MsgmaxGuard::current();
    let spec = kafka_spec(&queue, &dirs, &tansu);
    let mut drain = spec.spawn(0);
    let mut frame = Vec::new();
    let mut ids = Vec::new();
    let mut send = |payload: &[u8]| {
        let id = event_frame(&mut frame, &topic, None, payload);
        host.try_send_frame(&frame).expect("send an event");
        ids.push(String::from_utf8(id.to_vec()).expect("ascii id"));
    };
    for i in 0..SMALL {
        send(format!("before {i}").as_bytes());
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            spec.snapshot()
                .and_then(|s| s["produced"].as_u64())
                .is_some_and(|p| p >= SMALL as u64)
        }),
        "events do not flow\n{}",
        drain.log_text()
    );

    // Broker frozen: what the drain takes next stays in flight. Then a
    // message larger than the journal's records arrives, and more behind it.
    tansu.pause();
    for i in 0..SMALL {
        send(format!("in flight {i}").as_bytes());
    }
    let _msgmax = MsgmaxGuard::set(old_msgmax * 2);
    send(&vec![b'x'; old_msgmax as usize + 1000]);
    for i in 0..SMALL {
        send(format!("after {i}").as_bytes());
    }
    assert!(
        wait_until(Duration::from_secs(10), || drain
            .log_text()
            .contains("then resizing the journal")),
        "the drain did not notice the large message\n{}",
        drain.log_text()
    );
    drain.assert_running();
    tansu.resume();

    let records = consume_all(&tansu.bootstrap, &topic, ids.len(), Duration::from_secs(60));
    let got: HashSet<String> = records.iter().map(event_id).collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !got.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events missing (first {:?})\n{}",
        missing.len(),
        ids.len(),
        missing.first(),
        drain.log_text()
    );
    let large = records
        .iter()
        .find(|r| r.payload.len() > old_msgmax as usize)
        .expect("the large event");
    assert_eq!(large.payload, vec![b'x'; old_msgmax as usize + 1000]);
    assert!(
        drain
            .log_text()
            .contains("journal resized for records of up to"),
        "{}",
        drain.log_text()
    );
    drain.assert_running();
    terminate_within(&mut drain, Duration::from_secs(12));
}
