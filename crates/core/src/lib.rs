//! shopify_events core: the envelope, the transports, the drain, the proxy,
//! the Kafka producer, metrics and operator commands; knows nothing of Ruby.
//! docs/ARCHITECTURE.md is the map of these modules.
#![deny(missing_docs)]

pub mod accounting;
pub mod clock;
pub mod defaults;
#[cfg(feature = "kafka")]
pub mod direct;
pub mod drain;
pub mod envelope;
pub mod event_id;
pub mod json;
pub mod kafka;
pub mod loopback;
pub mod metrics;
pub mod ops;
pub mod per_process;
pub mod process;
pub mod proxy;
pub mod queue_access;
pub mod sequence;
pub mod sink;
pub mod spool;
pub mod state_dir;
pub mod tap;
pub mod topic;
pub mod transport;
