//! The running proxy's stats snapshot: `proxy-KEY.json` in the proxy's
//! directory ([`defaults::RUN_DIR`](crate::defaults::RUN_DIR) unless told
//! otherwise), rewritten every second, read by `shopify-events top`.
//!
//! Same rules as the drain's snapshot ([`super::published`]): atomic
//! replace, and a reader that judges the proxy up, stale or down from the
//! pid and the age. The file is one JSON object: `pid`, `updated_at`,
//! `listeners`, then the counters of [`ProxyCounters`] beside them.
//!
//! [`ProxySnapshotWriter::spawn`] is the whole of what the proxy needs: a
//! thread that copies its [`ProxyMetrics`] into the file once a second
//! until shutdown.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::published::{publish, read_published, unix_now, Liveness, Published};
use crate::proxy::ProxyMetrics;
use crate::state_dir::StateDir;

/// How often the proxy rewrites its snapshot.
const EVERY: Duration = Duration::from_secs(1);

/// What the proxy publishes about itself once a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxySnapshot {
    /// The proxy's process id.
    pub pid: u32,
    /// When it was written, in Unix seconds.
    pub updated_at: f64,
    /// Where it listens (`tcp://127.0.0.1:7070`, `unix:///run/…/proxy.sock`).
    pub listeners: Vec<String>,
    /// Its counters.
    #[serde(flatten)]
    pub counters: ProxyCounters,
}

/// The proxy's counters as plain numbers (see [`ProxyMetrics`] for each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyCounters {
    /// Connections open now.
    pub connections_open: i64,
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections refused at the limit.
    pub connections_refused: u64,
    /// Envelopes put into the host queue.
    pub events_enqueued: u64,
    /// Their bytes.
    pub bytes_enqueued: u64,
    /// Envelopes appended to the proxy's spool (larger than the queue
    /// takes, or it was full); absent from an older proxy's snapshot.
    #[serde(default)]
    pub events_spooled: u64,
    /// Their bytes.
    #[serde(default)]
    pub bytes_spooled: u64,
    /// Frames refused with a nack.
    pub frames_nacked: u64,
    /// Connections closed for a protocol violation.
    pub protocol_errors: u64,
    /// Frames that waited for room in a full queue.
    pub queue_full_waits: u64,
    /// Connections waiting for room in the queue now.
    pub backpressured: i64,
    /// `msgsnd` failures other than a full queue.
    pub queue_errors: u64,
}

impl From<&ProxyMetrics> for ProxyCounters {
    fn from(m: &ProxyMetrics) -> Self {
        ProxyCounters {
            connections_open: m.connections_open.get(),
            connections_accepted: m.connections_accepted.get(),
            connections_refused: m.connections_refused.get(),
            events_enqueued: m.events_enqueued.get(),
            bytes_enqueued: m.bytes_enqueued.get(),
            events_spooled: m.events_spooled.get(),
            bytes_spooled: m.bytes_spooled.get(),
            frames_nacked: m.frames_nacked.get(),
            protocol_errors: m.protocol_errors.get(),
            queue_full_waits: m.queue_full_waits.get(),
            backpressured: m.backpressured.get(),
            queue_errors: m.queue_errors.get(),
        }
    }
}

impl Published for ProxySnapshot {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn updated_at(&self) -> f64 {
        self.updated_at
    }
}

/// Replaces the proxy's snapshot in `dir` atomically.
pub fn write_proxy_snapshot(dir: &StateDir, snapshot: &ProxySnapshot) -> io::Result<()> {
    publish(&dir.proxy_snapshot(), &dir.proxy_snapshot_tmp(), snapshot)
}

/// The proxy's snapshot in `dir` and whether the proxy is up, as of `now`
/// (Unix seconds).
pub fn read_proxy_snapshot(dir: &StateDir, now: f64) -> Liveness<ProxySnapshot> {
    read_published(&dir.proxy_snapshot(), now)
}

/// The thread that publishes a proxy's snapshot.
#[derive(Debug)]
pub struct ProxySnapshotWriter;

impl ProxySnapshotWriter {
    /// Creates `dir` if missing and starts a thread (`proxy-status`) that
    /// writes `metrics` to `dir`'s `proxy-KEY.json` now and every second,
    /// until `shutdown` is set. A failed write is logged once per run of
    /// failures and retried the next second: the proxy's work does not
    /// depend on it.
    pub fn spawn(
        dir: StateDir,
        listeners: Vec<String>,
        metrics: Arc<ProxyMetrics>,
        shutdown: Arc<AtomicBool>,
    ) -> io::Result<JoinHandle<()>> {
        dir.create()?;
        thread::Builder::new()
            .name("proxy-status".into())
            .spawn(move || {
                let mut failing = false;
                while !shutdown.load(Relaxed) {
                    let snapshot = ProxySnapshot {
                        pid: std::process::id(),
                        updated_at: unix_now(),
                        listeners: listeners.clone(),
                        counters: ProxyCounters::from(&*metrics),
                    };
                    match write_proxy_snapshot(&dir, &snapshot) {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            eprintln!(
                                "shopify-events proxy: cannot write {}: {e}",
                                dir.proxy_snapshot().display()
                            );
                        }
                        Err(_) => {}
                    }
                    let next = Instant::now() + EVERY;
                    while !shutdown.load(Relaxed) && Instant::now() < next {
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_publishes_the_proxys_counters_until_shutdown() {
        let dir = tempfile::tempdir().expect("dir");
        let state = StateDir::new(dir.path().join("run"), 0x5345_5600);
        let metrics = Arc::new(ProxyMetrics::for_queue(0x5345_5600));
        metrics.events_enqueued.add(5);
        metrics.connections_open.add(2);
        let shutdown = Arc::new(AtomicBool::new(false));
        let listeners = vec!["unix:///run/x.sock".to_owned()];
        let writer = ProxySnapshotWriter::spawn(
            state.clone(),
            listeners.clone(),
            metrics.clone(),
            shutdown.clone(),
        )
        .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(5);
        let read = loop {
            if let Liveness::Up { snapshot, .. } = read_proxy_snapshot(&state, unix_now()) {
                break snapshot;
            }
            assert!(Instant::now() < deadline, "no snapshot");
            thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(read.pid, std::process::id());
        assert_eq!(read.listeners, listeners);
        assert_eq!(
            (
                read.counters.events_enqueued,
                read.counters.connections_open
            ),
            (5, 2)
        );
        metrics.events_enqueued.add(1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while read_proxy_snapshot(&state, unix_now())
            .up()
            .map_or(true, |s| s.counters.events_enqueued != 6)
        {
            assert!(Instant::now() < deadline, "the snapshot was not rewritten");
            thread::sleep(Duration::from_millis(20));
        }
        shutdown.store(true, Relaxed);
        writer.join().expect("writer thread");
        assert!(state.proxy_snapshot().ends_with("run/proxy-53455600.json"));
    }
}
