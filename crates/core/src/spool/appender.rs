//! One process generation's writer, for one thread at a time: the active
//! segment, rotation, the retry delay after a failure, the sync policy.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::fork;
use super::format::{record_span, SegmentId, HEADER_SIZE, MAX_INDEX, MAX_RECORD_LIMIT};
use super::options::{SyncPolicy, RETRY_AFTER};
use super::prepare::Preparer;
use super::segment::{self, Active, Prepared, Retired};
use super::{SpoolError, SpoolOptions, WriterStats};
use crate::envelope;
use crate::process;

/// Indices a rotation tries when names are taken before it gives up (for
/// a second, as after any failed creation).
const NAME_TRIES: u32 = 16;
/// How often an append checks that the active segment is still in the
/// directory (a `fstat` and a `stat`): what is appended to a segment
/// removed by hand before the check is lost, so this bounds that loss in
/// time.
pub const IN_PLACE_EVERY: Duration = Duration::from_secs(1);

/// Appends envelopes to this process's segments; `&mut self`, so one thread
/// at a time ([`SpoolWriter`](super::SpoolWriter) shares one between
/// threads and across forks). No system call in the common case: a copy
/// into the mapping and one release store.
///
/// Fork-safe on its own: an append in a forked child leaves the parent's
/// segments alone (their mappings are leaked in the child) and starts
/// files of the child's producer id.
#[derive(Debug)]
pub struct Appender {
    pub(super) options: SpoolOptions,
    pub(super) generation: u64,
    /// Which writer of this process it is: the first writes under the
    /// process's producer id, later ones under ids derived from it.
    instance: u64,
    producer: u64,
    next_index: u64,
    next_capacity: u64,
    pub(super) active: Option<Active>,
    /// Envelope bytes of the frame `reserve` handed out, until `commit`.
    pub(super) reserved: Option<usize>,
    /// Sealed segments whose `acked` has not reached their `published`.
    retired: Vec<Retired>,
    /// The last creation failure and when to try again (coarse ns).
    failed: Option<(u64, SpoolError)>,
    /// When `Interval` syncs next (coarse ns).
    sync_due: u64,
    /// When an append next checks the active segment is in place (coarse
    /// ns).
    check_due: u64,
    /// Creates the next segment ahead ([`SpoolOptions::prepare_ahead`]).
    preparer: Option<Preparer>,
    counters: Arc<Counters>,
}

/// Counters written by the one appending thread (plain loads and stores,
/// no read-modify-write) and read by any.
#[derive(Debug, Default)]
pub(super) struct Counters {
    appended: AtomicU64,
    bytes: AtomicU64,
    segments: AtomicU64,
    prepared: AtomicU64,
    failures: AtomicU64,
    orphaned: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub fn snapshot(&self) -> WriterStats {
        WriterStats {
            appended: self.appended.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            segments_created: self.segments.load(Relaxed),
            segments_prepared: self.prepared.load(Relaxed),
            failures: self.failures.load(Relaxed),
            segments_orphaned: self.orphaned.load(Relaxed),
        }
    }
}

impl Appender {
    /// A writer with `options`; touches no file until the first append.
    /// Segment sizes are rounded up to whole pages, `segment_max` to at
    /// least `segment_min`; sizes and `max_record` are cut to 1 GiB.
    pub fn new(options: SpoolOptions) -> Appender {
        Appender::with_counters(options, Arc::default())
    }

    /// A writer that continues the log of producer `producer` at segment
    /// `next_index`, for a receiver that saves into one log across its runs
    /// (the drain's saved spool): a reader reads each run's segments after
    /// the previous run's, as it reads any producer's segments in index
    /// order. `producer` must be non-zero and written by no other live
    /// writer; `next_index` past every segment it has.
    pub fn continuing(options: SpoolOptions, producer: u64, next_index: u64) -> Appender {
        let mut appender = Appender::new(options);
        appender.producer = producer.max(1);
        appender.next_index = next_index;
        appender
    }

