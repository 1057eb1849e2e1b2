//! A segment on the reader's side: mapped (header read-write for `acked`,
//! data read-only), its records validated in place.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use memmap2::{MmapOptions, MmapRaw};

use super::event::{DamageKind, IgnoreReason};
use crate::envelope::MIN_LEN;
use crate::spool::format::{
    check_seed, envelope_intact, envelope_time, offset_word, pad8, record_word, word_offset,
    Header, HeaderError, SegmentId, HEADER_SIZE, OFF_ACKED, OFF_PUBLISHED, OFF_SEALED,
    RECORD_HEADER, SEALED,
};
use crate::spool::lock::{self, FileId};
use crate::spool::segment::word;

/// A mapped segment and where the reader is in it.
#[derive(Debug)]
pub(super) struct ReadSegment {
    pub id: SegmentId,
    pub path: PathBuf,
    /// The identity of the file mapped: the name may come to refer to
    /// another file (replaced by hand), whose lock says nothing of this
    /// one's writer and which the reader never read.
    pub file: FileId,
    /// Creation time from the header, µs since the epoch.
    pub created_us: i64,
    header: MmapRaw,
    /// `None` for a file with no data bytes.
    data: Option<MmapRaw>,
    /// Data bytes the file holds (at most its capacity).
    limit: u64,
    seed: u32,
    /// Next record to read.
    pub read: u64,
    /// The persisted `acked`, as last stored or read.
    pub acked: u64,
    /// How far records may be read: `published` as last loaded (cut to the
    /// file), or the file's end while `walking`.
    pub published: u64,
    pub sealed: bool,
    /// Its writer's lock was found free (final: nobody locks it again).
    pub dead: bool,
    pub next_liveness: Instant,
    /// Where reading stopped at damage.
    pub damage: Option<u64>,
    pub given_up: bool,
    /// The `published` word is damaged (as last loaded).
    published_unreadable: bool,
    /// Reading a finished segment with a damaged `published` word: records
    /// are taken up to the first that fails validation, which ends them.
    walking: bool,
    /// Header words reported damaged already: published, sealed.
    reported: [bool; 2],
    /// Header-word damage found, for the reader to report.
    reports: Vec<DamageKind>,
}

/// Why a segment could not be mapped.
#[derive(Debug)]
pub(super) struct OpenFailure {
    pub reason: IgnoreReason,
    /// The reader's want of resources (descriptors, mappings, memory) or
    /// access, not the file's fault: worth trying again.
    pub transient: bool,
}

impl From<IgnoreReason> for OpenFailure {
    fn from(reason: IgnoreReason) -> OpenFailure {
        OpenFailure {
            reason,
            transient: false,
        }
    }
}

/// A failed `open` or `mmap`: transient when the system, not the file, said
/// no (out of descriptors or of `vm.max_map_count` mappings, no access).
fn io_failure(what: &str, err: &io::Error) -> OpenFailure {
    let transient = matches!(
        err.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOMEM
                | libc::EAGAIN
                | libc::EACCES
                | libc::EPERM
                | libc::EINTR
        )
    );
    let retry = if transient { "; trying again" } else { "" };
    OpenFailure {
        reason: IgnoreReason::Unreadable {
            reason: format!("{what}: {err}{retry}"),
        },
        transient,
    }
}

/// A record found valid at `offset`, ending at `end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub offset: u64,
    pub end: u64,
    pub len: u32,
}

