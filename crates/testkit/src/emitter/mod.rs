//! Emitting processes for the spool tests, in Rust: the test binary run
//! again (see [`EmitterSpec::spawn`]), emitting numbered events the way an
//! app process would, through the core's queue and spool.
//!
//! Modes ([`Route`]):
//!
//! - `Overflow`: the sysv transport's rule. `msgsnd` first; when the queue
//!   is full, or the envelope is larger than `kernel.msgmax`, the same
//!   envelope goes to the process's spool, and later events keep going
//!   there until the drain acknowledged everything spooled
//!   (`SpoolWriter::drained`); then the writer seals and the queue is used
//!   again. A full spool drops the event (counted).
//! - `Spool`: every event to the spool (the spool transport).
//!
//! Event `i` of process `proc` has topic `spec.topic`, key
//! `p<proc>-k<i % keys>`, headers `proc` and `seq`, and the payload
//! [`payload`]`(proc, i, len)`, so a consumer can check each record whole.
//! After each event the process appends `i<TAB>id<TAB>q|s|d` (queue,
//! spool, dropped) to its ids file with one `write`, so what it reported is
//! on disk even if it is killed right after.
//!
//! Use it from a test file with an ignored test that calls [`main`]:
//!
//! ```ignore
//! #[test]
//! #[ignore = "not a test: the emitting process the spool tests start"]
//! fn emitter_process() {
//!     testkit::emitter::main();
//! }
//! ```

mod process;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sysvmq::Key;

pub use process::main;

const ENV: &str = "TESTKIT_EMITTER_SPEC";
/// The name of the ignored test that runs [`main`].
pub const HELPER_TEST: &str = "emitter_process";

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Queue first, the spool on overflow (the sysv transport's rule).
    Overflow,
    /// The spool only.
    Spool,
}

/// One emitting process.
#[derive(Debug, Clone)]
pub struct EmitterSpec {
    /// The queue (overflow) and the spool's queue key.
    pub key: Key,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// Topic of every event.
    pub topic: String,
    /// The process's number (in keys, headers and payloads).
    pub proc: u32,
    /// Events to emit.
    pub count: u64,
    /// Payload bytes of each event; cycled through.
    pub payload_sizes: Vec<usize>,
    /// Distinct keys per process.
    pub keys: u64,
    /// Where events go.
    pub route: Route,
    /// Sleep `pause_ms` after every this many events (0: never).
    pub pace: u64,
    /// Milliseconds of each pause.
    pub pause_ms: u64,
    /// Segment sizes of the spool writer (min, max).
    pub segments: (u64, u64),
    /// `spool_max_bytes`, if bounded.
    pub max_bytes: Option<u64>,
    /// `msync` the spool when done.
    pub flush: bool,
    /// Stay alive (writer open) when done, until killed.
    pub hold: bool,
    /// Files go here: `<name>.ids`, `<name>.log`.
    pub dir: PathBuf,
}

impl EmitterSpec {
    /// A spec with the defaults: 200-byte payloads, 16 keys, overflow, no
    /// pacing, small segments (64 KiB to 1 MiB), unbounded, no flush, exits.
    pub fn new(key: Key, spool_dir: &Path, topic: &str, proc: u32, count: u64, dir: &Path) -> Self {
        EmitterSpec {
            key,
            spool_dir: spool_dir.to_owned(),
            topic: topic.to_owned(),
            proc,
            count,
            payload_sizes: vec![200],
            keys: 16,
            route: Route::Overflow,
            pace: 0,
            pause_ms: 1,
            segments: (64 << 10, 1 << 20),
            max_bytes: None,
            flush: false,
            hold: false,
            dir: dir.to_owned(),
        }
    }

    fn name(&self) -> String {
        format!("emitter-{}", self.proc)
    }

    /// The file it reports each event in.
    pub fn ids_file(&self) -> PathBuf {
        self.dir.join(format!("{}.ids", self.name()))
    }

