//! The worker thread: takes envelopes from the channel, hands them to a
//! [`KafkaSink`] and serves its delivery reports.
//!
//! It keeps each envelope until Kafka acknowledged it. What librdkafka gives
//! back is sent again under the drain's retry policy
//! ([`crate::kafka::retry`]): refused for room, after the next poll;
//! retriable (brokers down past `message.timeout.ms`), after the backoff.
//! One Kafka will never take (unknown topic, too large) is counted as failed
//! and its reason kept for the Ruby side to log.
//! When every sender is gone the worker delivers what it holds for at most
//! the shutdown grace, then exits (dropping the producer).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::envelope::Envelope;
use crate::kafka::retry::Retries;
use crate::kafka::KafkaSink;
use crate::sink::{Delivery, Outcome, Rejected, Sink};

use super::log::LogBuffer;

/// Envelopes taken from the channel per round before polling the producer.
const BATCH: usize = 1024;
/// Longest wait for delivery reports while events are in flight.
const POLL_BUSY: Duration = Duration::from_millis(5);
/// Wait for new events while nothing is in flight.
const IDLE: Duration = Duration::from_millis(250);

/// Counters and the flush rendezvous shared by the producer handle and the
/// worker thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Envelopes taken into the channel.
    pub accepted: AtomicU64,
    /// Envelopes refused because the channel was full.
    pub dropped: AtomicU64,
    /// Acknowledged by Kafka.
    pub delivered: AtomicU64,
    /// Refused for good by Kafka or librdkafka, or abandoned at shutdown.
    pub failed: AtomicU64,
    /// Sent again after a retriable failure.
    pub retried: AtomicU64,
    /// delivered + failed, under a lock so `flush` can wait on it.
    settled: Mutex<u64>,
    settled_changed: Condvar,
    /// Why the last event failed, for the Ruby side to log.
    pub last_error: Mutex<Option<String>>,
    /// librdkafka's errors, waiting for the app's logger.
    pub logs: Arc<LogBuffer>,
}

impl Shared {
    fn settle(&self, delivered: u64, failed: u64) {
        if delivered + failed == 0 {
            return;
        }
        self.delivered.fetch_add(delivered, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        if let Ok(mut settled) = self.settled.lock() {
            *settled += delivered + failed;
        }
        self.settled_changed.notify_all();
    }

    fn fail(&self, reason: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason);
        }
    }

    /// Waits until `target` events are settled, `deadline` passes or
    /// `stop()` turns true (checked every few milliseconds).
    pub(crate) fn wait_settled(
        &self,
        target: u64,
        deadline: Instant,
        stop: impl Fn() -> bool,
    ) -> bool {
        let Ok(mut settled) = self.settled.lock() else {
            return false;
        };
        while *settled < target {
            let now = Instant::now();
            if now >= deadline || stop() {
                return false;
            }
            let slice = (deadline - now).min(Duration::from_millis(20));
            settled = match self.settled_changed.wait_timeout(settled, slice) {
                Ok((guard, _)) => guard,
                Err(_) => return false,
            };
        }
        true
    }
}

/// Hands envelopes to the sink, keeping each until its outcome is in.
struct Sender<'a> {
    sink: KafkaSink,
    shared: &'a Shared,
    in_flight: HashMap<u64, Vec<u8>>,
    next_token: u64,
    failed: u64,
}

impl Sender<'_> {
    /// Sends one envelope; gives it back if librdkafka has no room now.
    fn send(&mut self, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        let token = self.next_token;
        let result = match Envelope::decode(&bytes) {
            Ok(event) => self.sink.send(&event, token),
            Err(e) => Err(Rejected::Permanent(format!("malformed envelope: {e}"))),
        };
        match result {
            Ok(()) => {
                self.in_flight.insert(token, bytes);
                self.next_token += 1;
                Ok(())
            }
            Err(Rejected::Full) => Err(bytes),
            Err(Rejected::Permanent(reason)) => {
                self.failed += 1;
                self.shared.fail(reason);
                Ok(())
            }
        }
    }
}

