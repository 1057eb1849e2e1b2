//! Snapshot files that a running process publishes about itself (the
//! drain's `drain-KEY.json`, the proxy's `proxy-KEY.json`): written
//! atomically, and read back together with whether their writer is up.
//!
//! A writer replaces its file about once a second ([`publish`]: temp file
//! in the same directory, then `rename`, so a reader never sees half a
//! file). A reader ([`read_published`]) judges the writer by the file alone:
//!
//! | file | writer's pid | age | [`Liveness`] |
//! |------|--------------|-----|--------------|
//! | missing | | | `Down(NoSnapshot)` |
//! | unreadable or not the expected JSON | | | `Down(Unreadable)` |
//! | parses | gone | any | `Down(Exited)`: killed or stopped |
//! | parses | alive | ≤ [`STALE_AFTER`] | `Up` |
//! | parses | alive | > [`STALE_AFTER`] | `Stale`: stuck, or the pid was reused |
//!
//! No fsync: a snapshot is worthless after a crash, and rewritten anyway.

use std::io::{self, Read as _, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::state_dir::{create_file, Access};

/// A snapshot not rewritten for this long marks its writer stale: writers
/// publish every second, so three missed writes mean it is stuck.
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// The largest snapshot a reader takes: a drain's, with every per-topic
/// counter and the latency histogram, is tens of KiB.
pub const MAX_SNAPSHOT_BYTES: u64 = 16 << 20;

/// A snapshot that names its writer and when it was written.
pub trait Published {
    /// The writer's process id.
    fn pid(&self) -> u32;
    /// When it was written, in Unix seconds.
    fn updated_at(&self) -> f64;
}

/// What a published snapshot says about its writer; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub enum Liveness<T> {
    /// Alive and publishing.
    Up {
        /// The snapshot.
        snapshot: T,
        /// Seconds since it was written.
        age: f64,
    },
    /// Alive (its pid exists) but not publishing.
    Stale {
        /// The last snapshot.
        snapshot: T,
        /// Seconds since it was written.
        age: f64,
    },
    /// Not running.
    Down(Down),
}

/// Why a writer counts as down.
#[derive(Debug, Clone, PartialEq)]
pub enum Down {
    /// No snapshot file: never ran with this directory and key.
    NoSnapshot,
    /// The snapshot names a process that no longer exists.
    Exited {
        /// Its pid.
        pid: u32,
        /// Seconds since its last snapshot.
        age: f64,
    },
    /// The file exists but cannot be read as a snapshot.
    Unreadable {
        /// Why.
        reason: String,
    },
}

impl<T> Liveness<T> {
    /// The snapshot, when the writer is up.
    pub fn up(&self) -> Option<&T> {
        match self {
            Liveness::Up { snapshot, .. } => Some(snapshot),
            _ => None,
        }
    }

    /// The last snapshot of a live writer, up or stale.
    pub fn alive(&self) -> Option<(&T, f64)> {
        match self {
            Liveness::Up { snapshot, age } | Liveness::Stale { snapshot, age } => {
                Some((snapshot, *age))
            }
            Liveness::Down(_) => None,
        }
    }
}

/// Replaces the snapshot at `path` with `value`, through `tmp` (same
/// directory, a name of this process) and `rename`.
pub fn publish<T: Serialize>(path: &Path, tmp: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    create_file(tmp, Access::Replace)?.write_all(&bytes)?;
    std::fs::rename(tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })
}

/// Reads the snapshot at `path` and judges its writer as of `now` (Unix
/// seconds); see the module docs.
pub fn read_published<T: DeserializeOwned + Published>(path: &Path, now: f64) -> Liveness<T> {
    let bytes = match read_snapshot_file(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Liveness::Down(Down::NoSnapshot),
        Err(e) => {
            return Liveness::Down(Down::Unreadable {
                reason: format!("{}: {e}", path.display()),
            })
        }
    };
    let snapshot: T = match serde_json::from_slice(&bytes) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            return Liveness::Down(Down::Unreadable {
                reason: format!("{}: {e}", path.display()),
            })
        }
    };
    let age = (now - snapshot.updated_at()).max(0.0);
    if !pid_alive(snapshot.pid()) {
        return Liveness::Down(Down::Exited {
            pid: snapshot.pid(),
            age,
        });
    }
    if age > STALE_AFTER.as_secs_f64() {
        Liveness::Stale { snapshot, age }
    } else {
        Liveness::Up { snapshot, age }
    }
}

