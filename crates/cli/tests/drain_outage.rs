//! A Kafka outage against librdkafka's mock cluster: the real drain binary
//! (a subprocess) drains a SysV queue fed at ~1,000 events/s while all three
//! mock brokers are down for 30 s.
//!
//! Runtime: ~52 s (50 s of feeding; the backlog is gone ~1 s after the
//! feeder stops; reading the topic back and shutting down take ~1 s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;

use testkit::consume::{read_event_ids, unique_topic};
use testkit::drain::DrainSpec;
use testkit::events::event_frame;
use testkit::procfs::{mib, Mem};
use testkit::queue::TestQueue;

const BROKERS: [i32; 3] = [1, 2, 3];
const PARTITIONS: i32 = 3;
const RATE: u64 = 1_000;
const FEED_FOR: Duration = Duration::from_secs(50);
const OUTAGE_AT: Duration = Duration::from_secs(10);
const OUTAGE_FOR: Duration = Duration::from_secs(30);
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
const MAX_IN_FLIGHT: u64 = 2_000;

/// Where the drain was when a sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Outage,
    After,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Since the feeder started.
    at: Duration,
    phase: Phase,
    mem: Mem,
    depth: u64,
    health: Option<u16>,
    in_flight: Option<f64>,
}

struct Fed {
    ids: Vec<[u8; 36]>,
    full_retries: u64,
}

