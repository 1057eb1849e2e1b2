//! Helpers for end-to-end drain tests: SysV test queues removed on drop,
//! the `shopify-events drain` binary as a child process, and Ruby emitter
//! children (the gem under lib/, compiled extension included).
//!
//! Every process here is a child of the test, killed by handle (never by
//! name) when its guard drops.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sysvmq::{Key, Queue};

use super::Consumed;

/// Smallest `kernel.msgmnb` the tests need: queues hold ~250,000 events.
pub const MIN_MSGMNB: u64 = 64 * 1024 * 1024;

/// The gem's lib directory (with the compiled extension in it).
pub fn gem_lib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lib")
}

/// The drain binary built for this test run.
pub fn drain_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shopify-events")
}

/// Runs tests of one file one at a time: they start brokers, drains and
/// Ruby processes, and timing-sensitive steps (kills, shutdown bounds) get
/// unreliable when six of them share two cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Raises `kernel.msgmnb` to [`MIN_MSGMNB`] if it is lower (never lowers
/// it: other tests run concurrently). Must run before a queue is created,
/// since a queue's capacity is fixed from msgmnb at creation.
pub fn ensure_msgmnb() {
    let path = "/proc/sys/kernel/msgmnb";
    let current: u64 = std::fs::read_to_string(path)
        .expect("read kernel.msgmnb")
        .trim()
        .parse()
        .expect("parse kernel.msgmnb");
    if current < MIN_MSGMNB {
        if let Err(e) = std::fs::write(path, MIN_MSGMNB.to_string()) {
            panic!(
                "kernel.msgmnb is {current}, need {MIN_MSGMNB}: cannot raise it ({e}); run as root"
            );
        }
    }
}

/// A SysV queue under a key unique to this process and test, created with
/// the (raised) default capacity and removed on drop, whatever queue holds
/// the key by then (a test may remove it and an emitter recreate it).
pub struct TestQueue {
    pub key: Key,
}

impl TestQueue {
    pub fn new() -> TestQueue {
        static N: AtomicU32 = AtomicU32::new(0);
        ensure_msgmnb();
        let n = N.fetch_add(1, Ordering::Relaxed) & 0xFF;
        let key = (0x7D00_0000 | ((std::process::id() & 0xFFFF) << 8) | n) as Key;
        // A queue left over by an earlier crashed run with a recycled pid.
        if let Ok(stale) = Queue::open(key) {
            let _ = stale.remove();
        }
        let queue = Queue::open_or_create(key, 0o600).expect("create test queue");
        let stat = queue.stat().expect("stat test queue");
        assert!(
            stat.capacity >= MIN_MSGMNB,
            "queue capacity {} < {MIN_MSGMNB}",
            stat.capacity
        );
        TestQueue { key }
    }

    /// `0x7d...`, for `--queue-key` and `SHOPIFY_EVENTS_QUEUE_KEY`.
    pub fn hex(&self) -> String {
        format!("{:#010x}", self.key as u32)
    }

    /// Messages waiting; 0 when no queue exists under the key.
    pub fn depth(&self) -> u64 {
        Queue::open(self.key)
            .and_then(|q| q.stat())
            .map(|s| s.messages)
            .unwrap_or(0)
    }

    /// Removes the queue now (what `ipcrm -Q` does): its messages are lost.
    pub fn remove(&self) {
        Queue::open(self.key)
            .expect("open test queue")
            .remove()
            .expect("remove test queue");
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        if let Ok(queue) = Queue::open(self.key) {
            let _ = queue.remove();
        }
    }
}

/// One `shopify-events drain` child. Stderr goes to a log file; stdout to
/// a file too (the stdout sink's JSON lines). Killed (SIGKILL) on drop.
pub struct DrainProc {
    pub child: Child,
    pub log: PathBuf,
    pub stdout: PathBuf,
}

/// Arguments every drain of a test shares.
#[derive(Clone)]
pub struct DrainSpec {
    pub queue: String,
    pub state_dir: PathBuf,
    /// Where logs and stdout files go (not the state dir).
    pub log_dir: PathBuf,
    pub extra: Vec<String>,
}

