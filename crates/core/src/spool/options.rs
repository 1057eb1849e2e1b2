//! The spool's settings and their defaults (the one place they live).

use std::path::PathBuf;
use std::time::Duration;

/// Where hosts keep the spool unless configured otherwise
/// ([`defaults::SPOOL_DIR`](crate::defaults::SPOOL_DIR)).
pub const DEFAULT_DIR: &str = crate::defaults::SPOOL_DIR;
/// Mode of segment files: owner and group read and write, like the queue.
pub const DEFAULT_MODE: u32 = 0o660;
/// Data bytes of the first segment of a spooling episode: an overflow of a
/// handful of events reserves little.
pub const DEFAULT_SEGMENT_MIN: u64 = 64 * 1024;
/// Data bytes segments grow to (each next one is four times larger).
pub const DEFAULT_SEGMENT_MAX: u64 = 16 * 1024 * 1024;
/// The largest envelope the spool takes: the emitters' `max_event_bytes`
/// ([`defaults::MAX_EVENT_BYTES`](crate::defaults::MAX_EVENT_BYTES), Kafka's
/// default `message.max.bytes`).
pub const DEFAULT_MAX_RECORD: usize = crate::defaults::MAX_EVENT_BYTES;
/// Segments a reader maps at once (two mappings each).
pub const DEFAULT_MAX_OPEN: usize = 4096;
/// Default `max_bytes`: this share of the filesystem...
pub(super) const DEFAULT_SHARE_DIVISOR: u64 = 4;
/// ...but at most this much.
pub(super) const DEFAULT_MAX_BYTES_CAP: u64 = 64 << 30;
/// Default `min_free`: this share of the filesystem...
pub(super) const DEFAULT_FREE_DIVISOR: u64 = 20;
/// ...but at most this much.
pub(super) const DEFAULT_MIN_FREE_CAP: u64 = 1 << 30;
/// A writer that failed to create a segment waits this long before trying
/// again.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// When appended records are written to disk; see the module docs'
/// Durability for what each survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Leave write-back to the kernel: survives any process crash.
    #[default]
    PageCache,
    /// `msync` what was published since the last sync, on the first append
    /// after this interval passed.
    Interval(Duration),
    /// `msync` every record before `append` returns.
    Always,
}

/// How a writer spools: directory, queue, modes, sizes, bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// The spool directory (must exist).
    pub dir: PathBuf,
    /// The SysV queue key the events are for: the drain of that queue reads
    /// them.
    pub queue_key: libc::key_t,
    /// File mode of segments (the umask does not apply).
    pub mode: u32,
    /// Data bytes of the first segment of a spooling episode.
    pub segment_min: u64,
    /// Data bytes segments grow to.
    pub segment_max: u64,
    /// The largest envelope taken.
    pub max_record: usize,
    /// Bound of every spool file in the directory together; `None`: a
    /// quarter of the filesystem, at most 64 GiB.
    pub max_bytes: Option<u64>,
    /// Bytes of the filesystem segments never take; `None`: 5% of it, at
    /// most 1 GiB.
    pub min_free: Option<u64>,
    /// When records are written to disk.
    pub sync: SyncPolicy,
    /// Create the next segment ahead, on a thread of the writer's own, so
    /// that the append that fills a segment finds the next one ready instead
    /// of creating it (milliseconds of allocation and prefaulting) itself.
    /// See the module docs' Writer.
    pub prepare_ahead: bool,
}

impl SpoolOptions {
    /// The defaults for queue `queue_key` in directory `dir`.
    pub fn new(dir: impl Into<PathBuf>, queue_key: libc::key_t) -> SpoolOptions {
        SpoolOptions {
            dir: dir.into(),
            queue_key,
            mode: DEFAULT_MODE,
            segment_min: DEFAULT_SEGMENT_MIN,
            segment_max: DEFAULT_SEGMENT_MAX,
            max_record: DEFAULT_MAX_RECORD,
            max_bytes: None,
            min_free: None,
            sync: SyncPolicy::PageCache,
            prepare_ahead: false,
        }
    }
}

/// How the directory is watched for new segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discovery {
    /// inotify, with a full scan at start, on overflow and every
    /// [`ReaderOptions::rescan_interval`]; falls back to `Poll` where
    /// inotify cannot be set up.
    #[default]
    Inotify,
    /// A full directory scan every [`ReaderOptions::poll_interval`].
    Poll,
}

/// How a reader watches, maps and checks segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Segments mapped at once.
    pub max_open: usize,
    /// How new segments are discovered.
    pub discovery: Discovery,
    /// Scan period under [`Discovery::Poll`].
    pub poll_interval: Duration,
    /// Safety-net scan period under [`Discovery::Inotify`].
    pub rescan_interval: Duration,
    /// How often an unsealed, fully read segment's writer is tested.
    pub liveness_interval: Duration,
    /// Age after which a dead writer's temporary file is removed.
    pub temp_grace: Duration,
}

impl Default for ReaderOptions {
    fn default() -> ReaderOptions {
        ReaderOptions {
            max_open: DEFAULT_MAX_OPEN,
            discovery: Discovery::Inotify,
            poll_interval: Duration::from_millis(250),
            rescan_interval: Duration::from_secs(60),
            liveness_interval: Duration::from_secs(1),
            temp_grace: Duration::from_secs(60),
        }
    }
}
