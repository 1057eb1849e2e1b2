//! The drain loop.
//!
//! Two threads. The receiving thread ([`super::receiver`]) takes messages
//! from the queue straight into the journal and hands each record over. The
//! drain loop, in this order each turn: takes records (while the window has
//! room) and hands each event to the sink, re-sends retries that are due,
//! serves the sink's outcomes, and acknowledges the finished prefix, which
//! the receiving thread persists as the journal's checkpoint. With nothing
//! out it waits for the next record; with events out, inside the sink's
//! poll, with a sleep that doubles from 1 ms to 50 ms. An idle drain costs
//! almost no CPU and a new event waits at most 50 ms.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sysvmq::{Key, Queue, HEADER_LEN};

use super::error::io;
use super::journal::{Journal, JournalView, RecordRef};
use super::receiver::{Received, Receiver, Source};
use super::window::Window;
use super::DrainError;
use super::{lock, DeadLetters, DrainConfig};
use crate::envelope::Envelope;
use crate::kafka::retry::Retries;
use crate::metrics::{DrainMetrics, Health};
use crate::sink::{Delivery, Outcome, Rejected, Sink};
use crate::state_dir::StateDir;

mod resize;
mod status;

const MIN_IDLE: Duration = Duration::from_millis(1);
const MAX_IDLE: Duration = Duration::from_millis(50);
const RECEIVE_BATCH: usize = 1024;
const WINDOW_SLACK: usize = 4;
const TICK: Duration = Duration::from_secs(1);

/// What a run did, for the exit log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Events re-sent from the journal at startup.
    pub recovered: u64,
    /// Events still unacknowledged at exit (they stay in the journal).
    pub left_in_flight: usize,
}

/// A drain bound to one queue, one journal and one sink.
pub struct Drain<S: Sink> {
    key: Key,
    queue_mode: u32,
    state: StateDir,
    queue: Queue,
    /// Owned here until `run` lends it to the receiving thread.
    journal: Option<Journal>,
    journal_size: u64,
    /// Reads record bodies; `None` only while `regrow` reopens the journal.
    view: Option<JournalView>,
    sink: S,
    window: Window,
    /// Received records waiting for room in the window (at most a batch).
    waiting: VecDeque<RecordRef>,
    retries: Retries<u64>,
    dead: DeadLetters,
    metrics: Arc<DrainMetrics>,
    health: Arc<Mutex<Health>>,
    max_in_flight: usize,
    shutdown_timeout: Duration,
    outcomes: Vec<Delivery>,
    peek: Vec<u8>,
    _lock: lock::DrainLock,
}

/// The body of a pending `record`; empty while there is no view.
fn body<'v>(view: &'v Option<JournalView>, record: &RecordRef) -> &'v [u8] {
    view.as_ref().map_or(&[], |view| view.body(record))
}

/// Hands `event` to the sink; a full sink queues a retry. Returns the
/// reason if the sink can never take it.
fn offer<S: Sink>(
    sink: &mut S,
    retries: &mut Retries<u64>,
    event: &Envelope<'_>,
    token: u64,
) -> Option<String> {
    match sink.send(event, token) {
        Ok(()) => None,
        Err(Rejected::Full) => {
            retries.refused(token);
            None
        }
        Err(Rejected::Permanent(reason)) => Some(reason),
    }
}

impl<S: Sink> Drain<S> {
    /// Takes the queue's lock, opens the journal (sized for the host's
    /// `kernel.msgmax`), the queue (created if missing) and the dead-letter file.
    pub fn open(
        config: &DrainConfig,
        sink: S,
        metrics: Arc<DrainMetrics>,
    ) -> Result<Drain<S>, DrainError> {
        let key = config.queue_key;
        let state = config.state();
        state.create().map_err(io(format!(
            "creating state directory {}",
            state.root().display()
        )))?;
        let lock = lock::acquire(&state)?;
        let max_record = sysvmq::message_size_limit();
        let journal = Journal::open(&state.journal(), config.journal_size, max_record)?;
        let queue = Queue::open_or_create(key, config.queue_mode)?;
        for warning in crate::ops::check_queue_access(&queue)? {
            eprintln!("shopify-events drain: {warning}");
        }
        let dead = DeadLetters::open(&state).map_err(io(format!(
            "opening dead-letter file in {}",
            state.dead_letter_dir().display()
        )))?;
        let peek = vec![0; HEADER_LEN + journal.max_record() as usize];
        let view = journal.view();
        Ok(Drain {
            key,
            queue_mode: config.queue_mode,
            state,
            queue,
            journal: Some(journal),
            journal_size: config.journal_size,
            view: Some(view),
            sink,
            window: Window::default(),
            waiting: VecDeque::new(),
            retries: Retries::default(),
            dead,
            metrics,
            health: Arc::new(Mutex::new(Health {
                ok: true,
                detail: "starting".into(),
            })),
            max_in_flight: config.max_in_flight,
            shutdown_timeout: config.shutdown_timeout(),
            outcomes: Vec::new(),
            peek,
            _lock: lock,
        })
    }