impl DrainSpec {
    pub fn new(queue: &TestQueue, state_dir: &Path, log_dir: &Path) -> DrainSpec {
        DrainSpec {
            queue: queue.hex(),
            state_dir: state_dir.to_owned(),
            log_dir: log_dir.to_owned(),
            extra: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> DrainSpec {
        self.extra.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> DrainSpec {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts a drain; `n` numbers its log files.
    pub fn spawn(&self, n: usize) -> DrainProc {
        let log = self.log_dir.join(format!("drain-{n}.log"));
        let stdout = self.log_dir.join(format!("drain-{n}.out"));
        let child = Command::new(drain_bin())
            .arg("drain")
            .args(["--queue-key", &self.queue])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(&self.extra)
            .env_remove("SHOPIFY_EVENTS_CONFIG")
            .env_remove("SHOPIFY_EVENTS_BROKERS")
            .env_remove("SHOPIFY_EVENTS_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("create drain stdout"))
            .stderr(std::fs::File::create(&log).expect("create drain log"))
            .spawn()
            .expect("spawn shopify-events drain");
        DrainProc { child, log, stdout }
    }
}

impl DrainProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// SIGTERM to this child only.
    pub fn terminate(&self) {
        signal(self.child.id(), "TERM");
    }

    /// SIGKILL to this child only, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait drain") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Panics unless the drain is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait drain") {
            panic!("drain exited early: {status}\n{}", self.log_text());
        }
    }

    /// `host:port` of the metrics server, from the drain's startup line.
    pub fn metrics_addr(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_text();
            if let Some(rest) = log.split("metrics on http://").nth(1) {
                if let Some(addr) = rest.split("/metrics").next() {
                    return addr.to_owned();
                }
            }
            self.assert_running();
            assert!(Instant::now() < deadline, "no metrics line in:\n{log}");
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DrainProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The drain's stats snapshot (`<state_dir>/drain-<key>.json`, written each
/// second), if there is one.
pub fn snapshot(state_dir: &Path, queue: &TestQueue) -> Option<serde_json::Value> {
    let path = state_dir.join(format!("drain-{:08x}.json", queue.key as u32));
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// `shopify-events stats --json` for the queue and state dir.
pub fn stats_json(state_dir: &Path, queue: &TestQueue) -> serde_json::Value {
    let out = super::run_ok(
        Command::new(drain_bin())
            .args(["stats", "--json", "--queue-key", &queue.hex()])
            .arg("--state-dir")
            .arg(state_dir),
        "shopify-events stats",
    );
    serde_json::from_slice(&out).expect("stats --json output")
}

/// GET `path` from `addr` (HTTP/1.0), returning the body.
pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    match response.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_owned(),
        None => response,
    }
}

/// Polls `done` every 20 ms until it is true or `timeout` passed; returns
/// whether it became true.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Reads `topic` from the beginning of every partition until `done` says
/// the records so far are complete, then keeps reading until nothing new
/// arrived for `quiet` (late duplicates), or until `timeout`. Returns the
/// records in arrival order.
///
/// Do not count a Tansu topic's records with `fetch_watermarks`: Tansu
/// 0.6.0's ListOffsets answers with high watermarks that lag far behind
/// (3 of 20,000 acknowledged records right after a flush), while a
/// consumer reads all of them.
pub fn consume_until(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    quiet: Duration,
    mut done: impl FnMut(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    let deadline = Instant::now() + timeout;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", super::unique_topic("consume-until"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create consumer");
    let partitions = loop {
        let count = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()
            .and_then(|md| {
                md.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().len())
            })
            .unwrap_or(0);
        if count > 0 {
            break count as i32;
        }
        assert!(Instant::now() < deadline, "topic {topic} not in metadata");
        sleep(Duration::from_millis(50));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut complete = false;
    let mut last_new = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(Consumed::from_message(&m));
                last_new = Instant::now();
            }
            Some(Err(e)) => eprintln!("consume_until({topic}): {e}"),
            None => {}
        }
        if !complete {
            complete = done(&out);
        }
        if complete && last_new.elapsed() >= quiet {
            break;
        }
    }
    out
}

/// Standard base64 (with padding) decoder; `None` on bad input.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 != 0 || bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

