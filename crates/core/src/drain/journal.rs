//! The drain's journal: a memory-mapped file that SysV messages are received
//! straight into, so the drain never holds an event only in its own memory.
//!
//! [`Journal::reserve`] hands out a frame inside the mapping and `msgrcv`
//! copies the message into it, that is into the file's page cache, which
//! outlives the process: a `kill -9` right after the receive loses nothing.
//! It does not outlive a kernel crash (neither does the queue), so the hot
//! path never calls `msync`; [`Journal::flush`] is for shutdown.
//! [`Journal::commit`] stamps a record header over the frame's mtype;
//! [`Journal::checkpoint`] persists the offset of the first record Kafka has
//! not acknowledged. On open, the records from the checkpoint on are
//! [`Journal::recovered`] for the drain to produce again (at-least-once).
//! Once all is acknowledged, [`Journal::rewind_if_drained`] restarts at 0.
//!
//! msgrcv dequeues a message before copying it, so a failed copy would lose
//! it: the file's blocks are allocated (`posix_fallocate`) and every page is
//! write-faulted at open, so the copy never meets a full disk. An exclusive
//! `flock` keeps a second drain out of the file.
//!
//! # File format, version 1 (little-endian)
//!
//! A 4096-byte header page (zero past these fields), then `capacity` data bytes.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `SEJOURN1` |
//! | 8 | 4 | format version, 1 |
//! | 12 | 4 | header size, 4096: the data area starts here |
//! | 16 | 8 | data capacity in bytes, a multiple of 8 |
//! | 24 | 8 | `max_record`: largest body a frame takes (the `msgmax` it was sized for) |
//! | 32 | 8 | checkpoint: data offset of the first record not yet acknowledged |
//! | 40 | 8 | generation: bumped by each rewind, for debugging |
//!
//! Checkpoint and generation change by single aligned atomic stores, so a
//! crash leaves the old or the new value. Records sit at 8-byte aligned data
//! offsets: `[slot: 8][body][zero padding to 8]`. msgrcv writes the native
//! `c_long` mtype into the slot; commit overwrites it with `u32 body_len, u32
//! RECORD_MAGIC`, whose top bit makes the slot a negative i64, never an mtype
//! (> 0). Everything past the write position is zero.
//!
//! Recovery walks from the checkpoint. A committed slot gives the length. A
//! positive mtype (killed between msgrcv and commit) is accepted if its body
//! is one valid envelope, whose length it then gives, and is committed now.
//! A zero slot ends the data. Anything else, or a length beyond `max_record`
//! or the area, is garbage: reported in [`RecoveryReport::stopped_at_garbage`],
//! and the rest of the area is zeroed so new records are never misread.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapMut, MmapOptions};
use sysvmq::HEADER_LEN;

use crate::envelope::{envelope_len, Envelope};

/// First 8 bytes of a journal file.
pub const MAGIC: [u8; 8] = *b"SEJOURN1";
/// The file format version this module writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the header page; the data area starts here.
pub const HEADER_SIZE: u64 = 4096;
/// High half of a committed record's slot: "SEJR" with the top bit set.
pub const RECORD_MAGIC: u32 = 0xD345_4A52;

const SLOT: u64 = HEADER_LEN as u64;
const OFF_VERSION: usize = 8;
const OFF_CAPACITY: usize = 16;
const OFF_MAX_RECORD: usize = 24;
const OFF_CHECKPOINT: usize = 32;
const OFF_GENERATION: usize = 40;
const FIELDS_LEN: usize = 48;

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
    /// The capacity cannot hold one record of `max_record` bytes, or
    /// `max_record` is beyond the format's 4 GiB.
    #[error("journal {}: {capacity} data bytes cannot take records of up to {max_record} bytes; raise the journal size to at least {} bytes (records are limited to 4 GiB)", path.display(), frame_span(*.max_record))]
    TooSmall {
        /// The journal file.
        path: PathBuf,
        /// The data capacity asked for.
        capacity: u64,
        /// The record size asked for.
        max_record: u64,
    },
    /// Another process holds the journal's lock.
    #[error("journal {}: another process (a second drain?) has it open; stop it or give each drain its own journal", path.display())]
    Locked {
        /// The journal file.
        path: PathBuf,
    },
}

/// Where one record lies in the data area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Data offset of the record's slot.
    pub offset: u64,
    /// Data offset past the record and its padding: the checkpoint that
    /// acknowledges it.
    pub end: u64,
    /// Body length in bytes.
    pub len: usize,
}

