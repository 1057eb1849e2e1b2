//! One reader per queue key per spool directory: an exclusive `flock` on
//! `drain-<key: 8 hex>.lock` in the spool directory, held by the drain for
//! as long as it reads the spool and released by the kernel when it exits,
//! even by `kill -9`: there is no stale lock to clean up.
//!
//! Why: each segment's `acked` word is the reader's checkpoint, and two
//! readers of one segment both read from it, both deliver, and both
//! acknowledge. The drain's own lock (in its state directory) does not
//! catch two drains given different state directories and the same spool
//! directory; this one does. It is per queue key because one directory
//! holds the spools of many queues, each read by its own drain.
//!
//! The file holds the pid of the reader that holds it, for the error the
//! next one gets (best effort: a full disk must not keep the drain from
//! the spool whose deletions free it). It follows the spool's file rules:
//! the mode of the segments ([`segment_mode`](super::segment_mode)), the
//! directory's group, never followed through a symlink.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::SpoolError;

/// The lock file's name for queue `key`.
pub fn reader_lock_name(key: libc::key_t) -> String {
    format!("drain-{:08x}.lock", key as u32)
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct ReaderLock {
    _file: File,
    path: PathBuf,
}

impl ReaderLock {
    /// Takes the lock of queue `key`'s spool in `dir`, creating its file
    /// with `mode`; [`SpoolError::InUse`] names the reader that holds it.
    pub fn acquire(dir: &Path, key: libc::key_t, mode: u32) -> Result<ReaderLock, SpoolError> {
        let path = dir.join(reader_lock_name(key));
        let io = |op| {
            let path = path.clone();
            move |source| SpoolError::io(dir, &path, op, source)
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
            .map_err(io("open the readers' lock"))?;
        let meta = file.metadata().map_err(io("stat the readers' lock"))?;
        if !meta.is_file() {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(io("open the readers' lock")(source));
        }
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io("lock the readers' lock")(err));
            }
            let mut text = String::new();
            let _ = (&file).take(32).read_to_string(&mut text);
            return Err(SpoolError::InUse {
                dir: dir.to_path_buf(),
                key: key as u32,
                pid: text.trim().parse().ok(),
                path,
            });
        }
        // Ours now: its mode and group as the spool's files have them
        // (best effort: a file another user created keeps theirs).
        // SAFETY: geteuid takes nothing and cannot fail.
        if meta.uid() == unsafe { libc::geteuid() } {
            if meta.permissions().mode() & 0o7777 != mode {
                let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
            }
            if let Ok(dir_meta) = std::fs::metadata(dir) {
                if meta.gid() != dir_meta.gid() {
                    let _ = std::os::unix::fs::fchown(&file, None, Some(dir_meta.gid()));
                }
            }
        }
        // The pid only serves the next reader's error message: a full disk
        // (or quota) must not stop this reader, whose deletions are what
        // frees it.
        let pid = std::process::id();
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"));
        Ok(ReaderLock { _file: file, path })
    }

    /// Whether the lock's name still refers to the locked file: a file
    /// removed or replaced by hand (or its directory) no longer stops a
    /// second reader, which would create a new file and lock it. A failed
    /// `stat` other than "not found" says yes.
    pub fn in_place(&self) -> bool {
        let Ok(held) = self._file.metadata() else {
            return true;
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(now) => now.dev() == held.dev() && now.ino() == held.ino(),
            Err(err) => err.kind() != io::ErrorKind::NotFound,
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SpoolError {
    /// Whether another reader holds the spool's lock.
    pub fn is_in_use(&self) -> bool {
        matches!(self, SpoolError::InUse { .. })
    }
}
