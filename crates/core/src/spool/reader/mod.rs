//! The drain's side of the spool: discovers the segments of one queue key,
//! reads each producer's records in order, in place, persists
//! acknowledgements in the segments and deletes what is done. See the
//! [spool module docs](super) for the rules.

mod discover;
mod event;
mod lifecycle;
mod remembered;
mod segment;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::format::{SegmentId, RECORD_HEADER};
use super::{ReaderOptions, SpoolError};
use discover::{scan, Changes, Watch};
pub use event::{Backlog, DamageKind, IgnoreReason, ReaderStats, SpoolEvent};
use remembered::{Remembered, MAX_REMEMBERED};
use segment::ReadSegment;

/// Records `next_record` takes from one segment before it looks at the next
/// producer's, so a busy producer does not starve the others.
const BATCH: u32 = 256;

/// A record read from a segment: where it is, for [`SpoolReader::body`] and
/// [`SpoolReader::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    segment: SegmentId,
    slot: u32,
    offset: u64,
    end: u64,
    len: u32,
}

impl RecordRef {
    /// A record reference made up for tests of code that holds them.
    #[cfg(test)]
    pub(crate) fn made_up(segment: SegmentId, offset: u64, len: u32) -> RecordRef {
        RecordRef {
            segment,
            slot: 0,
            offset,
            end: offset + super::format::record_span(u64::from(len)),
            len,
        }
    }

    /// The segment it is in.
    pub fn segment(&self) -> SegmentId {
        self.segment
    }

