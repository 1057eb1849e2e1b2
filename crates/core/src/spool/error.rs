//! Why the spool could not take a record or be read.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why an append, a segment creation or a reader operation failed.
///
/// `Clone` (the I/O error is shared) because a writer that failed to create
/// a segment returns the same error, without a system call, until it tries
/// again a second later.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool directory does not exist, is not a directory, or this
    /// process may not write to it.
    #[error(
        "spool directory {}: {source}; create it with `shopify-events setup`, or set spool_dir \
         (SHOPIFY_EVENTS_SPOOL_DIR) to a directory this process can write",
        dir.display()
    )]
    Unavailable {
        /// The spool directory.
        dir: PathBuf,
        /// What the system said.
        source: Arc<io::Error>,
    },
    /// The directory's spool files reached `max_bytes`.
    #[error(
        "spool {} is full: its files take {used} bytes and a new segment of {need} would pass \
         spool_max_bytes ({max_bytes}); the drain frees space as Kafka acknowledges (is it \
         running?), or raise spool_max_bytes",
        dir.display()
    )]
    Full {
        /// The spool directory.
        dir: PathBuf,
        /// Bytes of every spool file in it.
        used: u64,
        /// Bytes of the segment that was to be created.
        need: u64,
        /// The configured bound.
        max_bytes: u64,
    },
    /// The filesystem is (nearly) full.
    #[error(
        "spool {}: the filesystem has {available} bytes available and a new segment of {need} \
         would leave less than the {min_free} kept free; free disk space or move spool_dir to \
         a larger filesystem",
        dir.display()
    )]
    DiskFull {
        /// The spool directory.
        dir: PathBuf,
        /// Bytes available to this process on its filesystem.
        available: u64,
        /// Bytes of the segment that was to be created.
        need: u64,
        /// Bytes the spool leaves free.
        min_free: u64,
    },
    /// The record is larger than `max_record`.
    #[error(
        "an envelope of {len} bytes is larger than the spool's max_record ({max_record}); send \
         smaller events or raise max_event_bytes"
    )]
    RecordTooLarge {
        /// The envelope's length.
        len: usize,
        /// The configured bound.
        max_record: usize,
    },
    /// The bytes are not one envelope: the spool takes only what the
    /// envelope encoder wrote, so a reader never stops at a bad record.
    #[error(
        "{len} bytes are not one envelope ({reason}); the spool takes only envelopes from the \
         envelope encoder"
    )]
    NotAnEnvelope {
        /// Bytes offered.
        len: usize,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// [`Appender::commit`](super::Appender::commit) without a reserved
    /// frame that holds `len` bytes.
    #[error(
        "spool commit of {len} bytes without a reserved frame that holds them (reserved: \
         {reserved:?} bytes); reserve a frame first and commit what was written into it"
    )]
    NotReserved {
        /// Bytes to commit.
        len: usize,
        /// Envelope bytes of the reserved frame, if any.
        reserved: Option<usize>,
    },
    /// Another reader (a drain) holds the lock of this queue's spool in
    /// the directory ([`ReaderLock`](super::ReaderLock)).
    #[error(
        "spool directory {} is already read for queue {key:#010x} by another drain{} (lock {}); \
         run one drain per queue and spool directory: stop the other drain, or give each its \
         own spool_dir",
        dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        path.display()
    )]
    InUse {
        /// The spool directory.
        dir: PathBuf,
        /// The queue key.
        key: u32,
        /// The other reader's pid, if it wrote one.
        pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
    },
    /// Another file operation failed.
    #[error(
        "spool file {}: {op} failed: {source}; check the filesystem and the directory's \
         permissions",
        path.display()
    )]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operation ("create", "map", "rename", "msync", ...).
        op: &'static str,
        /// What the system said.
        source: Arc<io::Error>,
    },
}

impl SpoolError {
    /// Whether the spool ran out of room ([`SpoolError::Full`] or
    /// [`SpoolError::DiskFull`]): the drain frees space as it delivers.
    pub fn is_full(&self) -> bool {
        matches!(self, SpoolError::Full { .. } | SpoolError::DiskFull { .. })
    }

    /// The OS error code behind it, if any.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            SpoolError::Unavailable { source, .. } | SpoolError::Io { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    /// An I/O error on `path` during `op`, classified: a missing or
    /// unwritable directory is [`SpoolError::Unavailable`].
    pub(super) fn io(dir: &Path, path: &Path, op: &'static str, source: io::Error) -> SpoolError {
        let unavailable = matches!(
            source.raw_os_error(),
            Some(libc::ENOENT | libc::ENOTDIR | libc::EACCES | libc::EPERM | libc::EROFS)
        );
        if unavailable {
            return SpoolError::Unavailable {
                dir: dir.to_path_buf(),
                source: Arc::new(source),
            };
        }
        SpoolError::Io {
            path: path.to_path_buf(),
            op,
            source: Arc::new(source),
        }
    }
}
