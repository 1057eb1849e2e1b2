//! The drain's receiving thread: `msgrcv` straight into the journal.
//!
//! A receive costs about as much as producing the event (a syscall that
//! allocates, copies and frees in the kernel), so it runs on a thread of
//! its own while the drain loop produces. The thread owns the [`Journal`]
//! and the only writes to it: it reserves a frame, receives into it,
//! commits it, and hands records over a bounded channel in batches (one per
//! burst the queue had ready, at most [`BATCH`]). The drain loop
//! reads the body through a [`JournalView`](super::journal::JournalView)
//! and reports what Kafka acknowledged through [`Receiver::acknowledge`];
//! the thread persists that checkpoint in the journal before each reserve,
//! so the ring frees room as acknowledgements come in.
//!
//! Every record the thread committed is in the journal, whether or not the
//! drain loop took it from the channel yet: stopping the thread (or a `kill
//! -9`) loses nothing, the next start re-sends it.
//!
//! Each hand-over carries the thread's *horizon*: a time such that every
//! message sent to the queue before it has been received. It is the emit
//! time of the newest message received (emit times are taken before
//! `msgsnd`, and the queue is first in, first out), or the time a receive
//! found the queue empty. The drain reads a spool segment only once the
//! records before that horizon passed its creation time: a process spools
//! only after the queue refused it, so its queued events go first.
//!
//! With the queue empty the thread sleeps, doubling from 1 ms to 50 ms
//! (a SysV queue has no descriptor to wait on); with the ring or the
//! channel full it naps until the drain loop made room. It never blocks on
//! the channel: a sender parked there would be woken for every slot the
//! loop frees, a context switch per batch on a busy machine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{TryRecvError, TrySendError};
use sysvmq::{Key, Queue};

use super::journal::{Journal, RecordRef};
use super::DrainError;
use crate::metrics::DrainMetrics;

const MIN_IDLE: Duration = Duration::from_millis(1);
const MAX_IDLE: Duration = Duration::from_millis(50);
/// Most records handed over in one batch.
pub(crate) const BATCH: usize = 512;
/// Batches between the thread and the drain loop: enough to keep the loop
/// busy for a few milliseconds, small next to any window.
const CHANNEL: usize = 16;
/// How long the thread naps while the ring or the channel is full.
const ROOM_WAIT: Duration = Duration::from_micros(200);

/// What the thread hands to the drain loop.
#[derive(Debug)]
pub(crate) enum Received {
    /// Records committed to the journal, oldest first, to produce, and the
    /// horizon after them (see the module docs).
    Records(Vec<RecordRef>, i64),
    /// The horizon moved with no record (the queue was found empty).
    Horizon(i64),
    /// The queue was removed and is open again under a new id.
    Reopened(Queue),
    /// Receiving failed for good; the thread has stopped.
    Failed(DrainError),
}

/// The queue and the journal the thread receives with.
pub(crate) struct Source {
    pub key: Key,
    pub queue_mode: u32,
    pub queue: Queue,
    pub journal: Journal,
}

/// The drain loop's handle on the receiving thread.
pub(crate) struct Receiver {
    records: crossbeam_channel::Receiver<Received>,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Journal>,
}

impl Receiver {
    /// Starts receiving from `source.queue` into `source.journal`.
    pub(crate) fn start(
        source: Source,
        metrics: Arc<DrainMetrics>,
    ) -> Result<Receiver, DrainError> {
        let (tx, records) = crossbeam_channel::bounded(CHANNEL);
        let acked = Arc::new(AtomicU64::new(source.journal.checkpoint_offset()));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            source,
            tx,
            acked: Arc::clone(&acked),
            stop: Arc::clone(&stop),
            metrics,
            horizon: i64::MIN,
            told: i64::MIN,
        };
        let thread = std::thread::Builder::new()
            .name("drain-receive".into())
            .spawn(move || worker.run())
            .map_err(|source| DrainError::Io {
                what: "starting the receiving thread".into(),
                source,
            })?;
        Ok(Receiver {
            records,
            acked,
            stop,
            thread,
        })
    }

    /// The next record (or news), if one is waiting.
    pub(crate) fn try_take(&self) -> Option<Received> {
        match self.records.try_recv() {
            Ok(received) => Some(received),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(self.gone()),
        }
    }

    /// Waits up to `timeout` for the next record (or news).
    pub(crate) fn take_timeout(&self, timeout: Duration) -> Option<Received> {
        match self.records.recv_timeout(timeout) {
            Ok(received) => Some(received),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Some(self.gone()),
        }
    }

    /// Every record ending at or before `checkpoint` is acknowledged; the
    /// thread persists it before its next reserve.
    pub(crate) fn acknowledge(&self, checkpoint: u64) {
        self.acked.fetch_max(checkpoint, Ordering::Release);
    }

    /// Stops the thread and gives back the journal with the last
    /// acknowledged checkpoint persisted. Records still in the channel stay
    /// in the journal, past the checkpoint.
    pub(crate) fn stop(self) -> Result<Journal, DrainError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut journal = self.thread.join().map_err(|_| DrainError::Io {
            what: "the receiving thread".into(),
            source: std::io::Error::other("it panicked; the journal keeps what it received"),
        })?;
        journal.checkpoint(self.acked.load(Ordering::Acquire));
        Ok(journal)
    }

    /// The thread ended without saying why (it only ends on stop or after
    /// a `Failed`, so this means it panicked).
    fn gone(&self) -> Received {
        Received::Failed(DrainError::Io {
            what: "the receiving thread".into(),
            source: std::io::Error::other("it stopped unexpectedly"),
        })
    }
}

