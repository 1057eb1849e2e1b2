//! [`EmitterStats`]: the `sysv` emitter's counters, shared by every thread
//! that emits through it.

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
}

/// A point-in-time copy of [`EmitterStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Events the transport accepted.
    pub emitted: u64,
    /// Events given up on by a caller that does not raise (`emit`).
    pub dropped: u64,
    /// Sends refused because the queue was full (dropped or raised).
    pub queue_full: u64,
    /// Times the queue was looked up again after it had been removed.
    pub reopened: u64,
}

impl EmitterStats {
    pub(crate) fn record_emitted(&self) {
        self.emitted.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_full(&self) {
        self.queue_full.fetch_add(1, Relaxed);
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
        }
    }
}
