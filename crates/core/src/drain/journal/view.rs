//! Read access to record bodies from another thread than the writer's.
//!
//! The drain receives on one thread (which owns the [`Journal`] and writes
//! frames) and produces on another, which reads the bodies of records the
//! writer handed over. A [`JournalView`] shares the journal's mapping (one
//! mapping per file, so the pages count once in the drain's memory) and
//! borrows only the bytes of one pending record at a time.

use std::slice;
use std::sync::Arc;

use memmap2::MmapRaw;

use super::format::{HEADER_SIZE, SLOT};
use super::{Journal, RecordRef};

/// Reads pending records' bodies from the journal's mapping.
#[derive(Debug, Clone)]
pub struct JournalView {
    /// The journal's own mapping, kept alive by whichever outlives the other.
    map: Arc<MmapRaw>,
    capacity: u64,
}

impl Journal {
    /// A view for reading the bodies of records this journal commits, from
    /// another thread.
    pub fn view(&self) -> JournalView {
        JournalView {
            map: Arc::clone(&self.map),
            capacity: self.capacity,
        }
    }
}

impl JournalView {
    /// The body of `record`, which must be pending: committed by the
    /// journal and not yet passed by its checkpoint, so the writer does not
    /// write its bytes while the slice lives (it writes only past the write
    /// position and before `checkpoint + capacity`). Empty for a record
    /// outside the mapping.
    ///
    /// The caller must have learned of `record` through something that
    /// orders it after the commit (a channel, as the drain does).
    pub fn body(&self, record: &RecordRef) -> &[u8] {
        let range = (record.offset % self.capacity)
            .checked_add(HEADER_SIZE + SLOT)
            .and_then(|start| Some((usize::try_from(start).ok()?, record.len)))
            .filter(|&(start, len)| {
                start
                    .checked_add(len)
                    .is_some_and(|end| end <= self.map.len())
            });
        let Some((start, len)) = range else {
            return &[];
        };
        // SAFETY: `start..start + len` lies within the mapping (checked
        // above), which lives as long as `self`. Only this range is borrowed,
        // never the whole mapping: other parts of it change under the
        // writer's hand, this record's bytes do not while it is pending.
        unsafe { slice::from_raw_parts(self.map.as_ptr().add(start), len) }
    }
}
