//! What the Ruby spool tests share: the Ruby emitter script and its
//! processes, the payload every event carries, and checking what arrived
//! against what each process was told was taken.
//!
//! Event `i` of process `p` has key `p<p>` (one key per process, so one
//! partition holds all of a process's events in Kafka's order) and the
//! payload [`payload`]`(p, i, size)`: `"<p>:<i>:"` and then binary filler
//! bytes that depend on `i`, so every record read back names its event
//! and is checked byte for byte.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::consume::Consumed;
use testkit::queue::TestQueue;

use crate::drain_spool_support::{consume_distinct_by, Dirs};

pub mod fork_tree;

/// The Ruby emitter. Arguments: topic, process number, count (0: until
/// killed), payload sizes (comma-separated, cycled), ids file. After each
/// `emit` it appends `i<TAB>id` to the ids file with one `write(2)`, so a
/// line on disk means `emit` returned that id, even if the process is
/// killed right after. At the end it prints `ShopifyEvents.stats` as JSON.
const RUBY_EMITTER: &str = r##"
require "json"
require "shopify_events"
topic, proc_n, count, sizes, ids_path = ARGV
proc_n = Integer(proc_n)
count = Integer(count)
sizes = sizes.split(",").map { |s| Integer(s) }
filler = ((0...251).map(&:chr).join.b * ((sizes.max / 251) + 2)).freeze
key = "p#{proc_n}"
ids = File.open(ids_path, "wb")
i = 0
while count.zero? || i < count
  prefix = "#{proc_n}:#{i}:".b
  size = sizes[i % sizes.size]
  payload = prefix + filler.byteslice(i % 251, [size - prefix.bytesize, 0].max)
  id = ShopifyEvents.emit(topic, payload, key: key)
  ids.syswrite("#{i}\t#{id}\n")
  i += 1
end
ids.close
$stdout.puts JSON.generate(ShopifyEvents.stats)
"##;

/// The payload of event `i` of process `proc` with `size` bytes (at least
/// its `"<proc>:<i>:"` prefix).
pub fn payload(proc: u32, i: u64, size: usize) -> Vec<u8> {
    let mut bytes = format!("{proc}:{i}:").into_bytes();
    let start = (i % 251) as usize;
    let filler = size.saturating_sub(bytes.len());
    bytes.extend((0..filler).map(|k| ((start + k) % 251) as u8));
    bytes
}

/// `(proc, i)` from a payload's prefix; `None` if it has none.
pub fn numbers(payload: &[u8]) -> Option<(u32, u64)> {
    let mut parts = payload.splitn(3, |&b| b == b':');
    let proc = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let i = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    parts.next()?;
    Some((proc, i))
}

/// One Ruby process running [`RUBY_EMITTER`]; SIGKILLed (its own child
/// only) on drop.
pub struct RubyProcess {
    /// Its process number (in keys and payloads).
    pub proc: u32,
    child: Child,
    ids: PathBuf,
    out: PathBuf,
    /// Its stderr.
    pub log: PathBuf,
}

impl RubyProcess {
    /// Starts `ruby` emitting `count` events (0: until killed) of `sizes`
    /// (cycled) to `topic` through the queue and the test's spool.
    pub fn spawn(
        queue: &TestQueue,
        dirs: &Dirs,
        topic: &str,
        proc: u32,
        count: u64,
        sizes: &[usize],
    ) -> RubyProcess {
        let file = |ext: &str| dirs.root().join(format!("ruby-{proc}.{ext}"));
        let (ids, out, log) = (file("ids"), file("out"), file("log"));
        let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
        let child = Command::new("ruby")
            .arg("-I")
            .arg(testkit::ruby::gem_lib())
            .arg("-e")
            .arg(RUBY_EMITTER)
            .args([
                topic,
                &proc.to_string(),
                &count.to_string(),
                &sizes.join(","),
            ])
            .arg(&ids)
            .env("SHOPIFY_EVENTS_QUEUE_KEY", queue.hex())
            .env("SHOPIFY_EVENTS_SPOOL_DIR", dirs.spool())
            .env_remove("SHOPIFY_EVENTS_TRANSPORT")
            .env_remove("SHOPIFY_EVENTS_SPOOL_MAX_BYTES")
            .env_remove("SHOPIFY_EVENTS_SPOOL_SYNC")
            .env_remove("SHOPIFY_EVENTS_MAX_EVENT_BYTES")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("create ruby stdout"))
            .stderr(std::fs::File::create(&log).expect("create ruby log"))
            .spawn()
            .expect("spawn ruby");
        RubyProcess {
            proc,
            child,
            ids,
            out,
            log,
        }
    }

    /// Waits for a successful exit and returns the stats it printed.
    pub fn stats(&mut self, timeout: Duration) -> Value {
        let what = format!("ruby {}", self.proc);
        wait_success(&mut self.child, &self.log, &what, timeout, || {});
        let out = std::fs::read_to_string(&self.out).expect("ruby stdout");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("stats {out:?}: {e}"))
    }

    /// Event number -> id, for every event `emit` returned and the process
    /// wrote down (complete lines only: a kill can cut the last one).
    pub fn ids(&self) -> HashMap<u64, String> {
        let text = std::fs::read_to_string(&self.ids).unwrap_or_default();
        text.split_inclusive('\n')
            .filter_map(|line| {
                let (i, id) = line.strip_suffix('\n')?.split_once('\t')?;
                Some((i.parse().ok()?, id.to_owned()))
            })
            .collect()
    }

    /// SIGKILL to this child only, and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL ruby");
        self.child.wait().expect("reap ruby");
    }
}

