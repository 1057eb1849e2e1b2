//! One drain per queue: an exclusive `flock` on a lock file in the state
//! directory, held for the life of the process and released by the kernel
//! when it dies (even by `kill -9`), so there is no stale lock to clean up.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use sysvmq::Key;

use super::DrainError;

#[derive(Debug)]
pub(crate) struct DrainLock {
    _file: File,
}

/// Path of the lock file for `key`.
pub(crate) fn lock_path(state_dir: &Path, key: Key) -> PathBuf {
    state_dir.join(format!("drain-{:08x}.lock", key as u32))
}

pub(crate) fn acquire(state_dir: &Path, key: Key) -> Result<DrainLock, DrainError> {
    let path = lock_path(state_dir, key);
    let io = |source| DrainError::Io {
        what: format!("opening lock file {}", path.display()),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Err(DrainError::AlreadyRunning {
            key,
            pid: text.trim().parse().ok(),
            path,
        });
    }
    let pid = std::process::id();
    let write = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{pid}"));
    write.map_err(|source| DrainError::Io {
        what: format!("writing lock file {}", path.display()),
        source,
    })?;
    Ok(DrainLock { _file: file })
}
