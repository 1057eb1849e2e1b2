//! Transports hand encoded envelopes over without blocking.
//!
//! Every native transport implements one contract, [`FrameSink`], and
//! reports one error type, [`SendError`], so that the policy of what a
//! failure means (drop and count, or raise) is written once, by the caller:
//!
//! - `sysv` ([`SysvEmitter`], here): one non-blocking `msgsnd` into the
//!   host's SysV queue, and what the queue cannot take into the process's
//!   spool (`overflow.rs`: when, and the order rule);
//! - `spool` ([`SpoolEmitter`], here): every envelope appended to the
//!   process's own spool log, with no system call in the common case;
//! - `socket` ([`SocketClient`](crate::proxy::SocketClient)): a bounded
//!   buffer that an IO thread sends to the host's proxy;
//! - `direct` (`DirectProducer`, with the `kafka` feature): a bounded
//!   channel to a librdkafka worker thread in the process.
//!
//! The transports that feed the drain (`sysv`, `spool`, `socket`) number
//! every event they accept (`numbered.rs`, [`crate::sequence`]): a drop
//! never takes a number, so the drain's gaps are losses, not drops.
//!
//! A transport never encodes: the caller (the Ruby extension, a benchmark,
//! the proxy) writes the envelope straight into a frame buffer it reuses,
//! so the hot path allocates nothing. The sysv emitter keeps
//! [`EmitterStats`], relaxed atomic counters that cost one uncontended add
//! per event.

mod error;
mod frame_sink;
mod numbered;
mod overflow;
mod spool;
mod stats;
mod sysv;

pub use error::{SendError, SpoolWhy};
pub use frame_sink::FrameSink;
pub(crate) use numbered::send_numbered;
pub use spool::{SpoolEmitter, SpoolEmitterStats};
pub use stats::{EmitterStats, StatsSnapshot};
pub use sysv::{SysvEmitter, DEFAULT_MTYPE};
