//! A segment on the writer's side: created complete under a temporary name,
//! appended to in place, sealed, and then only watched until the reader is
//! done with it.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use super::file::{efbig, prefault, rename_noreplace, sync_dir};
use super::fork::{open_registered, Registered};
use super::format::{
    check_seed, offset_word, record_span, record_word, segment_name, temp_name, word_offset,
    Header, SegmentId, HEADER_SIZE, OFF_ACKED, OFF_PUBLISHED, OFF_SEALED, RECORD_HEADER, SEALED,
};
use super::options::SyncPolicy;
use super::{budget, lock, SpoolError, SpoolOptions};
use crate::clock;

/// The segment a writer appends to. Holds its lock (through the open
/// descriptor) until it is sealed.
#[derive(Debug)]
pub(super) struct Active {
    pub path: PathBuf,
    pub capacity: u64,
    /// Data bytes of complete records: the value of `published`.
    pub published: u64,
    /// Data offset up to which records were synced (for `Interval`).
    pub synced: u64,
    seed: u32,
    header: MmapRaw,
    data: MmapRaw,
    /// The descriptor that holds the lock (never mapped): closing it at
    /// seal releases the lock.
    _lock: Registered,
}

/// A sealed segment of this writer that the reader may not be done with:
/// only its header page stays mapped.
#[derive(Debug)]
pub(super) struct Retired {
    header: MmapRaw,
    published: u64,
}

impl Retired {
    /// Whether the reader's `acked` reached the final `published`.
    pub fn done(&self) -> bool {
        acked(&self.header) >= self.published
    }
}

/// A segment built complete (allocated, mapped, prefaulted, locked) under a
/// temporary name, not yet stamped with its id nor named: what a writer
/// creates ahead of need ([`SpoolOptions::prepare_ahead`]).
#[derive(Debug)]
pub(super) struct Prepared {
    temp: PathBuf,
    capacity: u64,
    header: MmapRaw,
    data: MmapRaw,
    lock: Registered,
}

/// Creates segment `id` with `capacity` data bytes (a multiple of 4096) in
/// `options.dir`, complete and locked, under its final name.
pub(super) fn create(
    options: &SpoolOptions,
    id: SegmentId,
    capacity: u64,
) -> Result<Active, SpoolError> {
    prepare(options, id, capacity)?.place(options, id)
}

/// Builds a segment of `capacity` data bytes under the temporary name of
/// `temp_id` (which need not be the id it gets when it is placed).
pub(super) fn prepare(
    options: &SpoolOptions,
    temp_id: SegmentId,
    capacity: u64,
) -> Result<Prepared, SpoolError> {
    let need = HEADER_SIZE + capacity;
    budget::check(options, need)?;
    let dir = &options.dir;
    let temp = dir.join(temp_name(options.queue_key, temp_id));
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let lock = open_registered(&temp, flags, options.mode)
        .map_err(|source| SpoolError::io(dir, &temp, "create", source))?;
    match build(options, &lock, &temp, capacity) {
        Ok((header, data)) => Ok(Prepared {
            temp,
            capacity,
            header,
            data,
            lock,
        }),
        Err(err) => {
            let _ = std::fs::remove_file(&temp);
            Err(err)
        }
    }
}

impl Prepared {
    /// Data bytes it holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Stamps the header with `id` and renames the file into place: from
    /// here on readers see it. No allocation and no page fault: a write of
    /// 64 bytes and one `rename` (plus the syncs the policy asks for).
    pub fn place(self, options: &SpoolOptions, id: SegmentId) -> Result<Active, SpoolError> {
        let dir = &options.dir;
        let path = dir.join(segment_name(options.queue_key, id));
        let stamp = Header {
            capacity: self.capacity,
            id,
            key: options.queue_key as u32,
            created_us: clock::now_micros(),
            pid: std::process::id(),
        }
        .encode();
        // SAFETY: 64 bytes into our 4096-byte header mapping, which no reader
        // maps yet: the file still has its temporary name.
        unsafe {
            std::ptr::copy_nonoverlapping(stamp.as_ptr(), self.header.as_mut_ptr(), stamp.len())
        };
        let placed = (|| {
            if options.sync != SyncPolicy::PageCache {
                self.header
                    .flush()
                    .map_err(|source| SpoolError::io(dir, &self.temp, "msync", source))?;
            }
            rename_noreplace(&self.temp, &path)
                .map_err(|source| SpoolError::io(dir, &path, "rename into place", source))?;
            if options.sync != SyncPolicy::PageCache {
                sync_dir(dir)?;
            }
            Ok(())
        })();
        if let Err(err) = placed {
            let _ = std::fs::remove_file(&self.temp);
            return Err(err);
        }
        Ok(Active {
            path,
            capacity: self.capacity,
            published: 0,
            synced: 0,
            seed: check_seed(id),
            header: self.header,
            data: self.data,
            _lock: self.lock,
        })
    }

