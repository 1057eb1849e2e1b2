//! The drain's spool side: the readers of the spool directory (what
//! emitting processes spooled) and of the drain's own saved spool (the
//! queue saved at its last stop), opened, refreshed, logged and counted.
//!
//! Records are read in place: the segment file is already in the page
//! cache, as durable as the journal, and each segment's `acked` word is the
//! checkpoint, so nothing is copied into the journal.
//!
//! A missing or unreadable spool directory is not fatal: the drain says so
//! once, drains the queue, and tries again every [`REOPEN_EVERY`].
//!
//! The drain reads the spool directory only while it holds the directory's
//! lock for its queue ([`ReaderLock`]): a second drain given the same
//! spool directory and queue (with another state directory) would deliver
//! every spooled event again. At start a held lock is fatal
//! ([`SpoolError::InUse`]); a directory that only appears later and is
//! locked by then is logged and tried again like an unreadable one.
//! The lock's file is checked once a second ([`ReaderLock::in_place`]):
//! removed or replaced by hand, it is taken again, before a second drain
//! can take it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sysvmq::Key;

use super::log_limit::LogLimit;
use super::window::Origin;
use crate::metrics::DrainMetrics;
use crate::spool::{
    commit_received, segment_mode, Backlog, ReaderLock, ReaderOptions, ReaderStats, RecordRef,
    SegmentId, SpoolError, SpoolEvent, SpoolReader,
};

/// How often the readers look for new segments, writers' deaths and
/// segments to delete; new records of mapped segments are seen at once.
const REFRESH_EVERY: Duration = Duration::from_millis(10);
/// How often an unavailable spool directory is tried again.
pub(crate) const REOPEN_EVERY: Duration = Duration::from_secs(10);
/// How often the drain checks its reader lock's file is still in the
/// spool directory (a `fstat` and a `stat`): one removed or replaced by
/// hand no longer stops a second drain.
const LOCK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Both readers and their bookkeeping.
pub(crate) struct SpoolSource {
    key: Key,
    dir: Option<PathBuf>,
    /// The lock file's mode: the spool's ([`segment_mode`]).
    mode: u32,
    /// Held while `app` reads the directory (taken before it opens). None
    /// with `app` open: the lock's file was removed and another drain took
    /// the new one; no new record is read until this drain has it again.
    lock: Option<ReaderLock>,
    lock_checked: Instant,
    app: Option<SpoolReader>,
    app_stats: ReaderStats,
    reopen_at: Instant,
    open_error: Option<String>,
    saved: Option<SpoolReader>,
    saved_stats: ReaderStats,
    /// Saved records not all admitted yet.
    saved_pending: bool,
    refreshed: Instant,
    log: LogLimit,
    metrics: Arc<DrainMetrics>,
}

impl SpoolSource {
    /// Opens the spool directory `dir` (if any) and the saved spool in
    /// `saved_dir` (if it holds segments), committing first what a save
    /// killed mid-receive left uncommitted there. Fails only if another
    /// drain reads `dir` for this queue ([`SpoolError::InUse`]); the lock
    /// file gets the spool's mode for a queue of `queue_mode`.
    pub(crate) fn open(
        dir: Option<&Path>,
        saved_dir: &Path,
        key: Key,
        queue_mode: u32,
        metrics: Arc<DrainMetrics>,
    ) -> Result<SpoolSource, SpoolError> {
        let now = Instant::now();
        let mode = segment_mode(queue_mode);
        let lock = match dir.map(|dir| ReaderLock::acquire(dir, key, mode)) {
            Some(Err(e)) if e.is_in_use() => return Err(e),
            // Missing or unreadable: tried again with the reader.
            Some(Err(_)) | None => None,
            Some(Ok(lock)) => Some(lock),
        };
        let mut source = SpoolSource {
            key,
            dir: dir.map(Path::to_path_buf),
            mode,
            lock,
            lock_checked: now,
            app: None,
            app_stats: ReaderStats::default(),
            reopen_at: now,
            open_error: None,
            saved: None,
            saved_stats: ReaderStats::default(),
            saved_pending: false,
            refreshed: now,
            log: LogLimit::new(20),
            metrics,
        };
        source.open_saved(saved_dir);
        source.reopen(now);
        Ok(source)
    }

