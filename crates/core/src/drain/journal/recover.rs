//! Recovery at open: the walk from the checkpoint to the write position.

use std::sync::atomic::Ordering;

use crate::envelope::{envelope_len, Envelope};

use super::format::{pad8, record_word, Slot, SLOT};
use super::{Journal, JournalError, OnDamage, RecordRef};

impl Journal {
    /// Walks from the checkpoint, collecting the pending records and setting
    /// the write position; see the module docs. Every step moves forward by
    /// at least a slot and stays below `checkpoint + capacity`, so the walk
    /// ends whatever the file holds. Garbage that may hide pending records
    /// is refused before anything past it is written, unless `on_damage`
    /// says to give them up.
    pub(super) fn recover(&mut self, on_damage: OnDamage) -> Result<(), JournalError> {
        let mut at = self.checkpoint;
        loop {
            let record = match self.slot(at) {
                Some(Slot::Empty) => break,
                Some(Slot::Wrap) => {
                    let Some(next) = self.next_lap(at).filter(|&n| self.ends_in_ring(n)) else {
                        self.report.stopped_at_garbage = Some(at);
                        break;
                    };
                    if self.recovered.is_empty() {
                        // The checkpoint never rests on a wrap marker (a
                        // crash in `wrap` can leave it there).
                        self.store_checkpoint(next);
                    }
                    at = next;
                    continue;
                }
                Some(Slot::Record(len)) => self.record_at(at, len),
                Some(Slot::Uncommitted) => self
                    .uncommitted_len(at)
                    .and_then(|len| self.record_at(at, len)),
                Some(Slot::Foreign) | None => None,
            };
            let Some(record) = record else {
                self.report.stopped_at_garbage = Some(at);
                break;
            };
            let uncommitted = self.slot(at) == Some(Slot::Uncommitted);
            if uncommitted {
                // Commit it as `commit` would have.
                self.store_slot(record.end, 0, Ordering::Relaxed);
                let word = record_word(self.lap(at), record.len as u64);
                self.store_slot(at, word, Ordering::Release);
            }
            at = record.end;
            self.recovered.push(record);
            if uncommitted {
                // The writer commits before it receives again, so an
                // uncommitted record is the last, and the slot after it was
                // not yet zeroed: do not read it.
                break;
            }
        }
        if let Some(garbage) = self.report.stopped_at_garbage {
            self.report.records_after_garbage = self.records_after(garbage);
            if !self.report.records_after_garbage.is_empty() && on_damage == OnDamage::Refuse {
                let after = &self.report.records_after_garbage;
                return Err(JournalError::Damaged {
                    path: self.path.clone(),
                    reason: format!(
                        "recovery from the checkpoint (position {}) read {} records and then \
                         met bytes that are no record at position {garbage}, with {} record \
                         headers past them (the first at position {}, the last at {})",
                        self.checkpoint,
                        self.recovered.len(),
                        after.len(),
                        after[0],
                        after[after.len() - 1],
                    ),
                });
            }
        }
        // The write position's slot is zero: it ended the walk, or is zeroed
        // now over garbage or after an uncommitted record.
        self.store_slot(at, 0, Ordering::Release);
        self.write = at;
        self.report.records = self.recovered.len();
        self.report.bytes = at - self.checkpoint;
        Ok(())
    }

    /// Positions after the garbage at `garbage`, up to where the ring
    /// ends, whose slot holds a committed record word of its lap that fits a
    /// frame: records that recovery could not reach. Empty when the garbage
    /// is an uncommitted message that is no envelope (the last one
    /// received; nothing follows it).
    fn records_after(&self, garbage: u64) -> Vec<u64> {
        if self.slot(garbage) == Some(Slot::Uncommitted) {
            return Vec::new();
        }
        let mut found = Vec::new();
        let mut at = garbage + SLOT;
        while at.checked_add(SLOT).is_some_and(|end| end <= self.limit()) {
            if let Some(Slot::Record(len)) = self.slot(at) {
                if len <= self.max_record {
                    found.push(at);
                }
            }
            at += SLOT;
        }
        found
    }

    /// The record with a body of `len` bytes at position `at`, if it lies
    /// where a reserved frame could have: within `max_record`, within the
    /// area together with the slot after it, and within the ring.
    fn record_at(&self, at: u64, len: u64) -> Option<RecordRef> {
        if len > self.max_record {
            return None;
        }
        let span = SLOT + pad8(len);
        if self.phys(at).checked_add(span + SLOT)? > self.capacity {
            return None;
        }
        let end = at.checked_add(span)?;
        self.ends_in_ring(end).then_some(RecordRef {
            offset: at,
            end,
            len: usize::try_from(len).ok()?,
        })
    }

    /// Whether a chain may continue at `at`: its slot lies before the
    /// checkpoint's position one lap on.
    fn ends_in_ring(&self, at: u64) -> bool {
        at.checked_add(SLOT).is_some_and(|end| end <= self.limit())
    }

    /// The length of a body msgrcv wrote but commit never stamped, if it is
    /// one whole valid envelope: nothing else says where it ends.
    fn uncommitted_len(&self, at: u64) -> Option<u64> {
        let room = self
            .capacity
            .checked_sub(self.phys(at))?
            .checked_sub(2 * SLOT)?;
        let body = self.data(self.phys(at) + SLOT, self.max_record.min(room))?;
        let len = envelope_len(body).ok()??;
        Envelope::decode(body.get(..len)?).ok()?;
        Some(len as u64)
    }
}
