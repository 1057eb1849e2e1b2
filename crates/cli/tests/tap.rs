//! `shopify-events tap` against a real drain: what a tap sees (exactly the
//! delivered events of its globs, in delivery order, byte for byte what
//! the stdout sink prints), how it ends (limit, Ctrl-C, the drain
//! stopping), what a client that never reads costs the drain, that nobody
//! tapping costs no tap work, who may tap, and a drain delivering to Kafka
//! (Tansu). Needs root for the sysctls (and for the test of strangers).
//!
//! The tests run one at a time ([`serial`]): each starts a drain, some a
//! broker, and the memory and wake-up measurements mean little when they
//! share two cores with each other.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::consume::{consume_all, unique_topic};
use testkit::dirs::Dirs;
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::events::event_frame;
use testkit::procfs::{mib, thread_switches, Mem};
use testkit::queue::TestQueue;
use testkit::sysctl::MIN_MSGMNB;
use testkit::tansu::Tansu;
use testkit::tap::TapProcess;
use testkit::wait::{serial, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");
const READY: Duration = Duration::from_secs(20);

fn spec(queue: &TestQueue, dirs: &Dirs) -> DrainSpec {
    DrainSpec::new(BIN, queue.key(), &dirs.state(), dirs.logs())
}

/// Starts a drain and waits until its tap socket is there.
fn start_drain(spec: &DrainSpec) -> DrainProcess {
    let mut drain = spec.spawn(0);
    let socket = spec.state().tap_socket();
    let up = wait_until(READY, || {
        drain.assert_running();
        socket.exists()
    });
    assert!(up, "no tap socket after {READY:?}\n{}", drain.log_text());
    drain
}

/// Sends one event into the queue (waiting for room); returns its id.
fn send(
    queue: &TestQueue,
    frame: &mut Vec<u8>,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
) -> String {
    let id = event_frame(frame, topic, key, payload);
    queue.send_frame(frame).expect("send");
    String::from_utf8(id.to_vec()).expect("id")
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn field(line: &str, name: &str) -> String {
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    value[name].as_str().unwrap_or_default().to_owned()
}

/// Waits until the drain's stdout holds `n` lines.
fn wait_printed(drain: &mut DrainProcess, n: usize) {
    let done = wait_until(Duration::from_secs(60), || {
        drain.assert_running();
        drain.stdout_text().lines().count() >= n
    });
    assert!(
        done,
        "the drain printed {} of {n} events",
        drain.stdout_text().lines().count()
    );
}

const TOPICS: [&str; 5] = [
    "orders.created",
    "orders.paid",
    "users.created",
    "users.deleted",
    "payments.settled",
];

/// Event `i` of the mixed load: its topic, key and payload (text, JSON
/// text, or bytes that are not UTF-8, which print as base64).
fn mixed(i: usize) -> (&'static str, Option<Vec<u8>>, Vec<u8>) {
    let topic = TOPICS[i * 7 % TOPICS.len()];
    let key = (i % 3 == 0).then(|| format!("k{i}").into_bytes());
    let payload = match i % 3 {
        0 => format!("{{\"n\":{i}}}").into_bytes(),
        1 => format!("plain {i}").into_bytes(),
        _ => vec![0xff, 0xfe, i as u8],
    };
    (topic, key, payload)
}

#[test]
fn a_tap_sees_exactly_the_delivered_events_of_its_globs_in_delivery_order_and_ends_with_the_drain()
{
    let _serial = serial();
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dirs = Dirs::new("tap-");
    let spec = spec(&queue, &dirs);
    let mut drain = start_drain(&spec);
    let n = 3000;
    let globs = ["orders.*", "users.create?"];
    let wanted = |topic: &str| topic.starts_with("orders.") || topic == "users.created";
    let matching = (0..n).filter(|&i| wanted(mixed(i).0)).count();
    let limit = matching.to_string();
    let mut limited = TapProcess::spawn(
        &spec,
        dirs.logs(),
        "limited",
        &["--topic", globs[0], "--topic", globs[1], "--limit", &limit],
    );
    let mut all = TapProcess::spawn(&spec, dirs.logs(), "all", &[]);
    limited.wait_ready(READY);
    all.wait_ready(READY);

    let mut frame = Vec::new();
    for i in 0..n {
        let (topic, key, payload) = mixed(i);
        send(&queue, &mut frame, topic, key.as_deref(), &payload);
    }
    let status = limited.wait_timeout(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "the limited tap: {status:?}\n{}",
        limited.log_text()
    );
    wait_printed(&mut drain, n);
    let status = drain.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", drain.log_text());
    let status = all.wait_timeout(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "the tap of every topic after the drain stopped: {status:?}\n{}",
        all.log_text()
    );

    // The drain's stdout is the delivery order; the taps must show the same
    // lines, byte for byte, filtered by their globs.
    let delivered = drain.stdout_text();
    let delivered = lines(&delivered);
    assert_eq!(delivered.len(), n);
    let expected: Vec<&str> = delivered
        .iter()
        .copied()
        .filter(|l| wanted(&field(l, "topic")))
        .collect();
    assert_eq!(expected.len(), matching);
    let shown = limited.stdout_text();
    assert_eq!(lines(&shown), expected, "the limited tap's lines");
    assert!(
        shown.contains("\"base64\"") && shown.contains("\"key\":\"k"),
        "binary payloads and keys are in the load"
    );
    let shown_all = all.stdout_text();
    assert_eq!(lines(&shown_all), delivered, "the tap of every topic");
    assert!(
        all.log_text()
            .contains(&format!("the drain stopped; {n} events")),
        "the tap says why it ended:\n{}",
        all.log_text()
    );
    assert!(
        !spec.state().tap_socket().exists(),
        "a stopped drain removes its socket"
    );
    let log = drain.log_text();
    assert!(
        log.contains(&format!(
            "tap from pid {} (uid 0) started, topics orders.* users.create?",
            limited.pid()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "tap from pid {} left: {matching} events shown, 0 missed",
            limited.pid()
        )),
        "{log}"
    );
}

#[test]
fn ctrl_c_ends_a_tap_and_what_it_printed_stays_printed() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dirs = Dirs::new("tap-");
    let spec = spec(&queue, &dirs);
    let mut drain = start_drain(&spec);
    let mut tap = TapProcess::spawn(&spec, dirs.logs(), "interrupted", &["--topic", "orders.*"]);
    tap.wait_ready(READY);
    let mut frame = Vec::new();
    for i in 0..10 {
        send(
            &queue,
            &mut frame,
            "orders.created",
            None,
            format!("{i}").as_bytes(),
        );
    }
    let printed = wait_until(Duration::from_secs(20), || {
        tap.stdout_text().lines().count() == 10
    });
    assert!(printed, "{}", tap.stdout_text());
    tap.interrupt();
    let status = tap.wait_timeout(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "after Ctrl-C: {status:?}\n{}",
        tap.log_text()
    );
    assert_eq!(tap.stdout_text().lines().count(), 10);
    let left = wait_until(Duration::from_secs(5), || {
        drain
            .log_text()
            .contains(&format!("tap from pid {} left", tap.pid()))
    });
    assert!(
        left,
        "the drain noticed the client left\n{}",
        drain.log_text()
    );
    drain.assert_running();
}

/// The drain's `shopify_events_produced_total`.
fn produced(drain: &DrainProcess) -> u64 {
    drain
        .scrape()
        .and_then(|m| m.get("shopify_events_produced_total").copied())
        .unwrap_or(0.0) as u64
}

/// Sends `n` events of `payload` bytes from a thread while sampling the
/// drain's RssAnon every 5 ms, until it produced `until`; returns the peak
/// (KiB) and how long it took.
fn load_and_watch(
    queue: &TestQueue,
    drain: &mut DrainProcess,
    n: usize,
    payload: usize,
    until: u64,
) -> (u64, Duration) {
    let key = queue.key();
    let start = Instant::now();
    let sender = thread::spawn(move || {
        let queue = sysvmq::Queue::open(key).expect("open queue");
        let mut frame = Vec::new();
        let body = vec![b'x'; payload];
        for _ in 0..n {
            event_frame(&mut frame, "load.filler", None, &body);
            queue.send_frame(&frame).expect("send");
        }
    });
    let pid = drain.pid();
    let mut peak = 0;
    let mut last_check = Instant::now();
    loop {
        peak = peak.max(Mem::read(pid).map_or(0, |m| m.rss_anon));
        if last_check.elapsed() > Duration::from_millis(50) {
            drain.assert_running();
            if produced(drain) >= until {
                break;
            }
            last_check = Instant::now();
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the drain produced {} of {until}",
                produced(drain)
            );
        }
        sleep(Duration::from_millis(5));
    }
    sender.join().expect("sender");
    (peak, start.elapsed())
}