    pub(super) fn with_counters(mut options: SpoolOptions, counters: Arc<Counters>) -> Appender {
        let limit = MAX_RECORD_LIMIT as u64;
        options.segment_min = page_round(options.segment_min.clamp(1, limit));
        options.segment_max = page_round(options.segment_max.min(limit)).max(options.segment_min);
        options.max_record = options.max_record.min(MAX_RECORD_LIMIT);
        let sync_due = match options.sync {
            SyncPolicy::Interval(every) => coarse_now().saturating_add(nanos(every)),
            _ => 0,
        };
        let instance = fork::next_instance();
        let producer = producer_id(instance);
        Appender {
            next_capacity: options.segment_min,
            preparer: preparer(&options, producer),
            options,
            generation: process::generation(),
            instance,
            producer,
            next_index: 0,
            active: None,
            reserved: None,
            retired: Vec::new(),
            failed: None,
            sync_due,
            check_due: 0,
            counters,
        }
    }

    /// Appends one envelope (as the envelope encoder wrote it) and publishes
    /// it: once this returns `Ok`, a reader can see it and a process crash
    /// cannot lose it. An `Io` error from `msync` (under
    /// [`SyncPolicy::Interval`] or [`SyncPolicy::Always`]) comes after the
    /// record was published: the drain will deliver it, but it may not be on
    /// disk.
    #[inline]
    pub fn append(&mut self, envelope: &[u8]) -> Result<(), SpoolError> {
        let result = self.try_append(envelope);
        if result.is_err() {
            Counters::add(&self.counters.failures, 1);
        }
        result
    }

    #[inline]
    fn try_append(&mut self, envelope: &[u8]) -> Result<(), SpoolError> {
        self.reserved = None;
        let len = envelope.len();
        if len > self.options.max_record {
            return Err(SpoolError::RecordTooLarge {
                len,
                max_record: self.options.max_record,
            });
        }
        match envelope::envelope_len(envelope) {
            Ok(Some(declared)) if declared == len => {}
            Ok(_) => return Err(not_an_envelope(len, "its length field differs")),
            Err(_) => return Err(not_an_envelope(len, "bad magic, version or length")),
        }
        if self.generation != process::generation() {
            self.forked();
        }
        if self.active.is_some() {
            let now = coarse_now();
            if now >= self.check_due {
                self.check_in_place(now);
            }
        }
        let span = record_span(len as u64);
        if !self.active.as_ref().is_some_and(|a| span <= a.room()) {
            self.rotate(span)?;
        }
        let Appender {
            active: Some(active),
            counters,
            options,
            sync_due,
            ..
        } = self
        else {
            // rotate returns Ok only with an active segment in place.
            return Err(SpoolError::Io {
                path: self.options.dir.clone(),
                op: "append (no segment after rotation)",
                source: Arc::new(std::io::Error::from_raw_os_error(libc::EIO)),
            });
        };
        active.append(envelope, span);
        Counters::add(&counters.appended, 1);
        Counters::add(&counters.bytes, len as u64);
        match options.sync {
            SyncPolicy::PageCache => Ok(()),
            SyncPolicy::Always => active.sync(),
            SyncPolicy::Interval(every) => {
                let now = coarse_now();
                if now < *sync_due {
                    return Ok(());
                }
                *sync_due = now.saturating_add(nanos(every));
                active.sync()
            }
        }
    }

    /// After a record of `len` bytes was published: counts it and syncs as
    /// the policy asks (for records published other than by `append`).
    pub(super) fn published(&mut self, len: usize) -> Result<(), SpoolError> {
        Counters::add(&self.counters.appended, 1);
        Counters::add(&self.counters.bytes, len as u64);
        let Some(active) = &mut self.active else {
            return Ok(());
        };
        match self.options.sync {
            SyncPolicy::PageCache => Ok(()),
            SyncPolicy::Always => active.sync(),
            SyncPolicy::Interval(every) => {
                let now = coarse_now();
                if now < self.sync_due {
                    return Ok(());
                }
                self.sync_due = now.saturating_add(nanos(every));
                active.sync()
            }
        }
    }

