//! Test support shared by the workspace's tests and benchmarks, one module
//! per concern. Every process a helper starts is a child of the test, ended
//! by its own handle (never by name) when its guard drops; every queue a
//! helper creates is removed when its guard drops.
//!
//! - [`queue`]: SysV queues under fresh keys, removed on drop.
//! - [`sysctl`]: raising `kernel.msgmnb` (never lowering it).
//! - [`drain`]: the `shopify-events drain` binary as a child process, its
//!   logs, metrics and stats.
//! - [`proxy`]: the `shopify-events proxy` binary as a child process, under
//!   a descriptor limit or umask of the test's choosing.
//! - [`net`]: free loopback ports and one-shot HTTP requests.
//! - [`metrics`]: the Prometheus text exposition, parsed.
//! - [`events`]: queue frames holding envelopes.
//! - [`emitter`]: Rust processes emitting through the queue and the spool.
//! - [`procfs`]: memory and CPU time of a process.
//! - [`tap`]: `shopify-events tap` as a child process.
//! - [`terminal`]: a real terminal (tmux) for full-screen commands.
//! - [`ruby`]: Ruby processes emitting through the gem.
//! - [`command`]: running commands, signalling our own children.
//! - [`dirs`]: a test's scratch directory, kept when it fails.
//! - [`rng`]: a small reproducible generator.
//! - [`wait`]: polling for a condition, running tests one at a time.
//! - With the `kafka` feature: `tansu` (a real Kafka-protocol broker),
//!   `consume` (reading topics back) and `produce` (librdkafka's own
//!   producer, the baseline).
#![deny(missing_docs)]

pub mod command;
#[cfg(feature = "kafka")]
pub mod consume;
pub mod dirs;
pub mod drain;
pub mod emitter;
pub mod events;
pub mod metrics;
pub mod net;
pub mod procfs;
#[cfg(feature = "kafka")]
pub mod produce;
pub mod proxy;
pub mod queue;
pub mod rng;
pub mod ruby;
pub mod sysctl;
#[cfg(feature = "kafka")]
pub mod tansu;
pub mod tap;
pub mod terminal;
pub mod wait;
