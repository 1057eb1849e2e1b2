//! The one error type of the crate: each variant names a kernel condition a
//! caller can act on, and its message says which sysctl or call fixes it.

use crate::Key;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a message queue call failed.
///
/// Keys are printed in hex, as `ipcs -q` shows them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A non-blocking send found no room (EAGAIN): the queue's byte capacity,
    /// or its message count (capped at the byte capacity), is used up.
    #[error(
        "queue {key:#010x} is full (its byte capacity or message count limit is used up); \
         a drain must empty it, or raise its capacity (Queue::set_capacity, sysctl kernel.msgmnb)"
    )]
    Full {
        /// Key of the queue.
        key: Key,
    },

    /// The message body is larger than `kernel.msgmax` (msgsnd EINVAL).
    #[error(
        "message of {size} bytes is larger than kernel.msgmax ({limit} bytes) for queue {key:#010x}; \
         send smaller messages or raise the sysctl kernel.msgmax"
    )]
    TooLarge {
        /// Key of the queue.
        key: Key,
        /// Body size that was sent, in bytes.
        size: usize,
        /// `kernel.msgmax` when the error was seen.
        limit: u64,
    },

    /// The queue id no longer exists (EIDRM, or EINVAL on a vanished id).
    #[error("queue {key:#010x} was removed; open it again by key")]
    Removed {
        /// Key of the queue.
        key: Key,
    },

    /// The caller lacks the permission or capability the call needs.
    #[error("permission denied to {op} queue {key:#010x}; {hint}")]
    PermissionDenied {
        /// Key of the queue.
        key: Key,
        /// The operation that was refused.
        op: &'static str,
        /// What would make it allowed.
        hint: &'static str,
    },

    /// No queue exists with this key (msgget ENOENT).
    #[error("no queue exists with key {key:#010x}; create it first (Queue::create or Queue::open_or_create)")]
    NotFound {
        /// The key looked up.
        key: Key,
    },

    /// Exclusive creation found an existing queue (msgget EEXIST).
    #[error("a queue with key {key:#010x} already exists; open it instead, or remove it (ipcrm -Q {key:#010x})")]
    AlreadyExists {
        /// The key asked for.
        key: Key,
    },

    /// The system-wide queue limit is reached (msgget ENOSPC).
    #[error(
        "cannot create queue {key:#010x}: the system limit on queues (kernel.msgmni) is reached; \
         remove unused queues (ipcs -q, ipcrm) or raise the sysctl kernel.msgmni"
    )]
    TooManyQueues {
        /// The key asked for.
        key: Key,
    },

    /// The next matching message does not fit the receive buffer (E2BIG);
    /// it stays in the queue.
    #[error(
        "the next message on queue {key:#010x} is larger than the {capacity}-byte receive buffer \
         and stays in the queue; receive with a body buffer of kernel.msgmax bytes"
    )]
    BufferTooSmall {
        /// Key of the queue.
        key: Key,
        /// Body capacity of the buffer that was offered, in bytes.
        capacity: usize,
    },

    /// A blocking call was interrupted by a signal (EINTR). Nothing was sent
    /// or received; the caller decides whether to retry or shut down.
    #[error("interrupted by a signal before completing; retry unless shutting down")]
    Interrupted,

    /// The kernel does not implement this operation (ENOSYS).
    #[error("{op} is not supported by this kernel")]
    Unsupported {
        /// The operation, with what the kernel would need for it.
        op: &'static str,
    },

    /// An argument was rejected before reaching the kernel.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What was wrong with it.
        what: String,
    },

    /// Any other operating system error.
    #[error("{op} on queue {key:#010x} failed: {source}")]
    Os {
        /// The system call.
        op: &'static str,
        /// Key of the queue.
        key: Key,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_print_keys_in_hex_and_name_the_sysctl() {
        let full = Error::Full { key: 0x5345_5600 }.to_string();
        assert!(full.contains("0x53455600"), "{full}");
        let large = Error::TooLarge {
            key: 1,
            size: 9000,
            limit: 8192,
        }
        .to_string();
        assert!(
            large.contains("kernel.msgmax") && large.contains("9000"),
            "{large}"
        );
        let many = Error::TooManyQueues { key: -1 }.to_string();
        assert!(
            many.contains("0xffffffff") && many.contains("kernel.msgmni"),
            "{many}"
        );
    }
}