    /// Checks the active segment is still in the directory; if it was
    /// removed or replaced by hand (the drain would never read what goes on
    /// being appended to it), leaves it for a new one (the next append
    /// creates it), counted as a failure and an orphaned segment. It is
    /// sealed but not waited for by `drained`: the drain may never see it.
    #[cold]
    fn check_in_place(&mut self, now: u64) {
        self.check_due = now.saturating_add(nanos(IN_PLACE_EVERY));
        if self.active.as_ref().map_or(true, Active::in_place) {
            return;
        }
        Counters::add(&self.counters.failures, 1);
        Counters::add(&self.counters.orphaned, 1);
        if let Some(orphan) = self.active.take() {
            drop(orphan.seal(self.options.sync));
        }
        self.next_capacity = self.options.segment_min;
    }

    /// Counts a failed operation.
    pub(super) fn failed(&self) {
        Counters::add(&self.counters.failures, 1);
    }

    /// Seals the current segment (it cannot take `span` more bytes) and
    /// creates the next, with room for them. Within a second of a failure,
    /// fails the same way without trying.
    ///
    /// Sealing first means a failed creation leaves no segment of ours
    /// unsealed: the drain can finish and delete the full one, which frees
    /// the `max_bytes` budget the next creation needs (with the old one
    /// kept open, a writer whose own segment filled the budget would wait
    /// for a deletion that never comes).
    #[cold]
    pub(super) fn rotate(&mut self, span: u64) -> Result<(), SpoolError> {
        if let Some((retry_at, err)) = &self.failed {
            if coarse_now() < *retry_at {
                return Err(err.clone());
            }
        }
        // Filling a segment (not starting an episode) is when the next one
        // is worth preparing: an episode of a few events never starts the
        // preparing thread.
        let filled = self.active.is_some();
        self.retire_active();
        self.retired.retain(|r| !r.done());
        // A file already under the name (a temporary one left by an
        // earlier run of the same producer, killed while creating it: the
        // drain's saved spool continues one producer across runs) is no
        // shortage to wait out: the next index is tried at once.
        let mut tries = NAME_TRIES;
        let created = loop {
            match self.create_next(span) {
                Err(err) if err.os_error() == Some(libc::EEXIST) && tries > 1 => {
                    tries -= 1;
                    self.next_index += 1;
                }
                created => break created,
            }
        };
        let created = match created {
            Ok(created) => created,
            Err(err) => {
                if err.os_error() == Some(libc::EEXIST) {
                    self.next_index += 1;
                }
                let retry_at = coarse_now().saturating_add(nanos(RETRY_AFTER));
                self.failed = Some((retry_at, err.clone()));
                return Err(err);
            }
        };
        self.failed = None;
        self.next_index += 1;
        self.next_capacity = self
            .next_capacity
            .saturating_mul(4)
            .min(self.options.segment_max);
        Counters::add(&self.counters.segments, 1);
        self.active = Some(created);
        if let Some(preparer) = self.preparer.as_mut().filter(|_| filled) {
            preparer.request(self.next_capacity);
        }
        Ok(())
    }

    /// Creates (or places the prepared) segment at the next index, with
    /// room for `span`.
    fn create_next(&mut self, span: u64) -> Result<Active, SpoolError> {
        let id = SegmentId {
            producer: self.producer,
            index: self.next_index,
        };
        if id.index > MAX_INDEX {
            return Err(SpoolError::Io {
                path: self.options.dir.clone(),
                op: "create (segment index beyond 10 digits)",
                source: Arc::new(std::io::Error::from_raw_os_error(libc::EOVERFLOW)),
            });
        }
        if let Some(prepared) = self.take_prepared(span) {
            return prepared.place(&self.options, id).inspect(|_| {
                Counters::add(&self.counters.prepared, 1);
            });
        }
        let capacity = self.next_capacity.max(page_round(span));
        match segment::create(&self.options, id, capacity) {
            // The bound refused a grown segment: the smallest that holds
            // the record may still fit.
            Err(err) if err.is_full() && capacity > self.smallest(span) => {
                segment::create(&self.options, id, self.smallest(span))
            }
            created => created,
        }
    }

    /// Capacity of the smallest segment the writer makes that holds `span`.
    fn smallest(&self, span: u64) -> u64 {
        self.options.segment_min.max(page_round(span))
    }

