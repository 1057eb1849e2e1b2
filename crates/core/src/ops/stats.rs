//! `shopify-events stats`: the queue as the kernel sees it, plus the running
//! drain's counters.
//!
//! The drain and `stats` share no memory and no socket: the drain rewrites a
//! small JSON snapshot in the state directory every second
//! ([`write_drain_snapshot`], temp file + rename, so a reader never sees half
//! a file), and `stats` reads it back ([`read_drain_snapshot`]) only if the
//! process that wrote it is still alive and the snapshot is recent. A drain
//! that was `kill -9`ed therefore shows as absent, not as stale numbers.

use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use sysvmq::{Key, Queue};

use super::size::format_size;
use crate::state_dir::{create_file, Access, StateDir};

/// A snapshot older than this is ignored: the drain writes one every second,
/// so ten missed writes mean it is stuck or gone.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(10);

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
    /// The running drain's snapshot (see [`read_drain_snapshot`]); `None` if
    /// no live drain wrote one recently. [`queue_stats`] leaves it `None`.
    pub drain: Option<Value>,
}

/// Reads the queue with `key`. The drain's counters are not read: set
/// [`QueueStats::drain`] with [`read_drain_snapshot`].
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

/// Replaces the drain's snapshot atomically: writes a temp file in the same
/// directory, then renames it over the old one. The directory must exist.
///
/// No fsync: the snapshot is rewritten every second and worthless after a
/// crash, so durability is not worth a disk flush.
pub fn write_drain_snapshot(state: &StateDir, value: &Value) -> io::Result<()> {
    let path = state.stats_snapshot();
    let tmp = state.stats_snapshot_tmp();
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    create_file(&tmp, Access::Replace)?.write_all(&bytes)?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The drain's snapshot for `key`, if it parses, names a live `pid` and its
/// `updated_at` (Unix seconds) is within [`SNAPSHOT_MAX_AGE`] of now.
pub fn read_drain_snapshot(state: &StateDir) -> Option<Value> {
    let text = std::fs::read(state.stats_snapshot()).ok()?;
    let value: Value = serde_json::from_slice(&text).ok()?;
    let pid = value.get("pid")?.as_u64()?;
    let updated_at = value.get("updated_at")?.as_f64()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let fresh = (now - updated_at).abs() <= SNAPSHOT_MAX_AGE.as_secs_f64();
    (fresh && pid_alive(pid)).then_some(value)
}

/// `kill(pid, 0)`: 0 or EPERM means a process with that pid exists. Pid 0
/// and values beyond `pid_t` are refused (0 would address our process group).
fn pid_alive(pid: u64) -> bool {
    let Some(pid) = libc::pid_t::try_from(pid).ok().filter(|&pid| pid > 0) else {
        return false;
    };
    // SAFETY: signal 0 only checks existence and permission; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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
        let Some(drain) = self.drain.as_ref().and_then(Value::as_object) else {
            return writeln!(f, "{:<16}not running (no fresh snapshot)", "drain");
        };
        let pid = drain.get("pid").map_or_else(String::new, Value::to_string);
        let age = drain
            .get("updated_at")
            .and_then(Value::as_f64)
            .map_or(0.0, |at| (self.observed_at as f64 - at).max(0.0));
        writeln!(
            f,
            "{:<16}running (pid {pid}, counters {age:.0} s old)",
            "drain"
        )?;
        for (name, value) in drain {
            // The queue lines above are fresher than the drain's copy of them.
            if !matches!(name.as_str(), "pid" | "updated_at") && !name.starts_with("queue_") {
                writeln!(f, "  {name:<22}{}", counter(value))?;
            }
        }
        Ok(())
    }
}

/// One drain counter for people: floats to 3 places, a histogram as its
/// count and mean, anything else as compact JSON.
fn counter(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or(0.0)),
        Value::Object(fields) => match (fields.get("count"), fields.get("sum")) {
            (Some(count), Some(sum)) => {
                let count = count.as_u64().unwrap_or(0);
                let mean = sum.as_f64().unwrap_or(0.0) / count.max(1) as f64;
                format!("{count} observations, mean {mean:.3}")
            }
            _ => value.to_string(),
        },
        other => other.to_string(),
    }
}
