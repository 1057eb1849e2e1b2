//! `shopify-events setup`'s spool directory: make it exist as the spool
//! needs it, and give it (and the queue) to the apps' group.
//!
//! The spool directory holds every emitting process's segment files
//! (`crate::spool`). It is created mode 2770 ([`defaults::SPOOL_DIR_MODE`]):
//! owner and group may create, read and delete files, others nothing, and
//! the setgid bit makes every file created in it take the directory's group,
//! so that the apps (which write) and the drain (which reads and deletes)
//! share the files through that group whatever their own primary groups.
//! Segment files are 0660, the queue's mode, so nothing is more open than
//! the queue.
//!
//! An existing directory is brought to that state too: its group set when
//! `--group` is given, its mode set to 2770. Nothing inside it is touched.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::SetupError;
use crate::defaults;

/// The spool directory as setup left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolDirState {
    /// The directory.
    pub path: PathBuf,
    /// Whether setup created it.
    pub created: bool,
    /// What setup changed on an existing one ("group 1001 -> 1002", ...).
    pub changed: Vec<String>,
    /// Its permission bits in octal (`2770`).
    pub mode: String,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
}

/// Makes `dir` exist with mode 2770, and group `gid` if given.
pub fn prepare_spool_dir(dir: &Path, gid: Option<u32>) -> Result<SpoolDirState, SetupError> {
    let fail = |op: &'static str| {
        move |source: io::Error| SetupError::SpoolDir {
            path: dir.to_path_buf(),
            op,
            source,
        }
    };
    let mut created = false;
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(fail("use")(io::Error::from_raw_os_error(libc::ENOTDIR))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent).map_err(fail("create the parent of"))?;
            }
            match fs::create_dir(dir) {
                Ok(()) => created = true,
                // Created meanwhile by someone else: fine, adjust it below.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(fail("create")(err)),
            }
        }
        Err(err) => return Err(fail("inspect")(err)),
    }
    let before = fs::metadata(dir).map_err(fail("inspect"))?;
    let mut changed = Vec::new();
    if let Some(gid) = gid.filter(|&gid| gid != before.gid()) {
        std::os::unix::fs::chown(dir, None, Some(gid)).map_err(fail("change the group of"))?;
        if !created {
            changed.push(format!("group {} -> {gid}", before.gid()));
        }
    }
    let wanted = defaults::SPOOL_DIR_MODE;
    // After chown, which clears the setgid bit for non-root callers.
    let mode = fs::metadata(dir).map_err(fail("inspect"))?.mode() & 0o7777;
    if mode != wanted {
        fs::set_permissions(dir, fs::Permissions::from_mode(wanted))
            .map_err(fail("change the mode of"))?;
        if !created {
            changed.push(format!("mode {mode:04o} -> {wanted:04o}"));
        }
    }
    let after = fs::metadata(dir).map_err(fail("inspect"))?;
    Ok(SpoolDirState {
        path: dir.to_path_buf(),
        created,
        changed,
        mode: format!("{:04o}", after.mode() & 0o7777),
        uid: after.uid(),
        gid: after.gid(),
    })
}

/// The gid of group `name`, or the number itself (`--group app` or
/// `--group 1001`).
pub fn resolve_group(name: &str) -> Result<u32, SetupError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || SetupError::UnknownGroup {
        name: name.to_owned(),
    };
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let mut group: libc::group = unsafe_zeroed_group();
    let mut found: *mut libc::group = std::ptr::null_mut();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: valid pointers: a NUL-terminated name, an out struct, a
        // buffer of `buf.len()` bytes and an out pointer.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            0 if !found.is_null() => return Ok(group.gr_gid),
            _ => return Err(unknown()),
        }
    }
}

fn unsafe_zeroed_group() -> libc::group {
    // SAFETY: `group` is plain old data (pointers and integers); all zeros
    // is a valid value, overwritten by getgrnam_r before any read.
    unsafe { std::mem::zeroed() }
}

/// Name of group `gid`, for reports; the number if it has none.
pub fn group_name(gid: u32) -> String {
    let mut group: libc::group = unsafe_zeroed_group();
    let mut found: *mut libc::group = std::ptr::null_mut();
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: as in `resolve_group`.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            &mut group,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || group.gr_name.is_null() {
        return gid.to_string();
    }
    // SAFETY: getgrgid_r set gr_name to a NUL-terminated string in `buf`.
    unsafe { CStr::from_ptr(group.gr_name) }
        .to_string_lossy()
        .into_owned()
}