    /// Health as `/health` reports it, updated every second.
    pub fn health(&self) -> Arc<Mutex<Health>> {
        self.health.clone()
    }

    /// The sink (tests inspect what it received).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Runs until `shutdown` is set, then waits up to the shutdown timeout
    /// for in-flight deliveries. Whatever is not delivered stays in the
    /// journal (sent first at the next start) or in the queue.
    pub fn run(&mut self, shutdown: &AtomicBool) -> Result<RunSummary, DrainError> {
        let Some(mut journal) = self.journal.take() else {
            return Err(DrainError::Io {
                what: "running the drain".into(),
                source: std::io::Error::other("it already ran; open a new one"),
            });
        };
        let recovered = journal.recovered();
        for record in &recovered {
            self.admit(record.clone());
        }
        self.metrics.recovered.add(recovered.len() as u64);
        if !recovered.is_empty() {
            eprintln!(
                "shopify-events drain: re-sending {} events left in the journal",
                recovered.len()
            );
        }
        loop {
            let source = Source {
                key: self.key,
                queue_mode: self.queue_mode,
                queue: self.queue,
                journal,
            };
            let receiver = Receiver::start(source, Arc::clone(&self.metrics))?;
            let result = self.serve(&receiver, shutdown);
            // Stopped (or failed): no more records come in; what the thread
            // received and the loop did not take stays in the journal.
            journal = receiver.stop()?;
            match result {
                Err(DrainError::MessageTooLarge { limit, .. }) => {
                    journal = self.regrow(journal, limit, shutdown)?;
                    if shutdown.load(Ordering::Relaxed) {
                        break;
                    }
                }
                other => break other?,
            }
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.window.open() > 0 && Instant::now() < deadline {
            self.settle_into(&mut journal);
        }
        self.metrics
            .journal_pending_bytes
            .set(journal.pending_bytes() as i64);
        self.journal = Some(journal);
        self.tick();
        Ok(RunSummary {
            recovered: recovered.len() as u64,
            left_in_flight: self.window.open(),
        })
    }

    /// The loop, until `shutdown` is set or receiving failed.
    fn serve(&mut self, receiver: &Receiver, shutdown: &AtomicBool) -> Result<(), DrainError> {
        let mut idle = MIN_IDLE;
        let mut next_tick = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            let mut progress = self.take_batch(receiver)?;
            progress += self.resend_due();
            let wait = if progress > 0 { Duration::ZERO } else { idle };
            if self.window.open() == 0 && self.waiting.is_empty() && !wait.is_zero() {
                // Nothing out at the sink: wait for the next record instead.
                if let Some(received) = receiver.take_timeout(wait) {
                    self.take(received)?;
                    progress += 1;
                }
                self.sink.poll(Duration::ZERO, &mut self.outcomes);
            } else {
                self.sink.poll(wait, &mut self.outcomes);
            }
            let settled = self.outcomes.len();
            if let Some(checkpoint) = self.settle() {
                receiver.acknowledge(checkpoint);
            }
            progress += settled;
            idle = if progress > 0 {
                MIN_IDLE
            } else {
                (idle * 2).min(MAX_IDLE)
            };
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
        Ok(())
    }

    /// Takes received records into the window and sends them, up to a
    /// batch and while the window has room; returns how many.
    fn take_batch(&mut self, receiver: &Receiver) -> Result<usize, DrainError> {
        let mut taken = 0;
        while taken < RECEIVE_BATCH && self.window_has_room() {
            if let Some(record) = self.waiting.pop_front() {
                self.admit(record);
                taken += 1;
                continue;
            }
            let Some(received) = receiver.try_take() else {
                break;
            };
            self.take(received)?;
        }
        Ok(taken)
    }

    /// Whether the window takes another event. `open` bounds what is out
    /// at the sink; the window may also hold finished events behind a slow
    /// one (acks arrive per partition), up to a few windows' worth, so one
    /// slow partition does not stall the others while memory stays bounded.
    /// The rest waits in `waiting`, the channel, the journal and the queue.
    fn window_has_room(&self) -> bool {
        self.window.open() < self.max_in_flight
            && self.window.len() < self.max_in_flight * WINDOW_SLACK
    }

    /// With the receiving thread stopped: re-sends what is due, serves the
    /// sink's outcomes for up to 10 ms and moves `journal`'s checkpoint.
    fn settle_into(&mut self, journal: &mut Journal) {
        self.resend_due();
        self.sink
            .poll(Duration::from_millis(10), &mut self.outcomes);
        if let Some(checkpoint) = self.settle() {
            journal.checkpoint(checkpoint);
        }
    }

    /// Acts on what the receiving thread handed over.
    fn take(&mut self, received: Received) -> Result<(), DrainError> {
        match received {
            Received::Records(records) => self.waiting.extend(records),
            Received::Reopened(queue) => {
                self.queue = queue;
                eprintln!(
                    "shopify-events drain: queue {:#010x} was removed; opened it again (id {})",
                    self.key,
                    queue.id()
                );
            }
            Received::Failed(error) => return Err(error),
        }
        Ok(())
    }

    /// Puts a journal record in the window and sends it.
    fn admit(&mut self, record: RecordRef) {
        let body = body(&self.view, &record);
        let (token, rejected) = match Envelope::decode(body) {
            Ok(event) => {
                let token = self.window.push(record, event.time_us);
                let rejected = offer(&mut self.sink, &mut self.retries, &event, token);
                (token, rejected)
            }
            Err(e) => {
                let token = self.window.push(record, 0);
                (token, Some(format!("malformed envelope: {e}")))
            }
        };
        if let Some(reason) = rejected {
            self.dead_letter(token, &reason);
        }
    }

    /// Sends the event of `token` again (a retry).
    fn send(&mut self, token: u64) {
        let Some(record) = self.window.record(token) else {
            return;
        };
        let rejected = match Envelope::decode(body(&self.view, &record)) {
            Err(e) => Some(format!("malformed envelope: {e}")),
            Ok(event) => offer(&mut self.sink, &mut self.retries, &event, token),
        };
        if let Some(reason) = rejected {
            self.dead_letter(token, &reason);
        }
    }

    fn dead_letter(&mut self, token: u64, reason: &str) {
        let Some(record) = self.window.record(token) else {
            return;
        };
        let bytes = body(&self.view, &record);
        let event = Envelope::decode(bytes).ok();
        if let Err(e) = self.dead.write(reason, bytes, event.as_ref()) {
            // Keep the event rather than lose it; try again later.
            eprintln!(
                "shopify-events drain: cannot write dead letter to {}: {e}",
                self.dead.path().display()
            );
            self.retries.failed(token);
            return;
        }
        eprintln!(
            "shopify-events drain: dead-lettered event{}: {reason}",
            event
                .map(|e| format!(" {} (topic {})", e.id, e.topic))
                .unwrap_or_default()
        );
        self.window.finish(token);
        self.metrics.dead_lettered.inc();
    }

    /// Re-sends retries that are due ([`crate::kafka::retry`]); returns
    /// how many. Each is taken once per call, even if the sink refuses it
    /// again at once.
    fn resend_due(&mut self) -> usize {
        let now = Instant::now();
        let mut sent = 0;
        for _ in 0..self.retries.len() {
            let Some(token) = self.retries.pop_due(now) else {
                break;
            };
            self.send(token);
            sent += 1;
        }
        sent
    }

    /// Applies the sink's outcomes; returns the checkpoint the journal may
    /// move to, if the finished prefix grew.
    fn settle(&mut self) -> Option<u64> {
        let now_us = crate::clock::now_micros();
        let outcomes = std::mem::take(&mut self.outcomes);
        for Delivery { token, outcome } in &outcomes {
            match outcome {
                Outcome::Delivered => {
                    if let Some(time_us) = self.window.finish(*token) {
                        self.metrics.produced.inc();
                        self.metrics
                            .delivery_latency
                            .observe(crate::clock::age_secs(now_us, time_us));
                    }
                }
                Outcome::Retry(_) => {
                    self.metrics.retried.inc();
                    self.retries.failed(*token);
                }
                Outcome::Permanent(reason) => self.dead_letter(*token, reason),
            }
        }
        self.outcomes = outcomes;
        self.outcomes.clear();
        self.window.advance()
    }
}