    /// Data offset of its record header.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Data offset past it and its padding: what acknowledges it.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Length of its envelope.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the envelope is empty (never: envelopes are at least 44
    /// bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One producer's segments: mapped ones in index order (all but the last
/// read to their final end), and discovered ones not mapped yet.
#[derive(Debug, Default)]
struct Producer {
    open: VecDeque<usize>,
    waiting: BTreeSet<u64>,
}

/// Reads the spool of one queue key; see the [module docs](super).
#[derive(Debug)]
pub struct SpoolReader {
    dir: PathBuf,
    key: u32,
    options: ReaderOptions,
    watch: Watch,
    producers: BTreeMap<u64, Producer>,
    slab: Vec<Option<ReadSegment>>,
    free: Vec<usize>,
    index: HashMap<SegmentId, usize>,
    /// Slab slots of each producer's last mapped segment: where `next_record`
    /// looks.
    reading: Vec<usize>,
    cursor: usize,
    streak: u32,
    /// Segments that cannot be read or deleted: reported, left alone
    /// (forgotten once a scan no longer finds them).
    skipped: Remembered<SegmentId>,
    /// Other names reported once (forgotten once a scan no longer finds
    /// them; at most [`MAX_REMEMBERED`]).
    reported: Remembered<OsString>,
    /// Other queues' keys reported once (as `reported`).
    other_keys: Remembered<u32>,
    /// Files the current scan found to ignore that `reported` or
    /// `other_keys` had no room for.
    unlisted: u64,
    at_limit: bool,
    /// After a segment could not be mapped for want of resources: when
    /// mapping is tried again.
    retry_open_at: Option<Instant>,
    events: Vec<SpoolEvent>,
    stats: ReaderStats,
    scratch_producers: Vec<u64>,
    scratch_slots: Vec<usize>,
}

impl SpoolReader {
    /// Opens the spool in `dir` for queue `queue_key` and discovers what is
    /// there.
    pub fn open(
        dir: impl Into<PathBuf>,
        queue_key: libc::key_t,
        options: ReaderOptions,
    ) -> Result<SpoolReader, SpoolError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                let source = io::Error::from_raw_os_error(libc::ENOTDIR);
                return Err(SpoolError::io(&dir, &dir, "open", source));
            }
            Err(source) => return Err(SpoolError::io(&dir, &dir, "open", source)),
        }
        let now = Instant::now();
        let mut reader = SpoolReader {
            watch: Watch::new(&dir, &options, now),
            dir,
            key: queue_key as u32,
            options,
            producers: BTreeMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            reading: Vec::new(),
            cursor: 0,
            streak: 0,
            skipped: Remembered::new(usize::MAX),
            reported: Remembered::new(MAX_REMEMBERED),
            other_keys: Remembered::new(MAX_REMEMBERED),
            unlisted: 0,
            at_limit: false,
            retry_open_at: None,
            events: Vec::new(),
            stats: ReaderStats::default(),
            scratch_producers: Vec::new(),
            scratch_slots: Vec::new(),
        };
        reader.refresh()?;
        Ok(reader)
    }

    /// Everything that takes a system call: learns of new segments, maps
    /// them, tests writers' liveness, gives up damaged segments and deletes
    /// finished ones. Call it every round of the drain loop, at least every
    /// 250 ms; when it finds nothing, it costs one `read` of the inotify
    /// queue.
    pub fn refresh(&mut self) -> Result<(), SpoolError> {
        let now = Instant::now();
        match self.watch.changes(now) {
            Changes::None => {}
            Changes::Names(names) => {
                for name in names {
                    self.saw(&name, false);
                }
            }
            Changes::Rescan => {
                let names = scan(&self.dir)
                    .map_err(|source| SpoolError::io(&self.dir, &self.dir, "scan", source))?;
                self.begin_scan();
                for name in names {
                    self.saw(&name, true);
                }
                self.end_scan();
            }
        }
        // Scratch vectors, reused: an idle refresh allocates nothing.
        let mut producers = std::mem::take(&mut self.scratch_producers);
        producers.clear();
        producers.extend(self.producers.keys());
        for &producer in &producers {
            self.advance(producer, now);
        }
        self.scratch_producers = producers;
        self.reading.clear();
        self.reading.extend(
            self.producers
                .values()
                .filter_map(|p| p.open.back().copied()),
        );
        self.cursor = self.cursor.checked_rem(self.reading.len()).unwrap_or(0);
        self.note_limit();
        Ok(())
    }

    /// The next published record of any mapped segment, validated, each
    /// producer's in order. Memory loads and CRCs only: no system call, no
    /// copy. `None` when nothing new is published; [`SpoolReader::refresh`]
    /// moves on to further segments.
    pub fn next_record(&mut self) -> Option<RecordRef> {
        self.next_record_until(i64::MAX)
    }

    /// [`SpoolReader::next_record`] from segments created (header time) at
    /// or before `created_us` only; later ones wait. A drain that takes
    /// the SysV queue too uses it to keep each process's order: a process
    /// spools only after the queue refused it, so its segment's creation
    /// time follows every event it put into the queue, and the drain reads
    /// the segment only once it took the queue that far.
    pub fn next_record_until(&mut self, created_us: i64) -> Option<RecordRef> {
        let count = self.reading.len();
        for _ in 0..=count {
            let slot = *self.reading.get(self.cursor)?;
            let admitted = self
                .slab
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.created_us <= created_us);
            if admitted && self.streak < BATCH {
                if let Some(record) = self.read_one(slot) {
                    self.streak += 1;
                    return Some(record);
                }
            }
            self.cursor = (self.cursor + 1) % count;
            self.streak = 0;
        }
        None
    }

    fn read_one(&mut self, slot: usize) -> Option<RecordRef> {
        let segment = self.slab.get_mut(slot)?.as_mut()?;
        let at = segment.read;
        let result = segment.read_next();
        let id = segment.id;
        let reports = segment.take_reports();
        let path = || segment.path.clone();
        let record = match result {
            Ok(Some(found)) => Some(RecordRef {
                segment: id,
                slot: slot as u32,
                offset: found.offset,
                end: found.end,
                len: found.len,
            }),
            Ok(None) => None,
            Err(kind) => {
                let path = path();
                self.damaged(path, at, kind);
                None
            }
        };
        if !reports.is_empty() {
            self.report_words(slot, reports);
        }
        if record.is_some() {
            self.stats.records += 1;
        }
        record
    }

    /// Reports header-word damage of the segment in `slot`.
    #[cold]
    pub(super) fn report_words(&mut self, slot: usize, reports: Vec<DamageKind>) {
        let Some(Some(segment)) = self.slab.get(slot) else {
            return;
        };
        let path = segment.path.clone();
        for kind in reports {
            self.damaged(path.clone(), 0, kind);
        }
    }

    /// The envelope of `record`, borrowed from the mapping; empty if its
    /// segment was deleted meanwhile (it cannot be while unacknowledged).
    pub fn body(&self, record: &RecordRef) -> &[u8] {
        match self.slab.get(record.slot as usize) {
            Some(Some(segment)) if segment.id == record.segment => {
                segment.bytes(record.offset + RECORD_HEADER, u64::from(record.len))
            }
            _ => &[],
        }
    }

    /// Persists that every record of `segment` ending at or before `end` is
    /// acknowledged. Ignored (false) unless `end` moves the segment's
    /// `acked` forward to the end of a record `next_record` returned.
    pub fn ack(&mut self, segment: SegmentId, end: u64) -> bool {
        let Some(&slot) = self.index.get(&segment) else {
            return false;
        };
        match self.slab.get_mut(slot) {
            Some(Some(read)) => read.ack(end),
            _ => false,
        }
    }

    /// What waits for this queue.
    pub fn backlog(&self) -> Backlog {
        let waiting: usize = self.producers.values().map(|p| p.waiting.len()).sum();
        let mapped = self.slab.iter().flatten();
        Backlog {
            segments: self.index.len() + waiting,
            waiting,
            bytes: mapped
                .clone()
                .map(|s| s.published - s.acked.min(s.published))
                .sum(),
            oldest_us: mapped.filter_map(ReadSegment::oldest_unacked).min(),
        }
    }

    /// Events since the last call, to log and count.
    pub fn take_events(&mut self) -> Vec<SpoolEvent> {
        std::mem::take(&mut self.events)
    }

    /// The counters.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Whether new segments are learnt from inotify (else by polling).
    pub fn uses_inotify(&self) -> bool {
        self.watch.uses_inotify()
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn damaged(&mut self, path: PathBuf, offset: u64, kind: DamageKind) {
        self.stats.damaged += 1;
        self.events.push(SpoolEvent::Damaged { path, offset, kind });
    }

    pub(super) fn ignored(&mut self, path: PathBuf, reason: IgnoreReason) {
        self.stats.ignored += 1;
        self.events.push(SpoolEvent::Ignored { path, reason });
    }

    /// Reports reaching `max_open` once each time it is reached.
    fn note_limit(&mut self) {
        let waiting: usize = self.producers.values().map(|p| p.waiting.len()).sum();
        let full = self.index.len() >= self.options.max_open && waiting > 0;
        if full && !self.at_limit {
            self.events.push(SpoolEvent::OpenLimit {
                max_open: self.options.max_open,
                waiting,
            });
        }
        self.at_limit = full;
    }
}
