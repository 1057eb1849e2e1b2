//! The process's spool writer, shared by its threads and safe across fork.
//!
//! Synchronisation: a `std::sync::Mutex` around the generation's
//! [`Appender`]. Uncontended it costs one compare-and-swap to lock and one
//! swap to unlock; `examples/spool_bench` measures it against a spinlock
//! (one compare-and-swap and a plain release store) and against no lock at
//! all. On the 2-core development VM both locks came within a few ns of no
//! lock (an append is some 25 ns), and the spinlock was the one that fell
//! apart under two contending threads. Ruby callers hold the GVL, so
//! contention is rare, but when it happens a thread sleeps on a futex
//! instead of spinning against a preempted holder, and a holder creating a
//! segment (milliseconds of `fallocate` and prefaulting) does not burn the
//! other threads' CPU.
//!
//! Fork: the mutex and the appender of one process generation sit behind
//! one pointer. A forked child finds a generation that is not its own and
//! installs a new one; it never locks the parent's mutex, which a parent
//! thread that does not exist in the child may have held at the fork. The
//! parent's generation is leaked in the child (a few hundred bytes and the
//! parent's mappings, which the child never touches).

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::appender::{Appender, Counters};
use super::{SpoolError, SpoolOptions, SyncPolicy};
use crate::process;

/// A point-in-time copy of a writer's counters (this process generation's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records appended.
    pub appended: u64,
    /// Envelope bytes appended.
    pub bytes: u64,
    /// Segments created.
    pub segments_created: u64,
    /// Of those, segments that were created ahead by the preparing thread
    /// ([`SpoolOptions::prepare_ahead`]) instead of by the append that
    /// needed them.
    pub segments_prepared: u64,
    /// Appends that failed (full, unwritable, too large, ...), and
    /// segments found orphaned.
    pub failures: u64,
    /// Segments found removed or replaced by hand under the writer: it
    /// moved to a new one; what it appended to the old one in the second
    /// before it noticed may be lost (see the module docs' Writer).
    pub segments_orphaned: u64,
}

/// One process's writer for one (directory, queue key); see the
/// [module docs](super).
#[derive(Debug)]
pub struct SpoolWriter {
    options: SpoolOptions,
    current: AtomicPtr<Generation>,
}

#[derive(Debug)]
struct Generation {
    generation: u64,
    appender: Mutex<Appender>,
    counters: Arc<Counters>,
}

impl SpoolWriter {
    /// A writer with `options`; touches no file until the first append.
    pub fn new(options: SpoolOptions) -> SpoolWriter {
        SpoolWriter {
            options,
            current: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Appends one envelope (as the envelope encoder wrote it) and publishes
    /// it; see [`Appender::append`]. No system call in the common case.
    #[inline]
    pub fn append(&self, envelope: &[u8]) -> Result<(), SpoolError> {
        self.lock().append(envelope)
    }

    /// Whether the drain acknowledged every record this process generation
    /// spooled; see [`Appender::drained`].
    pub fn drained(&self) -> bool {
        self.lock().drained()
    }

    /// Seals the active segment: the episode of spooling is over, the drain
    /// may delete the segment once it acknowledged it.
    pub fn seal(&self) {
        self.lock().seal();
    }

    /// `msync`s what was published since the last sync.
    pub fn flush(&self) -> Result<(), SpoolError> {
        self.lock().flush()
    }

    /// Writes to disk what the sync policy promised and has not written
    /// yet: the tail of a burst under [`SyncPolicy::Interval`] (synced only
    /// by a later append otherwise). Nothing under
    /// [`SyncPolicy::PageCache`], whose promise is the page cache, and
    /// nothing before this process generation appended. For a transport's
    /// flush, and at exit.
    pub fn sync_pending(&self) -> Result<(), SpoolError> {
        if self.options.sync == SyncPolicy::PageCache || self.current_generation().is_none() {
            return Ok(());
        }
        self.flush()
    }

    /// The settings.
    pub fn options(&self) -> &SpoolOptions {
        &self.options
    }

    /// This process generation's counters (zero in a child that has not
    /// appended yet).
    pub fn stats(&self) -> WriterStats {
        match self.current_generation() {
            Some(generation) => generation.counters.snapshot(),
            None => WriterStats::default(),
        }
    }

    /// This process generation's appender, locked: for a caller that must
    /// decide and append in one critical section (the SysV transport's
    /// overflow asks [`Appender::drained`] and appends or seals without
    /// another thread appending in between). Hold it briefly: every append
    /// of the process waits for it.
    pub fn lock(&self) -> MutexGuard<'_, Appender> {
        let generation = match self.current_generation() {
            Some(generation) => generation,
            None => self.install(),
        };
        // An appender left mid-call by a panic is still consistent: a
        // record becomes visible only with its publish, the last store.
        generation
            .appender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This process generation's state, if it was installed.
    #[inline]
    fn current_generation(&self) -> Option<&Generation> {
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from Box::into_raw in `install`
        // and is freed only by `drop` (which has `&mut self`), so it is
        // valid for as long as `&self` is.
        let generation = unsafe { current.as_ref() }?;
        (generation.generation == process::generation()).then_some(generation)
    }

    /// Installs a generation for this process: the first append, or the
    /// first in a forked child. The replaced one (a parent's) is leaked.
    #[cold]
    fn install(&self) -> &Generation {
        let counters = Arc::<Counters>::default();
        let fresh = Box::into_raw(Box::new(Generation {
            generation: process::generation(),
            appender: Mutex::new(Appender::with_counters(
                self.options.clone(),
                Arc::clone(&counters),
            )),
            counters,
        }));
        let mut seen = self.current.load(Ordering::Acquire);
        loop {
            if let Some(ours) = self.current_generation() {
                // Another thread of this generation was first.
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                return ours;
            }
            match self
                .current
                .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: just installed; freed only by `drop`.
                Ok(_) => return unsafe { &*fresh },
                Err(actual) => seen = actual,
            }
        }
    }
}

impl Drop for SpoolWriter {
    /// Seals this generation's active segment; leaves a parent's alone.
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        if current.is_null() {
            return;
        }
        // SAFETY: from Box::into_raw in `install`, not freed before.
        let generation = unsafe { &*current };
        if generation.generation == process::generation() {
            // SAFETY: ours, and `&mut self` excludes every other user.
            drop(unsafe { Box::from_raw(current) });
        }
    }
}

/// `AtomicPtr` makes `SpoolWriter` `Send` and `Sync` whatever it points
/// to; this keeps that honest: the shared `Generation` must be both.
const _: fn() = || {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<Generation>();
};
