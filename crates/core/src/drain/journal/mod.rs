//! The drain's journal: a memory-mapped ring file that SysV messages are
//! received straight into, so the drain never holds an event only in its own
//! memory.
//!
//! [`Journal::reserve`] hands out a frame inside the mapping and `msgrcv`
//! copies the message into it, that is into the file's page cache, which
//! outlives the process: a `kill -9` right after the receive loses nothing.
//! It does not outlive a kernel crash (neither does the queue), so the hot
//! path never calls `msync`; [`Journal::flush`] is for shutdown.
//! [`Journal::commit`] stamps a record header over the frame's mtype;
//! [`Journal::checkpoint`] persists the position of the first record Kafka
//! has not acknowledged. On open, the records from the checkpoint on are
//! [`Journal::recovered`] for the drain to produce again (at-least-once).
//! The writer wraps to the start of the area while older records are still
//! pending, as long as it overwrites nothing from the checkpoint on; only a
//! full ring makes `reserve` wait for acknowledgements.
//!
//! msgrcv dequeues a message before copying it, so a failed copy would lose
//! it: the file's blocks are allocated (`posix_fallocate`) and every page is
//! write-faulted at open, so the copy never meets a full disk. An exclusive
//! `flock` keeps a second drain out of the file.
//!
//! # File format, version 2 (little-endian)
//!
//! A 4096-byte header page (zero past these fields), then `capacity` data bytes.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `SEJOURN1` (the file family; the version tells the format) |
//! | 8 | 4 | format version, 2 |
//! | 12 | 4 | header size, 4096: the data area starts here |
//! | 16 | 8 | data capacity in bytes, a multiple of 8, at least one frame + 8 |
//! | 24 | 8 | `max_record`: largest body a frame takes (the `msgmax` it was sized for), below 4 GiB |
//! | 32 | 8 | checkpoint: position of the first record not yet acknowledged |
//! | 40 | 8 | reserved, zero (version 1 kept a rewind count here) |
//!
//! A version 1 file (the linear journal of older drains) with nothing left
//! to deliver (a zero slot at its checkpoint) is replaced by a new ring; one
//! with records pending is refused with [`JournalError::Format`], never
//! reinterpreted: its records carry no lap. Drains of version 1 refuse this
//! format likewise.
//!
//! ## Positions
//!
//! Positions are virtual: `lap * capacity + offset`, where `offset` is the
//! data offset and `lap` counts the passes over the area since the file was
//! created. They only grow, so the checkpoint, [`RecordRef`]s and the
//! window built on them compare as if the area were endless. The checkpoint
//! changes by single aligned atomic stores, so a crash leaves the old or the
//! new value.
//!
//! ## Records
//!
//! Records sit at 8-byte aligned offsets: `[slot: 8][body][padding to 8]`,
//! the padding unspecified (whatever an earlier lap left). msgrcv writes the
//! native `c_long` mtype (> 0) into the slot; commit overwrites it with
//! `u32 body_len` (low half) and `u32 tag` (high half), where the tag is
//! [`lap_tag`]: `0x8000_0000 | (lap & 0x7FFF_FFFF)`. Its top bit makes the
//! slot a negative i64, never an mtype, and its lap tells a record of this
//! pass from a stale one of an earlier pass. A slot with the lap's tag and
//! `body_len` [`WRAP_LEN`] (`u32::MAX`) is a wrap marker: the data continues
//! at offset 0 of the next lap.
//!
//! A frame is a slot and `max_record` body bytes padded to 8. It is only
//! handed out where it and the slot after it (where the next frame may start)
//! lie within the area, contiguous, and before `checkpoint + capacity`, so
//! it overwrites nothing pending. Where the area's end leaves no room for
//! that, the writer zeroes the slot at offset 0 of the next lap (only if
//! that is before `checkpoint + capacity`), puts a wrap marker at the write
//! position and continues at the next lap. The tail after the marker is
//! skipped, and counts as pending until the checkpoint passes it.
//!
//! Invariant: the slot at the write position is zero. Commit first zeroes
//! the slot after the new record, then stamps the record's slot (a release
//! store); a wrap zeroes the next lap's first slot before writing the
//! marker. So the chain of slots from the checkpoint only ever leads to
//! slots written in order since, and ends at a zero slot: stale data of
//! earlier laps past the write position is never reached, and even if it
//! were, its tag names another lap.
//!
//! A checkpoint on a wrap marker moves on to the start of the next lap, so
//! it rests on a record or equals the write position. An empty ring (the
//! checkpoint at the write position) therefore always takes a frame,
//! wrapping if need be, since the capacity holds a frame and a slot.
//!
//! ## Recovery
//!
//! Recovery walks from the checkpoint. A committed slot of the expected lap
//! gives the length of a record. A wrap marker of the expected lap continues
//! at the next lap. A positive mtype (killed between msgrcv and commit) is
//! accepted if its body is one valid envelope, whose length it then gives,
//! and is committed now; it is necessarily the last record, so the walk
//! stops after it (the slot after it was not zeroed yet, and now is). A zero
//! slot ends the data. Anything else, a length beyond `max_record`, or a
//! record reaching past the area or past `checkpoint + capacity` is garbage:
//! reported in [`RecoveryReport::stopped_at_garbage`], and the write
//! position is put there, its slot zeroed. Whatever lies past it needs no
//! zeroing: by the invariant no chain reaches it again.
//!
//! Damage is not recovered over in silence. [`Journal::open`] refuses
//! ([`JournalError::Damaged`], the file untouched) when the garbage may
//! hide pending records: some position past it, within the ring, holds a
//! committed record word of its lap. The one garbage it accepts is the
//! last received message when that is not an envelope (a positive mtype
//! over junk: the receiver commits before it receives again, so nothing
//! follows it). Likewise a file whose magic is zero is only taken for one
//! whose creation was interrupted if its data area is all zeros; otherwise
//! it is refused rather than recreated. [`Journal::open_with`] and
//! [`OnDamage::Discard`] let an operator give the hidden records up; the
//! [`RecoveryReport`] says what was found either way.

