//! How the reader learns of new files: inotify events for renames into the
//! directory, with full scans at start, on queue overflow and every
//! `rescan_interval`; or, without inotify, a full scan every
//! `poll_interval`. A scan costs `getdents` over the whole directory
//! (O(files)); an inotify check is one `read` that usually finds nothing,
//! whatever the directory holds.

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::spool::options::{Discovery, ReaderOptions};

/// The watch on one directory.
#[derive(Debug)]
pub(super) struct Watch {
    inotify: Option<OwnedFd>,
    interval: Duration,
    poll_interval: Duration,
    next_scan: Instant,
}

/// What changed since the last look.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Changes {
    /// Nothing known to have appeared.
    None,
    /// These names appeared (renamed or created in the directory).
    Names(Vec<OsString>),
    /// Scan the whole directory.
    Rescan,
}

impl Watch {
    /// Watches `dir` as `options` ask; falls back to polling where inotify
    /// cannot be set up (no instances left, a filesystem without it).
    pub fn new(dir: &Path, options: &ReaderOptions, now: Instant) -> Watch {
        let inotify = match options.discovery {
            Discovery::Inotify => inotify(dir).ok(),
            Discovery::Poll => None,
        };
        let interval = match inotify {
            Some(_) => options.rescan_interval,
            None => options.poll_interval,
        };
        Watch {
            inotify,
            interval,
            poll_interval: options.poll_interval,
            // The first look scans.
            next_scan: now,
        }
    }

    /// Whether inotify is in use.
    pub fn uses_inotify(&self) -> bool {
        self.inotify.is_some()
    }

    /// What appeared since the last call; a full scan when one is due.
    pub fn changes(&mut self, now: Instant) -> Changes {
        if now >= self.next_scan {
            self.next_scan = now + self.interval;
            if let Some(fd) = &self.inotify {
                // The scan sees everything; drop the events queued so far.
                let _ = read_events(fd);
            }
            return Changes::Rescan;
        }
        let Some(fd) = &self.inotify else {
            return Changes::None;
        };
        match read_events(fd) {
            Ok(Events::Names(names)) if names.is_empty() => Changes::None,
            Ok(Events::Names(names)) => Changes::Names(names),
            Ok(Events::Overflow) => Changes::Rescan,
            // The directory was moved or removed, or inotify failed: scan
            // now and from now on.
            Ok(Events::Ended) | Err(_) => {
                self.inotify = None;
                self.interval = self.poll_interval;
                self.next_scan = now + self.interval;
                Changes::Rescan
            }
        }
    }
}

/// What one drain of the inotify queue found.
enum Events {
    /// Names that appeared, in order.
    Names(Vec<OsString>),
    /// Events were lost: scan.
    Overflow,
    /// The watch is gone.
    Ended,
}

/// An inotify instance watching `dir` for entries renamed or created in it.
fn inotify(dir: &Path) -> io::Result<OwnedFd> {
    // SAFETY: inotify_init1 takes flags only.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mask = libc::IN_MOVED_TO
        | libc::IN_CREATE
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR;
    // SAFETY: a valid descriptor and NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Reads every queued event without blocking.
fn read_events(fd: &OwnedFd) -> io::Result<Events> {
    const HEAD: usize = std::mem::size_of::<libc::inotify_event>();
    let mut buf = [0u64; 1024];
    let mut names = Vec::new();
    let (mut overflow, mut ended) = (false, false);
    loop {
        // SAFETY: reads into our own buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8 * buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) if ended => Ok(Events::Ended),
                Some(libc::EAGAIN) if overflow => Ok(Events::Overflow),
                Some(libc::EAGAIN) => Ok(Events::Names(names)),
                Some(libc::EINTR) => continue,
                _ => Err(err),
            };
        }
        // SAFETY: the kernel wrote `n` bytes of our buffer.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
        let mut at = 0;
        while at + HEAD <= bytes.len() {
            let field = |i: usize| {
                let mut ne = [0u8; 4];
                ne.copy_from_slice(&bytes[at + i..at + i + 4]);
                u32::from_ne_bytes(ne)
            };
            let (mask, len) = (field(4), field(12) as usize);
            let end = (at + HEAD + len).min(bytes.len());
            let name = &bytes[at + HEAD..end];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if mask & libc::IN_Q_OVERFLOW != 0 {
                overflow = true;
            } else if mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
                ended = true;
            } else if !name.is_empty() {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
            at = end;
        }
    }
}

/// Every name in `dir`.
pub(super) fn scan(dir: &Path) -> io::Result<Vec<OsString>> {
    fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect()
}
