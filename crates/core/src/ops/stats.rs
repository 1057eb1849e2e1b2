//! `shopify-events stats`: the queue as the kernel sees it, the queue's
//! spool files on disk, plus the running drain's counters (its snapshot,
//! see [`super::snapshot`]).

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sysvmq::{Key, Queue};

use super::counted::counted;
use super::size::format_size;
use super::snapshot::DrainSnapshot;
use crate::accounting::AccountingSnapshot;

/// One queue's state, read with a single `msgctl(IPC_STAT)`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    /// The queue key in hex (`0x53455600`).
    pub key: String,
    /// The kernel's queue id.
    pub id: i32,
    /// Messages waiting.
    pub depth: u64,
    /// Bytes of message bodies waiting.
    pub bytes: u64,
    /// Byte capacity; the kernel also caps the message count at this number.
    pub capacity: u64,
    /// How full the queue is, 0–100: the larger of bytes and message count
    /// over capacity, since a send fails once either reaches it.
    pub fill_percent: f64,
    /// Last successful `msgsnd`, in Unix seconds; `None` if never.
    pub last_send_time: Option<u64>,
    /// Last successful `msgrcv`, in Unix seconds; `None` if never.
    pub last_receive_time: Option<u64>,
    /// Last change of the queue's settings, or its creation, in Unix seconds.
    pub last_change_time: Option<u64>,
    /// Process of the last `msgsnd` (0 if none).
    pub last_send_pid: i32,
    /// Process of the last `msgrcv` (0 if none).
    pub last_receive_pid: i32,
    /// Permission bits in octal (`0660`).
    pub mode: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// When this was read, in Unix seconds (ages in the human form count from it).
    pub observed_at: u64,
    /// The queue's spool files (see [`spool_files`]); [`queue_stats`]
    /// leaves it `None`.
    pub spool: Option<SpoolFiles>,
    /// The running drain's snapshot (see
    /// [`read_drain_snapshot`](super::read_drain_snapshot)); `None` if no
    /// live drain wrote one recently. [`queue_stats`] leaves it `None`.
    pub drain: Option<DrainSnapshot>,
}

/// A queue's spool segments on disk, as a directory listing shows them
/// (what the drain has not deleted yet, delivered or not).
#[derive(Debug, Clone, Serialize)]
pub struct SpoolFiles {
    /// The spool directory.
    pub dir: String,
    /// Segment files of the queue.
    pub segments: usize,
    /// Their bytes on disk (allocated size, header pages included).
    pub bytes: u64,
    /// Why the directory could not be read, if it could not.
    pub error: Option<String>,
}

/// The spool segments of queue `key` in `dir`.
pub fn spool_files(dir: &Path, key: Key) -> SpoolFiles {
    let (segments, bytes, error) = match crate::spool::list_segments(dir, key) {
        Ok(list) => (list.len(), list.iter().map(|s| s.bytes).sum(), None),
        Err(e) => (0, 0, Some(e.to_string())),
    };
    SpoolFiles {
        dir: dir.display().to_string(),
        segments,
        bytes,
        error,
    }
}

