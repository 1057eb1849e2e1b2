//! The writer's liveness lock: an exclusive OFD lock on its active segment
//! (see the module docs' Liveness for why OFD and not classic POSIX locks).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// A file's identity, `(device, inode)`: what a name refers to changes
/// when the file is replaced under it (removed and created again, or
/// another file renamed over it).
pub(super) type FileId = (u64, u64);

/// The identity of the file `meta` describes.
pub(super) fn file_id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// Takes the exclusive lock over the whole file, without waiting: the file
/// was just created with `O_EXCL`, so nobody else holds it.
pub(super) fn lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut lock = whole_file(libc::F_WRLCK);
    // SAFETY: fcntl on a descriptor we own with a valid flock struct.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether someone holds a lock on the file: its writer is alive. Another
/// open file description of the same process counts as someone, so a
/// reader and a writer in one process see each other.
pub(super) fn is_locked(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut lock = whole_file(libc::F_RDLCK);
    // SAFETY: fcntl on a descriptor we own with a valid flock struct, which
    // F_OFD_GETLK overwrites with the conflicting lock, if any.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::from(lock.l_type) != libc::F_UNLCK)
}

/// Whether the writer of the spool file at `path` holds its lock, by the
/// name as it is now. Opens it without following a symlink and without
/// blocking (a FIFO put under a spool name would block a plain read-only
/// open until someone opens its other end: the drain would hang), and
/// refuses anything but a regular file: no writer locks those. With
/// `expect`, a file of another identity under the name is `NotFound`: the
/// file the caller knows is gone from it, and its lock cannot be tested.
pub(super) fn writer_alive(path: &Path, expect: Option<FileId>) -> io::Result<bool> {
    let file = open_regular(path)?;
    if let Some(id) = expect {
        if file_id(&file.metadata()?) != id {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "replaced by another file under its name",
            ));
        }
    }
    is_locked(file.as_fd())
}

/// Opens the regular file at `path` read-only, refusing symlinks and
/// other kinds of file without blocking on them.
fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

fn whole_file(kind: i32) -> libc::flock {
    // SAFETY: flock is plain old data; zero is a valid value of each field
    // (l_pid must be 0 for OFD locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    lock
}
