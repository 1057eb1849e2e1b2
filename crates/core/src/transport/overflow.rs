//! The `sysv` transport's overflow: envelopes the queue cannot take go to
//! the process's spool ([`crate::spool`]), and the order rule that keeps
//! them in order with the queue's.
//!
//! # When an envelope is spooled
//!
//! `msgsnd` comes first. When the queue is full, or the envelope is larger
//! than the queue ever takes (`kernel.msgmax`, or the queue's capacity),
//! the same envelope bytes are appended to the spool and the send succeeds:
//! `emit` returns the id as usual. Envelopes above `max_event_bytes` are
//! refused before either ([`SendError::EventTooLarge`]), since the drain
//! could never produce them. Only when the spool cannot take an envelope
//! (full, or the directory unusable) does the send fail, with
//! [`SendError::Spool`]: the caller drops it or raises.
//!
//! # Order
//!
//! The drain reads the queue and the spool side by side, so an event put
//! into the queue after an earlier one was spooled could reach Kafka first.
//! Hence: once this process spooled, its later events go to the spool too,
//! without trying the queue, until [`SpoolWriter::drained`] says the drain
//! acknowledged every record the process spooled. The send that finds it
//! drained seals the spool's segment (the episode is over) and uses the
//! queue again.
//!
//! Between threads: the spooling flag is set in the same critical section
//! (the writer's lock) as the append, before the send returns, and cleared
//! only in the critical section that found the spool drained and sealed it.
//! So for two sends A and B of this process where A returned before B began
//! (one thread, or threads ordered by a lock, or by the GVL as every Ruby
//! `emit` is), B never overtakes A:
//!
//! - A queued, B queued or spooled: the drain received A first, or A's
//!   record is before B's in the spool.
//! - A spooled: B sees the flag (set before A returned) and goes to the
//!   spool after A, unless a send between them found the spool drained, in
//!   which case the drain had acknowledged A (A is in Kafka) before B was
//!   sent anywhere. A send that read the flag clear before another thread
//!   spooled and then appends anyway sets the flag again in its own
//!   critical section, so the rule holds for whatever follows it.
//!
//! Sends that overlap in time have no order, as with the queue alone.
//!
//! What the emitting side cannot do alone: an event spooled while earlier
//! events of the process still wait in the queue (the queue was full) must
//! not reach Kafka before them. The drain keeps that half of the rule by
//! receiving what the queue held when it found a producer's new segment
//! before it reads that segment (docs/ARCHITECTURE.md, "The path of one
//! event").
//!
//! # Fork
//!
//! A forked child inherits the flag but not the spool: its writer is its
//! own ([`SpoolWriter`] starts a new generation), has spooled nothing and
//! so is drained, and the child's first send clears the flag and uses the
//! queue. Events of different processes have no order between them.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::spool::{SpoolOptions, SpoolWriter};

/// The spool of one `sysv` emitter and whether it is spooling.
#[derive(Debug)]
pub(super) struct Overflow {
    writer: SpoolWriter,
    /// Set (under the writer's lock) by an append, cleared (under it) by
    /// the send that found everything spooled acknowledged.
    spooling: AtomicBool,
}

impl Overflow {
    pub fn new(options: SpoolOptions) -> Overflow {
        Overflow {
            writer: SpoolWriter::new(options),
            spooling: AtomicBool::new(false),
        }
    }

    pub fn writer(&self) -> &SpoolWriter {
        &self.writer
    }

    /// The largest envelope taken: the spool's `max_record`.
    pub fn max_event_bytes(&self) -> usize {
        self.writer.options().max_record
    }

    /// Whether later sends must go to the spool (the order rule).
    #[inline]
    pub fn spooling(&self) -> bool {
        self.spooling.load(Ordering::Acquire)
    }

    /// Appends `envelope` and marks the spooling episode, in one critical
    /// section; or, if `resume` and the drain acknowledged everything
    /// spooled, seals the episode instead and returns `Ok(false)`: the
    /// caller sends to the queue.
    pub fn append(&self, envelope: &[u8], resume: bool) -> Result<bool, crate::spool::SpoolError> {
        let mut appender = self.writer.lock();
        if resume && appender.drained() {
            appender.seal();
            self.spooling.store(false, Ordering::Release);
            return Ok(false);
        }
        appender.append(envelope)?;
        self.spooling.store(true, Ordering::Release);
        Ok(true)
    }
}