/// The bytes of the snapshot file at `path`, which must be a regular file
/// of at most [`MAX_SNAPSHOT_BYTES`]. Opened without blocking: a FIFO put
/// at the snapshot's name would otherwise hang the reader (`top`, `stats`)
/// in `open(2)` until somebody writes to it.
pub(crate) fn read_snapshot_file(path: &Path) -> io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_SNAPSHOT_BYTES {
        return Err(io::Error::other(format!(
            "{} bytes, larger than any snapshot ({MAX_SNAPSHOT_BYTES} bytes at most)",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SNAPSHOT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Err(io::Error::other(format!(
            "larger than any snapshot ({MAX_SNAPSHOT_BYTES} bytes at most)"
        )));
    }
    Ok(bytes)
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `kill(pid, 0)`: 0 or EPERM means a process with that pid exists; a
/// zombie (exited, not yet reaped by its parent) does not count. Pid 0 and
/// values beyond `pid_t` are refused (0 would address our process group).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Some(pid) = libc::pid_t::try_from(pid).ok().filter(|&pid| pid > 0) else {
        return false;
    };
    // SAFETY: signal 0 only checks existence and permission; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    let exists = rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !zombie(pid)
}

/// Whether `/proc/PID/stat` shows state `Z`. The state follows the last
/// `)`, since the command name in parentheses may itself hold one.
fn zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Snap {
        pid: u32,
        updated_at: f64,
    }

    impl Published for Snap {
        fn pid(&self) -> u32 {
            self.pid
        }
        fn updated_at(&self) -> f64 {
            self.updated_at
        }
    }

    fn read(dir: &Path, snap: &Snap, now: f64) -> Liveness<Snap> {
        let path = dir.join("s.json");
        publish(&path, &dir.join(".s.tmp"), snap).expect("publish");
        read_published(&path, now)
    }

    #[test]
    fn a_live_writer_is_up_until_its_snapshot_is_older_than_stale_after() {
        let dir = tempfile::tempdir().expect("dir");
        let snap = Snap {
            pid: std::process::id(),
            updated_at: 1000.0,
        };
        let up = read(dir.path(), &snap, 1002.5);
        assert_eq!(up.up(), Some(&snap));
        let stale = read(dir.path(), &snap, 1003.5);
        assert!(
            matches!(stale, Liveness::Stale { age, .. } if age == 3.5),
            "{stale:?}"
        );
        assert_eq!(stale.alive().map(|(s, _)| s), Some(&snap));
    }

    #[test]
    fn an_exited_child_not_yet_reaped_counts_as_gone() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pid_alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "a zombie counts as alive"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().expect("reap");
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn a_writer_whose_pid_is_gone_is_down_and_a_missing_or_garbled_file_says_so() {
        let dir = tempfile::tempdir().expect("dir");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reap");
        let gone = read(
            dir.path(),
            &Snap {
                pid,
                updated_at: 10.0,
            },
            12.0,
        );
        assert_eq!(gone, Liveness::Down(Down::Exited { pid, age: 2.0 }));
        let missing: Liveness<Snap> = read_published(&dir.path().join("none.json"), 0.0);
        assert_eq!(missing, Liveness::Down(Down::NoSnapshot));
        std::fs::write(dir.path().join("bad.json"), "{\"pid\":").expect("write");
        let bad: Liveness<Snap> = read_published(&dir.path().join("bad.json"), 0.0);
        assert!(
            matches!(bad, Liveness::Down(Down::Unreadable { ref reason }) if reason.contains("bad.json")),
            "{bad:?}"
        );
    }
}