    fn open_saved(&mut self, saved_dir: &Path) {
        if !saved_dir.is_dir() {
            return;
        }
        match commit_received(saved_dir, self.key) {
            Ok(committed) => {
                for received in committed {
                    eprintln!(
                        "shopify-events drain: committed an event the last save received but did \
                         not commit ({} at data offset {}, {} bytes)",
                        received.path.display(),
                        received.offset,
                        received.len
                    );
                }
            }
            Err(e) => eprintln!("shopify-events drain: saved spool: {e}"),
        }
        match SpoolReader::open(saved_dir, self.key, ReaderOptions::default()) {
            Ok(reader) if reader.backlog().segments > 0 => {
                eprintln!(
                    "shopify-events drain: delivering the queue saved at the last stop ({} \
                     segments in {}) before the queue",
                    reader.backlog().segments,
                    saved_dir.display()
                );
                self.saved = Some(reader);
                self.saved_pending = true;
            }
            Ok(_) => {}
            Err(e) => eprintln!(
                "shopify-events drain: cannot read the saved spool {}: {e}; its events stay \
                 there until it can",
                saved_dir.display()
            ),
        }
    }

    /// Opens the spool directory if it is not open and it is time to try.
    fn reopen(&mut self, now: Instant) {
        let Some(dir) = &self.dir else { return };
        if self.app.is_some() || now < self.reopen_at {
            return;
        }
        self.reopen_at = now + REOPEN_EVERY;
        let locked = match self.lock.take() {
            Some(lock) if lock.in_place() => Ok(lock),
            _ => ReaderLock::acquire(dir, self.key, self.mode),
        };
        let opened = locked.and_then(|lock| {
            self.lock = Some(lock);
            SpoolReader::open(dir, self.key, ReaderOptions::default())
        });
        match opened {
            Ok(reader) => {
                if self.open_error.take().is_some() {
                    eprintln!(
                        "shopify-events drain: spool {} is readable now",
                        dir.display()
                    );
                }
                self.app = Some(reader);
            }
            Err(e) => {
                let text = e.to_string();
                if self.open_error.as_deref() != Some(&text) {
                    eprintln!(
                        "shopify-events drain: cannot read the spool: {text}; draining the queue \
                         without it, trying again every {} s",
                        REOPEN_EVERY.as_secs()
                    );
                    self.open_error = Some(text);
                }
            }
        }
    }

    /// Takes the reader lock again if its file was removed or replaced by
    /// hand (or the spool directory was): else a second drain would create
    /// a new one, lock it and deliver every spooled event again. If a
    /// second drain was quicker, this one reads no new record until it has
    /// the lock (what it already sent is still acknowledged).
    fn check_lock(&mut self, now: Instant) {
        let Some(dir) = &self.dir else { return };
        if self.app.is_none() || now.duration_since(self.lock_checked) < LOCK_CHECK_EVERY {
            return;
        }
        self.lock_checked = now;
        if self.lock.as_ref().is_some_and(ReaderLock::in_place) {
            return;
        }
        let had = self.lock.take();
        match ReaderLock::acquire(dir, self.key, self.mode) {
            Ok(lock) => {
                let what = if had.is_some() {
                    "was removed or replaced"
                } else {
                    "is free"
                };
                eprintln!(
                    "shopify-events drain: the spool's reader lock {} {what}; taken again",
                    lock.path().display()
                );
                self.lock = Some(lock);
            }
            Err(e) if had.is_some() => eprintln!(
                "shopify-events drain: the spool's reader lock in {} was removed or replaced, \
                 and cannot be taken again: {e}; this drain reads no new spooled event until \
                 it has it",
                dir.display()
            ),
            Err(_) => {}
        }
    }

