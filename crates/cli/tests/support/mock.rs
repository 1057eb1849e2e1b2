//! Helpers for tests and benchmarks that run the real `shopify-events drain`
//! binary as a subprocess against a broker (librdkafka's mock cluster or
//! Tansu): a SysV queue owned by the caller, envelope frames, the drain
//! process with its `/metrics` and `/health`, its memory and CPU from
//! `/proc`, and reading a topic back by event id.
//!
//! Used by `tests/drain_outage.rs` and `examples/drain_bench.rs`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use shopify_events_core::clock::now_micros;
use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use sysvmq::{Key, Queue, HEADER_LEN};

use super::{free_port, unique_topic};

/// `kernel.msgmnb` we make sure of before creating queues (never lowered).
pub const MIN_MSGMNB: u64 = 64 << 20;

/// Raises `/proc/sys/kernel/msgmnb` to `min` if it is lower (needs root;
/// never lowers it: other test runs share the host). Returns the value now in
/// force.
pub fn raise_msgmnb(min: u64) -> u64 {
    const PATH: &str = "/proc/sys/kernel/msgmnb";
    let current = std::fs::read_to_string(PATH)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if current >= min {
        return current;
    }
    if let Err(e) = std::fs::write(PATH, min.to_string()) {
        eprintln!("cannot raise {PATH} from {current} to {min}: {e}");
        return current;
    }
    min
}

/// A SysV queue this process created (unique key `0x7C000000 | pid<<8 | n`,
/// created with IPC_EXCL so a foreign queue is never taken over), removed on
/// drop.
pub struct OwnedQueue {
    pub queue: Queue,
    pub key: Key,
}

impl OwnedQueue {
    /// Creates a queue with byte capacity `capacity`. A capacity above
    /// `kernel.msgmnb` needs CAP_SYS_RESOURCE, which root in a container may
    /// lack, so `kernel.msgmnb` is raised to it first (never lowered).
    pub fn create(n: u8, capacity: u64) -> OwnedQueue {
        raise_msgmnb(MIN_MSGMNB.max(capacity));
        let pid = std::process::id() & 0x3_FFFF;
        // If a stale queue of an earlier process with the same pid bits is in
        // the way, move on to the next n rather than remove someone's queue.
        for step in 0..64u32 {
            let low = (u32::from(n) + step * 7) & 0xFF;
            let key = (0x7C00_0000 | (pid << 8) | low) as Key;
            match Queue::create(key, 0o600) {
                Ok(queue) => {
                    let owned = OwnedQueue { queue, key };
                    queue
                        .set_capacity(capacity)
                        .unwrap_or_else(|e| panic!("set capacity of {key:#010x}: {e}"));
                    return owned;
                }
                Err(sysvmq::Error::AlreadyExists { .. }) => continue,
                Err(e) => panic!("create queue {key:#010x}: {e}"),
            }
        }
        panic!("no free queue key for pid {pid}");
    }

    /// Messages in the queue now.
    pub fn depth(&self) -> u64 {
        self.queue.stat().map(|s| s.messages).unwrap_or(0)
    }

    /// `--queue-key` value.
    pub fn key_arg(&self) -> String {
        format!("{:#010x}", self.key)
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        if let Err(e) = self.queue.remove() {
            eprintln!("cannot remove queue {:#010x}: {e}", self.key);
        }
    }
}

/// Builds one queue frame (native `c_long` mtype 1, then the envelope) into
/// `frame`; returns the event's id, hyphenated as in the `event_id` header.
pub fn event_frame(
    frame: &mut Vec<u8>,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
) -> [u8; 36] {
    frame.clear();
    frame.extend_from_slice(&1i64.to_ne_bytes()[..HEADER_LEN]);
    let mut body = Vec::with_capacity(payload.len() + 128);
    let time_us = now_micros();
    let id = EventId::generate(time_us);
    envelope::encode(&mut body, id, time_us, topic, key, &[], payload).expect("encode envelope");
    frame.extend_from_slice(&body);
    id.hyphenated()
}

/// Fills `payload` with random hex digits (compresses about 2:1, like JSON),
/// the same bytes [`super::produce_baseline`] sends.
pub fn hex_payload(rng: &mut u64, payload: &mut [u8]) {
    for b in payload.iter_mut() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *b = b"0123456789abcdef"[(*rng & 15) as usize];
    }
}

