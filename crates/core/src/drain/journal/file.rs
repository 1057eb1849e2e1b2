//! The journal's file: its lock, its header as read from disk, and its
//! pre-allocated, pre-faulted mapping.

use std::fs::File;
use std::hint::black_box;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::{MmapMut, MmapOptions};

use super::format::{parse_header, version1_refusal, version1_slot, Header, Parsed};
use super::format::{FIELDS_LEN, HEADER_SIZE};
use super::{io_error, JournalError};

/// What the start of a journal file says.
pub(super) enum Found {
    /// A journal of this version.
    Header(Header),
    /// An empty file, one whose magic was never written (a crash while
    /// creating it: its data area is all zeros), or a version 1 journal
    /// that holds nothing to deliver.
    Nothing,
    /// A zero magic over a data area holding bytes (the first at `data_at`):
    /// a damaged header, records may be pending.
    WipedHeader {
        /// Data offset of the first non-zero byte.
        data_at: u64,
    },
}

/// The header of an existing journal. Anything this version cannot read
/// is a [`JournalError::Format`], the file untouched.
pub(super) fn read_header(path: &Path, file: &File) -> Result<Found, JournalError> {
    let len = file.metadata().map_err(io_error(path))?.len();
    let mut head = [0u8; FIELDS_LEN];
    let got = usize::try_from(len).map_or(FIELDS_LEN, |len| len.min(FIELDS_LEN));
    file.read_exact_at(&mut head[..got], 0)
        .map_err(io_error(path))?;
    let reason = match parse_header(&head, len) {
        Parsed::Absent => {
            return Ok(match first_data_byte(file, len).map_err(io_error(path))? {
                Some(data_at) => Found::WipedHeader { data_at },
                None => Found::Nothing,
            })
        }
        Parsed::Current(header) => return Ok(Found::Header(header)),
        Parsed::Version1 {
            capacity,
            checkpoint,
        } => {
            // Left by an older drain that delivered everything: start afresh.
            let empty = match version1_slot(capacity, checkpoint) {
                Ok(None) => true,
                Ok(Some(at)) => {
                    let mut slot = [0u8; 8];
                    file.read_exact_at(&mut slot, at).is_ok() && slot == [0u8; 8]
                }
                Err(()) => false,
            };
            if empty {
                return Ok(Found::Nothing);
            }
            version1_refusal()
        }
        Parsed::Unreadable(reason) => reason,
    };
    Err(JournalError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// Data offset of the first non-zero byte past the header page of a file
/// of `len` bytes, if any: a journal being created has none.
fn first_data_byte(file: &File, len: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = HEADER_SIZE;
    while at < len {
        let n = usize::try_from(len - at).map_or(buf.len(), |left| left.min(buf.len()));
        file.read_exact_at(&mut buf[..n], at)?;
        if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
            return Ok(Some(at - HEADER_SIZE + i as u64));
        }
        at += n as u64;
    }
    Ok(None)
}

/// Takes an exclusive `flock` on the journal, or says who holds it.
pub(super) fn lock(path: &Path, file: &File) -> Result<(), JournalError> {
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) => JournalError::Locked {
            path: path.to_path_buf(),
        },
        _ => io_error(path)(err),
    })
}

/// Allocates real blocks for `len` bytes, maps them shared and write-faults
/// every page, so a copy into the mapping cannot fail for want of space.
pub(super) fn map_file(path: &Path, file: &File, len: u64) -> Result<MmapMut, JournalError> {
    let too_large = || io_error(path)(io::Error::from_raw_os_error(libc::EFBIG));
    let size = libc::off_t::try_from(len).map_err(|_| too_large())?;
    let map_len = usize::try_from(len).map_err(|_| too_large())?;
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
        unsafe { MmapOptions::new().len(map_len).map_mut(file) }.map_err(io_error(path))?;
    for page in (0..map.len()).step_by(HEADER_SIZE as usize) {
        // A write, not a read: runs the filesystem's page_mkwrite now rather
        // than inside msgrcv's copy.
        map[page] = black_box(map[page]);
    }
    Ok(map)
}
