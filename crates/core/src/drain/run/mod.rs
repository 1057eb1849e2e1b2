//! The drain loop.
//!
//! Two threads. The receiving thread ([`super::receiver`]) takes messages
//! from the queue straight into the journal and hands each record over. The
//! drain loop, in this order each turn: refreshes the spool readers, sends
//! again what the sink gave back, admits new events (while the window has
//! room) from the queue's records and the spool's, alternately, and hands
//! each to the sink, serves the sink's outcomes, and acknowledges each
//! place's finished prefix: the receiving thread persists the journal's
//! checkpoint, the spool readers each segment's `acked`. With nothing out
//! it waits for the next record; with events out, inside the sink's poll,
//! with a sleep that doubles from 1 ms to 50 ms. An idle drain costs almost
//! no CPU and a new event waits at most about 50 ms.
//!
//! Order. Each emitting process's events reach the sink in the order they
//! were emitted, whichever way they came:
//!
//! - at start, records left in the journal go first, then what the last
//!   stop saved from the queue, which is delivered before the queue is
//!   taken again (`Drain::deliver_saved`), then the queue and the spool;
//! - a spool segment is read only once the queue records received before
//!   the segment's creation time were admitted (the receiver's horizon): a
//!   process spools after the queue refused it, and goes back to the queue
//!   only after the drain acknowledged everything it spooled;
//! - what the sink gives back goes again first, oldest first
//!   ([`super::resend`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sysvmq::{Key, Queue, HEADER_LEN};

use super::error::io;
use super::journal::{Journal, JournalView, OnDamage, RecordRef};
use super::log_limit::LogLimit;
use super::receiver::{Received, Receiver, Source};
use super::resend::Resends;
use super::spool_source::SpoolSource;
use super::window::{Acks, Origin, Place, Window};
use super::DrainError;
use super::{lock, DeadLetters, DrainConfig};
use crate::envelope::Envelope;
use crate::metrics::{DrainMetrics, Health};
use crate::sink::{Delivery, Outcome, Rejected, Sink};
use crate::state_dir::StateDir;

mod damage;
mod resize;
mod save;
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
    /// Events still unacknowledged at exit (they stay in the journal or
    /// their spool segment).
    pub left_in_flight: usize,
    /// Events moved from the queue into the saved spool at shutdown.
    pub saved: u64,
}

/// A drain bound to one queue, its spool, one journal and one sink.
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
    spool: SpoolSource,
    sink: S,
    window: Window,
    acks: Acks,
    /// Received queue records waiting for room in the window.
    waiting: VecDeque<RecordRef>,
    /// Of `waiting`, the first ones: records recovered from the journal.
    recovered_left: usize,
    /// Horizons from the receiving thread, each with the count of queue
    /// records taken into `waiting` before it.
    marks: VecDeque<(u64, i64)>,
    /// Queue records taken into `waiting`, and admitted from it, so far.
    taken: u64,
    admitted: u64,
    /// Spool segments created at or before this time may be read.
    horizon: i64,
    /// Whose turn it is to fill the window: the queue's or the spool's.
    queue_turn: bool,
    resends: Resends,
    dead: DeadLetters,
    dead_log: LogLimit,
    metrics: Arc<DrainMetrics>,
    health: Arc<Mutex<Health>>,
    max_in_flight: usize,
    shutdown_timeout: Duration,
    save: Option<Duration>,
    outcomes: Vec<Delivery>,
    peek: Vec<u8>,
    _lock: lock::DrainLock,
}

/// Where the bytes of the event at `place` are; empty while there is no
/// view.
fn body<'a>(view: &'a Option<JournalView>, spool: &'a SpoolSource, place: &Place) -> &'a [u8] {
    match place {
        Place::Journal(record) => view.as_ref().map_or(&[], |view| view.body(record)),
        Place::Spool(origin, record) => spool.body(*origin, record),
    }
}

/// What became of handing an event to the sink.
enum Offered {
    Sent,
    /// No room: the event waits in `resends`, and nothing newer is sent.
    Refused,
    /// It can never be sent: dead-letter it.
    Permanent(String),
}

fn offer<S: Sink>(sink: &mut S, event: &Envelope<'_>, token: u64) -> Offered {
    match sink.send(event, token) {
        Ok(()) => Offered::Sent,
        Err(Rejected::Full) => Offered::Refused,
        Err(Rejected::Permanent(reason)) => Offered::Permanent(reason),
    }
}

