//! A handle on one kernel message queue: opening, inspecting, resizing and
//! removing it. Sending and receiving live in `send.rs` and `receive.rs`.
//!
//! Every method is one or two system calls. Errors are classified on the
//! error path only, so the success path costs nothing beyond the syscall.

use std::io;
use std::ptr;

use libc::{c_int, IPC_CREAT, IPC_EXCL};

use crate::{Error, Key, Result, Stat};

const ACCESS_HINT: &str = "the queue's mode does not grant this user access; \
     create it with a mode that does, or run as a user it allows";
const OWNER_HINT: &str =
    "only the queue's owner or creator, or a process with CAP_SYS_ADMIN, may change or remove it";
const CAPACITY_HINT: &str =
    "a capacity above kernel.msgmnb needs CAP_SYS_RESOURCE (and any change \
     needs the queue's owner or CAP_SYS_ADMIN); raise the sysctl kernel.msgmnb before creating the \
     queue instead";

/// A System V message queue: its kernel id and the key it was opened by.
///
/// Copying the handle is free and does not duplicate the queue; the queue
/// lives until [`Queue::remove`], whatever happens to handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    id: c_int,
    key: Key,
}

impl Queue {
    /// Opens the existing queue with `key`; [`Error::NotFound`] if none.
    pub fn open(key: Key) -> Result<Queue> {
        Queue::get(key, 0)
    }

    /// Creates a queue with `key` and permission bits `mode` (e.g. `0o600`);
    /// [`Error::AlreadyExists`] if one exists.
    pub fn create(key: Key, mode: u32) -> Result<Queue> {
        Queue::get(key, IPC_CREAT | IPC_EXCL | permissions(mode)?)
    }

    /// Opens the queue with `key`, creating it with `mode` if missing.
    pub fn open_or_create(key: Key, mode: u32) -> Result<Queue> {
        Queue::get(key, IPC_CREAT | permissions(mode)?)
    }

    /// Creates a new queue no key can open (`IPC_PRIVATE`); its key is 0.
    pub fn create_private(mode: u32) -> Result<Queue> {
        Queue::get(libc::IPC_PRIVATE, IPC_CREAT | permissions(mode)?)
    }

    /// A handle for a queue id obtained earlier (for example cached in an
    /// atomic by a caller that shares one queue across threads). No syscall:
    /// if the id is stale, the next operation reports [`Error::Removed`].
    pub fn from_id(key: Key, id: i32) -> Queue {
        Queue { id, key }
    }

    /// The kernel id, as `ipcs -q` lists it.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key the queue was opened by (0 for a private queue).
    pub fn key(&self) -> Key {
        self.key
    }

    /// A snapshot of the queue's depth, capacity, owners and times.
    pub fn stat(&self) -> Result<Stat> {
        self.raw_stat()
            .map(|ds| Stat::from_raw(&ds))
            .map_err(|err| self.fail("stat", "msgctl(IPC_STAT)", err))
    }