#[test]
fn a_client_that_never_reads_neither_blocks_the_drain_nor_grows_its_memory_and_learns_what_it_missed(
) {
    let _serial = serial();
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dirs = Dirs::new("tap-");
    let spec = spec(&queue, &dirs).with_metrics();
    let mut drain = start_drain(&spec);
    drain.wait_serving(READY);
    let mut frame = Vec::new();
    for _ in 0..100 {
        send(&queue, &mut frame, "warm.up", None, b"{}");
    }
    assert!(wait_until(READY, || produced(&drain) >= 100));
    // 20,000 events of 1 KB: 20 MB of envelopes, twenty times what the
    // drain holds for one client.
    let (n, payload) = (20_000, 1000);
    let (peak_alone, took_alone) = load_and_watch(&queue, &mut drain, n, payload, 100 + n as u64);

    // A client that asks for every topic, then never reads.
    let socket = spec.state().tap_socket();
    let stream = UnixStream::connect(&socket).expect("connect");
    (&stream)
        .write_all(b"{\"tap\":1,\"topics\":[]}\n")
        .expect("request");
    let mut reader = BufReader::new(&stream);
    let mut ready = String::new();
    reader.read_line(&mut ready).expect("ready");
    assert!(ready.starts_with("{\"tap\":\"ready\""), "{ready}");
    let (peak_stuck, took_stuck) =
        load_and_watch(&queue, &mut drain, n, payload, 100 + 2 * n as u64);
    eprintln!(
        "{n} events of {payload} B: alone {:.2} s, peak RssAnon {:.1} MiB; \
         with a client that does not read {:.2} s, peak RssAnon {:.1} MiB",
        took_alone.as_secs_f64(),
        mib(peak_alone),
        took_stuck.as_secs_f64(),
        mib(peak_stuck)
    );
    // What the drain may hold for it: its 1 MiB buffer, the thread's write
    // buffer and stack, allocator slack. Unbounded, it would be ~20 MiB.
    assert!(
        peak_stuck <= peak_alone + 3 * 1024,
        "RssAnon grew from {peak_alone} KiB to {peak_stuck} KiB with a client that does not read"
    );

    // Now it reads: what was buffered, then a notice of what it missed,
    // and every event is either shown or counted.
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let (mut shown, mut missed, mut notices) = (0u64, 0u64, 0);
    let mut marker_sent = false;
    let mut line = Vec::new();
    loop {
        // A timed-out read keeps what it read: the rest of the line follows.
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => panic!("the drain closed the tap"),
            Ok(_) if line.last() != Some(&b'\n') => continue,
            Ok(_) => {
                let text = std::str::from_utf8(&line).expect("UTF-8");
                if text.starts_with("{\"tap\":\"missed\"") {
                    let notice: Value = serde_json::from_str(text).expect("notice");
                    missed += notice["events"].as_u64().expect("events");
                    notices += 1;
                } else if field(text, "topic") == "load.marker" {
                    break;
                } else {
                    assert_eq!(field(text, "topic"), "load.filler", "{text}");
                    shown += 1;
                }
                line.clear();
            }
            Err(_) if !line.is_empty() => {}
            // Quiet: everything buffered is read; one more event goes
            // through, after the notice of what was dropped before it.
            Err(_) if !marker_sent => {
                send(&queue, &mut frame, "load.marker", None, b"{}");
                marker_sent = true;
            }
            Err(e) => panic!("no marker: {e}"),
        }
    }
    eprintln!(
        "the client was shown {shown} events and told of {missed} missed ({notices} notices)"
    );
    assert!(missed > 0, "the client fell behind, so it missed events");
    assert_eq!(
        shown + missed,
        n as u64,
        "every event shown or counted as missed"
    );
    drain.assert_running();
}