    /// Discovery, liveness, reclaim: at most every [`REFRESH_EVERY`], or
    /// at once with `force`.
    pub(crate) fn refresh(&mut self, now: Instant, force: bool) {
        if !force && now.duration_since(self.refreshed) < REFRESH_EVERY {
            return;
        }
        self.refreshed = now;
        self.reopen(now);
        self.check_lock(now);
        for origin in [Origin::Spool, Origin::Saved] {
            let Some(reader) = self.reader_mut(origin) else {
                continue;
            };
            if let Err(e) = reader.refresh() {
                let dir = reader.dir().display().to_string();
                eprintln!("shopify-events drain: spool {dir}: {e}; trying again");
            }
            let events = reader.take_events();
            let stats = reader.stats();
            self.note(origin, events, stats, now);
        }
        if let Some(saved) = &self.saved {
            if !self.saved_pending && saved.backlog().segments == 0 {
                self.saved = None;
            }
        }
    }

    /// Logs the readers' events within the log budget and counts them.
    fn note(&mut self, origin: Origin, events: Vec<SpoolEvent>, stats: ReaderStats, now: Instant) {
        let last = match origin {
            Origin::Spool => &mut self.app_stats,
            Origin::Saved => &mut self.saved_stats,
        };
        let m = &self.metrics;
        m.spool_damaged
            .add(stats.damaged.saturating_sub(last.damaged));
        m.spool_given_up_bytes
            .add(stats.given_up_bytes.saturating_sub(last.given_up_bytes));
        m.spool_reclaimed
            .add(stats.reclaimed.saturating_sub(last.reclaimed));
        *last = stats;
        for event in events {
            let log = self.log.allow(now, |n| {
                eprintln!("shopify-events drain: {n} more spool reports in the last minute were not logged");
            });
            if log {
                eprintln!("shopify-events drain: {event}");
            }
        }
    }

    fn reader_mut(&mut self, origin: Origin) -> Option<&mut SpoolReader> {
        match origin {
            Origin::Spool => self.app.as_mut(),
            Origin::Saved => self.saved.as_mut(),
        }
    }

    fn reader(&self, origin: Origin) -> Option<&SpoolReader> {
        match origin {
            Origin::Spool => self.app.as_ref(),
            Origin::Saved => self.saved.as_ref(),
        }
    }

    /// Whether records saved at the last stop are still to be admitted:
    /// the spool waits for them, as they were received from the queue
    /// first.
    pub(crate) fn saved_pending(&self) -> bool {
        self.saved_pending
    }

    /// Whether the saved spool is delivered (or there is none): every
    /// saved event acknowledged and its files deleted.
    pub(crate) fn saved_done(&self) -> bool {
        self.saved.is_none()
    }

    /// The next saved record, while any is left.
    pub(crate) fn next_saved(&mut self) -> Option<RecordRef> {
        let saved = self.saved.as_mut()?;
        let record = saved.next_record();
        if record.is_none() && saved.backlog().waiting == 0 {
            if self.saved_pending {
                eprintln!(
                    "shopify-events drain: every saved event is sent; the queue is taken once they \
                     are acknowledged"
                );
            }
            self.saved_pending = false;
        }
        if record.is_some() {
            self.metrics.spool_read.inc();
        }
        record
    }

    /// The next spooled record of a segment created at or before
    /// `horizon_us` (see [`SpoolReader::next_record_until`]).
    pub(crate) fn next(&mut self, horizon_us: i64) -> Option<RecordRef> {
        // Without the lock (see `check_lock`), another drain reads them.
        self.lock.as_ref()?;
        let record = self.app.as_mut()?.next_record_until(horizon_us);
        if record.is_some() {
            self.metrics.spool_read.inc();
        }
        record
    }

    /// The envelope of `record`, in place.
    pub(crate) fn body(&self, origin: Origin, record: &RecordRef) -> &[u8] {
        self.reader(origin).map_or(&[], |r| r.body(record))
    }

    /// Persists the acknowledgement of a segment's records up to `end`.
    pub(crate) fn ack(&mut self, origin: Origin, segment: SegmentId, end: u64) {
        if let Some(reader) = self.reader_mut(origin) {
            reader.ack(segment, end);
        }
    }

    /// What waits in both spools.
    pub(crate) fn backlog(&self) -> Backlog {
        let mut total = Backlog::default();
        for reader in [&self.app, &self.saved].into_iter().flatten() {
            let b = reader.backlog();
            total.segments += b.segments;
            total.waiting += b.waiting;
            total.bytes += b.bytes;
            total.oldest_us = match (total.oldest_us, b.oldest_us) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        total
    }
}