    /// Sets the queue's byte capacity (`msg_qbytes`), which also caps its
    /// message count.
    ///
    /// Above `kernel.msgmnb` this needs CAP_SYS_RESOURCE, else
    /// [`Error::PermissionDenied`]. Owner, group and mode are written back as
    /// read just before, so a concurrent change to them may be undone.
    pub fn set_capacity(&self, bytes: u64) -> Result<()> {
        let mut ds = self
            .raw_stat()
            .map_err(|err| self.fail("resize", "msgctl(IPC_STAT)", err))?;
        ds.msg_qbytes = bytes;
        // SAFETY: `ds` is a valid msqid_ds; IPC_SET only reads it.
        if unsafe { libc::msgctl(self.id, libc::IPC_SET, &mut ds) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        Err(match err.raw_os_error() {
            Some(libc::EPERM) => Error::PermissionDenied {
                key: self.key,
                op: "resize",
                hint: CAPACITY_HINT,
            },
            _ => self.fail("resize", "msgctl(IPC_SET)", err),
        })
    }

    /// Gives the queue to group `gid` (`msg_perm.gid`): with mode 0660, the
    /// processes of that group may send and receive.
    ///
    /// Only the owner, the creator or a process with CAP_SYS_ADMIN may,
    /// else [`Error::PermissionDenied`]. Owner, mode and capacity are
    /// written back as read just before.
    pub fn set_group(&self, gid: u32) -> Result<()> {
        let mut ds = self
            .raw_stat()
            .map_err(|err| self.fail("set group", "msgctl(IPC_STAT)", err))?;
        ds.msg_perm.gid = gid;
        // SAFETY: `ds` is a valid msqid_ds; IPC_SET only reads it.
        if unsafe { libc::msgctl(self.id, libc::IPC_SET, &mut ds) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        Err(match err.raw_os_error() {
            Some(libc::EPERM) => Error::PermissionDenied {
                key: self.key,
                op: "set group",
                hint: "run `shopify-events setup --group` as root or as the queue's owner",
            },
            _ => self.fail("set group", "msgctl(IPC_SET)", err),
        })
    }

    /// Removes the queue: waiting senders and receivers get
    /// [`Error::Removed`], and queued messages are lost.
    pub fn remove(self) -> Result<()> {
        // SAFETY: IPC_RMID does not read or write the buffer, so null is fine.
        if unsafe { libc::msgctl(self.id, libc::IPC_RMID, ptr::null_mut()) } == 0 {
            return Ok(());
        }
        Err(self.fail("remove", "msgctl(IPC_RMID)", io::Error::last_os_error()))
    }

    fn get(key: Key, flags: c_int) -> Result<Queue> {
        // SAFETY: msgget takes integers only.
        let id = unsafe { libc::msgget(key, flags) };
        if id >= 0 {
            return Ok(Queue { id, key });
        }
        let err = io::Error::last_os_error();
        Err(match err.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound { key },
            Some(libc::EEXIST) => Error::AlreadyExists { key },
            Some(libc::ENOSPC) => Error::TooManyQueues { key },
            Some(libc::EACCES) => Error::PermissionDenied {
                key,
                op: "open",
                hint: ACCESS_HINT,
            },
            _ => Error::Os {
                op: "msgget",
                key,
                source: err,
            },
        })
    }

    fn raw_stat(&self) -> io::Result<libc::msqid_ds> {
        // SAFETY: msqid_ds holds only integers, for which zero bytes are valid.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a valid, writable msqid_ds for IPC_STAT to fill.
        if unsafe { libc::msgctl(self.id, libc::IPC_STAT, &mut ds) } == 0 {
            Ok(ds)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether the id no longer names a queue. Send and receive report a
    /// removed id as EINVAL, which also means other things; this tells them
    /// apart on the error path.
    pub(crate) fn is_gone(&self) -> bool {
        let code = self.raw_stat().err().and_then(|err| err.raw_os_error());
        matches!(code, Some(libc::EINVAL | libc::EIDRM))
    }

    /// Classifies the errors every call shares; `op` completes "permission
    /// denied to ...", `syscall` names the call that failed.
    pub(crate) fn fail(&self, op: &'static str, syscall: &'static str, err: io::Error) -> Error {
        let key = self.key;
        match err.raw_os_error() {
            Some(libc::EIDRM) => Error::Removed { key },
            Some(libc::EINVAL) if self.is_gone() => Error::Removed { key },
            Some(libc::EACCES) => Error::PermissionDenied {
                key,
                op,
                hint: ACCESS_HINT,
            },
            Some(libc::EPERM) => Error::PermissionDenied {
                key,
                op,
                hint: OWNER_HINT,
            },
            Some(libc::ENOSYS) => Error::Unsupported { op: syscall },
            _ => Error::Os {
                op: syscall,
                key,
                source: err,
            },
        }
    }
}

/// Only permission bits: others would be read as IPC_* flags.
fn permissions(mode: u32) -> Result<c_int> {
    match c_int::try_from(mode) {
        Ok(bits) if mode & !0o777 == 0 => Ok(bits),
        _ => Err(Error::InvalidArgument {
            what: format!("mode {mode:#o} has bits outside 0o777"),
        }),
    }
}
