//! Why the drain stopped or could not start.

use std::path::PathBuf;

use sysvmq::Key;

use super::journal::JournalError;

/// Why the drain stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// Another drain holds the queue's lock.
    #[error("another drain{} is already running for queue {key:#010x} (lock {path}); run one drain per queue",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning {
        /// Queue key.
        key: Key,
        /// The other drain's pid, if it wrote one.
        pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the drain was doing.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The journal could not be opened or used.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The spool directory could not be taken: another drain reads it for
    /// this queue ([`SpoolError::InUse`](crate::spool::SpoolError::InUse)).
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// The queue could not be used.
    #[error(transparent)]
    Queue(#[from] sysvmq::Error),
    /// The queue's mode lets other users at its events
    /// ([`crate::queue_access::check_queue_access`]).
    #[error(transparent)]
    QueueAccess(#[from] crate::queue_access::QueueAccessError),
    /// A message is larger than the journal's records (kernel.msgmax was
    /// raised). [`Drain::run`](super::Drain::run) handles it itself: it delivers what the
    /// journal holds and resizes it.
    #[error("a message in queue {key:#010x} is larger than the {limit} bytes the journal was sized for \
             (kernel.msgmax was raised while the drain ran); the drain resizes its journal once it \
             delivered what the journal holds")]
    MessageTooLarge {
        /// Queue key.
        key: Key,
        /// The journal's record limit.
        limit: u64,
    },
}

pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DrainError {
    let what = what.into();
    move |source| DrainError::Io { what, source }
}
