//! The `sysv` transport: one non-blocking `msgsnd` per event into a queue the
//! kernel owns, so the event survives any restart of the app or the drain.
//!
//! The queue is looked up by key on first use (and created with the
//! configured permissions if missing). Its id is cached in an atomic; when the
//! kernel reports it removed, the emitter looks the key up again once and
//! retries, so an operator recreating the queue never breaks running apps.
//!
//! The common case is one `msgsnd` with the cached id and nothing checked
//! first: the kernel checks the sizes anyway. When it refuses, the sizes
//! are checked against the host's `kernel.msgmax` and the queue's capacity,
//! both read at open time: a message the kernel could never accept is a
//! programming error to report at once, not a "full" queue to retry
//! forever.
//!
//! With a spool ([`SysvEmitter::with_spool`]), a full queue and an envelope
//! larger than the queue takes are not failures: the envelope goes to the
//! process's spool instead, and the order rule of `overflow.rs` keeps the
//! process's events in order. A healthy queue pays one relaxed-cost load
//! of the spooling flag for it.
//!
//! Every event sent through [`FrameSink::send_frame`] is numbered by the
//! emitter's sequencer whichever way it went (queue or spool): one
//! producer, one sequence, so the drain sees no gap when a process moves
//! between the queue and its spool. The proxy forwards envelopes numbered
//! by its clients unchanged ([`SysvEmitter::forward_frame`]).

