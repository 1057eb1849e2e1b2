//! One drain per queue: an exclusive `flock` on a lock file in the state
//! directory, held for the life of the process and released by the kernel
//! when it dies (even by `kill -9`), so there is no stale lock to clean up.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;

use super::DrainError;
use crate::state_dir::{create_file, Access, StateDir};

#[derive(Debug)]
pub(crate) struct DrainLock {
    _file: File,
}

/// Takes the lock of the queue whose state `state` is, or says which drain
/// holds it.
pub(crate) fn acquire(state: &StateDir) -> Result<DrainLock, DrainError> {
    let path = state.drain_lock();
    let io = |source| DrainError::Io {
        what: format!("opening lock file {}", path.display()),
        source,
    };
    let mut file = create_file(&path, Access::ReadWrite).map_err(io)?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Err(DrainError::AlreadyRunning {
            key: state.key(),
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
