//! A segment's life on the reader's side: discovered by name, mapped when
//! its producer's earlier segments are read, tested for its writer's
//! liveness, given up after damage, and deleted once done.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::time::{Duration, Instant};

use super::remembered::{Insert, MAX_REMEMBERED};
use super::segment::{OpenFailure, ReadSegment};
use super::{IgnoreReason, SpoolEvent, SpoolReader};
use crate::spool::format::{parse_name, segment_name, Name, SegmentId, DAMAGED_SUFFIX};
use crate::spool::lock;

/// How long the reader waits before it tries again to map a segment it
/// could not for want of descriptors, mappings or access.
const OPEN_RETRY: Duration = Duration::from_secs(1);

impl SpoolReader {
    /// Starts a full scan of the directory: what was reported once and
    /// the scan does not find again is forgotten at its end.
    pub(super) fn begin_scan(&mut self) {
        self.reported.begin_scan();
        self.other_keys.begin_scan();
        self.skipped.begin_scan();
        self.unlisted = 0;
    }

    /// Ends a full scan: forgets what it did not find, and says how many
    /// ignored files it found past what the reader remembers (when that
    /// number changed).
    pub(super) fn end_scan(&mut self) {
        self.reported.end_scan();
        self.other_keys.end_scan();
        self.skipped.end_scan();
        if self.unlisted != self.stats.unlisted {
            self.stats.unlisted = self.unlisted;
            if self.unlisted > 0 {
                self.events.push(SpoolEvent::Unlisted {
                    dir: self.dir.clone(),
                    files: self.unlisted,
                    remembered: MAX_REMEMBERED,
                });
            }
        }
    }

    /// A name found in the directory (`scanning`: by a full scan).
    pub(super) fn saw(&mut self, name: &OsStr, scanning: bool) {
        let parsed = name.to_str().map_or(Name::Other, parse_name);
        if scanning {
            self.reported.found(name);
        }
        match parsed {
            Name::Segment(key, id) if key == self.key => {
                if scanning {
                    self.skipped.found(&id);
                }
                if !self.index.contains_key(&id) && !self.skipped.contains(&id) {
                    let producer = self.producers.entry(id.producer).or_default();
                    producer.waiting.insert(id.index);
                }
            }
            Name::Segment(key, _) => {
                if scanning {
                    self.other_keys.found(&key);
                }
                match self.other_keys.insert(key) {
                    Insert::New => {
                        self.ignored(self.dir.join(name), IgnoreReason::OtherQueue { key })
                    }
                    Insert::Known => {}
                    Insert::Full => self.unlisted += u64::from(scanning),
                }
            }
            Name::Temp(key, _) if key == self.key && scanning => self.check_temp(name),
            Name::Temp(..) | Name::Damaged | Name::Lock => {}
            Name::Other => self.report_once(name, scanning),
        }
    }

    /// Reports a file that is not read, once while it exists.
    fn report_once(&mut self, name: &OsStr, scanning: bool) {
        if self.reported.contains(name) {
            return;
        }
        match self.reported.insert(name.to_os_string()) {
            Insert::New => self.ignored(self.dir.join(name), IgnoreReason::NotASpoolFile),
            Insert::Known => {}
            Insert::Full => self.unlisted += u64::from(scanning),
        }
    }