    /// Removes the unused segment: its file, mappings and lock.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Locks the temporary file through `lock`, then sizes, maps and prefaults
/// it through a second open file description: a mapping holds
/// its description, and with it any OFD lock on it, for as long as the
/// mapping exists, in forked children too. So the lock's description is
/// never mapped, and closing its one descriptor (at seal, or in a child by
/// the atfork handler) really releases it.
fn build(
    options: &SpoolOptions,
    lock: &Registered,
    temp: &Path,
    capacity: u64,
) -> Result<(MmapRaw, MmapRaw), SpoolError> {
    let dir = &options.dir;
    let io = |op| move |source| SpoolError::io(dir, temp, op, source);
    lock::lock_exclusive(lock.as_fd()).map_err(io("lock"))?;
    let fd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(temp)
        .map_err(io("open"))?;
    give_dir_group(dir, &fd);
    // SAFETY: fchmod on a descriptor we own; the umask applied at open.
    if unsafe { libc::fchmod(fd.as_raw_fd(), options.mode as libc::mode_t) } != 0 {
        return Err(io("chmod")(io::Error::last_os_error()));
    }
    let len = HEADER_SIZE + capacity;
    let size = libc::off_t::try_from(len).map_err(|_| io("allocate")(efbig()))?;
    let code = loop {
        // SAFETY: posix_fallocate on a descriptor we own; no memory involved.
        match unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, size) } {
            libc::EINTR => continue,
            code => break code,
        }
    };
    match code {
        0 => {}
        libc::ENOSPC | libc::EDQUOT => return Err(disk_full(options, len)),
        code => return Err(io("allocate")(io::Error::from_raw_os_error(code))),
    }
    let map_len = usize::try_from(capacity).map_err(|_| io("map")(efbig()))?;
    let raw = &fd;
    // Raw maps (safe to create; every access through them is unsafe and
    // argued where it happens). The file is `len` bytes backed by allocated
    // blocks, created by us with O_EXCL and locked; nobody else truncates it
    // (an operator who does is warned in the module docs).
    let header = MmapOptions::new()
        .len(HEADER_SIZE as usize)
        .map_raw(raw)
        .map_err(io("map"))?;
    let data = MmapOptions::new()
        .offset(HEADER_SIZE)
        .len(map_len)
        .map_raw(raw)
        .map_err(io("map"))?;
    prefault(&data).map_err(io("prefault"))?;
    // The fixed fields (bytes 0..64) are stamped when the segment is placed.
    for off in [OFF_PUBLISHED, OFF_ACKED] {
        word(&header, off).store(offset_word(0).to_le(), Ordering::Relaxed);
    }
    Ok((header, data))
}

/// Gives the new file the spool directory's group, as a setgid directory
/// would: the drain reads segments through that group, and a directory
/// made without `shopify-events setup` (no setgid bit) would leave them in
/// the writer's own group, where the drain may not be. Best effort: a
/// writer outside that group cannot, and the reader reports the file it
/// cannot open.
fn give_dir_group(dir: &Path, file: &std::fs::File) {
    use std::os::unix::fs::MetadataExt;
    let (Ok(dir_meta), Ok(meta)) = (std::fs::metadata(dir), file.metadata()) else {
        return;
    };
    if meta.gid() != dir_meta.gid() {
        let _ = std::os::unix::fs::fchown(file, None, Some(dir_meta.gid()));
    }
}

impl Active {
    /// Whether the file is still in the directory under its name: not
    /// removed (its link count is not 0) and not replaced (the name refers
    /// to it). Two system calls (`fstat`, `stat`); a failed one says yes,
    /// so a passing error never costs a segment.
    #[cold]
    pub fn in_place(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: stat is plain old data; zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on our own descriptor into our own buffer.
        if unsafe { libc::fstat(self._lock.as_raw_fd(), &mut st) } != 0 {
            return true;
        }
        if st.st_nlink == 0 {
            return false;
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => meta.dev() == st.st_dev && meta.ino() == st.st_ino,
            Err(err) => err.kind() != std::io::ErrorKind::NotFound,
        }
    }

    /// Data bytes left for records.
    #[inline]
    pub fn room(&self) -> u64 {
        self.capacity - self.published
    }