/// How a round of receiving ended.
enum Receive {
    /// A full batch, or interrupted: go on at once.
    Burst,
    /// The queue is empty.
    Empty,
    /// The ring is full until acknowledgements come.
    Full,
    /// Something for the drain loop other than records.
    News(Received),
}

struct Worker {
    source: Source,
    tx: crossbeam_channel::Sender<Received>,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    metrics: Arc<DrainMetrics>,
    /// Every message sent before this time was received (µs).
    horizon: i64,
    /// The horizon last handed over.
    told: i64,
}

/// How far the horizon must move before an idle thread says so: each
/// message wakes the drain loop, and a spool segment waits for the horizon
/// at most this long beyond the thread's own polling.
const HORIZON_STEP_US: i64 = 100_000;

/// The emit time of an envelope (µs), if the bytes are long enough to
/// hold one.
fn emit_time(body: &[u8]) -> Option<i64> {
    let bytes = body.get(24..32)?;
    let mut le = [0u8; 8];
    le.copy_from_slice(bytes);
    Some(i64::from_le_bytes(le))
}

impl Worker {
    fn run(mut self) -> Journal {
        let mut idle = MIN_IDLE;
        let mut batch = Vec::with_capacity(BATCH);
        while !self.stop.load(Ordering::Relaxed) {
            self.persist_checkpoint();
            let outcome = self.receive(&mut batch);
            let received = !batch.is_empty();
            if received {
                // Counted per batch: the counter shares a cache line with
                // the drain loop's, which a per-event add would bounce.
                self.metrics.received.add(batch.len() as u64);
                let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                self.told = self.horizon;
                if !self.hand_over(Received::Records(records, self.horizon)) {
                    break;
                }
            } else if self.horizon >= self.told.saturating_add(HORIZON_STEP_US) {
                // Never waits: a full channel has records that say it.
                if self.tx.try_send(Received::Horizon(self.horizon)).is_ok() {
                    self.told = self.horizon;
                }
            }
            match outcome {
                Receive::Burst => idle = MIN_IDLE,
                Receive::Empty => {
                    // The queue ran dry: poll again soon if it had
                    // anything, later and later while it stays empty.
                    if received {
                        idle = MIN_IDLE;
                    }
                    std::thread::sleep(idle);
                    idle = (idle * 2).min(MAX_IDLE);
                }
                Receive::Full => std::thread::sleep(ROOM_WAIT),
                Receive::News(news) => {
                    let failed = matches!(news, Received::Failed(_));
                    if !self.hand_over(news) || failed {
                        break;
                    }
                }
            }
        }
        self.persist_checkpoint();
        self.source.journal
    }

    /// Receives into the journal until the queue is empty, the ring is full
    /// or `batch` holds [`BATCH`] records.
    fn receive(&mut self, batch: &mut Vec<RecordRef>) -> Receive {
        // Whatever was sent before now and is not in the queue when it is
        // found empty below has been received.
        let started = crate::clock::now_micros();
        let mut newest = i64::MIN;
        let outcome = loop {
            if batch.len() >= BATCH {
                break Receive::Burst;
            }
            let source = &mut self.source;
            let Some(frame) = source.journal.reserve() else {
                break Receive::Full;
            };
            match source.queue.try_receive_into(frame, 0) {
                Ok(Some(len)) => {
                    let record = source.journal.commit(len);
                    if let Some(time) = emit_time(source.journal.body(&record)) {
                        newest = newest.max(time);
                    }
                    batch.push(record);
                }
                Ok(None) => break Receive::Empty,
                Err(e) => break self.receive_failed(e),
            }
        };
        // An emit time from the future (a wrong clock, a hostile sender)
        // counts only up to now.
        let newest = newest.min(crate::clock::now_micros());
        self.horizon = self.horizon.max(newest);
        if matches!(outcome, Receive::Empty) {
            self.horizon = self.horizon.max(started);
        }
        outcome
    }

    /// What a failed receive means.
    fn receive_failed(&mut self, error: sysvmq::Error) -> Receive {
        let source = &mut self.source;
        match error {
            sysvmq::Error::Interrupted => Receive::Burst,
            sysvmq::Error::Removed { .. } => {
                Receive::News(match Queue::open_or_create(source.key, source.queue_mode) {
                    Ok(queue) => {
                        source.queue = queue;
                        Received::Reopened(queue)
                    }
                    Err(e) => Received::Failed(e.into()),
                })
            }
            sysvmq::Error::BufferTooSmall { .. } => {
                Receive::News(Received::Failed(DrainError::MessageTooLarge {
                    key: source.key,
                    limit: source.journal.max_record(),
                }))
            }
            e => Receive::News(Received::Failed(e.into())),
        }
    }

    /// Moves the journal's checkpoint to what the drain loop acknowledged.
    fn persist_checkpoint(&mut self) {
        let journal = &mut self.source.journal;
        let acked = self.acked.load(Ordering::Acquire);
        if acked > journal.checkpoint_offset() {
            journal.checkpoint(acked);
        }
        self.metrics
            .journal_pending_bytes
            .set(journal.pending_bytes() as i64);
    }

    /// Sends to the drain loop, napping while the channel is full; false
    /// if the thread is to stop (received records stay in the journal).
    fn hand_over(&mut self, mut received: Received) -> bool {
        loop {
            match self.tx.try_send(received) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    received = back;
                    std::thread::sleep(ROOM_WAIT);
                    self.persist_checkpoint();
                }
            }
        }
    }
}
