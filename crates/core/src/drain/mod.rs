//! The drain: moves events from the SysV queue to Kafka without ever holding
//! one only in its own memory.
//!
//! Each message is received straight into a memory-mapped journal file
//! ([`journal`]), so a `kill -9` right after the receive loses nothing; a
//! thread of its own does the receiving while the drain loop hands events
//! to a [`crate::sink`] and moves the journal's checkpoint past it
//! once the sink acknowledged it and everything before it. At most
//! `max_in_flight` events are out at once; the rest wait in the kernel queue,
//! so the drain's memory stays flat however long Kafka is down. On restart
//! it first re-sends what lies past the checkpoint (at-least-once; a resent
//! event carries the same event id).

pub mod config;
mod dead_letter;
mod error;
pub mod journal;
mod lock;
mod log_limit;
mod receiver;
mod resend;
mod run;
mod spool_source;
mod window;

pub use config::{DrainConfig, SinkKind};
pub use dead_letter::{DeadLetters, NotWritten, Written};
pub use error::DrainError;
pub use run::{Drain, RunSummary};