impl ReadSegment {
    /// Maps the segment at `path`, which its name says is `id` of queue
    /// `key`.
    pub fn open(
        path: &Path,
        id: SegmentId,
        key: u32,
        now: Instant,
    ) -> Result<ReadSegment, OpenFailure> {
        let unreadable = |reason: String| OpenFailure::from(IgnoreReason::Unreadable { reason });
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|err| io_failure("open for reading and acknowledging", &err))?;
        let meta = file.metadata().map_err(|err| io_failure("stat", &err))?;
        let len = meta.len();
        if len < HEADER_SIZE {
            return Err(unreadable(format!(
                "{len} bytes, shorter than its header page"
            )));
        }
        // Raw maps: every access is unsafe and argued where it happens. A
        // spool segment is never truncated by writers; an operator who
        // truncates one under a running drain is warned in the module docs
        // (SIGBUS, as with any mapped file).
        let header = MmapOptions::new()
            .len(HEADER_SIZE as usize)
            .map_raw(&file)
            .map_err(|err| io_failure("map header", &err))?;
        let mut fields = [0u8; 64];
        // SAFETY: 64 bytes of a 4096-byte mapping.
        unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), fields.as_mut_ptr(), 64) };
        let fields = match Header::decode(&fields) {
            Ok(fields) => fields,
            Err(HeaderError::Magic) => return Err(unreadable("no spool magic".into())),
            Err(HeaderError::Version(version)) => {
                return Err(IgnoreReason::OtherVersion { version }.into())
            }
            Err(HeaderError::Damaged(reason)) => return Err(unreadable(reason.into())),
        };
        if fields.id != id || fields.key != key {
            return Err(unreadable(
                "header names another segment than the file name".into(),
            ));
        }
        let limit = fields.capacity.min((len - HEADER_SIZE) & !7);
        let data = if limit == 0 {
            None
        } else {
            let map_len = usize::try_from(limit)
                .map_err(|_| unreadable("capacity beyond the address space".into()))?;
            let data = MmapOptions::new()
                .offset(HEADER_SIZE)
                .len(map_len)
                .map_raw_read_only(&file)
                .map_err(|err| io_failure("map data", &err))?;
            Some(data)
        };
        let mut segment = ReadSegment {
            id,
            path: path.to_path_buf(),
            file: lock::file_id(&meta),
            created_us: fields.created_us,
            header,
            data,
            limit,
            seed: check_seed(id),
            read: 0,
            acked: 0,
            published: 0,
            sealed: false,
            dead: false,
            next_liveness: now,
            damage: None,
            given_up: false,
            published_unreadable: false,
            walking: false,
            reported: [false; 2],
            reports: Vec::new(),
        };
        segment.load_state();
        let raw = segment.load(OFF_ACKED);
        match word_offset(raw) {
            Some(acked) if acked % 8 == 0 && acked <= segment.published => {
                segment.acked = acked;
                segment.read = acked;
            }
            _ => segment.reports.push(DamageKind::AckedDamaged { word: raw }),
        }
        Ok(segment)
    }

    fn load(&self, off: usize) -> u64 {
        u64::from_le(word(&self.header, off).load(Ordering::Acquire))
    }

    /// Loads `sealed`, then `published` (so that once sealed is seen,
    /// `published` is final); starts walking a finished segment whose
    /// `published` is damaged.
    pub fn load_state(&mut self) {
        if !self.sealed {
            match self.load(OFF_SEALED) {
                0 => {}
                SEALED => self.sealed = true,
                word => self.report(1, DamageKind::SealedDamaged { word }),
            }
        }
        self.load_published();
        if self.published_unreadable && self.finished() && !self.walking {
            self.walking = true;
            self.published = self.published.max(self.limit);
        }
    }

    /// Loads `published` (acquire), cut to what the file holds.
    fn load_published(&mut self) {
        if self.walking {
            return;
        }
        let word = self.load(OFF_PUBLISHED);
        match word_offset(word) {
            Some(at) if at % 8 == 0 && at <= self.limit => {
                self.published = self.published.max(at);
                self.published_unreadable = false;
            }
            Some(at) => {
                self.published = self.published.max((at & !7).min(self.limit));
                self.report(0, DamageKind::PublishedOutOfRange { published: at });
            }
            None => {
                self.published_unreadable = true;
                self.report(0, DamageKind::PublishedDamaged { word });
            }
        }
    }

    /// Queues a header word's damage, once per word.
    fn report(&mut self, which: usize, kind: DamageKind) {
        if !std::mem::replace(&mut self.reported[which], true) {
            self.reports.push(kind);
        }
    }

    /// Header-word damage found since the last call.
    pub fn take_reports(&mut self) -> Vec<DamageKind> {
        std::mem::take(&mut self.reports)
    }

    /// Whether nothing more can be read: all published records read, or
    /// reading stopped at damage.
    pub fn read_all(&self) -> bool {
        self.damage.is_some() || self.read >= self.published
    }

    /// Whether its writer will never append again.
    pub fn finished(&self) -> bool {
        self.sealed || self.dead
    }

    /// Tests the writer's lock (opens the file for the test: the reader
    /// keeps no descriptors). A vanished file has no writer either, nor
    /// has one replaced under its name: the lock of the file now there is
    /// not this one's, and a writer (which never reopens its file by name)
    /// whose file was taken out of the directory moves to a new one.
    pub fn test_liveness(&mut self) {
        self.dead = match lock::writer_alive(&self.path, Some(self.file)) {
            Ok(locked) => !locked,
            Err(err) if err.kind() == io::ErrorKind::NotFound => true,
            // Cannot tell (something else now has its name): assume alive,
            // test again later.
            Err(_) => false,
        };
    }

    /// The record at the read position, validated; `Ok(None)` if nothing
    /// new is published. While walking, the first invalid record is the
    /// end, not damage.
    pub fn read_next(&mut self) -> Result<Option<Found>, DamageKind> {
        if self.damage.is_some() {
            return Ok(None);
        }
        if self.read >= self.published {
            self.load_published();
            if self.read >= self.published {
                return Ok(None);
            }
        }
        match self.validate(self.read) {
            Ok(found) => {
                self.read = found.end;
                Ok(Some(found))
            }
            Err(_) if self.walking => {
                self.published = self.read;
                Ok(None)
            }
            Err(kind) => {
                self.damage = Some(self.read);
                Err(kind)
            }
        }
    }

    /// Validates the record at `at` in the order the module docs give.
    fn validate(&self, at: u64) -> Result<Found, DamageKind> {
        let Some(data) = &self.data else {
            return Err(DamageKind::CheckMismatch);
        };
        if at + RECORD_HEADER > self.published {
            return Err(DamageKind::BadLength { len: 0 });
        }
        // SAFETY: `at + 8 <= published <= limit`, within the mapping, and
        // 8-aligned; published bytes are never written again.
        let stored = u64::from_le(unsafe { data.as_ptr().add(at as usize).cast::<u64>().read() });
        let len = stored as u32;
        if record_word(self.seed, at, len) != stored {
            return Err(DamageKind::CheckMismatch);
        }
        let end = at + RECORD_HEADER + pad8(u64::from(len));
        if (len as usize) < MIN_LEN || end > self.published {
            return Err(DamageKind::BadLength { len });
        }
        envelope_intact(self.bytes(at + RECORD_HEADER, u64::from(len)))
            .map_err(DamageKind::Envelope)?;
        Ok(Found {
            offset: at,
            end,
            len,
        })
    }

    /// `len` data bytes at `at`: empty unless within the published data.
    pub fn bytes(&self, at: u64, len: u64) -> &[u8] {
        match (&self.data, at.checked_add(len)) {
            (Some(data), Some(end)) if end <= self.published => {
                // SAFETY: in bounds of the mapping (published <= limit), and
                // published bytes are never written again.
                unsafe { std::slice::from_raw_parts(data.as_ptr().add(at as usize), len as usize) }
            }
            _ => &[],
        }
    }

    /// Moves the persisted `acked` to `end` if it is a record boundary
    /// past it and not past what was read.
    pub fn ack(&mut self, end: u64) -> bool {
        if end <= self.acked || end > self.read || end % 8 != 0 {
            return false;
        }
        let mut at = self.acked;
        while at < end {
            let len = self.bytes(at, 4);
            let Ok(len) = <[u8; 4]>::try_from(len) else {
                return false;
            };
            at += RECORD_HEADER + pad8(u64::from(u32::from_le_bytes(len)));
        }
        if at != end {
            return false;
        }
        self.store_acked(end);
        true
    }

    /// Stores `acked` (release): the reader is done with everything before.
    pub fn store_acked(&mut self, at: u64) {
        self.acked = at;
        word(&self.header, OFF_ACKED).store(offset_word(at).to_le(), Ordering::Release);
    }

    /// Where the reader's work in this segment ends: the damage, or the
    /// published end.
    pub fn end(&self) -> u64 {
        self.damage.unwrap_or(self.published)
    }

    /// Emit time of the first unacknowledged record, if it is intact.
    pub fn oldest_unacked(&self) -> Option<i64> {
        if self.acked >= self.end() {
            return None;
        }
        let found = self.validate(self.acked).ok()?;
        envelope_time(self.bytes(found.offset + RECORD_HEADER, u64::from(found.len)))
    }
}
