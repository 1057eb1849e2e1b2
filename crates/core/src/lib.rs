//! shopify_events core: the event envelope and its building blocks; knows nothing of Ruby.
#![deny(missing_docs)]

pub mod clock;
#[cfg(feature = "kafka")]
pub mod direct;
pub mod drain;
pub mod emitter;
pub mod envelope;
pub mod event_id;
pub mod json;
pub mod metrics;
pub mod ops;
pub mod process;
pub mod proxy;
pub mod spool;
pub mod topic;