use std::sync::atomic::{
    AtomicI32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

use sysvmq::{Key, Queue, HEADER_LEN};

use super::numbered::send_numbered;
use super::overflow::Overflow;
use super::{EmitterStats, FrameSink, SendError, SpoolWhy};
use crate::sequence::Sequencer;
use crate::spool::{SpoolOptions, SpoolWriter};

/// Message type of every event (SysV requires a positive type).
pub const DEFAULT_MTYPE: i64 = 1;

const CLOSED: i32 = -1;

/// Sends encoded envelopes into one SysV message queue.
///
/// Shared by every thread of a process (and inherited by forked children: a
/// queue id stays valid across `fork`).
#[derive(Debug)]
pub struct SysvEmitter {
    key: Key,
    mode: u32,
    queue_id: AtomicI32,
    msgmax: AtomicU64,
    capacity: AtomicU64,
    stats: EmitterStats,
    overflow: Option<Overflow>,
    sequencer: Sequencer,
}

impl SysvEmitter {
    /// An emitter for the queue at `key`; nothing is opened until the first send.
    pub fn new(key: Key, mode: u32) -> SysvEmitter {
        SysvEmitter {
            key,
            mode,
            queue_id: AtomicI32::new(CLOSED),
            msgmax: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            stats: EmitterStats::default(),
            overflow: None,
            sequencer: Sequencer::new(),
        }
    }

    /// The same emitter, spooling what the queue cannot take into the
    /// spool `options` describe (its `max_record` is `max_event_bytes`).
    pub fn with_spool(mut self, options: SpoolOptions) -> SysvEmitter {
        self.overflow = Some(Overflow::new(options));
        self
    }

    /// The spool writer, if the emitter has one.
    pub fn spool_writer(&self) -> Option<&SpoolWriter> {
        self.overflow.as_ref().map(Overflow::writer)
    }

    /// Whether sends go to the spool now (the order rule: earlier events
    /// of this process wait there); `None` without a spool.
    pub fn spooling(&self) -> Option<bool> {
        self.overflow.as_ref().map(Overflow::spooling)
    }

    /// The queue key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// The sequencer that numbers this emitter's events.
    pub fn sequencer(&self) -> &Sequencer {
        &self.sequencer
    }

    /// Puts one frame into the queue (or the spool) as it is, without
    /// numbering it: for a forwarder (the proxy), whose envelopes were
    /// numbered by the transport that accepted them.
    pub fn forward_frame(&self, frame: &[u8]) -> Result<(), SendError> {
        self.try_send(frame)
    }

    /// The counters of this emitter.
    pub fn stats(&self) -> &EmitterStats {
        &self.stats
    }

    /// Puts one frame into the queue, or its envelope into the spool,
    /// without blocking (see [`FrameSink::send_frame`]).
    #[inline]
    fn try_send(&self, frame: &[u8]) -> Result<(), SendError> {
        let Some(overflow) = &self.overflow else {
            return self.enqueue(frame);
        };
        let size = frame.len().saturating_sub(HEADER_LEN);
        if size > overflow.max_event_bytes() {
            return Err(SendError::EventTooLarge {
                size,
                max_event_bytes: overflow.max_event_bytes(),
                msgmax: Some(sysvmq::message_size_limit()),
            });
        }
        if overflow.spooling() {
            return self.to_spool(overflow, frame, SpoolWhy::Spooling);
        }
        self.enqueue_or_spool(overflow, frame)
    }

    /// `msgsnd`, or the spool when the queue cannot take the frame.
    fn enqueue_or_spool(&self, overflow: &Overflow, frame: &[u8]) -> Result<(), SendError> {
        let why = match self.enqueue(frame) {
            Err(SendError::QueueFull { key }) => SpoolWhy::QueueFull { key },
            Err(SendError::TooLarge {
                size,
                limit,
                setting,
                ..
            }) => SpoolWhy::TooLargeForQueue {
                size,
                limit,
                setting,
            },
            done => return done,
        };
        self.to_spool(overflow, frame, why)
    }

    /// Appends the frame's envelope to the spool. While spooling
    /// (`why == Spooling`), first asks whether the drain acknowledged
    /// everything spooled, and if so ends the episode and tries the queue.
    #[cold]
    fn to_spool(&self, overflow: &Overflow, frame: &[u8], why: SpoolWhy) -> Result<(), SendError> {
        let envelope = frame.get(HEADER_LEN..).unwrap_or_default();
        match overflow.append(envelope, why == SpoolWhy::Spooling) {
            Ok(true) => {
                self.stats.record_spooled(envelope.len());
                Ok(())
            }
            Ok(false) => self.enqueue_or_spool(overflow, frame),
            Err(source) => {
                self.stats.record_spool_failure();
                Err(SendError::Spool { why, source })
            }
        }
    }

    /// Puts one frame into the queue without blocking: `msgsnd` at once
    /// with the cached queue id, and the checks (sizes, a removed queue)
    /// only when the kernel refused it or no queue is open yet.
    #[inline]
    fn enqueue(&self, frame: &[u8]) -> Result<(), SendError> {
        let id = self.queue_id.load(Acquire);
        if id != CLOSED {
            let queue = Queue::from_id(self.key, id);
            match queue.try_send_frame_raw(frame) {
                Ok(()) => {
                    self.stats.record_emitted();
                    return Ok(());
                }
                Err(libc::EAGAIN) => return self.refused(&queue, frame),
                Err(_) => {}
            }
        }
        self.enqueue_checked(frame)
    }

    /// The queue had no room for `frame` (`EAGAIN`): full, or the frame is
    /// larger than the queue could ever hold, which retrying never fixes.
    #[cold]
    fn refused(&self, queue: &Queue, frame: &[u8]) -> Result<(), SendError> {
        self.check_size_now(queue, frame.len().saturating_sub(HEADER_LEN))?;
        self.stats.record_full();
        Err(SendError::QueueFull { key: self.key })
    }

    /// Opens the queue if needed, checks the frame's size, and sends it,
    /// naming any failure; looks the key up again once if the queue was
    /// removed.
    #[cold]
    fn enqueue_checked(&self, frame: &[u8]) -> Result<(), SendError> {
        let queue = self.queue()?;
        self.check_size(frame.len().saturating_sub(HEADER_LEN))?;
        match queue.try_send_frame(frame) {
            Ok(()) => {}
            Err(sysvmq::Error::Removed { .. }) => {
                self.queue_id.store(CLOSED, Relaxed);
                self.stats.record_reopened();
                let queue = self.queue()?;
                self.check_size(frame.len().saturating_sub(HEADER_LEN))?;
                queue.try_send_frame(frame).map_err(|e| self.map_error(e))?;
            }
            Err(e) => return Err(self.map_error(e)),
        }
        self.stats.record_emitted();
        Ok(())
    }

    /// The largest envelope this emitter can send (`kernel.msgmax` or the
    /// queue's capacity, whichever is smaller), opening the queue if needed.
    pub fn max_envelope_size(&self) -> Result<u64, SendError> {
        self.queue()?;
        Ok(self.msgmax.load(Relaxed).min(self.capacity.load(Relaxed)))
    }

    fn queue(&self) -> Result<Queue, SendError> {
        // Acquire: a thread that sees the id sees the limits stored before it.
        let id = self.queue_id.load(Acquire);
        if id != CLOSED {
            return Ok(Queue::from_id(self.key, id));
        }
        let queue = Queue::open_or_create(self.key, self.mode)?;
        let stat = queue.stat()?;
        self.msgmax.store(sysvmq::message_size_limit(), Relaxed);
        self.capacity.store(stat.capacity, Relaxed);
        // Release: the limits above are visible to whoever sees the id.
        self.queue_id.store(queue.id(), Release);
        Ok(queue)
    }

    /// [`check_size`](Self::check_size) for a frame the kernel refused
    /// with `EAGAIN`, and if a limit read earlier refuses `size`, again
    /// with that limit as it is now, if it grew: an operator may have grown
    /// the queue in place (`shopify-events setup`) or raised
    /// `kernel.msgmax` since, and a frame that fits now is full, not a
    /// programming error raised from `emit` only while the queue is full.
    /// A limit is never lowered here: an operator shutting senders out
    /// (capacity 0) makes the queue full, not every event too large.
    /// Keeps the earlier verdict if the queue cannot be read.
    fn check_size_now(&self, queue: &Queue, size: usize) -> Result<(), SendError> {
        let verdict = self.check_size(size);
        if verdict.is_ok() {
            return verdict;
        }
        if size as u64 > self.msgmax.load(Relaxed) {
            self.msgmax.fetch_max(sysvmq::message_size_limit(), Relaxed);
        }
        if size as u64 > self.capacity.load(Relaxed) {
            match queue.stat() {
                Ok(stat) => self.capacity.fetch_max(stat.capacity, Relaxed),
                Err(_) => return verdict,
            };
        }
        self.check_size(size)
    }

    fn check_size(&self, size: usize) -> Result<(), SendError> {
        let msgmax = self.msgmax.load(Relaxed);
        if size as u64 > msgmax {
            return Err(SendError::TooLarge {
                size,
                limit: msgmax,
                setting: "the sysctl kernel.msgmax",
                fix: "raise it on the host (`sysctl -w kernel.msgmax=BYTES`, with kernel.msgmnb at least as large)",
            });
        }
        let capacity = self.capacity.load(Relaxed);
        if size as u64 > capacity {
            return Err(SendError::TooLarge {
                size,
                limit: capacity,
                setting: "the queue's capacity (kernel.msgmnb when it was created)",
                fix: "recreate the queue larger with `shopify-events setup --capacity SIZE`",
            });
        }
        Ok(())
    }

    fn map_error(&self, error: sysvmq::Error) -> SendError {
        match error {
            sysvmq::Error::Full { key } => {
                self.stats.record_full();
                SendError::QueueFull { key }
            }
            sysvmq::Error::TooLarge { size, limit, .. } => {
                // kernel.msgmax was lowered since the queue was opened.
                self.msgmax.store(limit, Relaxed);
                SendError::TooLarge {
                    size,
                    limit,
                    setting: "the sysctl kernel.msgmax",
                    fix: "raise it on the host (`sysctl -w kernel.msgmax=BYTES`)",
                }
            }
            other => SendError::Queue(other),
        }
    }
}

impl FrameSink for SysvEmitter {
    /// The message type every event carries, as the native `c_long` that
    /// `msgsnd` reads before the body.
    fn begin_frame(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(&(DEFAULT_MTYPE as libc::c_long).to_ne_bytes());
    }

    /// Numbers the envelope and sends it: `msgsnd`, or the spool.
    #[inline]
    fn send_frame(&self, frame: &mut [u8]) -> Result<(), SendError> {
        send_numbered(&self.sequencer, frame, HEADER_LEN, |frame| {
            self.try_send(frame)
        })
    }

    /// Numbering seals every version 2 envelope (`numbered.rs`).
    fn seals(&self) -> bool {
        true
    }

    fn count_drop(&self) {
        self.stats.record_dropped();
    }
}
