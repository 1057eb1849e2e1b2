//! The in-process `direct` transport: a librdkafka producer inside the
//! emitting process, with no host daemon.
//!
//! `emit` encodes the envelope on the caller's thread and hands the bytes to
//! a bounded crossbeam channel with `try_send`: it never blocks, and a full
//! channel (Kafka slower than the app, or down) is reported at once so the
//! caller can drop and count, or raise. One worker thread owns a
//! [`KafkaSink`] — the drain's producer, so records are mapped identically:
//! topic, key, payload, headers plus the `event_id` header, and the emit
//! time as the record timestamp — and keeps every envelope until Kafka
//! acknowledged it, re-sending what librdkafka gives back as retriable.
//!
//! **Durability**: what sits in the channel or in librdkafka's buffers lives
//! only in this process's memory. If the process dies it is lost — unlike
//! the `sysv` transport, where the kernel holds each event. [`DirectProducer::flush`]
//! waits (bounded) until everything accepted so far is settled; callers run
//! it at exit.
//!
//! **Fork**: a forked child (Puma cluster mode) inherits the parent's
//! handles but none of its threads. The producer notices the fork on its
//! next call and starts a fresh worker and librdkafka instance in the child.
//! It never touches the parent's handles there: they are leaked on purpose,
//! since destroying them would join threads that do not exist in the child.

mod log;
mod worker;

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::per_process::PerProcess;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use crate::defaults;
use crate::kafka::{KafkaSink, MESSAGE_MAX_BYTES};
use crate::transport::{FrameSink, SendError};
pub use log::LogLine;
use worker::Shared;

/// How to build a [`DirectProducer`].
#[derive(Clone, Debug)]
pub struct DirectConfig {
    /// librdkafka settings (must name `bootstrap.servers`), applied after
    /// the drain's defaults (acks=all, idempotence, lz4, linger.ms=5).
    pub settings: BTreeMap<String, String>,
    /// Envelopes the channel holds before `try_send` reports it full.
    pub buffer: usize,
    /// How long a worker whose producer handle was dropped keeps delivering.
    pub shutdown_grace: Duration,
}

impl DirectConfig {
    /// A configuration for `settings` with the default buffer and grace.
    pub fn new(settings: BTreeMap<String, String>) -> DirectConfig {
        DirectConfig {
            settings,
            buffer: defaults::DIRECT_BUFFER,
            shutdown_grace: defaults::FLUSH_TIMEOUT,
        }
    }

    /// The largest envelope Kafka accepts under these settings
    /// (`message.max.bytes`, librdkafka's default otherwise).
    pub fn max_envelope_size(&self) -> usize {
        self.settings
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(MESSAGE_MAX_BYTES)
    }
}

/// Why a [`DirectProducer`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// No `bootstrap.servers` in the settings.
    #[error("no Kafka brokers for the direct transport: set SHOPIFY_EVENTS_BROKERS or `brokers` (host:port,host:port)")]
    NoBrokers,
    /// The buffer size is zero.
    #[error("direct transport buffer must hold at least one event, got {0}")]
    EmptyBuffer(usize),
    /// librdkafka rejected a setting.
    #[error(
        "librdkafka rejected the direct transport's settings: {0} (check the `kafka` settings)"
    )]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The worker thread could not be started.
    #[error("cannot start the direct transport's worker thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Counters of one process's direct producer (reset in a forked child).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectStats {
    /// Envelopes taken into the buffer.
    pub emitted: u64,
    /// Envelopes refused because the buffer was full.
    pub dropped: u64,
    /// Acknowledged by Kafka.
    pub delivered: u64,
    /// Refused for good by Kafka, or abandoned at shutdown.
    pub failed: u64,
    /// Sent again after a retriable failure.
    pub retried: u64,
    /// Accepted and not yet settled (in the buffer or in flight).
    pub pending: u64,
}

/// One process's worker: the channel's sending end and the thread.
struct Worker {
    tx: ManuallyDrop<Sender<Vec<u8>>>,
    thread: ManuallyDrop<Option<JoinHandle<()>>>,
    shared: ManuallyDrop<Arc<Shared>>,
    generation: u64,
}