    /// Its stdout and stderr.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.name()))
    }

    fn to_json(&self) -> String {
        json!({
            "key": self.key,
            "spool_dir": self.spool_dir,
            "topic": self.topic,
            "proc": self.proc,
            "count": self.count,
            "payload_sizes": self.payload_sizes,
            "keys": self.keys,
            "spool_only": self.route == Route::Spool,
            "pace": self.pace,
            "pause_ms": self.pause_ms,
            "segments": [self.segments.0, self.segments.1],
            "max_bytes": self.max_bytes,
            "flush": self.flush,
            "hold": self.hold,
            "dir": self.dir,
        })
        .to_string()
    }

    fn from_json(text: &str) -> EmitterSpec {
        let v: Value = serde_json::from_str(text).expect("emitter spec");
        let u = |name: &str| v[name].as_u64().unwrap_or_else(|| panic!("spec {name}"));
        let s = |name: &str| {
            v[name]
                .as_str()
                .unwrap_or_else(|| panic!("spec {name}"))
                .to_owned()
        };
        EmitterSpec {
            key: v["key"].as_i64().expect("spec key") as Key,
            spool_dir: PathBuf::from(s("spool_dir")),
            topic: s("topic"),
            proc: u("proc") as u32,
            count: u("count"),
            payload_sizes: v["payload_sizes"]
                .as_array()
                .expect("sizes")
                .iter()
                .map(|n| n.as_u64().expect("size") as usize)
                .collect(),
            keys: u("keys"),
            route: if v["spool_only"].as_bool() == Some(true) {
                Route::Spool
            } else {
                Route::Overflow
            },
            pace: u("pace"),
            pause_ms: u("pause_ms"),
            segments: (
                v["segments"][0].as_u64().expect("min"),
                v["segments"][1].as_u64().expect("max"),
            ),
            max_bytes: v["max_bytes"].as_u64(),
            flush: v["flush"].as_bool() == Some(true),
            hold: v["hold"].as_bool() == Some(true),
            dir: PathBuf::from(s("dir")),
        }
    }

    /// Starts the process: the current test binary, running only its
    /// ignored [`HELPER_TEST`].
    pub fn spawn(&self) -> Emitter {
        let log = File::create(self.log_file()).expect("create emitter log");
        let err = log.try_clone().expect("clone emitter log");
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", HELPER_TEST, "--ignored", "--nocapture"])
            .arg("--test-threads=1")
            .env(ENV, self.to_json())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn emitter");
        Emitter {
            child,
            spec: self.clone(),
        }
    }
}

/// A running emitter, killed on drop (its own child only).
#[derive(Debug)]
pub struct Emitter {
    child: Child,
    /// What it was started with.
    pub spec: EmitterSpec,
}

/// One event an emitter reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// The emitting process's number.
    pub proc: u32,
    /// The event's number in its process.
    pub i: u64,
    /// Its id, hyphenated.
    pub id: String,
    /// `q` (queue), `s` (spool) or `d` (dropped).
    pub via: char,
}

impl Emitter {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for it to finish; panics with its log if it
    /// failed or is still running.
    pub fn wait(&mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait emitter") {
                assert!(
                    status.success(),
                    "emitter failed: {status}\n{}",
                    self.log_text()
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "emitter still running after {timeout:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it exited.
    pub fn finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.spec.log_file()).unwrap_or_default()
    }

    /// The events it reported so far.
    pub fn emitted(&self) -> Vec<Emitted> {
        read_emitted(&self.spec.ids_file(), self.spec.proc)
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The events in an ids file (a torn last line is skipped).
pub fn read_emitted(path: &Path, proc: u32) -> Vec<Emitted> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let i = fields.next()?.parse().ok()?;
            let id = fields.next()?.to_owned();
            let via = fields.next()?.chars().next()?;
            (id.len() == 36).then_some(Emitted { proc, i, id, via })
        })
        .collect()
}

/// The payload of event `i` of process `proc`: JSON padded to `len` bytes.
pub fn payload(proc: u32, i: u64, len: usize) -> Vec<u8> {
    let head = format!("{{\"proc\":{proc},\"i\":{i},\"pad\":\"");
    let mut out = head.into_bytes();
    let fill = len.saturating_sub(out.len() + 2);
    out.extend((0..fill).map(|n| b'a' + ((i as usize + n) % 26) as u8));
    out.extend_from_slice(b"\"}");
    out
}

/// The key of event `i` of process `proc` with `keys` keys.
pub fn key(proc: u32, i: u64, keys: u64) -> String {
    format!("p{proc}-k{}", i % keys.max(1))
}