/// What [`Journal::open`] found from the checkpoint on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records to produce again.
    pub records: usize,
    /// Data bytes they take, slots and padding included.
    pub bytes: u64,
    /// Data offset of bytes that are no record, where recovery stopped:
    /// worth a warning, as the file was damaged or written by something else.
    pub stopped_at_garbage: Option<u64>,
}

/// The memory-mapped journal; see the [module docs](self).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    map: MmapMut,
    capacity: u64,
    max_record: u64,
    /// Data bytes a reserved frame may take with padding.
    span: u64,
    write: u64,
    checkpoint: u64,
    generation: u64,
    recovered: Vec<RecordRef>,
    report: RecoveryReport,
}

impl Journal {
    /// Opens or creates the journal at `path` with `capacity` data bytes
    /// (rounded up to whole pages) for bodies up to `max_record` bytes.
    ///
    /// A file holding pending records keeps its capacity and raises its
    /// `max_record` (growing if a frame would not fit); one with nothing
    /// pending is recreated as asked. Pending records are never discarded.
    pub fn open(path: &Path, capacity: u64, max_record: u64) -> Result<Journal, JournalError> {
        let capacity = capacity.div_ceil(HEADER_SIZE).saturating_mul(HEADER_SIZE);
        if capacity < frame_span(max_record) || max_record > u64::from(u32::MAX) {
            let path = path.to_path_buf();
            return Err(JournalError::TooSmall {
                path,
                capacity,
                max_record,
            });
        }
        let mut options = OpenOptions::new();
        let file = options.read(true).write(true).create(true).truncate(false);
        let file = file.open(path).map_err(io_error(path))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => JournalError::Locked {
                    path: path.to_path_buf(),
                },
                _ => io_error(path)(err),
            });
        }
        let Some(header) = read_header(path, &file)? else {
            return Journal::create(path.to_path_buf(), file, capacity, max_record);
        };
        let [file_capacity, file_max, checkpoint, generation] = header;
        let mut journal = Journal::map(path.to_path_buf(), file, file_capacity, file_max)?;
        (journal.checkpoint, journal.generation) = (checkpoint, generation);
        journal.recover();
        if journal.recovered.is_empty() && [file_capacity, file_max] != [capacity, max_record] {
            let report = std::mem::take(&mut journal.report);
            let Journal {
                path, file, map, ..
            } = journal;
            drop(map);
            let mut journal = Journal::create(path, file, capacity, max_record)?;
            journal.report = report;
            return Ok(journal);
        }
        if file_max < max_record {
            journal.grow(capacity, max_record)?;
        }
        Ok(journal)
    }

    fn map(
        path: PathBuf,
        file: File,
        capacity: u64,
        max_record: u64,
    ) -> Result<Journal, JournalError> {
        let map = map_file(&path, &file, HEADER_SIZE + capacity)?;
        let span = frame_span(max_record);
        let (write, checkpoint, generation, recovered) = (0, 0, 0, Vec::new());
        let report = RecoveryReport::default();
        Ok(Journal {
            path,
            file,
            map,
            capacity,
            max_record,
            span,
            write,
            checkpoint,
            generation,
            recovered,
            report,
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
        let len = HEADER_SIZE + capacity;
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

    /// Raises `max_record` in place, growing the file if a frame would not
    /// fit: records keep their offsets and the new space is zero.
    fn grow(&mut self, capacity: u64, max_record: u64) -> Result<(), JournalError> {
        let span = frame_span(max_record);
        if self.capacity < span {
            let capacity = capacity.max(span);
            let len = HEADER_SIZE + capacity;
            self.file.set_len(len).map_err(io_error(&self.path))?;
            self.map = map_file(&self.path, &self.file, len)?;
            self.capacity = capacity;
            self.put(OFF_CAPACITY, &capacity.to_le_bytes());
        }
        (self.max_record, self.span) = (max_record, span);
        self.put(OFF_MAX_RECORD, &max_record.to_le_bytes());
        Ok(())
    }

    /// Walks from the checkpoint; see the module docs.
    fn recover(&mut self) {
        let mut at = self.checkpoint;
        while let Some(slot) = self
            .data(at, SLOT)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
        {
            let word = u64::from_le_bytes(slot);
            if word == 0 {
                break;
            }
            let len = if (word >> 32) as u32 == RECORD_MAGIC {
                Some(word & u64::from(u32::MAX))
            } else if i64::from_ne_bytes(slot) > 0 {
                self.uncommitted_len(at)
            } else {
                None
            };
            let room = self.capacity - at - SLOT;
            let Some(len) = len.filter(|&len| len <= self.max_record && pad8(len) <= room) else {
                self.report.stopped_at_garbage = Some(at);
                self.zero(at, self.capacity - at);
                break;
            };
            self.put_slot(at, len);
            let end = at + SLOT + pad8(len);
            self.recovered.push(RecordRef {
                offset: at,
                end,
                len: len as usize,
            });
            at = end;
        }
        self.write = at;
        self.report.records = self.recovered.len();
        self.report.bytes = at - self.checkpoint;
    }

    /// The length of a body msgrcv wrote but commit never stamped, if it is
    /// one whole valid envelope: nothing else says where it ends.
    fn uncommitted_len(&self, at: u64) -> Option<u64> {
        let body = self.data(at + SLOT, self.max_record.min(self.capacity - at - SLOT))?;
        let len = envelope_len(body).ok()??;
        Envelope::decode(body.get(..len)?).ok()?;
        Some(len as u64)
    }

    /// Records found at open from the checkpoint to the last complete one,
    /// oldest first, to produce again before anything new; empty after a
    /// rewind.
    pub fn recovered(&self) -> Vec<RecordRef> {
        self.recovered.clone()
    }

    /// What recovery found at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The frame at the write position, [`HEADER_LEN`] + `max_record` bytes,
    /// for `Queue::try_receive_into`; `None` when the data area has not that
    /// much left (wait for acknowledgements, then rewind).
    pub fn reserve(&mut self) -> Option<&mut [u8]> {
        if self.capacity - self.write < self.span {
            return None;
        }
        let start = (HEADER_SIZE + self.write) as usize;
        self.map
            .get_mut(start..start + HEADER_LEN + self.max_record as usize)
    }

    /// Commits the message msgrcv just wrote into the reserved frame
    /// (`body_len` is what it returned) and returns its record. Without room
    /// for a frame (no successful reserve) it writes nothing and returns an
    /// empty record.
    pub fn commit(&mut self, body_len: usize) -> RecordRef {
        let (offset, len) = (self.write, (body_len as u64).min(self.max_record));
        let reserved = self.capacity - offset >= self.span;
        debug_assert!(
            reserved && body_len as u64 <= self.max_record,
            "commit without reserve"
        );
        if reserved {
            self.put_slot(offset, len);
            self.write = offset + SLOT + pad8(len);
        }
        let len = if reserved { len as usize } else { 0 };
        RecordRef {
            offset,
            end: self.write,
            len,
        }
    }

    /// The body of `record`; empty for a record not of this journal.
    pub fn body(&self, record: &RecordRef) -> &[u8] {
        self.data(record.offset + SLOT, record.len as u64)
            .unwrap_or_default()
    }

    /// Persists the checkpoint: every record ending at or before `offset` is
    /// acknowledged. Ignored unless it moves forward to a record boundary at
    /// most the write position, so late or repeated acknowledgements are
    /// harmless.
    pub fn checkpoint(&mut self, offset: u64) {
        if offset <= self.checkpoint || offset > self.write || offset % SLOT != 0 {
            return;
        }
        self.checkpoint = offset;
        self.header_word(OFF_CHECKPOINT)
            .store(offset.to_le(), Ordering::Release);
    }

    /// Data offset of the first record not yet acknowledged.
    pub fn checkpoint_offset(&self) -> u64 {
        self.checkpoint
    }

    /// Data offset the next record goes to.
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

    /// Rewinds since the file was created.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Data bytes between the checkpoint and the write position.
    pub fn pending_bytes(&self) -> u64 {
        self.write - self.checkpoint
    }

    /// When everything is acknowledged (checkpoint = write position > 0),
    /// zeroes the used area and starts again at offset 0; returns whether it
    /// rewound.
    pub fn rewind_if_drained(&mut self) -> Result<bool, JournalError> {
        if self.checkpoint != self.write || self.write == 0 {
            return Ok(false);
        }
        // Zero first, reset the checkpoint second. A crash while zeroing
        // leaves the checkpoint at the old write position with zeros from
        // there on: a restart replays nothing, and its next rewind zeroes
        // again. The other order would, after a crash, point the checkpoint
        // at acknowledged records not yet zeroed and produce them again.
        // The Release store keeps the zeroing before it.
        self.zero(0, self.write);
        self.header_word(OFF_CHECKPOINT).store(0, Ordering::Release);
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation.to_le();
        self.header_word(OFF_GENERATION)
            .store(generation, Ordering::Release);
        (self.checkpoint, self.write) = (0, 0);
        self.recovered.clear();
        Ok(true)
    }

    /// Writes the mapping back to disk (`msync`) for a clean shutdown; a
    /// process crash needs none, as the page cache survives it.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.map.flush().map_err(io_error(&self.path))
    }

    /// `len` data bytes at data offset `at`, if in bounds.
    fn data(&self, at: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(HEADER_SIZE.checked_add(at)?).ok()?;
        self.map
            .get(start..start.checked_add(usize::try_from(len).ok()?)?)
    }

    fn put(&mut self, off: usize, bytes: &[u8]) {
        if let Some(dst) = self.map.get_mut(off..off + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    fn put_slot(&mut self, at: u64, len: u64) {
        let slot = u64::from(RECORD_MAGIC) << 32 | len;
        self.put((HEADER_SIZE + at) as usize, &slot.to_le_bytes());
    }

    fn zero(&mut self, at: u64, len: u64) {
        let start = (HEADER_SIZE + at) as usize;
        if let Some(area) = self.map.get_mut(start..start + len as usize) {
            area.fill(0);
        }
    }

    /// A header field as an atomic, so a crash sees its old or new value.
    fn header_word(&mut self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= FIELDS_LEN);
        // SAFETY: the mapping is page aligned and longer than the header, and
        // `off` is an 8-aligned field offset in it, so the pointer is valid and
        // aligned for an AtomicU64. It comes from `&mut self.map`, so no slice
        // of the map aliases it while the reference lives; other processes
        // are kept out by the flock.
        unsafe { &*self.map.as_mut_ptr().add(off).cast::<AtomicU64>() }
    }
}

/// Data bytes a record of up to `max_record` body bytes may take.
fn frame_span(max_record: u64) -> u64 {
    SLOT.saturating_add(pad8(max_record))
}

fn pad8(len: u64) -> u64 {
    len.saturating_add(7) & !7
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Capacity, max_record, checkpoint and generation of an existing journal;
/// `None` for an empty file or one whose magic was never written (a crash
/// while creating it).
fn read_header(path: &Path, file: &File) -> Result<Option<[u64; 4]>, JournalError> {
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut head = [0u8; FIELDS_LEN];
    let got = head.len().min(len as usize);
    file.read_exact_at(&mut head[..got], 0)
        .map_err(io_error(path))?;
    let word = |off: usize| u64::from_le_bytes(head[off..off + 8].try_into().unwrap_or_default());
    let fields = [OFF_CAPACITY, OFF_MAX_RECORD, OFF_CHECKPOINT, OFF_GENERATION].map(word);
    let [capacity, max_record, checkpoint, _] = fields;
    let (version, header_size) = (word(OFF_VERSION) as u32, word(OFF_VERSION) >> 32);
    let reason = if word(0) == 0 {
        return Ok(None);
    } else if head[..8] != MAGIC {
        format!("not a shopify_events journal (it starts {:?})", &head[..8])
    } else if version != FORMAT_VERSION || header_size != HEADER_SIZE {
        format!("format version {version}, header {header_size} bytes; this drain reads version {FORMAT_VERSION}")
    } else if capacity % SLOT != 0
        || max_record > u64::from(u32::MAX)
        || capacity < frame_span(max_record)
    {
        format!("impossible geometry: capacity {capacity}, max_record {max_record}")
    } else if len < HEADER_SIZE + capacity {
        format!(
            "the file is {len} bytes, shorter than the {} its header declares",
            HEADER_SIZE + capacity
        )
    } else if checkpoint > capacity || checkpoint % SLOT != 0 {
        format!("checkpoint {checkpoint} is not a record offset within capacity {capacity}")
    } else {
        return Ok(Some(fields));
    };
    Err(JournalError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// Allocates real blocks for `len` bytes, maps them shared and write-faults
/// every page, so a copy into the mapping cannot fail for want of space.
fn map_file(path: &Path, file: &File, len: u64) -> Result<MmapMut, JournalError> {
    let size = libc::off_t::try_from(len).unwrap_or(libc::off_t::MAX);
    let code = loop {
        // SAFETY: posix_fallocate on a descriptor we own; no memory involved.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size) } {
            libc::EINTR => continue,
            code => break code,
        }
    };
    if code != 0 {
        return Err(io_error(path)(io::Error::from_raw_os_error(code)));
    }
    // SAFETY: the file is `len` bytes backed by blocks and locked against
    // other drains; another process truncating it would be an operator error
    // no mapping can guard against.
    let mut map =
        unsafe { MmapOptions::new().len(len as usize).map_mut(file) }.map_err(io_error(path))?;
    for page in (0..map.len()).step_by(HEADER_SIZE as usize) {
        // A write, not a read: runs the filesystem's page_mkwrite now rather
        // than inside msgrcv's copy.
        map[page] = black_box(map[page]);
    }
    Ok(map)
}
