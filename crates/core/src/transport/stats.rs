//! [`EmitterStats`]: the `sysv` emitter's counters (its spool overflow's
//! included), shared by every thread that emits through it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters shared by every thread that emits through one emitter.
///
/// Relaxed ordering is enough: each counter is read on its own for reporting,
/// never used to synchronise other memory.
#[derive(Debug, Default)]
pub struct EmitterStats {
    emitted: AtomicU64,
    dropped: AtomicU64,
    queue_full: AtomicU64,
    reopened: AtomicU64,
    spooled: AtomicU64,
    spooled_bytes: AtomicU64,
    spool_failures: AtomicU64,
}

/// A point-in-time copy of [`EmitterStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Events the transport accepted.
    pub emitted: u64,
    /// Events given up on by a caller that does not raise (`emit`).
    pub dropped: u64,
    /// Sends refused because the queue was full (spooled, dropped or
    /// raised).
    pub queue_full: u64,
    /// Times the queue was looked up again after it had been removed.
    pub reopened: u64,
    /// Events that went to the spool instead of the queue (counted in
    /// `emitted` too).
    pub spooled: u64,
    /// Envelope bytes of those events.
    pub spooled_bytes: u64,
    /// Events the spool could not take (then dropped or raised).
    pub spool_failures: u64,
}

impl EmitterStats {
    pub(crate) fn record_emitted(&self) {
        self.emitted.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_full(&self) {
        self.queue_full.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_spooled(&self, bytes: usize) {
        self.emitted.fetch_add(1, Relaxed);
        self.spooled.fetch_add(1, Relaxed);
        self.spooled_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn record_spool_failure(&self) {
        self.spool_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_reopened(&self) {
        self.reopened.fetch_add(1, Relaxed);
    }

    /// Counts an event the caller decided to drop after a failed send.
    pub fn record_dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            emitted: self.emitted.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            queue_full: self.queue_full.load(Relaxed),
            reopened: self.reopened.load(Relaxed),
            spooled: self.spooled.load(Relaxed),
            spooled_bytes: self.spooled_bytes.load(Relaxed),
            spool_failures: self.spool_failures.load(Relaxed),
        }
    }
}