    /// Removes a writer's temporary file once it is old and unlocked. What
    /// is not a regular file under such a name (a symlink, a FIFO: no
    /// writer makes those) is reported once and left alone.
    fn check_temp(&mut self, name: &OsStr) {
        let path = self.dir.join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return;
        };
        if !meta.is_file() {
            self.report_once(name, true);
            return;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= self.options.temp_grace);
        let id = lock::file_id(&meta);
        let unlocked = || lock::writer_alive(&path, Some(id)).is_ok_and(|alive| !alive);
        if old && unlocked() && fs::remove_file(&path).is_ok() {
            self.events.push(SpoolEvent::RemovedTemp { path });
        }
    }

    /// Reclaims, gives up, tests and maps one producer's segments.
    pub(super) fn advance(&mut self, producer: u64, now: Instant) {
        loop {
            let mut changed = self.settle(producer, now);
            changed |= self.admit(producer, now);
            if !changed {
                break;
            }
        }
        if self
            .producers
            .get(&producer)
            .is_some_and(|p| p.open.is_empty() && p.waiting.is_empty())
        {
            self.producers.remove(&producer);
        }
    }

    /// Updates the producer's mapped segments; reclaims those done.
    fn settle(&mut self, producer: u64, now: Instant) -> bool {
        let mut slots = std::mem::take(&mut self.scratch_slots);
        slots.clear();
        if let Some(entry) = self.producers.get(&producer) {
            slots.extend(&entry.open);
        }
        let mut reclaimed = false;
        for &slot in &slots {
            let Some(Some(segment)) = self.slab.get_mut(slot) else {
                continue;
            };
            if !segment.finished() && segment.read_all() && now >= segment.next_liveness {
                segment.test_liveness();
                segment.next_liveness = now + self.options.liveness_interval;
            }
            // After the liveness test: whatever a dead writer published
            // before it died is final now.
            segment.load_state();
            let reports = segment.take_reports();
            let give_up = segment.finished() && !segment.given_up;
            let given_up = match segment.damage {
                Some(at) if give_up => {
                    segment.given_up = true;
                    Some((segment.path.clone(), at, segment.published - at))
                }
                _ => None,
            };
            let done = segment.finished() && segment.read_all() && segment.acked >= segment.end();
            if !reports.is_empty() {
                self.report_words(slot, reports);
            }
            if let Some((path, offset, bytes)) = given_up {
                self.stats.given_up_bytes += bytes;
                self.events.push(SpoolEvent::GivenUp {
                    path,
                    offset,
                    bytes,
                });
            }
            if done {
                self.reclaim(producer, slot);
                reclaimed = true;
            }
        }
        self.scratch_slots = slots;
        reclaimed
    }

    /// Maps the producer's next segment if the last mapped one is read to
    /// its final end (or none is mapped) and the limit allows.
    fn admit(&mut self, producer: u64, now: Instant) -> bool {
        if self.index.len() >= self.options.max_open
            || self.retry_open_at.is_some_and(|at| now < at)
        {
            return false;
        }
        let Some(entry) = self.producers.get(&producer) else {
            return false;
        };
        let ready = match entry.open.back() {
            None => true,
            Some(&slot) => self.slab[slot]
                .as_ref()
                .is_some_and(|s| s.finished() && s.read_all()),
        };
        let Some(&index) = entry.waiting.first().filter(|_| ready) else {
            return false;
        };
        let id = SegmentId { producer, index };
        if let Some(entry) = self.producers.get_mut(&producer) {
            entry.waiting.remove(&index);
        }
        let path = self.dir.join(segment_name(self.key as libc::key_t, id));
        match ReadSegment::open(&path, id, self.key, now) {
            Ok(mut segment) => {
                if !segment.sealed {
                    segment.test_liveness();
                    segment.next_liveness = now + self.options.liveness_interval;
                    segment.load_state();
                }
                let reports = segment.take_reports();
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.slab.push(None);
                        self.slab.len() - 1
                    }
                };
                self.slab[slot] = Some(segment);
                self.index.insert(id, slot);
                if let Some(entry) = self.producers.get_mut(&producer) {
                    entry.open.push_back(slot);
                }
                if !reports.is_empty() {
                    self.report_words(slot, reports);
                }
            }
            // Out of descriptors or mappings, or no access: the segment
            // stays next in its producer's order and is tried again later.
            Err(failure) if failure.transient => {
                if let Some(entry) = self.producers.get_mut(&producer) {
                    entry.waiting.insert(index);
                }
                self.retry_open_at = Some(now + OPEN_RETRY);
                if let Some(name) = path.file_name() {
                    if self.reported.insert(name.to_os_string()) == Insert::New {
                        self.ignored(path, failure.reason);
                    }
                }
                return false;
            }
            // Gone meanwhile (an operator moved it): nothing to report.
            Err(OpenFailure {
                reason: IgnoreReason::Unreadable { .. },
                ..
            }) if !path.exists() => {}
            Err(failure) => {
                self.skipped.insert(id);
                self.ignored(path, failure.reason);
            }
        }
        true
    }

    /// Deletes a finished, acknowledged segment, or sets a given-up one
    /// aside as `<name>.damaged`.
    fn reclaim(&mut self, producer: u64, slot: usize) {
        let Some(mut segment) = self.slab.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.index.remove(&segment.id);
        if let Some(entry) = self.producers.get_mut(&producer) {
            entry.open.retain(|&s| s != slot);
        }
        // The name may refer to another file now (replaced by hand): that
        // one was never read here, so it is not deleted but read next, as a
        // segment of its own (from its `acked`: at-least-once).
        let now_there = fs::symlink_metadata(&segment.path).map(|m| lock::file_id(&m));
        if now_there.as_ref().is_ok_and(|&id| id != segment.file) {
            if let Some(entry) = self.producers.get_mut(&producer) {
                entry.waiting.insert(segment.id.index);
            }
            self.events
                .push(SpoolEvent::Replaced { path: segment.path });
            return;
        }
        let result = if segment.given_up {
            // Done with, though not delivered: the writer's `drained` must
            // not wait for it forever.
            segment.store_acked(segment.published);
            let mut aside = segment.path.clone().into_os_string();
            aside.push(DAMAGED_SUFFIX);
            fs::rename(&segment.path, aside)
        } else {
            fs::remove_file(&segment.path)
        };
        match result {
            Ok(()) => self.stats.reclaimed += 1,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                self.skipped.insert(segment.id);
                let reason = format!("delivered, but cannot be deleted: {err}");
                self.ignored(segment.path, IgnoreReason::Unreadable { reason });
            }
        }
    }
}