/// The Ruby emitter script. Arguments: output file, pace (sleep 1 ms after
/// every `pace` events; 0: never), then `topic,from,count` specs and the
/// optional word `pause:<file>` between specs (wait until `<file>` exists,
/// after writing `<file>.ready`). For each event `i` it emits
/// [`payload`]`(i)` with key `k{i % 97}` and header `seq` = i using
/// `emit!`, retrying after 1 ms on QueueFull, and appends
/// `id<TAB>i<TAB>topic` to the output file.
const RUBY_EMITTER: &str = r##"
require "shopify_events"
out = File.open(ARGV.shift, "w")
pace = Integer(ARGV.shift)
sent = 0
full = 0
ARGV.each do |spec|
  if spec.start_with?("pause:")
    go = spec.delete_prefix("pause:")
    out.flush
    File.write("#{go}.ready", "")
    sleep 0.005 until File.exist?(go)
    next
  end
  topic, from, count = spec.split(",")
  from = Integer(from)
  Integer(count).times do |n|
    i = from + n
    payload = i.even? ? "payload #{i} " + ("x" * (i % 40)) : { "i" => i, "name" => "ev#{i}" }
    begin
      id = ShopifyEvents.emit!(topic, payload, key: "k#{i % 97}", headers: { "seq" => i.to_s })
    rescue ShopifyEvents::QueueFull
      full += 1
      sleep 0.001
      retry
    end
    out.write("#{id}\t#{i}\t#{topic}\n")
    sent += 1
    sleep 0.001 if pace > 0 && (sent % pace).zero?
  end
end
out.close
warn "ruby emitter: #{sent} events, #{full} QueueFull retries"
"##;

/// The payload bytes the Ruby emitter sends for event `i`: a String for
/// even `i`, a Hash (JSON) for odd `i`.
pub fn payload(i: usize) -> Vec<u8> {
    if i % 2 == 0 {
        format!("payload {i} {}", "x".repeat(i % 40)).into_bytes()
    } else {
        format!("{{\"i\":{i},\"name\":\"ev{i}\"}}").into_bytes()
    }
}

/// The key the Ruby emitter uses for event `i`.
pub fn key(i: usize) -> Vec<u8> {
    format!("k{}", i % 97).into_bytes()
}

/// A Ruby child running [`RUBY_EMITTER`]; killed on drop.
pub struct RubyEmitter {
    child: Child,
    pub ids_file: PathBuf,
    log: PathBuf,
}

/// One emitted event as the Ruby child reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub id: String,
    pub i: usize,
    pub topic: String,
}

impl RubyEmitter {
    /// Starts `ruby` with the emitter script; `specs` as described there.
    pub fn spawn(queue: &TestQueue, dir: &Path, name: &str, pace: usize, specs: &[String]) -> Self {
        let ids_file = dir.join(format!("{name}.ids"));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new("ruby")
            .arg("-I")
            .arg(gem_lib())
            .arg("-e")
            .arg(RUBY_EMITTER)
            .arg(&ids_file)
            .arg(pace.to_string())
            .args(specs)
            .env("SHOPIFY_EVENTS_QUEUE_KEY", queue.hex())
            .env_remove("SHOPIFY_EVENTS_TRANSPORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create ruby log"))
            .spawn()
            .expect("spawn ruby");
        RubyEmitter {
            child,
            ids_file,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the child has exited (panics if it failed).
    pub fn finished(&mut self) -> bool {
        match self.child.try_wait().expect("try_wait ruby") {
            None => false,
            Some(status) => {
                assert!(
                    status.success(),
                    "ruby emitter: {status}\n{}",
                    self.log_text()
                );
                true
            }
        }
    }

    /// Waits for the child to exit successfully, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) {
        assert!(
            wait_until(timeout, || self.finished()),
            "ruby emitter still running after {timeout:?}\n{}",
            self.log_text()
        );
    }

    /// The events written to the ids file so far.
    pub fn emitted(&self) -> Vec<Emitted> {
        read_emitted(&self.ids_file)
    }
}

impl Drop for RubyEmitter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Parses the `id<TAB>i<TAB>topic` lines of an ids file (complete lines only).
pub fn read_emitted(path: &Path) -> Vec<Emitted> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            let id = parts.next()?.to_owned();
            let i = parts.next()?.parse().ok()?;
            let topic = parts.next()?.to_owned();
            Some(Emitted { id, i, topic })
        })
        .collect()
}

/// Event id -> emitted event, panicking on a repeated id.
pub fn by_id(events: &[Emitted]) -> HashMap<String, Emitted> {
    let mut map = HashMap::with_capacity(events.len());
    for e in events {
        assert!(
            map.insert(e.id.clone(), e.clone()).is_none(),
            "ruby returned id {} twice",
            e.id
        );
    }
    map
}

/// A tiny xorshift64 generator for reproducible "random" timings.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}