mod file;
mod format;
mod recover;
mod view;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::MmapRaw;
use sysvmq::HEADER_LEN;

use format::{
    frame_span, min_capacity, pad8, record_word, wrap_word, Slot, FIELDS_LEN, OFF_CAPACITY,
    OFF_CHECKPOINT, OFF_MAX_RECORD, OFF_VERSION, SLOT,
};
pub use format::{
    lap_tag, FORMAT_VERSION, HEADER_SIZE, MAGIC, MAX_RECORD_LIMIT, TAG_BIT, WRAP_LEN,
};
pub use view::JournalView;

use crate::state_dir::{create_file, Access};

/// Why the journal could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal {}: {source}; check that its directory exists, is writable and has space", path.display())]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not a journal this version can read; it is left untouched.
    #[error("journal {}: {reason}; move it aside (it may hold undelivered events) or configure another journal path", path.display())]
    Format {
        /// The journal file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The capacity cannot hold one record of `max_record` bytes and the
    /// slot after it, or `max_record` is beyond the format's 4 GiB.
    #[error("journal {}: {capacity} data bytes cannot take records of up to {max_record} bytes; raise the journal size to at least {} bytes (records are limited to 4 GiB)", path.display(), min_capacity(*.max_record))]
    TooSmall {
        /// The journal file.
        path: PathBuf,
        /// The data capacity asked for.
        capacity: u64,
        /// The record size asked for.
        max_record: u64,
    },
    /// The journal is damaged where pending records may follow: opening it
    /// would give them up.
    #[error("journal {}: {reason}; opening it would give those events up. Keep the file (move it aside and start with a fresh journal), or start the drain with --discard-damaged-journal (config discard_damaged_journal = true) to deliver what can be read and give up the rest", path.display())]
    Damaged {
        /// The journal file.
        path: PathBuf,
        /// What is damaged, with positions.
        reason: String,
    },
    /// Another process holds the journal's lock.
    #[error("journal {}: another process (a second drain?) has it open; stop it or give each drain its own journal", path.display())]
    Locked {
        /// The journal file.
        path: PathBuf,
    },
}

