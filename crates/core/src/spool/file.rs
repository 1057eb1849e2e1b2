//! File operations of segment creation: prefaulting a mapping, renaming
//! without replacing, syncing the directory.

use std::ffi::CString;
use std::fs::File;
use std::hint::black_box;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use memmap2::{Advice, MmapRaw};

use super::format::HEADER_SIZE;
use super::SpoolError;

/// Write-faults every page, so that appends never fault for space: one
/// `madvise(MADV_POPULATE_WRITE)`, or a write per page on kernels before
/// 5.14. The populate reports a failure as an error, not a `SIGBUS`.
pub(super) fn prefault(data: &MmapRaw) -> io::Result<()> {
    match data.advise(Advice::PopulateWrite) {
        Ok(()) => return Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {}
        Err(err) => return Err(err),
    }
    for page in (0..data.len()).step_by(HEADER_SIZE as usize) {
        // SAFETY: in bounds of our mapping, which nobody reads yet. A write,
        // not a read, so the filesystem's page_mkwrite runs now.
        unsafe {
            let p = data.as_mut_ptr().add(page);
            p.write_volatile(black_box(p.read_volatile()));
        }
    }
    Ok(())
}

pub(super) fn efbig() -> io::Error {
    io::Error::from_raw_os_error(libc::EFBIG)
}

/// Renames `from` to `to` unless `to` exists (`EEXIST` then): a segment is
/// never replaced. `renameat2(RENAME_NOREPLACE)`, or `link` and `unlink`
/// where the filesystem lacks it.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: valid NUL-terminated paths; renameat2 touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
        return Err(err);
    }
    // SAFETY: as above; link fails with EEXIST rather than replace.
    if unsafe { libc::link(from.as_ptr(), to.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    unsafe { libc::unlink(from.as_ptr()) };
    Ok(())
}

/// `fsync`s the directory, so a renamed segment's name survives a power
/// loss.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SpoolError::io(dir, dir, "fsync directory", source))
}
