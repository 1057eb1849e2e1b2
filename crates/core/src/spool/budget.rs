//! The spool's bound, checked before a segment is created: every spool file
//! in the directory against `max_bytes`, and the filesystem's free space
//! against `min_free`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::format::{parse_name, Name};
use super::options::{
    DEFAULT_FREE_DIVISOR, DEFAULT_MAX_BYTES_CAP, DEFAULT_MIN_FREE_CAP, DEFAULT_SHARE_DIVISOR,
};
use super::{SpoolError, SpoolOptions};

/// Size and free space of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Filesystem {
    pub size: u64,
    /// Available to unprivileged processes (`f_bavail`).
    pub available: u64,
}

/// `statvfs` of the filesystem holding `dir`.
pub(super) fn filesystem(dir: &Path) -> io::Result<Filesystem> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: statvfs is plain old data, fully written on success.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize;
    Ok(Filesystem {
        size: st.f_blocks.saturating_mul(frsize),
        available: st.f_bavail.saturating_mul(frsize),
    })
}

/// The configured bounds, or the defaults for a filesystem of `fs_size`
/// bytes: `(max_bytes, min_free)`.
pub(super) fn bounds(options: &SpoolOptions, fs_size: u64) -> (u64, u64) {
    let max_bytes = options
        .max_bytes
        .unwrap_or((fs_size / DEFAULT_SHARE_DIVISOR).min(DEFAULT_MAX_BYTES_CAP));
    let min_free = options
        .min_free
        .unwrap_or((fs_size / DEFAULT_FREE_DIVISOR).min(DEFAULT_MIN_FREE_CAP));
    (max_bytes, min_free)
}

/// Bytes of every spool file (segments, temporary and damaged ones, of any
/// queue key) in `dir`.
pub(super) fn used(dir: &Path) -> io::Result<u64> {
    let mut used = 0u64;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if matches!(parse_name(name), Name::Other | Name::Lock) {
            continue;
        }
        match entry.metadata() {
            Ok(meta) => used = used.saturating_add(meta.len()),
            // Reclaimed by the drain while we looked.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(used)
}

/// Whether a new file of `need` bytes fits the bounds.
pub(super) fn check(options: &SpoolOptions, need: u64) -> Result<(), SpoolError> {
    let dir = &options.dir;
    let unavailable = |source| SpoolError::io(dir, dir, "statvfs", source);
    let fs = filesystem(dir).map_err(unavailable)?;
    let (max_bytes, min_free) = bounds(options, fs.size);
    let used = used(dir).map_err(|source| SpoolError::io(dir, dir, "read directory", source))?;
    if used.saturating_add(need) > max_bytes {
        return Err(SpoolError::Full {
            dir: dir.clone(),
            used,
            need,
            max_bytes,
        });
    }
    if fs.available < need.saturating_add(min_free) {
        return Err(SpoolError::DiskFull {
            dir: dir.clone(),
            available: fs.available,
            need,
            min_free,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_share_of_the_filesystem_capped() {
        let options = SpoolOptions::new("/tmp", 1);
        assert_eq!(bounds(&options, 100 << 30), (25 << 30, 1 << 30));
        assert_eq!(bounds(&options, 1 << 40), (64 << 30, 1 << 30));
        assert_eq!(bounds(&options, 2 << 20), (512 << 10, 2 * (1 << 20) / 20));
        let set = SpoolOptions {
            max_bytes: Some(5),
            min_free: Some(6),
            ..options
        };
        assert_eq!(bounds(&set, 1 << 40), (5, 6));
    }
}
