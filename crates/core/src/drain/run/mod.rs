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
use super::receiver::{Receiver, Source};
use super::resend::Resends;
use super::spool_source::SpoolSource;
use super::window::{Acks, Place, Window};
use super::DrainError;
use super::{lock, DeadLetters, DrainConfig};
use crate::metrics::{DrainMetrics, Health};
use crate::sink::{Delivery, Sink};
use crate::state_dir::StateDir;
use crate::tap::Tap;
use account::Accounting;

mod account;
mod admit;
mod damage;
mod resize;
mod save;
mod settle;
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
    /// Shows delivered events to `shopify-events tap`; ends taps on drop.
    tap: Tap,
    accounting: Accounting,
    _lock: lock::DrainLock,
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
        for warning in crate::queue_access::check_queue_access(&queue)? {
            eprintln!("shopify-events drain: {warning}");
        }
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
        let spool = SpoolSource::open(
            spool_dir,
            &state.saved_spool(),
            key,
            config.queue_mode,
            Arc::clone(&metrics),
        )?;
        let peek = vec![0; HEADER_LEN + journal.max_record() as usize];
        let view = journal.view();
        let tap = Tap::serve(&state);
        let accounting = Accounting::open(&state, &config.accounting());
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
            tap,
            accounting,
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
        // Everything admitted is saved (and on disk) before the last
        // acknowledgements move.
        if let Some(released) = self.accounting.release(true) {
            if let Some(checkpoint) = self.apply(released) {
                journal.checkpoint(checkpoint);
            }
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
}
