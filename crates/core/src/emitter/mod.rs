//! Emitters hand encoded envelopes to a transport.
//!
//! An emitter never encodes: the caller (the Ruby extension, a benchmark, the
//! proxy) writes the envelope straight into a frame buffer it reuses, so the
//! hot path allocates nothing. Every emitter keeps [`EmitterStats`], relaxed
//! atomic counters that cost one uncontended add per event.

mod stats;
mod sysv;

pub use stats::{EmitterStats, StatsSnapshot};
pub use sysv::{SendError, SysvEmitter, DEFAULT_MTYPE};
