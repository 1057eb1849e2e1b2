//! Safe Linux System V message queues: `msgget`, `msgsnd`, `msgrcv` and
//! `msgctl` behind a small typed API, with no policy of its own.
//!
//! # How it behaves at run time
//!
//! - A [`Queue`] is only a kernel id plus the key it was opened by; it holds
//!   no file descriptor and needs no closing. The queue lives in the kernel
//!   until [`Queue::remove`] (or `ipcrm`), even after every process exits.
//! - Messages travel as *frames*: a native-endian C `long` `mtype` (> 0)
//!   followed by the body, the layout the kernel copies. [`Message`] owns one;
//!   the `*_frame`/`*_into` calls take caller buffers so hot paths allocate
//!   nothing.
//! - `try_*` calls pass `IPC_NOWAIT`: they never block, and retry by
//!   themselves when a signal interrupts them. Blocking calls instead return
//!   [`Error::Interrupted`] on a signal, so a signal can stop a thread waiting
//!   in `msgrcv` (there is no descriptor to poll).
//! - Limits are the kernel's: a body above `kernel.msgmax` is
//!   [`Error::TooLarge`]; a queue holds `msg_qbytes` bytes (from
//!   `kernel.msgmnb` at creation) and at most that many messages, after which
//!   non-blocking sends get [`Error::Full`]. A receive buffer that is too small
//!   leaves the message queued ([`Error::BufferTooSmall`]).
//! - A queue removed under a caller shows up as [`Error::Removed`] (EIDRM, or
//!   EINVAL confirmed by `IPC_STAT`); the caller may open it again by key.
//! - Limits and queues are per IPC namespace: a container sees its own.

#![deny(missing_docs)]

mod error;
mod limits;
mod message;
mod queue;
mod receive;
mod send;
mod stat;

pub use error::{Error, Result};
pub use limits::{message_size_limit, Limits};
pub use message::{Message, HEADER_LEN};
pub use queue::Queue;
pub use stat::Stat;

/// A System V IPC key, as given to `msgget` (`IPC_PRIVATE` is 0).
pub type Key = libc::key_t;

// msqid_ds field types and the i64 <-> c_long mtype mapping assume LP64 Linux.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("sysvmq supports 64-bit Linux only");
