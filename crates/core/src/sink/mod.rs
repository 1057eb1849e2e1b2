//! The delivery contract: where events go once they left the queue (the
//! drain) or the process's buffer (the direct transport). Kafka
//! (`kafka::KafkaSink`), or stdout as JSON lines ([`StdoutSink`]).
//!
//! A sink takes events one by one with a token and reports each outcome
//! later, from [`Sink::poll`]; its caller keeps every event (the drain: its
//! journal record) until the outcome is in. Sinks never decide what a
//! failure means: they classify it (delivered, retry, permanent) and the
//! caller acts.

use std::time::Duration;

use crate::envelope::Envelope;

mod stdout;

pub use stdout::{event_json, write_json_line, StdoutSink};

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged by the destination.
    Delivered,
    /// Failed for now (broker down, timed out); send it again.
    Retry(String),
    /// The destination will never take it (unknown topic, too large, not
    /// authorized): dead-letter it.
    Permanent(String),
}

/// The outcome of the event sent with `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The token given to [`Sink::send`].
    pub token: u64,
    /// What happened.
    pub outcome: Outcome,
}

/// Why [`Sink::send`] did not take an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// No room right now: poll, then send again.
    Full,
    /// It can never be sent (for example larger than the producer allows).
    Permanent(String),
}

/// A destination for events.
pub trait Sink {
    /// Starts delivering `event`; its outcome comes back from `poll` with `token`.
    fn send(&mut self, event: &Envelope<'_>, token: u64) -> Result<(), Rejected>;

    /// Serves outcomes into `out`, waiting up to `timeout` (the drain's idle
    /// sleep) when there is nothing to serve.
    fn poll(&mut self, timeout: Duration, out: &mut Vec<Delivery>);

    /// A short description for logs ("kafka 127.0.0.1:9092", "stdout").
    fn describe(&self) -> String;

    /// Whether the sink can deliver at all right now (for `/health`).
    fn healthy(&self) -> Result<(), String> {
        Ok(())
    }
}
