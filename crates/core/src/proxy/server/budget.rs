//! The proxy's file descriptors: how many connections the process limit
//! (`RLIMIT_NOFILE`) allows, and a spare descriptor so that even a full
//! table lets `accept` answer "busy" instead of failing with `EMFILE`.
//!
//! Every connection costs one descriptor, pending handshake or served. At
//! start the soft limit is raised to the hard one (harmless, and what
//! most servers do), then the connections are planned against what is left
//! after the descriptors already open and [`RESERVED`] more for everything
//! else the process opens later (spool segments, metrics requests, the
//! standard streams' reopenings). Should the table fill anyway, the spare
//! (`/dev/null`) is closed, the waiting connection accepted, answered
//! "busy" and closed, and the spare reopened: the kernel's listen backlog
//! never fills with connections nobody answers.

use std::fs::File;
use std::io;

/// Descriptors kept free for everything but connections.
pub(super) const RESERVED: usize = 32;

/// How many connections the descriptor limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    /// Connections served at once.
    pub(super) served: usize,
    /// Connections in their handshake at once.
    pub(super) pending: usize,
    /// The soft `RLIMIT_NOFILE` after raising it.
    pub(super) limit: usize,
}

/// Raises the soft descriptor limit to the hard one and plans `served`
/// and `pending` connections (as configured, or fewer if the limit says so).
pub(super) fn plan(served: usize, pending: usize) -> Plan {
    let limit = raise_nofile();
    let in_use = open_descriptors();
    split(limit, in_use, served, pending)
}

fn split(limit: usize, in_use: usize, served: usize, pending: usize) -> Plan {
    // +1: the spare.
    let room = limit.saturating_sub(in_use + RESERVED + 1).max(2);
    let pending = pending.min(room / 4).max(1);
    let served = served.min(room - pending).max(1);
    Plan {
        served,
        pending,
        limit,
    }
}

/// The spare descriptor of the accept-then-refuse dance.
#[derive(Debug)]
pub(super) struct Spare(Option<File>);

impl Spare {
    /// Opens the spare.
    pub(super) fn open() -> Spare {
        Spare(File::open("/dev/null").ok())
    }

    /// Frees the spare's descriptor for one `accept`.
    pub(super) fn release(&mut self) -> bool {
        self.0.take().is_some()
    }

    /// Takes a descriptor back as the spare.
    pub(super) fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }
}

/// Whether `e` says the descriptor table (the process's or the system's)
/// is full.
pub(super) fn is_exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

fn raise_nofile() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above; a refusal leaves the limit as it was.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_limit_caps_served_and_pending_connections() {
        // Plenty of descriptors: as configured.
        assert_eq!(
            split(65536, 10, 1024, 256),
            Plan {
                served: 1024,
                pending: 256,
                limit: 65536
            }
        );
        // `ulimit -n 256` with 10 open: 213 left, a quarter for handshakes.
        let small = split(256, 10, 1024, 256);
        assert_eq!((small.served, small.pending), (160, 53));
        assert!(small.served + small.pending + 10 + RESERVED < 256);
        // Hopeless limits still serve one connection, never zero.
        let tiny = split(16, 20, 1024, 256);
        assert_eq!((tiny.served, tiny.pending), (1, 1));
    }
}