impl Drop for RubyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What [`check`] found per process: the highest event number delivered,
/// and how many records were repeats (at-least-once).
#[derive(Debug, Default)]
pub struct Delivered {
    /// Process -> the highest event number that arrived.
    pub last: HashMap<u32, u64>,
    /// Records that repeated an event already read.
    pub duplicates: usize,
}

/// Every record names its event and is exactly what its process emitted
/// (key, payload byte for byte, the event id `emit` returned); each
/// process's first copies arrive in emit order, in one partition, with no
/// hole before the last one delivered; every event a process wrote down
/// arrived.
pub fn check(records: &[Consumed], processes: &[RubyProcess], sizes: &[usize]) -> Delivered {
    let ids: HashMap<u32, HashMap<u64, String>> =
        processes.iter().map(|p| (p.proc, p.ids())).collect();
    check_ids(records, &ids, sizes)
}

/// [`check`] against the ids each process wrote down, however they were
/// collected: process -> event number -> the id `emit` returned.
pub fn check_ids(
    records: &[Consumed],
    ids: &HashMap<u32, HashMap<u64, String>>,
    sizes: &[usize],
) -> Delivered {
    let mut sorted: Vec<&Consumed> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    let mut seen = HashSet::new();
    let mut next: HashMap<u32, (i32, u64)> = HashMap::new();
    let mut delivered = Delivered::default();
    for record in sorted {
        let (proc, i) = numbers(&record.payload).unwrap_or_else(|| {
            panic!(
                "a record that names no event: {:?}",
                String::from_utf8_lossy(&record.payload[..record.payload.len().min(64)])
            )
        });
        let known = ids
            .get(&proc)
            .unwrap_or_else(|| panic!("record of unknown process {proc}"));
        assert!(
            record.payload == payload(proc, i, sizes[i as usize % sizes.len()]),
            "payload of event {i} of process {proc} ({} bytes) is not what it emitted",
            record.payload.len()
        );
        assert_eq!(
            record.key.as_deref(),
            Some(format!("p{proc}").as_bytes()),
            "key of {proc}/{i}"
        );
        let id = record.header("event_id").expect("event_id header");
        if let Some(emitted) = known.get(&i) {
            assert_eq!(id, emitted.as_bytes(), "event id of {proc}/{i}");
        }
        if !seen.insert((proc, i)) {
            delivered.duplicates += 1;
            continue;
        }
        let (partition, expected) = *next.get(&proc).unwrap_or(&(record.partition, 0));
        assert_eq!(
            record.partition, partition,
            "process {proc}'s events in two partitions"
        );
        assert_eq!(
            i, expected,
            "process {proc}: event {i} arrived where event {expected} was due (a hole or \
             out of order)"
        );
        next.insert(proc, (partition, i + 1));
        delivered.last.insert(proc, i);
    }
    for (proc, known) in ids {
        let missing: Vec<u64> = known
            .keys()
            .filter(|i| !seen.contains(&(*proc, **i)))
            .copied()
            .collect();
        assert!(
            missing.is_empty(),
            "process {proc}: {} events it was told were taken never arrived (e.g. {:?})",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
    delivered
}

/// Reads `topic` until `expected` distinct events arrived and then nothing
/// new for 2 s, or `timeout` (events numbered in their payload).
pub fn consume_events(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    consume_distinct_by(bootstrap, topic, expected, timeout, |r| numbers(&r.payload))
}

/// Whether the spool directory holds no segment. A dead writer's
/// provisional segment (`.<key>-<producer>-<n>.seg.tmp`, built ahead, never
/// holding an event) stays until the drain's next rescan after its grace
/// (`ReaderOptions::temp_grace`, a minute): it does not count, nor does
/// the running drain's reader lock (`drain-<key>.lock`).
pub fn no_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // A killed writer's unfinished segment, or the drain's lock.
            name.ends_with(".seg.tmp") || (name.starts_with("drain-") && name.ends_with(".lock"))
        })
    })
}

/// A counter of `ShopifyEvents.stats` as the process printed it.
pub fn stat(stats: &Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in stats {stats}"))
}

/// Waits up to `timeout` for `child` to exit successfully, calling
/// `meanwhile` every 20 ms; panics naming `what` with its log otherwise.
pub fn wait_success(
    child: &mut std::process::Child,
    log: &Path,
    what: &str,
    timeout: Duration,
    mut meanwhile: impl FnMut(),
) {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait ruby") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still running after {timeout:?}\n{}",
            log()
        );
        meanwhile();
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{what}: {status}\n{}", log());
}
