//! A snapshot of a queue's kernel state (`msgctl(IPC_STAT)`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `IPC_STAT` reports about a queue at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Messages waiting in the queue.
    pub messages: u64,
    /// Body bytes waiting in the queue (headers are not counted).
    pub bytes: u64,
    /// Byte capacity (`msg_qbytes`); it also caps the message count.
    pub capacity: u64,
    /// Process that sent last, 0 if none has.
    pub last_send_pid: i32,
    /// Process that received last, 0 if none has.
    pub last_receive_pid: i32,
    /// When a message was last sent, if ever.
    pub last_send_time: Option<SystemTime>,
    /// When a message was last received, if ever.
    pub last_receive_time: Option<SystemTime>,
    /// When the queue was created or last changed by `IPC_SET`.
    pub last_change_time: Option<SystemTime>,
    /// Permission bits, as given at creation (e.g. `0o600`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// User id of the process that created the queue (never changes).
    pub creator_uid: u32,
    /// Group id of the process that created the queue (never changes).
    pub creator_gid: u32,
}

impl Stat {
    pub(crate) fn from_raw(ds: &libc::msqid_ds) -> Stat {
        Stat {
            messages: ds.msg_qnum,
            bytes: ds.__msg_cbytes,
            capacity: ds.msg_qbytes,
            last_send_pid: ds.msg_lspid,
            last_receive_pid: ds.msg_lrpid,
            last_send_time: time(ds.msg_stime),
            last_receive_time: time(ds.msg_rtime),
            last_change_time: time(ds.msg_ctime),
            // The kernel keeps the request bits as well (SHM_* style flags are
            // not used for queues), so only permission bits are meaningful.
            mode: u32::from(ds.msg_perm.mode) & 0o7777,
            uid: ds.msg_perm.uid,
            gid: ds.msg_perm.gid,
            creator_uid: ds.msg_perm.cuid,
            creator_gid: ds.msg_perm.cgid,
        }
    }
}

/// The kernel stores 0 for "never".
fn time(secs: libc::time_t) -> Option<SystemTime> {
    let secs = u64::try_from(secs).ok().filter(|&s| s > 0)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_time_means_never() {
        assert_eq!(time(0), None);
        assert_eq!(time(-5), None);
        assert_eq!(time(10), Some(UNIX_EPOCH + Duration::from_secs(10)));
    }
}