impl<S: Sink> Drain<S> {
    /// Takes the queue's lock, opens the journal (sized for the host's
    /// `kernel.msgmax`; refused if damaged where records may follow, unless
    /// `discard_damaged_journal`), the queue (created if missing), the
    /// spool and the dead-letter file.
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
        let on_damage = if config.discard_damaged_journal {
            OnDamage::Discard
        } else {
            OnDamage::Refuse
        };
        let journal = damage::open_journal(&state, config.journal_size, max_record, on_damage)
            .inspect_err(|_| metrics.journal_damaged.inc())?;
        damage::report(&journal, &metrics);
        let queue = Queue::open_or_create(key, config.queue_mode)?;
        let (dead, error) = DeadLetters::open(
            &state,
            config.dead_letter_max_bytes,
            config.dead_letter_files,
        );
        if let Some(e) = error {
            eprintln!(
                "shopify-events drain: cannot open the dead-letter file {}: {e}; dead letters go \
                 to this log in full until it can",
                dead.path().display()
            );
        }
        let spool_dir = Some(config.spool_dir.as_path()).filter(|d| !d.as_os_str().is_empty());
        let spool = SpoolSource::open(spool_dir, &state.saved_spool(), key, Arc::clone(&metrics));
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
            spool,
            sink,
            window: Window::default(),
            acks: Acks::default(),
            waiting: VecDeque::new(),
            recovered_left: 0,
            marks: VecDeque::new(),
            taken: 0,
            admitted: 0,
            horizon: i64::MIN,
            queue_turn: true,
            resends: Resends::default(),
            dead,
            dead_log: LogLimit::new(10),
            metrics,
            health: Arc::new(Mutex::new(Health {
                ok: true,
                detail: "starting".into(),
            })),
            max_in_flight: config.max_in_flight,
            shutdown_timeout: config.shutdown_timeout(),
            save: config.save_on_stop.then(|| config.save_timeout()),
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
    /// for in-flight deliveries, saves what is left in the queue if
    /// `save_on_stop` asks, and writes the journal back to disk. Whatever
    /// is not delivered stays in the journal (sent first at the next
    /// start), its spool segment, the saved spool or the queue.
    pub fn run(&mut self, shutdown: &AtomicBool) -> Result<RunSummary, DrainError> {
        let Some(mut journal) = self.journal.take() else {
            return Err(DrainError::Io {
                what: "running the drain".into(),
                source: std::io::Error::other("it already ran; open a new one"),
            });
        };
        // Recovered records wait for the window like any other: a restart
        // after a crash respects max_in_flight.
        let recovered = journal.recovered();
        self.recovered_left = recovered.len();
        self.taken += recovered.len() as u64;
        self.waiting.extend(recovered.iter().cloned());
        self.metrics.recovered.add(recovered.len() as u64);
        if !recovered.is_empty() {
            eprintln!(
                "shopify-events drain: re-sending {} events left in the journal",
                recovered.len()
            );
        }
        if self.spool.saved_pending() {
            self.deliver_saved(&mut journal, shutdown);
        }
        while !shutdown.load(Ordering::Relaxed) {
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
                other => {
                    other?;
                    break;
                }
            }
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.window.open() > 0 && Instant::now() < deadline {
            self.settle_into(&mut journal);
        }
        let saved = match self.save {
            Some(bound) => self.save_queue(bound),
            None => 0,
        };
        if let Err(e) = journal.flush() {
            eprintln!("shopify-events drain: {e}");
        }
        self.metrics
            .journal_pending_bytes
            .set(journal.pending_bytes() as i64);
        self.journal = Some(journal);
        self.tick();
        Ok(RunSummary {
            recovered: recovered.len() as u64,
            left_in_flight: self.window.open(),
            saved,
        })
    }