    /// The segment prepared ahead, if one is ready and holds `span`; one
    /// too small is removed. A failed preparation is ignored: creating the
    /// segment here gives a fresh verdict.
    fn take_prepared(&mut self, span: u64) -> Option<Prepared> {
        match self.preparer.as_mut()?.take()? {
            Ok(prepared) if prepared.capacity() >= span => Some(prepared),
            Ok(small) => {
                small.discard();
                None
            }
            Err(_) => None,
        }
    }

    /// Seals the active segment, if any, after syncing it as the policy
    /// asks.
    fn retire_active(&mut self) {
        if let Some(mut old) = self.active.take() {
            if self.options.sync != SyncPolicy::PageCache {
                // Best effort here: the appends already synced what the
                // policy promised; this covers an Interval's tail.
                let _ = old.sync();
            }
            self.retired.push(old.seal(self.options.sync));
        }
    }

    /// Whether the drain acknowledged every record this process generation
    /// appended: no sealed segment of ours is left unacknowledged and the
    /// active one's `acked` reached its `published`. Memory loads only,
    /// except that it unmaps the header of a segment it finds done.
    pub fn drained(&mut self) -> bool {
        if self.generation != process::generation() {
            self.forked();
        }
        if !self.retired.is_empty() {
            self.retired.retain(|r| !r.done());
        }
        self.retired.is_empty() && self.active.as_ref().map_or(true, Active::acked_all)
    }

    /// Ends a spooling episode: seals the active segment, so the drain may
    /// delete it once it acknowledged it. The next append starts a new
    /// (small) segment.
    pub fn seal(&mut self) {
        if self.generation != process::generation() {
            self.forked();
        }
        self.reserved = None;
        self.retire_active();
        self.next_capacity = self.options.segment_min;
        if let Some(preparer) = &mut self.preparer {
            preparer.cancel();
        }
    }

    /// `msync`s what was published since the last sync (any policy).
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        match &mut self.active {
            Some(active) if self.generation == process::generation() => active.sync(),
            _ => Ok(()),
        }
    }

    /// The settings in use (sizes rounded to pages).
    pub fn options(&self) -> &SpoolOptions {
        &self.options
    }

    /// The counters.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// In a forked child: forgets the parent's segments without touching
    /// them and becomes the child's writer.
    #[cold]
    pub(super) fn forked(&mut self) {
        std::mem::forget(self.active.take());
        std::mem::forget(std::mem::take(&mut self.retired));
        std::mem::forget(self.preparer.take());
        self.reserved = None;
        self.generation = process::generation();
        self.instance = fork::next_instance();
        self.producer = producer_id(self.instance);
        self.preparer = preparer(&self.options, self.producer);
        self.next_index = 0;
        self.next_capacity = self.options.segment_min;
        self.failed = None;
    }
}

impl Drop for Appender {
    /// Seals the active segment; in a forked child, leaves the parent's alone.
    fn drop(&mut self) {
        if self.generation != process::generation() {
            self.forked();
            return;
        }
        self.retire_active();
    }
}

/// The producer id the `instance`th writer of this process generation
/// writes under:
/// the process's own for the first, so files name the process that wrote
/// them; distinct ones for others, so two writers of one process on the
/// same directory and queue are two producers, never one file's two
/// writers.
fn producer_id(instance: u64) -> u64 {
    let id = process::producer_id();
    if instance == 0 {
        return id;
    }
    // splitmix64 of the pair: spread, and never the process's own id.
    let mut z = id ^ instance.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == id || z == 0 {
        z ^= 0x5eed;
    }
    z
}

fn preparer(options: &SpoolOptions, producer: u64) -> Option<Preparer> {
    options
        .prepare_ahead
        .then(|| Preparer::new(options.clone(), producer))
}

fn not_an_envelope(len: usize, reason: &'static str) -> SpoolError {
    SpoolError::NotAnEnvelope { len, reason }
}

fn page_round(n: u64) -> u64 {
    n.div_ceil(HEADER_SIZE).saturating_mul(HEADER_SIZE)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `CLOCK_MONOTONIC_COARSE` in ns: a vDSO read of the last tick, a few ns,
/// precise to a jiffy (1–10 ms), which is all a sync interval or a retry
/// delay needs.
fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer and a valid clock id.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
