//! The `sysv` transport: one non-blocking `msgsnd` per event into a queue the
//! kernel owns, so the event survives any restart of the app or the drain.
//!
//! The queue is looked up by key on first use (and created with the
//! configured permissions if missing). Its id is cached in an atomic; when the
//! kernel reports it removed, the emitter looks the key up again once and
//! retries, so an operator recreating the queue never breaks running apps.
//!
//! Sizes are checked before the syscall against the host's `kernel.msgmax`
//! and the queue's capacity, both read at open time: a message the kernel
//! could never accept is a programming error to report at once, not a "full"
//! queue to retry forever.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};

use sysvmq::{Key, Queue, HEADER_LEN};

use super::{EmitterStats, FrameSink, SendError};

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
        }
    }

    /// The queue key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// The counters of this emitter.
    pub fn stats(&self) -> &EmitterStats {
        &self.stats
    }

    /// Puts one frame into the queue without blocking (see
    /// [`FrameSink::send_frame`]).
    fn try_send(&self, frame: &[u8]) -> Result<(), SendError> {
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
        let id = self.queue_id.load(Relaxed);
        if id != CLOSED {
            return Ok(Queue::from_id(self.key, id));
        }
        let queue = Queue::open_or_create(self.key, self.mode)?;
        let stat = queue.stat()?;
        self.msgmax.store(sysvmq::message_size_limit(), Relaxed);
        self.capacity.store(stat.capacity, Relaxed);
        self.queue_id.store(queue.id(), Relaxed);
        Ok(queue)
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

    fn send_frame(&self, frame: &[u8]) -> Result<(), SendError> {
        self.try_send(frame)
    }

    fn count_drop(&self) {
        self.stats.record_dropped();
    }
}