/// Where one record lies in the journal, by virtual positions (see the
/// [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Position of the record's slot.
    pub offset: u64,
    /// Position past the record and its padding: the checkpoint that
    /// acknowledges it.
    pub end: u64,
    /// Body length in bytes.
    pub len: usize,
}

/// What [`Journal::open_with`] does with damage that may hide pending
/// records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnDamage {
    /// Refuse to open ([`JournalError::Damaged`]), leaving the file as it is.
    #[default]
    Refuse,
    /// Open, keeping the records before the damage and giving up the rest
    /// (the operator's choice; the report says what).
    Discard,
}

/// What [`Journal::open`] found from the checkpoint on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records to produce again.
    pub records: usize,
    /// Data bytes from the checkpoint to the write position: the records,
    /// their slots and padding, and any tail skipped by a wrap.
    pub bytes: u64,
    /// Position of bytes that are no record, where recovery stopped: worth
    /// a warning, as the file was damaged or written by something else.
    pub stopped_at_garbage: Option<u64>,
    /// Positions past the garbage that hold committed record words: pending
    /// records given up (only with [`OnDamage::Discard`]; otherwise the
    /// open is refused).
    pub records_after_garbage: Vec<u64>,
    /// The file's magic was gone while its data area held bytes, and it was
    /// recreated (only with [`OnDamage::Discard`]).
    pub recreated_damaged: bool,
}

impl RecoveryReport {
    /// Whether recovery met damage (garbage or a wiped header).
    pub fn damaged(&self) -> bool {
        self.stopped_at_garbage.is_some() || self.recreated_damaged
    }
}

/// The memory-mapped journal; see the [module docs](self).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Held for its `flock`, which ends when it closes.
    _file: File,
    /// One mapping, shared with [`JournalView`]s: raw, so only the ranges
    /// each side owns are ever borrowed, never the whole changing area.
    map: Arc<MmapRaw>,
    capacity: u64,
    max_record: u64,
    /// Data bytes a reserved frame may take with padding.
    span: u64,
    write: u64,
    checkpoint: u64,
    recovered: Vec<RecordRef>,
    report: RecoveryReport,
}

impl Journal {
    /// Opens or creates the journal at `path` with `capacity` data bytes
    /// (rounded up to whole pages) for bodies up to `max_record` bytes.
    ///
    /// A file with nothing pending is recreated as asked. One holding
    /// pending records keeps its capacity (their positions depend on it) and
    /// raises its `max_record` if a frame of the new size and a slot still
    /// fit; otherwise it keeps its `max_record` too, until an open finds it
    /// empty. Pending records are never discarded.
    pub fn open(path: &Path, capacity: u64, max_record: u64) -> Result<Journal, JournalError> {
        Journal::open_with(path, capacity, max_record, OnDamage::Refuse)
    }

