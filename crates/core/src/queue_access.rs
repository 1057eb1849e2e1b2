//! Who may read the queue: the check the drain and the proxy run when they
//! start, against a queue someone else may have created first.
//!
//! The queue key is well known, and `msgget` with `IPC_CREAT` opens a queue
//! that already exists whatever its owner and mode. A local user who
//! creates it first, world-readable, could read or remove every event; its
//! owner can always read it, change its mode or remove it. So, at start:
//!
//! - **refused**: a queue that grants *others* any permission (mode bits
//!   `0o007`). Every local user could read, write or remove events. The fix
//!   is to remove it and let `shopify-events setup --group GROUP` create it
//!   0660 with the apps' group.
//! - **warned**: a queue whose owner and creator are neither root nor the
//!   checking process's user. That user can read, change or remove it. An
//!   app that emitted before `setup` ran creates the queue as the app's user,
//!   which is legitimate, so this is a log line naming the owner, not a
//!   refusal.
//!
//! The group is not checked: giving the apps' group read and write access is
//! what the queue is for.

use sysvmq::{Key, Queue, Stat};

/// Why a queue must not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueAccessError {
    /// Other users have access to the queue.
    #[error(
        "queue {key:#010x} has mode {mode:04o} (owner uid {uid}): every local user can read, write or remove its events; \
         remove it (`ipcrm -Q {key:#x}`, after the events in it were delivered) and create it with \
         `shopify-events setup --group GROUP` (mode 0660, the apps' group)",
        key = *key as u32
    )]
    OpenToOthers {
        /// The queue's key.
        key: Key,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        uid: u32,
    },
    /// `IPC_STAT` failed.
    #[error(transparent)]
    Queue(#[from] sysvmq::Error),
}

/// Checks `queue` at the start of the drain or the proxy: `Err` when it
/// grants other users any permission (mode bits `0o007`: anyone could
/// read or remove its events); else the warnings to log, one if its owner
/// or creator is neither root nor this process's user (none otherwise).
/// The group is not checked: the apps' group is what the queue is for.
pub fn check_queue_access(queue: &Queue) -> Result<Vec<String>, QueueAccessError> {
    // SAFETY: geteuid has no failure mode and touches no memory.
    let euid = unsafe { libc::geteuid() };
    judge(queue.key(), &queue.stat()?, euid)
}

fn judge(key: Key, stat: &Stat, euid: u32) -> Result<Vec<String>, QueueAccessError> {
    if stat.mode & 0o007 != 0 {
        return Err(QueueAccessError::OpenToOthers {
            key,
            mode: stat.mode,
            uid: stat.uid,
        });
    }
    let trusted = |uid: u32| uid == 0 || uid == euid;
    let mut warnings = Vec::new();
    if !trusted(stat.uid) || !trusted(stat.creator_uid) {
        warnings.push(format!(
            "queue {:#010x} belongs to uid {} (created by uid {}), neither root nor this process's \
             uid {euid}: that user can read, change or remove every event. If it is not your apps' \
             user, remove the queue (`ipcrm -Q {:#x}`, after the events in it were delivered) and \
             run `shopify-events setup --group GROUP`",
            key as u32, stat.uid, stat.creator_uid, key as u32
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mode: u32, uid: u32, creator_uid: u32) -> Stat {
        Stat {
            messages: 0,
            bytes: 0,
            capacity: 16384,
            last_send_pid: 0,
            last_receive_pid: 0,
            last_send_time: None,
            last_receive_time: None,
            last_change_time: None,
            mode,
            uid,
            gid: 1000,
            creator_uid,
            creator_gid: 1000,
        }
    }

    #[test]
    fn a_queue_others_may_use_is_refused_with_the_fix() {
        for mode in [0o666, 0o604, 0o602, 0o601, 0o777] {
            let err = judge(0x5345_5600, &stat(mode, 0, 0), 0).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("mode {mode:04o}"))
                    && text.contains("ipcrm -Q 0x53455600")
                    && text.contains("setup --group"),
                "{text}"
            );
        }
    }

    #[test]
    fn owner_and_group_only_queues_pass_and_a_strangers_is_named() {
        assert!(judge(1, &stat(0o660, 0, 0), 998).unwrap().is_empty());
        assert!(judge(1, &stat(0o600, 998, 998), 998).unwrap().is_empty());
        let warned = judge(1, &stat(0o660, 1234, 1234), 998).unwrap();
        assert_eq!(warned.len(), 1);
        assert!(warned[0].contains("uid 1234"), "{warned:?}");
        // Handed over by IPC_SET, but a stranger created it: still named.
        let warned = judge(1, &stat(0o660, 998, 1234), 998).unwrap();
        assert!(warned[0].contains("created by uid 1234"), "{warned:?}");
    }
}
