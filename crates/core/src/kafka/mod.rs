//! Everything Kafka: the producer the drain and the direct transport share.
//!
//! - `KafkaSink` (`sink.rs`): one librdkafka `BaseProducer` behind the
//!   [`Sink`](crate::sink::Sink) contract, polled by its owner's thread.
//! - [`record`]: how an envelope becomes a Kafka record (headers plus the
//!   `event_id` header, the emit time as the timestamp).
//! - `DEFAULTS` and `client_config` (`config.rs`): the producer settings
//!   applied before the user's (acks=all, idempotence, lz4, linger.ms=5),
//!   and how much librdkafka logs.
//! - `is_permanent` (`classify.rs`): which failures can never succeed (the
//!   drain dead-letters them; the direct transport counts them as failed).
//! - `Context` (`context.rs`): librdkafka's callbacks: delivery outcomes,
//!   "all brokers down", log lines.
//! - `LogLevel`, `KafkaLog` (`log.rs`): where librdkafka's log lines go
//!   (stderr for the drain, the app's logger for the direct transport).
//! - [`retry`]: when an event a sink gave back is sent again; the drain and
//!   the direct transport apply the same policy.
//!
//! What links librdkafka is behind the `kafka` feature. The `event_id`
//! header's name and the retry policy are not: the drain uses the policy
//! whatever its sink.

pub mod record;
pub mod retry;

#[cfg(feature = "kafka")]
mod classify;
#[cfg(feature = "kafka")]
mod config;
#[cfg(feature = "kafka")]
mod context;
#[cfg(feature = "kafka")]
mod log;
#[cfg(feature = "kafka")]
mod sink;

#[cfg(feature = "kafka")]
pub use classify::is_permanent;
#[cfg(feature = "kafka")]
pub use config::{client_config, DEFAULTS, MESSAGE_MAX_BYTES};
#[cfg(feature = "kafka")]
pub use log::{KafkaLog, LogLevel, StderrLog};
pub use record::EVENT_ID_HEADER;
#[cfg(feature = "kafka")]
pub use sink::KafkaSink;