impl Worker {
    fn start(config: &DirectConfig) -> Result<Worker, DirectError> {
        let shared = Arc::new(Shared::default());
        let sink = KafkaSink::with_log(&config.settings, shared.logs.clone())?;
        let (tx, rx) = crossbeam_channel::bounded(config.buffer);
        let thread_shared = Arc::clone(&shared);
        let grace = config.shutdown_grace;
        let thread = std::thread::Builder::new()
            .name("shopify_events-direct".into())
            .spawn(move || worker::run(rx, sink, &thread_shared, grace))?;
        Ok(Worker {
            tx: ManuallyDrop::new(tx),
            thread: ManuallyDrop::new(Some(thread)),
            shared: ManuallyDrop::new(shared),
            generation: crate::process::generation(),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.generation != crate::process::generation() {
            // Inherited from the parent: its threads do not exist here, so
            // leave every handle untouched (leaked).
            return;
        }
        // SAFETY: each field is dropped exactly once, here.
        unsafe {
            ManuallyDrop::drop(&mut self.tx);
            // Detach: the worker delivers what it holds (bounded by its
            // grace) without making the dropping thread wait.
            ManuallyDrop::drop(&mut self.thread);
            ManuallyDrop::drop(&mut self.shared);
        }
    }
}

/// The direct producer handle; cheap to call from many threads.
///
/// The worker starts with the handle and again, lazily, in a forked child.
/// The lock around it is one per process generation ([`PerProcess`]): a
/// fork while another thread held it (`flush` or `take_logs`, which run
/// without Ruby's GVL) leaves the child a lock of its own, not one held by
/// a thread that does not exist there.
pub struct DirectProducer {
    config: DirectConfig,
    worker: PerProcess<Mutex<Option<Worker>>>,
    closed: AtomicBool,
}

impl DirectProducer {
    /// Validates `config` and starts the worker.
    pub fn new(config: DirectConfig) -> Result<DirectProducer, DirectError> {
        if !config
            .settings
            .get("bootstrap.servers")
            .is_some_and(|b| !b.trim().is_empty())
        {
            return Err(DirectError::NoBrokers);
        }
        if config.buffer == 0 {
            return Err(DirectError::EmptyBuffer(config.buffer));
        }
        crate::process::register();
        let worker = Worker::start(&config)?;
        let producer = DirectProducer {
            config,
            worker: PerProcess::new(),
            closed: AtomicBool::new(false),
        };
        producer
            .worker
            .get_or_init(|| Mutex::new(Some(worker)), |_| {});
        Ok(producer)
    }

    /// The configuration the producer was built with.
    pub fn config(&self) -> &DirectConfig {
        &self.config
    }

    /// Hands one envelope to the worker without blocking.
    pub fn try_send(&self, envelope: Vec<u8>) -> Result<(), SendError> {
        let limit = self.config.max_envelope_size();
        if envelope.len() > limit {
            return Err(SendError::TooLarge {
                size: envelope.len(),
                limit: limit as u64,
                setting: "the Kafka record limit (librdkafka message.max.bytes)",
                fix: "raise `message.max.bytes` in the kafka settings and on the brokers",
            });
        }
        let mut slot = self.lock();
        if self.closed.load(Ordering::Relaxed) {
            return Err(unavailable("the producer was closed".into()));
        }
        if slot.is_none() {
            *slot = Some(Worker::start(&self.config).map_err(|e| unavailable(e.to_string()))?);
        }
        let Some(worker) = slot.as_ref() else {
            return Err(unavailable("no worker".into()));
        };
        match worker.tx.try_send(envelope) {
            Ok(()) => {
                worker.shared.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                worker.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Err(SendError::DirectBufferFull {
                    capacity: self.config.buffer,
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(unavailable("the worker thread has stopped".into()))
            }
        }
    }

    /// Waits up to `timeout` until every envelope accepted so far in this
    /// process is delivered or failed for good. Returns early (false) when
    /// `interrupted` turns true. Never holds the internal lock while waiting.
    pub fn flush(&self, timeout: Duration, interrupted: &AtomicBool) -> bool {
        let Some(shared) = self.current_shared() else {
            return true;
        };
        let target = shared.accepted.load(Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        shared.wait_settled(target, deadline, || interrupted.load(Ordering::Relaxed))
    }

    /// This process's counters.
    pub fn stats(&self) -> DirectStats {
        let Some(shared) = self.current_shared() else {
            return DirectStats::default();
        };
        let emitted = shared.accepted.load(Ordering::Relaxed);
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        DirectStats {
            emitted,
            dropped: shared.dropped.load(Ordering::Relaxed),
            delivered,
            failed,
            retried: shared.retried.load(Ordering::Relaxed),
            pending: emitted.saturating_sub(delivered + failed),
        }
    }

    /// Waits up to `timeout` for librdkafka's errors and takes them, for the
    /// app's logger. Returns early (empty) when `interrupted` turns true.
    pub fn take_logs(&self, timeout: Duration, interrupted: &AtomicBool) -> Vec<LogLine> {
        let deadline = Instant::now() + timeout;
        let stop = || interrupted.load(Ordering::Relaxed);
        match self.current_shared() {
            Some(shared) => shared.logs.take(deadline, stop),
            None => {
                // No worker (closed, or a forked child that has not sent):
                // wait out the timeout so a caller's loop does not spin.
                while Instant::now() < deadline && !stop() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Vec::new()
            }
        }
    }

    /// Stops taking events. The worker delivers what it holds, for at most
    /// the shutdown grace, in the background, then ends with its producer;
    /// `close` itself does not wait (call [`DirectProducer::flush`] first
    /// for that).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let worker = self.lock().take();
        drop(worker);
    }

    /// Why the last event failed or was retried, if any did.
    pub fn last_error(&self) -> Option<String> {
        let shared = self.current_shared()?;
        let last = shared.last_error.lock().ok()?;
        last.clone()
    }

    /// This generation's worker slot, locked; a forked child's starts empty
    /// (the parent's worker is leaked with the parent's slot).
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Worker>> {
        let slot = self.worker.get_or_init(|| Mutex::new(None), |_| {});
        // A poisoned lock only means a panic elsewhere; the slot is still valid.
        slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This process's worker state; none in a forked child until it sends.
    fn current_shared(&self) -> Option<Arc<Shared>> {
        self.lock().as_ref().map(|w| Arc::clone(&w.shared))
    }
}

impl FrameSink for DirectProducer {
    /// The channel carries bare envelopes: no prefix.
    fn begin_frame(&self, buf: &mut Vec<u8>) {
        buf.clear();
    }

    /// Not numbered: the direct transport's events never reach the drain,
    /// whose accounting the stamp is for.
    fn send_frame(&self, frame: &mut [u8]) -> Result<(), SendError> {
        self.try_send(frame.to_vec())
    }

    /// Nothing to do: [`DirectProducer::try_send`] counted the drop when the
    /// buffer refused the event.
    fn count_drop(&self) {}
}

fn unavailable(reason: String) -> SendError {
    SendError::Unavailable {
        transport: "direct",
        reason,
    }
}