/// Sends `RATE` events/s for `FEED_FOR` on an absolute schedule (10 per 10 ms),
/// retrying (after 1 ms) while the queue is full.
fn feed(queue: sysvmq::Queue, topic: String, sent: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> Fed {
    let mut frame = Vec::new();
    let mut ids = Vec::with_capacity((RATE * FEED_FOR.as_secs()) as usize);
    let mut full_retries = 0;
    let start = Instant::now();
    let total = RATE * FEED_FOR.as_secs();
    let mut n = 0u64;
    while n < total && !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_micros(n * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            sleep(wait);
        }
        let payload = format!(
            "{{\"n\":{n},\"source\":\"drain_outage\",\"pad\":\"{}\"}}",
            "x".repeat(150)
        );
        let key = format!("key-{}", n % 31);
        let id = event_frame(&mut frame, &topic, Some(key.as_bytes()), payload.as_bytes());
        loop {
            match queue.try_send_frame(&frame) {
                Ok(()) => break,
                Err(sysvmq::Error::Full { .. }) | Err(sysvmq::Error::Interrupted) => {
                    full_retries += 1;
                    sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("feeder: send failed: {e}"),
            }
        }
        ids.push(id);
        n += 1;
        sent.store(n, Ordering::Relaxed);
    }
    Fed { ids, full_retries }
}

fn metric(metrics: &Option<HashMap<String, f64>>, name: &str) -> f64 {
    metrics
        .as_ref()
        .and_then(|m| m.get(name).copied())
        .unwrap_or(f64::NAN)
}

#[test]
fn all_brokers_down_for_30_seconds_loses_nothing_and_memory_stays_flat() {
    let cluster = MockCluster::new(BROKERS.len() as i32).expect("mock cluster");
    let bootstrap = cluster.bootstrap_servers();
    let topic = unique_topic("outage");
    cluster
        .create_topic(&topic, PARTITIONS, BROKERS.len() as i32)
        .expect("create topic on the mock cluster");

    let queue = TestQueue::with_capacity(64 << 20);
    let state = tempfile::Builder::new()
        .prefix("drain-outage-")
        .tempdir()
        .expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_shopify-events");
    let mut drain = DrainSpec::new(bin, queue.key(), &state.path().join("state"), state.path())
        .brokers(&bootstrap)
        .with_metrics()
        .args(["--max-in-flight", &MAX_IN_FLIGHT.to_string()])
        .args(["--kafka", "message.timeout.ms=10000"])
        .spawn(0);
    drain.wait_serving(Duration::from_secs(30));
    let pid = drain.pid();
    eprintln!(
        "drain pid {pid}, queue {}, mock cluster {bootstrap}, topic {topic}",
        queue.hex()
    );

    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (queue, topic, sent, stop) = (*queue, topic.clone(), sent.clone(), stop.clone());
        thread::spawn(move || feed(queue, topic, sent, stop))
    };
    let start = Instant::now();

    // Sample every 500 ms; take the brokers down at 10 s and up at 40 s.
    let mut samples: Vec<Sample> = Vec::new();
    let mut phase = Phase::Before;
    let mut sent_at_down = 0;
    let mut sent_at_up = 0;
    let mut next = start;
    while start.elapsed() < FEED_FOR {
        if phase == Phase::Before && start.elapsed() >= OUTAGE_AT {
            for id in BROKERS {
                cluster.broker_down(id).expect("broker down");
            }
            sent_at_down = sent.load(Ordering::Relaxed);
            eprintln!("{:>5.1}s: all brokers down", start.elapsed().as_secs_f64());
            phase = Phase::Outage;
        }
        if phase == Phase::Outage && start.elapsed() >= OUTAGE_AT + OUTAGE_FOR {
            for id in BROKERS {
                cluster.broker_up(id).expect("broker up");
            }
            sent_at_up = sent.load(Ordering::Relaxed);
            eprintln!("{:>5.1}s: all brokers up", start.elapsed().as_secs_f64());
            phase = Phase::After;
        }
        drain.assert_running();
        let metrics = drain.scrape();
        samples.push(Sample {
            at: start.elapsed(),
            phase,
            mem: Mem::read(pid).expect("read /proc/PID/status"),
            depth: queue.depth(),
            health: drain.get("/health").map(|r| r.status),
            in_flight: metrics
                .as_ref()
                .and_then(|m| m.get("shopify_events_in_flight").copied()),
        });
        next += SAMPLE_EVERY;
        // Wake for the next sample, or earlier to take the brokers down or up
        // on time.
        let event = match phase {
            Phase::Before => Some(start + OUTAGE_AT),
            Phase::Outage => Some(start + OUTAGE_AT + OUTAGE_FOR),
            Phase::After => None,
        };
        let wake = event.map_or(next, |e| e.min(next));
        if let Some(wait) = wake.checked_duration_since(Instant::now()) {
            sleep(wait);
        }
    }
    let fed = feeder.join().expect("feeder thread");
    let total = fed.ids.len() as u64;
    eprintln!(
        "fed {total} events in {:.1}s ({} sends retried on a full queue)",
        start.elapsed().as_secs_f64(),
        fed.full_retries
    );

    // Drain the backlog: queue empty, everything acknowledged, healthy again.
    let drained_by = Instant::now() + Duration::from_secs(120);
    let (metrics, health_after) = loop {
        drain.assert_running();
        let metrics = drain.scrape();
        let health = drain.get("/health").map(|r| r.status);
        let produced = metric(&metrics, "shopify_events_produced_total");
        let in_flight = metric(&metrics, "shopify_events_in_flight");
        if queue.depth() == 0 && produced >= total as f64 && in_flight == 0.0 {
            break (metrics, health);
        }
        assert!(
            Instant::now() < drained_by,
            "backlog not drained: depth {}, produced {produced}/{total}, in flight {in_flight}\n\
             --- drain log (tail) ---\n{}",
            queue.depth(),
            tail(&drain.log_text(), 40)
        );
        sleep(Duration::from_millis(250));
    };
    let drained_after = start.elapsed();
    let retried = metric(&metrics, "shopify_events_retried_total");
    let produced = metric(&metrics, "shopify_events_produced_total");
    let in_flight = metric(&metrics, "shopify_events_in_flight");
    let received = metric(&metrics, "shopify_events_received_total");
    let dead = metric(&metrics, "shopify_events_dead_lettered_total");
    eprintln!(
        "drained at {:.1}s: received {received}, produced {produced}, retried {retried}, \
         in_flight {in_flight}, dead_lettered {dead}",
        drained_after.as_secs_f64()
    );

    // Memory and queue depth by phase.
    let of = |p: Phase| samples.iter().filter(move |s| s.phase == p);
    let outage: Vec<&Sample> = of(Phase::Outage).collect();
    assert!(
        outage.len() > 40,
        "too few outage samples: {}",
        outage.len()
    );
    let max_anon = |it: &mut dyn Iterator<Item = &Sample>| it.map(|s| s.mem.rss_anon).max();
    let before_anon = max_anon(&mut of(Phase::Before)).unwrap_or(0);
    let outage_anon = max_anon(&mut outage.iter().copied()).unwrap_or(0);
    let after_anon = max_anon(&mut of(Phase::After)).unwrap_or(0);
    let outage_end = outage.last().map(|s| s.at).unwrap_or_default();
    let last10 = max_anon(
        &mut outage
            .iter()
            .copied()
            .filter(|s| s.at + Duration::from_secs(10) > outage_end),
    )
    .unwrap_or(0);
    let prev10 = max_anon(&mut outage.iter().copied().filter(|s| {
        s.at + Duration::from_secs(10) <= outage_end && s.at + Duration::from_secs(20) > outage_end
    }))
    .unwrap_or(0);
    let depth_start = outage.first().map(|s| s.depth).unwrap_or(0);
    let depth_end = outage.last().map(|s| s.depth).unwrap_or(0);
    let unhealthy = outage.iter().filter(|s| s.health == Some(503)).count();
    let max_vm_rss = samples.iter().map(|s| s.mem.vm_rss).max().unwrap_or(0);
    let rss_file = samples.iter().map(|s| s.mem.rss_file).max().unwrap_or(0);
    let max_in_flight_seen = samples
        .iter()
        .filter_map(|s| s.in_flight)
        .fold(0.0, f64::max);
    eprintln!("memory (MiB)          RssAnon max   VmRSS max   RssFile max");
    for (name, phase) in [
        ("before outage", Phase::Before),
        ("outage (30 s)", Phase::Outage),
        ("after outage ", Phase::After),
    ] {
        let s: Vec<&Sample> = of(phase).collect();
        let m = |f: fn(&Mem) -> u64| s.iter().map(|s| f(&s.mem)).max().unwrap_or(0);
        eprintln!(
            "  {name}      {:>8.1}    {:>8.1}      {:>8.1}",
            mib(m(|m| m.rss_anon)),
            mib(m(|m| m.vm_rss)),
            mib(m(|m| m.rss_file))
        );
    }
    eprintln!(
        "outage RssAnon: max of the 10 s before the last 10 s {:.1} MiB, max of the last 10 s {:.1} MiB",
        mib(prev10),
        mib(last10)
    );
    eprintln!(
        "queue depth: {depth_start} at outage start, {depth_end} at outage end \
         ({} events fed during the outage); /health 503 in {unhealthy}/{} outage samples; \
         in_flight gauge max {max_in_flight_seen}",
        sent_at_up - sent_at_down,
        outage.len()
    );
    eprintln!("outage timeline (s, RssAnon MiB, depth, health, in_flight):");
    for s in outage.iter().step_by(4) {
        eprintln!(
            "  {:>5.1} {:>6.1} {:>6} {:?} {:?}",
            s.at.as_secs_f64(),
            mib(s.mem.rss_anon),
            s.depth,
            s.health,
            s.in_flight
        );
    }

    // Shut the drain down cleanly (it still answers until SIGTERM).
    let status = drain.terminate(Duration::from_secs(30));
    let log_text = drain.log_text();

    // Everything sent must be in the topic; duplicates allowed, counted.
    let consumed = read_event_ids(&bootstrap, &topic, PARTITIONS, Duration::from_secs(120));
    let mut counts: HashMap<&[u8], u32> = HashMap::with_capacity(consumed.len());
    for id in &consumed {
        *counts.entry(id.as_slice()).or_default() += 1;
    }
    let missing: Vec<String> = fed
        .ids
        .iter()
        .filter(|id| !counts.contains_key(&id[..]))
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .collect();
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    let unknown = counts.len() as u64 - (total - missing.len() as u64);
    eprintln!(
        "read back {} records: {} distinct event ids, {duplicates} duplicates, {} missing, {unknown} unknown",
        consumed.len(),
        counts.len(),
        missing.len()
    );

    // Assertions, after everything is printed.
    assert!(
        status.is_some_and(|s| s.success()),
        "drain did not exit 0 after SIGTERM: {status:?}\n{}",
        tail(&log_text, 40)
    );
    assert!(
        missing.is_empty(),
        "{} of {total} events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(unknown, 0, "records with event ids nobody sent");
    assert_eq!(dead, 0.0, "nothing may be dead-lettered in an outage");
    assert_eq!(produced, total as f64, "produced_total = events sent");
    assert!(retried > 0.0, "the retry path was not exercised");
    // Anonymous memory: the drain holds at most 2,000 events (~300 bytes each,
    // ~1 MiB with librdkafka's copies) plus its fixed cost (librdkafka's
    // threads and buffers, a few MiB). 64 MiB is an order of magnitude above
    // that, and far below the ~10 MiB per 30,000 events a drain that buffered
    // the outage would add on top *per 30 s* (and it must not grow at all).
    assert!(
        outage_anon < 64 << 10,
        "RssAnon during the outage reached {:.1} MiB",
        mib(outage_anon)
    );
    assert!(
        last10 <= prev10 + (4 << 10),
        "RssAnon grew during the outage: {:.1} MiB -> {:.1} MiB in the last 10 s",
        mib(prev10),
        mib(last10)
    );
    assert!(
        max_in_flight_seen <= MAX_IN_FLIGHT as f64,
        "in_flight {max_in_flight_seen} above --max-in-flight {MAX_IN_FLIGHT}"
    );
    // The events waited in the kernel: the queue grew by most of what was fed
    // during the outage (less at most one window taken in at its start).
    let fed_during = sent_at_up - sent_at_down;
    assert!(
        depth_end >= (depth_start + fed_during * 8 / 10).saturating_sub(MAX_IN_FLIGHT),
        "queue depth rose only {depth_start} -> {depth_end} with {fed_during} fed during the outage"
    );
    assert!(
        unhealthy > 0,
        "/health never answered 503 while all brokers were down"
    );
    assert_eq!(
        health_after,
        Some(200),
        "/health after recovery: {health_after:?}"
    );
    eprintln!(
        "summary: max RssAnon before {:.1} / outage {:.1} / after {:.1} MiB; VmRSS max {:.1} MiB; \
         RssFile {:.1} MiB (journal mapping); retried {retried}",
        mib(before_anon),
        mib(outage_anon),
        mib(after_anon),
        mib(max_vm_rss),
        mib(rss_file)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------
// Regression tests for a KafkaSink::poll defect, fixed by serving with
// `poll(0)` and waiting in KafkaSink itself. rdkafka 0.39's `BaseProducer::poll(t)` loops until
// its deadline even after it served events, and passes the remaining time to
// `rd_kafka_queue_poll` truncated to whole milliseconds, so the last <1 ms of
// every call spins on `clock_gettime`. `Sink::poll` promises to wait only
// "when there is nothing to serve"; the drain loop relies on that (its idle
// step doubles up to 50 ms), and the design promises idle CPU ~0.

/// A KafkaSink on a fresh one-broker mock cluster, with one event delivered
/// (connection and metadata warm); returns the event's envelope bytes too.
fn warm_sink(
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
) -> (shopify_events_core::kafka::KafkaSink, Vec<u8>) {
    use shopify_events_core::envelope::{self, Envelope};
    use shopify_events_core::sink::{Outcome, Sink};
    use shopify_events_core::{clock::now_micros, event_id::EventId};
    let topic = unique_topic("poll");
    cluster.create_topic(&topic, 1, 1).expect("create topic");
    let settings = std::collections::BTreeMap::from([(
        "bootstrap.servers".to_owned(),
        cluster.bootstrap_servers(),
    )]);
    let mut sink = shopify_events_core::kafka::KafkaSink::new(&settings).expect("sink");
    let mut body = Vec::new();
    let t = now_micros();
    envelope::encode(&mut body, EventId::generate(t), t, &topic, None, &[], b"{}").expect("encode");
    sink.send(&Envelope::decode(&body).expect("decode"), 1)
        .expect("send");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.is_empty() {
        assert!(Instant::now() < deadline, "no delivery report within 10 s");
        sink.poll(Duration::from_millis(10), &mut out);
    }
    assert_eq!(out[0].outcome, Outcome::Delivered);
    (sink, body)
}

#[test]
fn kafka_sink_poll_returns_once_an_outcome_is_served() {
    use shopify_events_core::envelope::Envelope;
    use shopify_events_core::sink::Sink;
    let cluster = MockCluster::new(1).expect("mock cluster");
    let (mut sink, body) = warm_sink(&cluster);
    sink.send(&Envelope::decode(&body).expect("decode"), 2)
        .expect("send");
    let mut out = Vec::new();
    let started = Instant::now();
    sink.poll(Duration::from_secs(2), &mut out);
    let waited = started.elapsed();
    eprintln!(
        "poll(2 s) returned after {waited:?} with {} outcome(s)",
        out.len()
    );
    assert_eq!(out.len(), 1, "the delivery report was served");
    assert!(
        waited < Duration::from_millis(500),
        "poll(2 s) had the outcome (a mock-cluster ack takes a few ms) but returned only after {waited:?}"
    );
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, ns).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat runtime");
    Duration::from_nanos(ns)
}

#[test]
fn idle_kafka_sink_poll_does_not_spin() {
    use shopify_events_core::sink::Sink;
    let cluster = MockCluster::new(1).expect("mock cluster");
    let (mut sink, _) = warm_sink(&cluster);
    let mut out = Vec::new();
    // What the idle drain does: poll(50 ms) in a loop, nothing to serve.
    let polls = 40;
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    for _ in 0..polls {
        sink.poll(Duration::from_millis(50), &mut out);
    }
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    eprintln!(
        "{polls} idle polls of 50 ms: {wall:?} wall, {cpu:?} CPU on this thread \
         ({:.2} ms per poll, {:.2} % of a core)",
        cpu.as_secs_f64() * 1e3 / f64::from(polls),
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
    );
    assert!(out.is_empty());
    // A blocking wait costs a few µs per call; 40 calls well under 4 ms.
    assert!(
        cpu < Duration::from_millis(4),
        "idle polling used {cpu:?} of CPU in {wall:?}: a busy wait"
    );
}

/// Keeps what a [`KafkaSink`](shopify_events_core::kafka::KafkaSink) logs.
#[derive(Default)]
struct Captured(std::sync::Mutex<Vec<(shopify_events_core::kafka::LogLevel, String)>>);

impl shopify_events_core::kafka::KafkaLog for Captured {
    fn log(&self, level: shopify_events_core::kafka::LogLevel, message: String) {
        self.0
            .lock()
            .expect("captured lines")
            .push((level, message));
    }
}

#[test]
fn kafka_sink_logs_librdkafka_errors_once_and_debug_lines_when_asked() {
    use shopify_events_core::kafka::{KafkaSink, LogLevel};
    use shopify_events_core::sink::Sink;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let settings = [
        ("bootstrap.servers", format!("127.0.0.1:{closed}")),
        ("debug", "broker".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let captured = Arc::new(Captured::default());
    let mut sink = KafkaSink::with_log(&settings, captured.clone()).expect("sink");
    // Lines logged while the producer starts up come whatever the log
    // level rdkafka sets after creating it; only later ones (reconnects to
    // the closed port) show that it stayed at debug.
    let mut out = Vec::new();
    let settle = Instant::now() + Duration::from_millis(700);
    while Instant::now() < settle {
        sink.poll(Duration::from_millis(50), &mut out);
    }
    let created = captured.0.lock().expect("captured lines").len();
    let deadline = Instant::now() + Duration::from_secs(10);
    let later_debug = || {
        let lines = captured.0.lock().expect("captured lines");
        lines[created..]
            .iter()
            .filter(|(l, _)| *l == LogLevel::Debug)
            .count()
    };
    let errors = || {
        let lines = captured.0.lock().expect("captured lines");
        lines.iter().filter(|(l, _)| *l == LogLevel::Error).count()
    };
    while (later_debug() < 3 || errors() == 0) && Instant::now() < deadline {
        sink.poll(Duration::from_millis(50), &mut out);
    }
    drop(sink);
    let lines = captured.0.lock().expect("captured lines").clone();
    let errors: Vec<&String> = lines
        .iter()
        .filter(|(l, _)| *l == LogLevel::Error)
        .map(|(_, m)| m)
        .collect();
    assert!(
        !errors.is_empty() && errors.iter().all(|m| m.starts_with("kafka: ")),
        "errors come from the error callback only: {lines:#?}"
    );
    let later: Vec<&String> = lines[created..]
        .iter()
        .filter(|(l, m)| *l == LogLevel::Debug && m.starts_with("kafka "))
        .map(|(_, m)| m)
        .collect();
    assert!(
        later.len() >= 3,
        "debug=broker lines keep coming after the producer started: {lines:#?}"
    );
}