    /// [`Journal::open`], with the choice of what damage that may hide
    /// pending records does (see the [module docs](self)).
    pub fn open_with(
        path: &Path,
        capacity: u64,
        max_record: u64,
        on_damage: OnDamage,
    ) -> Result<Journal, JournalError> {
        let capacity = capacity.div_ceil(HEADER_SIZE).saturating_mul(HEADER_SIZE);
        if capacity < min_capacity(max_record) || max_record > MAX_RECORD_LIMIT {
            let path = path.to_path_buf();
            return Err(JournalError::TooSmall {
                path,
                capacity,
                max_record,
            });
        }
        let file = create_file(path, Access::ReadWrite).map_err(io_error(path))?;
        file::lock(path, &file)?;
        let header = match file::read_header(path, &file)? {
            file::Found::Header(header) => header,
            file::Found::Nothing => {
                return Journal::create(path.to_path_buf(), file, capacity, max_record)
            }
            file::Found::WipedHeader { data_at } => {
                if on_damage == OnDamage::Refuse {
                    return Err(JournalError::Damaged {
                        path: path.to_path_buf(),
                        reason: format!(
                            "its header's magic is zero, yet its data area holds bytes (the                              first at data offset {data_at}): the header was damaged and                              records may be pending"
                        ),
                    });
                }
                let mut journal = Journal::create(path.to_path_buf(), file, capacity, max_record)?;
                journal.report.recreated_damaged = true;
                return Ok(journal);
            }
        };
        let mut journal =
            Journal::map(path.to_path_buf(), file, header.capacity, header.max_record)?;
        journal.checkpoint = header.checkpoint;
        journal.recover(on_damage)?;
        if journal.recovered.is_empty()
            && [header.capacity, header.max_record] != [capacity, max_record]
        {
            let report = std::mem::take(&mut journal.report);
            let Journal {
                path,
                _file: file,
                map,
                ..
            } = journal;
            drop(map);
            let mut journal = Journal::create(path, file, capacity, max_record)?;
            journal.report = report;
            return Ok(journal);
        }
        if header.max_record < max_record && journal.capacity >= min_capacity(max_record) {
            journal.max_record = max_record;
            journal.span = frame_span(max_record);
            journal.store_word(OFF_MAX_RECORD as u64, max_record, Ordering::Release);
        }
        Ok(journal)
    }

    fn map(
        path: PathBuf,
        file: File,
        capacity: u64,
        max_record: u64,
    ) -> Result<Journal, JournalError> {
        let map = file::map_file(&path, &file, HEADER_SIZE.saturating_add(capacity))?;
        let map = Arc::new(MmapRaw::from(map));
        Ok(Journal {
            path,
            _file: file,
            map,
            capacity,
            max_record,
            span: frame_span(max_record),
            write: 0,
            checkpoint: 0,
            recovered: Vec::new(),
            report: RecoveryReport::default(),
        })
    }

    /// Writes a fresh journal over `file`, magic last: a crash before that
    /// leaves zeros, which the next open takes for a new file.
    fn create(
        path: PathBuf,
        file: File,
        capacity: u64,
        max_record: u64,
    ) -> Result<Journal, JournalError> {
        // Truncating first zeroes whatever an older journal left behind.
        let len = HEADER_SIZE.saturating_add(capacity);
        file.set_len(0)
            .and_then(|()| file.set_len(len))
            .map_err(io_error(&path))?;
        let mut journal = Journal::map(path, file, capacity, max_record)?;
        journal.put(
            OFF_VERSION,
            &(u64::from(FORMAT_VERSION) | HEADER_SIZE << 32).to_le_bytes(),
        );
        journal.put(OFF_CAPACITY, &capacity.to_le_bytes());
        journal.put(OFF_MAX_RECORD, &max_record.to_le_bytes());
        journal.put(0, &MAGIC);
        Ok(journal)
    }

    /// Records found at open from the checkpoint to the last complete one,
    /// oldest first, to produce again before anything new.
    pub fn recovered(&self) -> Vec<RecordRef> {
        self.recovered.clone()
    }

    /// What recovery found at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The frame at the write position, [`HEADER_LEN`] + `max_record` bytes,
    /// for `Queue::try_receive_into`, wrapping to the next lap first if the
    /// area's end leaves no room. `None` while the ring is full: the frame
    /// would overwrite records not yet acknowledged, so wait for
    /// acknowledgements and try again.
    pub fn reserve(&mut self) -> Option<&mut [u8]> {
        if !self.fits(self.write) {
            if self.phys(self.write).saturating_add(self.span + SLOT) <= self.capacity {
                return None; // It would fit here, but reach pending records.
            }
            self.wrap()?;
            if !self.fits(self.write) {
                return None;
            }
        }
        let start = usize::try_from(HEADER_SIZE + self.phys(self.write)).ok()?;
        let len = HEADER_LEN.checked_add(usize::try_from(self.max_record).ok()?)?;
        self.range_mut(start, len)
    }

