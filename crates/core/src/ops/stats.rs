//! `shopify-events stats`: the queue as the kernel sees it, plus the running
//! drain's counters (its snapshot, see [`super::snapshot`]).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sysvmq::{Key, Queue};

use super::size::format_size;
use super::snapshot::DrainSnapshot;

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
    /// The running drain's snapshot (see
    /// [`read_drain_snapshot`](super::read_drain_snapshot)); `None` if no
    /// live drain wrote one recently. [`queue_stats`] leaves it `None`.
    pub drain: Option<DrainSnapshot>,
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
        let size = |bytes: u64| format!("{} ({bytes} bytes)", format_size(bytes));
        writeln!(f, "{:<16}{} (id {})", "queue", self.key, self.id)?;
        writeln!(f, "{:<16}{} messages", "depth", self.depth)?;
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
                format!("{} observations, mean {mean:.3}", latency.count),
            ),
            ("in_flight", m.in_flight.to_string()),
            ("journal_pending_bytes", m.journal_pending_bytes.to_string()),
            ("oldest_event_age", format!("{:.3}", m.oldest_event_age)),
            ("produced", m.produced.to_string()),
            ("received", m.received.to_string()),
            ("recovered", m.recovered.to_string()),
            ("retried", m.retried.to_string()),
            ("sink", drain.sink.clone()),
        ];
        for (name, value) in lines {
            writeln!(f, "  {name:<22}{value}")?;
        }
        Ok(())
    }
}
