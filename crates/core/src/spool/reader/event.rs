//! What the reader reports: events to log, counters, the backlog.

use std::fmt;
use std::path::PathBuf;

/// Why a record or a header word is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// The record header's `check` does not match its length and place: a
    /// torn, stale or misplaced length.
    CheckMismatch,
    /// The record's length is below an envelope's minimum or runs past
    /// `published`.
    BadLength {
        /// The length read.
        len: u32,
    },
    /// The body is not one intact envelope (framing or CRC32C).
    Envelope(&'static str),
    /// The header's `published` is beyond the file or not 8-aligned; the
    /// reader reads only what the file holds.
    PublishedOutOfRange {
        /// The offset read.
        published: u64,
    },
    /// The header's `published` word fails its check; once the writer is
    /// done, the reader takes the records up to the first invalid one.
    PublishedDamaged {
        /// The word read.
        word: u64,
    },
    /// The header's `sealed` word is neither 0 nor the seal; the reader
    /// waits for the writer's death instead.
    SealedDamaged {
        /// The word read.
        word: u64,
    },
    /// The header's `acked` word fails its check or lies beyond
    /// `published`; the reader starts the segment from 0 (records may be
    /// delivered again, none is lost).
    AckedDamaged {
        /// The word read.
        word: u64,
    },
}

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DamageKind::CheckMismatch => {
                f.write_str("record check mismatch (torn or stale length)")
            }
            DamageKind::BadLength { len } => write!(f, "record length {len} out of range"),
            DamageKind::Envelope(reason) => write!(f, "record body: {reason}"),
            DamageKind::PublishedOutOfRange { published } => write!(
                f,
                "published {published} out of range; reading what the file holds"
            ),
            DamageKind::PublishedDamaged { word } => write!(
                f,
                "published word {word:#018x} damaged; once the writer is done, reading up to \
                 the first invalid record"
            ),
            DamageKind::SealedDamaged { word } => write!(
                f,
                "sealed word {word:#018x} damaged; waiting for the writer to exit"
            ),
            DamageKind::AckedDamaged { word } => write!(
                f,
                "acked word {word:#018x} damaged; reading the segment from its start (events \
                 may be delivered again)"
            ),
        }
    }
}

/// Why a file in the spool directory is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// Its name is not a spool file's.
    NotASpoolFile,
    /// A segment of another queue key (reported once per key).
    OtherQueue {
        /// That key.
        key: u32,
    },
    /// A segment of a format version this reader does not know.
    OtherVersion {
        /// The version in its header.
        version: u32,
    },
    /// A segment name whose header cannot be read or fails its checks.
    Unreadable {
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::NotASpoolFile => f.write_str("not a spool segment"),
            IgnoreReason::OtherQueue { key } => {
                write!(
                    f,
                    "segments of queue key {key:#010x} are left to that queue's drain"
                )
            }
            IgnoreReason::OtherVersion { version } => write!(
                f,
                "segment format version {version}, this drain reads version {}; upgrade the drain",
                super::super::FORMAT_VERSION
            ),
            IgnoreReason::Unreadable { reason } => write!(f, "unreadable segment: {reason}"),
        }
    }
}

/// Something the caller should log (and count): the reader never shortens
/// the history in silence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpoolEvent {
    /// Damage in a segment: every record before `offset` was read, nothing
    /// past it will be.
    Damaged {
        /// The segment file.
        path: PathBuf,
        /// Data offset of the damaged record or, for header words, 0.
        offset: u64,
        /// What is wrong.
        kind: DamageKind,
    },
    /// A damaged segment's writer is done with it: its `bytes` from `offset`
    /// on are given up; once what came before is acknowledged the file is
    /// renamed to `<name>.damaged` for the operator.
    GivenUp {
        /// The segment file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// Published bytes past it that will not be delivered.
        bytes: u64,
    },
    /// The segment file the reader read was replaced under its name (by
    /// hand: writers never replace a file): the new file is not deleted
    /// but read as a segment of its own, from its `acked` word (its
    /// records may be delivered again).
    Replaced {
        /// The name.
        path: PathBuf,
    },
    /// A file that is not read (reported once, never deleted).
    Ignored {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: IgnoreReason,
    },
    /// A dead writer's temporary file (it never held a record) was removed.
    RemovedTemp {
        /// The file.
        path: PathBuf,
    },
    /// `max_open` segments are mapped: others wait until some are
    /// reclaimed (reported each time the limit is reached anew).
    OpenLimit {
        /// The limit.
        max_open: usize,
        /// Segments discovered and not mapped.
        waiting: usize,
    },
    /// A full scan found `files` more files not to read than the reader
    /// remembers (`remembered` names): they are not reported one by one
    /// (reported each time the number changes).
    Unlisted {
        /// The spool directory.
        dir: PathBuf,
        /// Files found past what the reader remembers.
        files: u64,
        /// How many it remembers.
        remembered: usize,
    },
}

impl fmt::Display for SpoolEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolEvent::Damaged { path, offset, kind } => write!(
                f,
                "spool segment {} damaged at data offset {offset}: {kind}",
                path.display()
            ),
            SpoolEvent::GivenUp {
                path,
                offset,
                bytes,
            } => write!(
                f,
                "spool segment {}: giving up {bytes} published bytes from data offset {offset} \
                 (damaged, writer done); the file is kept as {}.damaged",
                path.display(),
                path.display()
            ),
            SpoolEvent::Ignored { path, reason } => {
                write!(f, "spool: ignoring {}: {reason}", path.display())
            }
            SpoolEvent::Replaced { path } => write!(
                f,
                "spool segment {} was replaced by another file while the drain read it; the \
                 drain leaves the new file and reads it as a segment of its own (its events may \
                 be delivered again)",
                path.display()
            ),
            SpoolEvent::RemovedTemp { path } => write!(
                f,
                "spool: removed {}, a dead writer's unfinished segment (it held no event)",
                path.display()
            ),
            SpoolEvent::OpenLimit { max_open, waiting } => write!(
                f,
                "spool: {max_open} segments mapped (max_open), {waiting} more wait until some are \
                 delivered"
            ),
            SpoolEvent::Unlisted {
                dir,
                files,
                remembered,
            } => write!(
                f,
                "spool: {files} more files in {} are not this queue's segments and are not \
                 listed one by one (the drain remembers {remembered}); remove what does not \
                 belong in the spool directory",
                dir.display()
            ),
        }
    }
}

/// The reader's counters since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Records yielded by `next_record`.
    pub records: u64,
    /// Damage found (records and header words).
    pub damaged: u64,
    /// Published bytes given up after damage.
    pub given_up_bytes: u64,
    /// Segments deleted after everything in them was acknowledged.
    pub reclaimed: u64,
    /// Files ignored.
    pub ignored: u64,
    /// Files to ignore that the last full scan found past what the reader
    /// remembers: not reported one by one ([`SpoolEvent::Unlisted`]).
    pub unlisted: u64,
}

/// What waits in the spool for this reader's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Segments of this queue known to the reader (mapped or waiting).
    pub segments: usize,
    /// Of those, segments discovered but not mapped yet; their bytes are
    /// not in `bytes`.
    pub waiting: usize,
    /// Published bytes not yet acknowledged in mapped segments (records
    /// with their headers and padding).
    pub bytes: u64,
    /// Emit time (µs since the epoch) of the oldest unacknowledged record
    /// of a mapped segment.
    pub oldest_us: Option<i64>,
}