    /// Ends the lap at the write position with a wrap marker and moves the
    /// write position to the next lap's start, if that slot is free.
    fn wrap(&mut self) -> Option<()> {
        let at = self.write;
        let next = self.next_lap(at)?;
        if next.checked_add(SLOT)? > self.limit() {
            return None;
        }
        self.store_slot(next, 0, Ordering::Relaxed);
        self.store_slot(at, wrap_word(self.lap(at)), Ordering::Release);
        self.write = next;
        if self.checkpoint == at {
            // Nothing pending: the checkpoint never rests on a wrap marker.
            self.store_checkpoint(next);
        }
        Some(())
    }

    /// Commits the message msgrcv just wrote into the reserved frame
    /// (`body_len` is what it returned) and returns its record. Without room
    /// for a frame (no successful reserve) it writes nothing and returns an
    /// empty record.
    pub fn commit(&mut self, body_len: usize) -> RecordRef {
        let at = self.write;
        let len = (body_len as u64).min(self.max_record);
        let reserved = self.fits(at);
        debug_assert!(
            reserved && body_len as u64 <= self.max_record,
            "commit without reserve"
        );
        if !reserved {
            return RecordRef {
                offset: at,
                end: at,
                len: 0,
            };
        }
        let end = at + SLOT + pad8(len);
        // Zero the next slot first: a crash between the two stores leaves
        // an uncommitted record followed by a zero slot, never a committed
        // one followed by stale bytes.
        self.store_slot(end, 0, Ordering::Relaxed);
        self.store_slot(at, record_word(self.lap(at), len), Ordering::Release);
        self.write = end;
        RecordRef {
            offset: at,
            end,
            len: len as usize,
        }
    }

    /// The body of a pending `record`; empty for a record not of this journal.
    pub fn body(&self, record: &RecordRef) -> &[u8] {
        self.phys(record.offset)
            .checked_add(SLOT)
            .and_then(|at| self.data(at, record.len as u64))
            .unwrap_or_default()
    }

    /// Persists the checkpoint: every record ending at or before `offset` is
    /// acknowledged. Ignored unless it moves forward to a record boundary at
    /// most the write position, so late or repeated acknowledgements are
    /// harmless. A checkpoint on a wrap marker moves on to the next lap.
    pub fn checkpoint(&mut self, offset: u64) {
        if offset <= self.checkpoint || offset > self.write || offset % SLOT != 0 {
            return;
        }
        let offset = match (self.slot(offset), self.next_lap(offset)) {
            (Some(Slot::Wrap), Some(next)) if offset < self.write && next <= self.write => next,
            _ => offset,
        };
        self.store_checkpoint(offset);
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Position of the first record not yet acknowledged.
    pub fn checkpoint_offset(&self) -> u64 {
        self.checkpoint
    }

    /// Position the next record goes to.
    pub fn write_offset(&self) -> u64 {
        self.write
    }

    /// Data bytes of the file: its own, which differ from what
    /// [`Journal::open`] asked for if records were pending.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Largest body a reserved frame takes.
    pub fn max_record(&self) -> u64 {
        self.max_record
    }

    /// Data bytes between the checkpoint and the write position (both
    /// virtual): pending records with their slots and padding, and the tail
    /// of a lap skipped by a wrap until the checkpoint passes it. At most
    /// `capacity - 8`.
    pub fn pending_bytes(&self) -> u64 {
        self.write - self.checkpoint
    }

    /// Writes the mapping back to disk (`msync`) for a clean shutdown; a
    /// process crash needs none, as the page cache survives it.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.map.flush().map_err(io_error(&self.path))
    }

    fn lap(&self, at: u64) -> u64 {
        at / self.capacity
    }

    /// Data offset of position `at`.
    fn phys(&self, at: u64) -> u64 {
        at % self.capacity
    }