    /// Copies a record of `envelope` to the end of the published data and
    /// publishes it. The caller checked that `span` (its size with header
    /// and padding) fits [`Active::room`].
    #[inline]
    pub fn append(&mut self, envelope: &[u8], span: u64) {
        let at = self.published;
        debug_assert!(span <= self.room() && at % 8 == 0);
        let record = record_word(self.seed, at, envelope.len() as u32);
        // SAFETY: `at + span` is within the data mapping (checked by the
        // caller), past every published record, so no reader reads these
        // bytes until the store of `published` below. The padding is still
        // zero: data is written once, front to back. `at` is 8-aligned and
        // the mapping page-aligned, so the word store is aligned.
        unsafe {
            let base = self.data.as_mut_ptr().add(at as usize);
            std::ptr::copy_nonoverlapping(
                envelope.as_ptr(),
                base.add(RECORD_HEADER as usize),
                envelope.len(),
            );
            base.cast::<u64>().write(record.to_le());
        }
        self.publish(span);
    }

    /// The `RECORD_HEADER + len` bytes after the published data, for a
    /// receiver to write a record into (`msgrcv` puts its message type where
    /// the record header goes). The caller checked that the record's span
    /// fits [`Active::room`].
    pub fn frame(&mut self, len: usize) -> &mut [u8] {
        let at = self.published as usize;
        debug_assert!(record_span(len as u64) <= self.room());
        // SAFETY: within the data mapping (the caller checked the span),
        // past every published record, so no reader reads these bytes; the
        // borrow of `self` keeps anyone else of this process from writing
        // them while the slice lives.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.data.as_mut_ptr().add(at),
                RECORD_HEADER as usize + len,
            )
        }
    }

    /// Publishes the record a receiver wrote into [`Active::frame`]: its
    /// `len`-byte envelope, which the caller validated, gets its record
    /// header (over the message type) and zero padding.
    pub fn publish_frame(&mut self, len: usize) {
        let at = self.published;
        let span = record_span(len as u64);
        debug_assert!(span <= self.room());
        let record = record_word(self.seed, at, len as u32);
        // SAFETY: as in `frame`; `at + span` is within the mapping, and the
        // header word is 8-aligned.
        unsafe {
            let base = self.data.as_mut_ptr().add(at as usize);
            let pad_from = RECORD_HEADER as usize + len;
            std::ptr::write_bytes(base.add(pad_from), 0, span as usize - pad_from);
            base.cast::<u64>().write(record.to_le());
        }
        self.publish(span);
    }

    /// Stores the new `published` (release), after the record's bytes.
    fn publish(&mut self, span: u64) {
        self.published += span;
        let published = offset_word(self.published).to_le();
        word(&self.header, OFF_PUBLISHED).store(published, Ordering::Release);
    }

    /// `msync`s the records published since the last sync, then the header
    /// page, so `published` never reaches disk ahead of its records.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.synced == self.published {
            return Ok(());
        }
        let from = self.synced & !(HEADER_SIZE - 1);
        let len = (self.published - from) as usize;
        self.data
            .flush_range(from as usize, len)
            .and_then(|()| self.header.flush())
            .map_err(|source| SpoolError::Io {
                path: self.path.clone(),
                op: "msync",
                source: source.into(),
            })?;
        self.synced = self.published;
        Ok(())
    }

    /// Whether the reader acknowledged every published record.
    pub fn acked_all(&self) -> bool {
        acked(&self.header) >= self.published
    }

    /// Seals the segment after its last publish and lets go of everything
    /// but its header page: the lock (the descriptor closes) and the data.
    pub fn seal(self, sync: SyncPolicy) -> Retired {
        word(&self.header, OFF_SEALED).store(SEALED.to_le(), Ordering::Release);
        if sync != SyncPolicy::PageCache {
            // Best effort: the records were synced as the policy asked; a
            // lost seal only makes the reader wait for the writer's death.
            let _ = self.header.flush();
        }
        Retired {
            header: self.header,
            published: self.published,
        }
    }
}

/// The reader's `acked`; 0 while its word is damaged (the reader then reads
/// the segment again from its start and rewrites it).
fn acked(header: &MmapRaw) -> u64 {
    word_offset(u64::from_le(
        word(header, OFF_ACKED).load(Ordering::Acquire),
    ))
    .unwrap_or(0)
}

/// The aligned 8-byte word at header offset `off` of a header mapping.
pub(super) fn word(header: &MmapRaw, off: usize) -> &AtomicU64 {
    debug_assert!(off % 8 == 0 && off + 8 <= header.len());
    // SAFETY: header mappings are 4096 bytes and page aligned; `off` is one
    // of the 8-aligned word offsets below 4096. Both processes access these
    // words only atomically.
    unsafe { &*header.as_mut_ptr().add(off).cast::<AtomicU64>() }
}

fn disk_full(options: &SpoolOptions, need: u64) -> SpoolError {
    let fs = budget::filesystem(&options.dir).unwrap_or(budget::Filesystem {
        size: 0,
        available: 0,
    });
    let (_, min_free) = budget::bounds(options, fs.size);
    let available = fs.available;
    SpoolError::DiskFull {
        dir: options.dir.clone(),
        available,
        need,
        min_free,
    }
}