/// The worker's loop; returns when the channel is disconnected and the
/// in-flight events are settled or `grace` has passed.
///
/// Envelopes are taken from the channel one at a time and sent at once;
/// while librdkafka has no room the worker holds just the one it refused
/// (plus retries), so the rest waits in the bounded channel and `emit`
/// sees the bound.
pub(crate) fn run(rx: Receiver<Vec<u8>>, sink: KafkaSink, shared: &Shared, grace: Duration) {
    let mut out = Sender {
        sink,
        shared,
        in_flight: HashMap::new(),
        next_token: 0,
        failed: 0,
    };
    // Refused by librdkafka for lack of room (and retries now due), in order.
    let mut waiting: VecDeque<Vec<u8>> = VecDeque::new();
    // Given back as retriable, waiting out the backoff.
    let mut retries: Retries<Vec<u8>> = Retries::default();
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut shutdown_deadline: Option<Instant> = None;

    loop {
        let now = Instant::now();
        while let Some(bytes) = retries.pop_due(now) {
            waiting.push_back(bytes);
        }
        let mut full = false;
        while let Some(bytes) = waiting.pop_front() {
            if let Err(bytes) = out.send(bytes) {
                waiting.push_front(bytes);
                full = true;
                break;
            }
        }
        if !full && shutdown_deadline.is_none() {
            if out.in_flight.is_empty() && waiting.is_empty() {
                match rx.recv_timeout(until_due(&retries, IDLE)) {
                    Ok(bytes) => waiting.push_back(bytes),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) if retries.is_empty() => return,
                    Err(RecvTimeoutError::Disconnected) => {
                        shutdown_deadline = Some(Instant::now() + grace);
                    }
                }
            }
            for _ in 0..BATCH {
                let bytes = match waiting.pop_front() {
                    Some(bytes) => bytes,
                    None => match rx.try_recv() {
                        Ok(bytes) => bytes,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            shutdown_deadline = Some(Instant::now() + grace);
                            break;
                        }
                    },
                };
                if let Err(bytes) = out.send(bytes) {
                    waiting.push_front(bytes);
                    full = true;
                    break;
                }
            }
        }

        let wait = if full || (!out.in_flight.is_empty() && rx.is_empty()) {
            POLL_BUSY
        } else if out.in_flight.is_empty() && waiting.is_empty() && shutdown_deadline.is_some() {
            // Only retries left: sleep until the next is due.
            until_due(&retries, POLL_BUSY)
        } else {
            Duration::ZERO
        };
        out.sink.poll(wait, &mut deliveries);
        let mut delivered = 0u64;
        for delivery in deliveries.drain(..) {
            let Some(bytes) = out.in_flight.remove(&delivery.token) else {
                continue;
            };
            match delivery.outcome {
                Outcome::Delivered => delivered += 1,
                Outcome::Retry(reason) => {
                    shared.retried.fetch_add(1, Ordering::Relaxed);
                    shared.fail(reason);
                    retries.failed(bytes);
                }
                Outcome::Permanent(reason) => {
                    out.failed += 1;
                    shared.fail(reason);
                }
            }
        }
        let failed = std::mem::take(&mut out.failed);

        if let Some(deadline) = shutdown_deadline {
            let left = (waiting.len() + out.in_flight.len() + retries.len()) as u64;
            if left == 0 {
                shared.settle(delivered, failed);
                return;
            }
            if Instant::now() >= deadline {
                shared.fail(format!(
                    "{left} events still undelivered when the producer shut down"
                ));
                shared.settle(delivered, failed + left);
                return;
            }
        }
        shared.settle(delivered, failed);
    }
}

/// How long to wait for the next retry to come due, at most `cap`.
fn until_due<T>(retries: &Retries<T>, cap: Duration) -> Duration {
    retries.next_due().map_or(cap, |due| {
        due.saturating_duration_since(Instant::now()).min(cap)
    })
}
