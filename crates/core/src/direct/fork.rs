//! Fork detection for the direct producer.
//!
//! A forked child has none of its parent's threads: the worker thread and
//! librdkafka's own threads are gone, though their memory was copied. A
//! `pthread_atfork` child handler bumps a generation counter, so the producer
//! notices the fork with one relaxed atomic load per call instead of a
//! `getpid` syscall.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(1);
static REGISTER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic add, no allocation, no lock.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Registers the atfork handler (once per process; inherited by children).
pub(crate) fn register() {
    REGISTER.call_once(|| {
        // SAFETY: the handler is a 'static `extern "C" fn` that only touches
        // an atomic. If registration fails (ENOMEM) forks go unnoticed and a
        // child would emit into a channel nobody reads: its events are
        // dropped and counted once the channel is full, never a crash.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

/// The current process generation: changes in every forked child.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}
