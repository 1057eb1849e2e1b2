//! Group names for `shopify-events setup --group`: the group the apps run
//! as, which gets read and write access to the queue.

use std::ffi::{CStr, CString};

/// A group that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("no group {name:?} on this host (getent group {name}); pass the group your apps run as, by name or number")]
pub struct UnknownGroup {
    /// The name given.
    pub name: String,
}

/// The id of group `name`, which may also be a number.
pub fn group_id(name: &str) -> Result<u32, UnknownGroup> {
    let unknown = || UnknownGroup { name: name.into() };
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: group is plain data, for which zeroes are valid.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` outlives it and
        // its length is passed.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || found.is_null() {
            return Err(unknown());
        }
        return Ok(group.gr_gid);
    }
}

/// Name of group `gid`, for reports; the number if it has none.
pub fn group_name(gid: u32) -> String {
    // SAFETY: group is plain data, for which zeroes are valid.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: every pointer is valid for the call; `buf` outlives it and its
    // length is passed.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve_and_unknown_names_say_so() {
        assert_eq!(group_id("root").unwrap(), 0);
        assert_eq!(group_id("1234").unwrap(), 1234);
        let err = group_id("no-such-group-here").unwrap_err().to_string();
        assert!(err.contains("no-such-group-here"), "{err}");
        assert_eq!(group_name(0), "root");
        assert_eq!(group_name(4_000_000), "4000000");
    }
}