#[test]
fn nobody_tapping_the_drain_does_no_tap_work() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dirs = Dirs::new("tap-");
    let spec = spec(&queue, &dirs);
    let mut drain = start_drain(&spec);
    let pid = drain.pid();
    let mut frame = Vec::new();
    let mut sent = 0;
    let mut deliver = |drain: &mut DrainProcess, count: usize| {
        for i in 0..count {
            send(
                &queue,
                &mut frame,
                "quiet.topic",
                None,
                format!("{i}").as_bytes(),
            );
        }
        sent += count;
        wait_printed(drain, sent);
    };
    let switches = || thread_switches(pid, "drain-tap").expect("the drain-tap thread");
    let clients = || thread_switches(pid, "drain-tap-client");

    let before = switches();
    deliver(&mut drain, 5000);
    assert_eq!(
        switches(),
        before,
        "the tap thread slept through 5,000 deliveries"
    );
    assert_eq!(clients(), None, "no client thread");

    // A client comes, takes one event, and leaves.
    let mut tap = TapProcess::spawn(&spec, dirs.logs(), "one", &["--limit", "1"]);
    tap.wait_ready(READY);
    deliver(&mut drain, 1);
    assert!(tap
        .wait_timeout(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    let left = wait_until(Duration::from_secs(5), || {
        drain
            .log_text()
            .contains(&format!("tap from pid {} left", tap.pid()))
    });
    assert!(left, "{}", drain.log_text());

    let after = switches();
    deliver(&mut drain, 5000);
    assert_eq!(
        switches(),
        after,
        "once the client left, the tap thread sleeps again"
    );
    assert_eq!(clients(), None, "the client's thread is gone");
}

#[test]
fn the_tap_socket_is_private_and_strangers_are_refused() {
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        eprintln!("skipped: needs root to run a tap as another user (setpriv)");
        return;
    }
    let _serial = serial();
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dirs = Dirs::new("tap-");
    let spec = spec(&queue, &dirs);
    let mut drain = start_drain(&spec);
    let socket = spec.state().tap_socket();
    let meta = std::fs::metadata(&socket).expect("socket");
    assert_eq!(meta.mode() & 0o777, 0o600, "mode of {}", socket.display());
    assert_eq!(meta.uid(), 0, "owned by the drain's user");

    // Let anybody reach the directory: only the socket's mode and the
    // drain's check stand in the way.
    for dir in [dirs.logs(), &dirs.state()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    let as_nobody = |name: &str| {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        command.args(spec.tap_command().get_args());
        TapProcess::spawn_with(command, dirs.logs(), name, &[])
    };
    let mut stranger = as_nobody("stranger");
    let status = stranger.wait_timeout(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert!(
        stranger.log_text().contains("not allowed to connect"),
        "{}",
        stranger.log_text()
    );

    // An operator loosened the socket's mode: the drain still refuses.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let mut stranger = as_nobody("stranger-loosened");
    let status = stranger.wait_timeout(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert!(
        stranger
            .log_text()
            .contains("the drain refused the tap: uid 65534 may not tap"),
        "{}",
        stranger.log_text()
    );
    assert!(
        drain.log_text().contains(&format!(
            "refused a tap from pid {} (uid 65534",
            stranger.pid()
        )),
        "{}",
        drain.log_text()
    );

    // Root may.
    let mut root = TapProcess::spawn(&spec, dirs.logs(), "root", &["--limit", "1"]);
    root.wait_ready(READY);
    send(&queue, &mut Vec::new(), "ops.check", None, b"{}");
    assert!(root
        .wait_timeout(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert_eq!(root.stdout_text().lines().count(), 1);
    drain.assert_running();
}

#[test]
fn a_tap_on_a_kafka_drain_shows_what_kafka_acknowledged_in_partition_order() {
    let _serial = serial();
    let tansu = Tansu::start();
    let (tapped, other) = (unique_topic("tap-orders"), unique_topic("tap-other"));
    tansu.create_topic(&tapped, 3);
    tansu.create_topic(&other, 1);
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dirs = Dirs::new("tap-");
    let spec = spec(&queue, &dirs).brokers(&tansu.bootstrap);
    let mut drain = start_drain(&spec);
    let n = 2000;
    let mut tap = TapProcess::spawn(
        &spec,
        dirs.logs(),
        "kafka",
        &["--topic", &tapped, "--limit", &(n / 2).to_string()],
    );
    tap.wait_ready(READY);
    let mut frame = Vec::new();
    let mut ids = HashSet::new();
    for i in 0..n {
        let key = format!("customer-{}", i % 17);
        if i % 2 == 0 {
            ids.insert(send(
                &queue,
                &mut frame,
                &tapped,
                Some(key.as_bytes()),
                b"{}",
            ));
        } else {
            send(&queue, &mut frame, &other, Some(key.as_bytes()), b"{}");
        }
    }
    let status = tap.wait_timeout(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}\n{}",
        tap.log_text(),
        drain.log_text()
    );
    let records = consume_all(&tansu.bootstrap, &tapped, n / 2, Duration::from_secs(30));
    let placed: HashMap<String, (i32, i64)> = records
        .iter()
        .map(|r| {
            let id =
                String::from_utf8(r.header("event_id").expect("event_id").to_vec()).expect("id");
            (id, (r.partition, r.offset))
        })
        .collect();
    assert_eq!(
        placed.len(),
        n / 2,
        "Kafka holds every event of the topic once"
    );
    let shown = tap.stdout_text();
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    let mut seen = HashSet::new();
    for line in shown.lines() {
        assert_eq!(field(line, "topic"), tapped, "{line}");
        let id = field(line, "id");
        let &(partition, offset) = placed
            .get(&id)
            .unwrap_or_else(|| panic!("the tap showed {id}, which Kafka does not hold"));
        let last = last_offset.insert(partition, offset);
        assert!(
            last.map_or(true, |l| l < offset),
            "partition {partition}: offset {offset} shown after {last:?}"
        );
        seen.insert(id);
    }
    assert_eq!(seen, ids, "the tap showed exactly the events of its topic");
    assert!(last_offset.len() > 1, "the events spread over partitions");
    drain.assert_running();
}