/// Reads the queue with `key`. The drain's counters are not read: set
/// [`QueueStats::drain`] with [`read_drain_snapshot`](super::read_drain_snapshot).
pub fn queue_stats(key: Key) -> Result<QueueStats, sysvmq::Error> {
    let queue = Queue::open(key)?;
    let stat = queue.stat()?;
    let secs = |time: Option<SystemTime>| time.map(unix_secs);
    let used = stat.bytes.max(stat.messages);
    let fill_percent = if stat.capacity == 0 {
        100.0
    } else {
        used as f64 * 100.0 / stat.capacity as f64
    };
    Ok(QueueStats {
        key: format!("{key:#010x}"),
        id: queue.id(),
        depth: stat.messages,
        bytes: stat.bytes,
        capacity: stat.capacity,
        fill_percent,
        last_send_time: secs(stat.last_send_time),
        last_receive_time: secs(stat.last_receive_time),
        last_change_time: secs(stat.last_change_time),
        last_send_pid: stat.last_send_pid,
        last_receive_pid: stat.last_receive_pid,
        mode: format!("{:04o}", stat.mode),
        uid: stat.uid,
        gid: stat.gid,
        observed_at: unix_secs(SystemTime::now()),
        spool: None,
        drain: None,
    })
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl fmt::Display for QueueStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ago = |time: Option<u64>| match time {
            Some(secs) => format!("{} s ago", self.observed_at.saturating_sub(secs)),
            None => "never".to_owned(),
        };
        let by = |pid: i32| match pid {
            0 => String::new(),
            pid => format!(" (pid {pid})"),
        };
        let size = |bytes: u64| format!("{} ({})", format_size(bytes), counted(bytes, "byte"));
        writeln!(f, "{:<16}{} (id {})", "queue", self.key, self.id)?;
        writeln!(f, "{:<16}{}", "depth", counted(self.depth, "message"))?;
        writeln!(f, "{:<16}{}", "bytes", size(self.bytes))?;
        writeln!(f, "{:<16}{}", "capacity", size(self.capacity))?;
        writeln!(f, "{:<16}{:.1} %", "fill", self.fill_percent)?;
        writeln!(
            f,
            "{:<16}{} (uid {}, gid {})",
            "mode", self.mode, self.uid, self.gid
        )?;
        let send = ago(self.last_send_time) + &by(self.last_send_pid);
        writeln!(f, "{:<16}{send}", "last send")?;
        let receive = ago(self.last_receive_time) + &by(self.last_receive_pid);
        writeln!(f, "{:<16}{receive}", "last receive")?;
        writeln!(f, "{:<16}{}", "last change", ago(self.last_change_time))?;
        if let Some(spool) = &self.spool {
            match &spool.error {
                Some(e) => writeln!(f, "{:<16}{}: {e}", "spool", spool.dir)?,
                None => writeln!(
                    f,
                    "{:<16}{}, {} on disk ({})",
                    "spool",
                    counted(spool.segments as u64, "segment"),
                    format_size(spool.bytes),
                    spool.dir
                )?,
            }
        }
        let Some(drain) = &self.drain else {
            return writeln!(f, "{:<16}not running (no fresh snapshot)", "drain");
        };
        let age = (self.observed_at as f64 - drain.updated_at).max(0.0);
        writeln!(
            f,
            "{:<16}running (pid {}, counters {age:.0} s old)",
            "drain", drain.pid
        )?;
        // The queue's own lines above are fresher than the drain's copy of them.
        let m = &drain.metrics;
        let latency = &m.delivery_latency;
        let mean = latency.sum / latency.count.max(1) as f64;
        let lines = [
            ("dead_lettered", m.dead_lettered.to_string()),
            (
                "delivery_latency",
                format!("{}, mean {mean:.3}", counted(latency.count, "observation")),
            ),
            ("in_flight", m.in_flight.to_string()),
            ("journal_pending_bytes", m.journal_pending_bytes.to_string()),
            ("oldest_event_age", format!("{:.3}", m.oldest_event_age)),
            ("produced", m.produced.to_string()),
            ("received", m.received.to_string()),
            ("recovered", m.recovered.to_string()),
            ("retried", m.retried.to_string()),
            ("saved", m.saved.to_string()),
            ("sink", drain.sink.clone()),
            (
                "spool_backlog",
                format!(
                    "{}, {} waiting, oldest {:.3} s",
                    counted(m.spool_backlog_segments.max(0) as u64, "segment"),
                    size(m.spool_backlog_bytes.max(0) as u64),
                    m.spool_oldest_event_age
                ),
            ),
            ("spool_damaged", m.spool_damaged.to_string()),
            ("spool_read", m.spool_read.to_string()),
            ("journal_damaged", m.journal_damaged.to_string()),
            ("dead_letter_failures", m.dead_letter_failures.to_string()),
        ];
        for (name, value) in lines {
            writeln!(f, "  {name:<22}{value}")?;
        }
        if let Some(a) = &drain.accounting {
            write_accounting(f, a)?;
        }
        Ok(())
    }
}

/// The loss accounting's lines: totals since it began, and the producers
/// with the most missing events.
fn write_accounting(f: &mut fmt::Formatter<'_>, a: &AccountingSnapshot) -> fmt::Result {
    let t = &a.totals;
    writeln!(
        f,
        "{:<16}{} missing ({}, {} late), {}, {} unaccounted; {} ({} active)",
        "accounting",
        a.missing,
        counted(t.gaps, "gap"),
        t.late,
        counted(t.duplicates, "duplicate"),
        t.unaccounted,
        counted(a.producers, "producer"),
        a.active_producers
    )?;
    for p in a.worst.iter().filter(|p| p.missing > 0 || p.duplicates > 0) {
        writeln!(
            f,
            "  producer {:<13}{} missing, {}, next {}",
            p.producer,
            p.missing,
            counted(p.duplicates, "duplicate"),
            p.next
        )?;
    }
    Ok(())
}