/// Memory of a process from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    pub vm_rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub vm_hwm: u64,
}

impl Mem {
    pub fn read(pid: u32) -> Option<Mem> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let mut mem = Mem::default();
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let kib = || {
                value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            match name {
                "VmRSS" => mem.vm_rss = kib(),
                "RssAnon" => mem.rss_anon = kib(),
                "RssFile" => mem.rss_file = kib(),
                "VmHWM" => mem.vm_hwm = kib(),
                _ => {}
            }
        }
        Some(mem)
    }
}

/// KiB as MiB, for printing.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// utime + stime of a process (all its threads) in clock ticks, from
/// `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A running `shopify-events drain`, killed (by its own pid) on drop.
pub struct DrainProcess {
    child: Child,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

impl DrainProcess {
    /// Starts `bin drain --queue-key .. --brokers .. --state-dir ..
    /// --metrics-addr 127.0.0.1:<free port> <extra>`, with stderr and stdout
    /// in `<state_dir>/../drain-<n>.log`-style file `log`.
    pub fn spawn(
        bin: &Path,
        queue_key: &str,
        brokers: &str,
        state_dir: &Path,
        log: &Path,
        extra: &[&str],
    ) -> DrainProcess {
        let port = free_port();
        let metrics = SocketAddr::from(([127, 0, 0, 1], port));
        let out = std::fs::File::create(log).expect("create drain log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(bin)
            .arg("drain")
            .args(["--queue-key", queue_key])
            .args(["--brokers", brokers])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--metrics-addr", &metrics.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        DrainProcess {
            child,
            metrics,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The drain's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics if the drain exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the drain exited: {status}\n--- drain log ---\n{}",
                self.log_text()
            );
        }
    }

    /// Waits until `/health` answers (any status); panics after `timeout`.
    pub fn wait_serving(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            if self.get("/health").is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "drain metrics not up after {timeout:?}\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(2));
        }
    }

    /// `GET path` on the metrics address: (status, body), or None if it did
    /// not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics, path)
    }

    /// The metrics exposition, parsed to `name -> value` (labels dropped:
    /// the drain exports one queue).
    pub fn scrape(&self) -> Option<HashMap<String, f64>> {
        let (status, body) = self.get("/metrics")?;
        (status == 200).then(|| parse_metrics(&body))
    }

    /// Sends SIGTERM (to this pid only) and waits up to `timeout` for exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for DrainProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A one-shot HTTP/1.1 GET with `Connection: close`.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Prometheus text to `name -> value`; `_bucket` lines are skipped.
pub fn parse_metrics(body: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in body.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if name.ends_with("_bucket") {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            out.insert(name.to_owned(), v);
        }
    }
    out
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("mock-read"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create consumer")
}

/// (low, high) watermarks of one partition, None if the broker did not say.
/// Against Tansu 0.6.0 the high watermark is the base offset of the last
/// batch, not the next offset: it under-counts (librdkafka's mock cluster is
/// exact).
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> Option<(i64, i64)> {
    consumer(bootstrap)
        .fetch_watermarks(topic, partition, Duration::from_secs(5))
        .ok()
}

/// Reads every record of `topic` (partitions `0..partitions`, explicit
/// assign from the beginning, no group) up to the high watermarks seen at
/// the start, and returns each record's `event_id` header (an empty vec for a
/// record without one). Panics if it cannot finish within `timeout`.
/// Exact against librdkafka's mock cluster; against Tansu 0.6.0 it stops
/// short (see [`watermarks`]).
pub fn read_event_ids(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let consumer = consumer(bootstrap);
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("watermarks of {topic}/{p}: {e}"));
        if high > 0 {
            remaining.insert(p, high);
        }
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut ids = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    while !remaining.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} back: still missing offsets {remaining:?} after {timeout:?} \
             (errors {errors:?})"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let id = m
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == "event_id")
                            .and_then(|h| h.value.map(<[u8]>::to_vec))
                    })
                    .unwrap_or_default();
                ids.push(id);
                if let Some(&high) = remaining.get(&m.partition()) {
                    if m.offset() + 1 >= high {
                        remaining.remove(&m.partition());
                    }
                }
            }
            Some(Err(e)) => *errors.entry(e.to_string()).or_default() += 1,
        }
    }
    if !errors.is_empty() {
        eprintln!("read_event_ids({topic}): consumer errors: {errors:?}");
    }
    ids
}
