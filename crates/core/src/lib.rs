//! shopify_events core: the event envelope and its building blocks; knows nothing of Ruby.
#![deny(missing_docs)]

pub mod clock;
pub mod defaults;
#[cfg(feature = "kafka")]
pub mod direct;
pub mod drain;
pub mod envelope;
pub mod event_id;
pub mod json;
pub mod kafka;
pub mod metrics;
pub mod ops;
pub mod process;
pub mod proxy;
pub mod sink;
pub mod state_dir;
pub mod topic;
pub mod transport;
