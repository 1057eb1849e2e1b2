//! The running drain's stats snapshot: `drain-KEY.json` in the state
//! directory, written by the drain every second and read by
//! `shopify-events stats`.
//!
//! The drain and `stats` share no memory and no socket: the drain rewrites
//! the snapshot ([`write_drain_snapshot`], temp file + rename, so a reader
//! never sees half a file), and `stats` reads it back
//! ([`read_drain_snapshot`]) only if the process that wrote it is still
//! alive and the snapshot is recent. A drain that was `kill -9`ed therefore
//! shows as absent, not as stale numbers.
//!
//! The file is one JSON object: [`DrainSnapshot`]'s `pid`, `updated_at` and
//! `sink`, and the fields of [`MetricsSnapshot`] beside them.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::published::{pid_alive, publish, read_snapshot_file, unix_now, Published};
use crate::metrics::MetricsSnapshot;
use crate::state_dir::StateDir;

/// A snapshot older than this is ignored: the drain writes one every second,
/// so ten missed writes mean it is stuck or gone.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(10);

/// What the drain publishes about itself once a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainSnapshot {
    /// The drain's process id.
    pub pid: u32,
    /// When it was written, in Unix seconds.
    pub updated_at: f64,
    /// Where the drain delivers (`kafka 127.0.0.1:9092`, `stdout (JSON lines)`).
    pub sink: String,
    /// Its metrics.
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
    /// The loss accounting since it began (it survives restarts, unlike
    /// the metrics' counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting: Option<crate::accounting::AccountingSnapshot>,
}

impl Published for DrainSnapshot {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn updated_at(&self) -> f64 {
        self.updated_at
    }
}

impl DrainSnapshot {
    /// A snapshot of `metrics`, by this process, now.
    pub fn now(sink: String, metrics: MetricsSnapshot) -> DrainSnapshot {
        DrainSnapshot {
            pid: std::process::id(),
            updated_at: unix_now(),
            sink,
            metrics,
            accounting: None,
        }
    }
}

/// Replaces the drain's snapshot atomically: writes a temp file in the same
/// directory, then renames it over the old one. The directory must exist.
///
/// No fsync: the snapshot is rewritten every second and worthless after a
/// crash, so durability is not worth a disk flush.
pub fn write_drain_snapshot(state: &StateDir, snapshot: &DrainSnapshot) -> io::Result<()> {
    publish(
        &state.stats_snapshot(),
        &state.stats_snapshot_tmp(),
        snapshot,
    )
}

/// The drain's snapshot in `state`, if it parses, names a live `pid` and its
/// `updated_at` is within [`SNAPSHOT_MAX_AGE`] of now.
pub fn read_drain_snapshot(state: &StateDir) -> Option<DrainSnapshot> {
    let text = read_snapshot_file(&state.stats_snapshot()).ok()?;
    let snapshot: DrainSnapshot = serde_json::from_slice(&text).ok()?;
    let fresh = (unix_now() - snapshot.updated_at).abs() <= SNAPSHOT_MAX_AGE.as_secs_f64();
    (fresh && pid_alive(snapshot.pid)).then_some(snapshot)
}