    /// Before the queue is taken: delivers the records left in the journal,
    /// then what the last stop saved from the queue (`save.rs`), until every
    /// saved event is acknowledged or `shutdown`. Taking the queue only
    /// then keeps each process's order across any number of stops: the
    /// journal never holds an event newer than a saved one that is still
    /// to be delivered.
    fn deliver_saved(&mut self, journal: &mut Journal, shutdown: &AtomicBool) {
        let mut next_tick = Instant::now();
        while !self.spool.saved_done() && !shutdown.load(Ordering::Relaxed) {
            self.spool.refresh(Instant::now(), false);
            self.resend_due();
            while self.window_has_room() && self.resends.is_empty() {
                let place = match self.pop_waiting() {
                    Some(record) => Place::Journal(record),
                    None => match self.spool.next_saved() {
                        Some(record) => Place::Spool(Origin::Saved, record),
                        None => break,
                    },
                };
                self.admit(place);
            }
            self.settle_into(journal);
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
    }

    /// The loop, until `shutdown` is set or receiving failed.
    fn serve(&mut self, receiver: &Receiver, shutdown: &AtomicBool) -> Result<(), DrainError> {
        let mut idle = MIN_IDLE;
        let mut next_tick = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            self.spool.refresh(Instant::now(), false);
            let mut progress = self.resend_due();
            progress += self.take_batch(receiver)?;
            let wait = if progress > 0 { Duration::ZERO } else { idle };
            if self.window.open() == 0 && self.waiting.is_empty() && !wait.is_zero() {
                // Nothing out at the sink: wait for the next record instead.
                if let Some(received) = receiver.take_timeout(wait) {
                    // A horizon alone is no progress: the loop keeps its
                    // idle pace.
                    progress += self.take(received)?;
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

    /// Admits events into the window and sends them, up to a batch and
    /// while the window has room, taking turns between the queue and the
    /// spool; returns how many. Nothing new goes while the sink's
    /// give-backs wait: they go first.
    fn take_batch(&mut self, receiver: &Receiver) -> Result<usize, DrainError> {
        let mut taken = 0;
        while taken < RECEIVE_BATCH && self.window_has_room() && self.resends.is_empty() {
            self.queue_turn = !self.queue_turn;
            let mut admitted = false;
            for queue in [self.queue_turn, !self.queue_turn] {
                admitted = if queue {
                    self.admit_from_queue(receiver)?
                } else {
                    self.admit_from_spool()
                };
                if admitted {
                    break;
                }
            }
            if !admitted {
                break;
            }
            taken += 1;
        }
        Ok(taken)
    }

    /// Admits the next queue record: one recovered from the journal, else
    /// one received. False if none is ready.
    fn admit_from_queue(&mut self, receiver: &Receiver) -> Result<bool, DrainError> {
        loop {
            if let Some(record) = self.pop_waiting() {
                self.admit(Place::Journal(record));
                return Ok(true);
            }
            match receiver.try_take() {
                Some(received) => {
                    self.take(received)?;
                }
                None => return Ok(false),
            }
        }
    }

    /// The next waiting queue record, moving the horizon past it.
    fn pop_waiting(&mut self) -> Option<RecordRef> {
        let record = self.waiting.pop_front()?;
        self.admitted += 1;
        self.recovered_left = self.recovered_left.saturating_sub(1);
        self.pass_marks();
        Some(record)
    }

    /// Moves the horizon to the marks whose records were all admitted.
    fn pass_marks(&mut self) {
        while let Some(&(after, horizon)) = self.marks.front() {
            if after > self.admitted {
                break;
            }
            self.horizon = self.horizon.max(horizon);
            self.marks.pop_front();
        }
    }

    /// Admits the next spooled record whose segment the horizon allows,
    /// once the journal's and the saved spool's records are all admitted.
    fn admit_from_spool(&mut self) -> bool {
        if self.recovered_left > 0 || self.spool.saved_pending() {
            return false;
        }
        match self.spool.next(self.horizon) {
            Some(record) => {
                self.admit(Place::Spool(Origin::Spool, record));
                true
            }
            None => false,
        }
    }

    /// Whether the window takes another event. `open` bounds what is out
    /// at the sink; the window may also hold finished events behind a slow
    /// one (acks arrive per partition), up to a few windows' worth, so one
    /// slow partition does not stall the others while memory stays bounded.
    /// The rest waits in `waiting`, the channel, the journal, the queue and
    /// the spool.
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

    /// Acts on what the receiving thread handed over; returns how many
    /// records it took.
    fn take(&mut self, received: Received) -> Result<usize, DrainError> {
        match received {
            Received::Records(records, horizon) => {
                let taken = records.len();
                self.taken += taken as u64;
                self.waiting.extend(records);
                self.marks.push_back((self.taken, horizon));
                self.pass_marks();
                return Ok(taken);
            }
            Received::Horizon(horizon) => {
                self.marks.push_back((self.taken, horizon));
                self.pass_marks();
            }
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
        Ok(0)
    }

    /// Puts the event at `place` in the window and sends it.
    fn admit(&mut self, place: Place) {
        let bytes = body(&self.view, &self.spool, &place);
        let (token, offered) = match Envelope::decode(bytes) {
            Ok(event) => {
                let token = self.window.push(place, event.time_us);
                (token, offer(&mut self.sink, &event, token))
            }
            Err(e) => {
                let token = self.window.push(place, 0);
                (
                    token,
                    Offered::Permanent(format!("malformed envelope: {e}")),
                )
            }
        };
        match offered {
            Offered::Sent => {}
            Offered::Refused => self.resends.refused(token),
            Offered::Permanent(reason) => self.dead_letter(token, &reason),
        }
    }

    /// Sends the event of `token` again.
    fn send(&mut self, token: u64) -> Offered {
        let Some(place) = self.window.place(token) else {
            return Offered::Sent;
        };
        match Envelope::decode(body(&self.view, &self.spool, &place)) {
            Err(e) => Offered::Permanent(format!("malformed envelope: {e}")),
            Ok(event) => offer(&mut self.sink, &event, token),
        }
    }

    /// Writes the event of `token` to the dead letters and finishes it.
    fn dead_letter(&mut self, token: u64, reason: &str) {
        let Some(place) = self.window.place(token) else {
            return;
        };
        let bytes = body(&self.view, &self.spool, &place);
        let event = Envelope::decode(bytes).ok();
        write_dead_letter(
            &mut self.dead,
            &mut self.dead_log,
            &self.metrics,
            reason,
            bytes,
            event.as_ref(),
        );
        self.window.finish(token);
    }

    /// Sends again, oldest first, what the sink gave back and is due;
    /// returns how many went. One refused again stays first, and the rest
    /// wait for the next round: no busy loop against a full sink.
    fn resend_due(&mut self) -> usize {
        let now = Instant::now();
        let mut sent = 0;
        while let Some(token) = self.resends.pop_due(now) {
            match self.send(token) {
                Offered::Sent => sent += 1,
                Offered::Refused => {
                    self.resends.refused(token);
                    break;
                }
                Offered::Permanent(reason) => {
                    self.dead_letter(token, &reason);
                    sent += 1;
                }
            }
        }
        sent
    }

    /// Applies the sink's outcomes and the spool's acknowledgements;
    /// returns the checkpoint the journal may move to, if the journal's
    /// finished prefix grew.
    fn settle(&mut self) -> Option<u64> {
        let now_us = crate::clock::now_micros();
        let outcomes = std::mem::take(&mut self.outcomes);
        for Delivery { token, outcome } in &outcomes {
            match outcome {
                Outcome::Delivered => {
                    if let Some(time_us) = self.window.finish(*token) {
                        self.metrics.produced.inc();
                        let age = now_us.saturating_sub(time_us).max(0);
                        self.metrics.delivery_latency.observe(age as f64 / 1e6);
                    }
                }
                Outcome::Retry(_) => {
                    self.metrics.retried.inc();
                    self.resends.failed(*token);
                }
                Outcome::Permanent(reason) => self.dead_letter(*token, reason),
            }
        }
        self.outcomes = outcomes;
        self.outcomes.clear();
        self.window.advance(&mut self.acks);
        for &(origin, segment, end) in &self.acks.spool {
            self.spool.ack(origin, segment, end);
        }
        self.acks.journal
    }
}

/// Writes a dead letter and counts it. If no dead-letter file can be
/// written, the line goes to the log in full and is counted as a failure:
/// the event is not lost in silence, and it does not hold back the events
/// behind it.
fn write_dead_letter(
    dead: &mut DeadLetters,
    log: &mut LogLimit,
    metrics: &DrainMetrics,
    reason: &str,
    bytes: &[u8],
    event: Option<&Envelope<'_>>,
) {
    metrics.dead_lettered.inc();
    match dead.write(reason, bytes, event) {
        Ok(written) => {
            for path in written.dropped {
                metrics.dead_letter_files_dropped.inc();
                eprintln!(
                    "shopify-events drain: deleted the oldest dead-letter file {} to stay within \
                     dead_letter_files; raise dead_letter_files or dead_letter_max_bytes to keep \
                     more",
                    path.display()
                );
            }
            let allowed = log.allow(Instant::now(), |n| {
                eprintln!(
                    "shopify-events drain: {n} more dead letters in the last minute were not \
                     logged (see the dead-letter file)"
                );
            });
            if allowed {
                eprintln!(
                    "shopify-events drain: dead-lettered event{}: {reason}",
                    event
                        .map(|e| format!(" {} (topic {})", e.id, e.topic))
                        .unwrap_or_default()
                );
            }
        }
        Err(not_written) => {
            metrics.dead_letter_failures.inc();
            eprintln!(
                "shopify-events drain: cannot write dead letter to {}: {}; the dead letter in \
                 full: {}",
                dead.path().display(),
                not_written.source,
                not_written.line
            );
        }
    }
}