    /// Position of the start of the lap after the one `at` is in.
    fn next_lap(&self, at: u64) -> Option<u64> {
        self.lap(at).checked_add(1)?.checked_mul(self.capacity)
    }

    /// Where pending data starts again one lap on: nothing may be written
    /// at or past it.
    fn limit(&self) -> u64 {
        self.checkpoint.saturating_add(self.capacity)
    }

    /// Whether a frame at `at` and the slot after it lie within the area,
    /// contiguous, and before [`Journal::limit`].
    fn fits(&self, at: u64) -> bool {
        let need = self.span + SLOT;
        self.phys(at).saturating_add(need) <= self.capacity
            && at.saturating_add(need) <= self.limit()
    }

    /// `len` data bytes at data offset `at`, if in bounds.
    fn data(&self, at: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(HEADER_SIZE.checked_add(at)?).ok()?;
        self.range(start, usize::try_from(len).ok()?)
    }

    /// The slot at position `at`, read in its lap.
    fn slot(&self, at: u64) -> Option<Slot> {
        let bytes = self.data(self.phys(at), SLOT)?.try_into().ok()?;
        Some(Slot::decode(bytes, self.lap(at)))
    }

    /// `len` bytes of the mapping at `start`, if in bounds.
    fn range(&self, start: usize, len: usize) -> Option<&[u8]> {
        let end = start.checked_add(len)?;
        if end > self.map.len() {
            return None;
        }
        // SAFETY: in bounds (checked above) of a mapping that lives as long
        // as `self`. The journal's owner writes only through `&mut self`,
        // so not while this borrow lives; views read only pending records'
        // bodies, which nobody writes.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(start), len) })
    }

    /// `len` bytes of the mapping at `start` to write, if in bounds.
    fn range_mut(&mut self, start: usize, len: usize) -> Option<&mut [u8]> {
        let end = start.checked_add(len)?;
        if end > self.map.len() {
            return None;
        }
        // SAFETY: in bounds (checked above) of a mapping that lives as long
        // as `self`, and `&mut self` excludes every other borrow the journal
        // hands out. The journal writes only frames past the write position
        // and header fields, never a pending record's body, which is all a
        // view reads.
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(start), len) })
    }

    fn put(&mut self, off: usize, bytes: &[u8]) {
        if let Some(dst) = off
            .checked_add(bytes.len())
            .and_then(|_| self.range_mut(off, bytes.len()))
        {
            dst.copy_from_slice(bytes);
        }
    }

    fn store_checkpoint(&mut self, at: u64) {
        self.checkpoint = at;
        self.store_word(OFF_CHECKPOINT as u64, at, Ordering::Release);
    }

    /// Stores the slot word at position `at`.
    fn store_slot(&mut self, at: u64, word: u64, ordering: Ordering) {
        self.store_word(HEADER_SIZE + self.phys(at), word, ordering);
    }

    /// Stores `word` at file offset `off` as one aligned atomic (if aligned
    /// and mapped, which header fields and slots are), so that a crash sees
    /// the old or the new value and the compiler keeps the order of stores
    /// that `ordering` asks for.
    fn store_word(&mut self, off: u64, word: u64, ordering: Ordering) {
        debug_assert!(off % 8 == 0 && (off >= HEADER_SIZE || off < FIELDS_LEN as u64));
        let Some(off) = usize::try_from(off).ok().filter(|off| off % 8 == 0) else {
            return;
        };
        match off.checked_add(8) {
            Some(end) if end <= self.map.len() => {}
            _ => return,
        }
        // SAFETY: the mapping is page aligned and `off` is an 8-aligned
        // offset with 8 mapped bytes after it, so the pointer is valid and
        // aligned for an AtomicU64. Header fields and slots are written only
        // here, by the journal's owner (`&mut self`); views read record
        // bodies, never slots; other processes are kept out by the flock.
        let atomic = unsafe { &*self.map.as_mut_ptr().add(off).cast::<AtomicU64>() };
        atomic.store(word.to_le(), ordering);
    }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}
