//! Segments created ahead of need, on a thread of the writer's own
//! ([`SpoolOptions::prepare_ahead`]).
//!
//! Creating a segment costs what the kernel needs to hand out its pages
//! (allocation and zeroing: some 3 µs per 4 KiB page on the development
//! VM, so tens of milliseconds for a 16 MiB segment). Without preparation
//! the append that fills a segment pays it. With it, a plain Rust thread
//! (it never touches Ruby, so it needs no GVL) builds the next segment under
//! a temporary name while appends go on, and the rotating append only
//! stamps it and renames it into place. The total CPU is the same; what
//! moves is where it is paid.
//!
//! One segment is prepared at a time, of the capacity the writer asks for
//! next. The writer asks once a segment filled up, not when an episode of
//! spooling starts: a short episode (a few events the SysV queue could not
//! take) never starts the thread. A prepared segment gets its id only when it is placed, so the
//! writer's indices stay in creation order whatever it had to create
//! inline meanwhile (a record too large for it, or a preparation not done
//! yet): the reader reads a producer's segments in index order and must
//! never meet a smaller index after a larger one.
//!
//! Fork: the thread does not exist in a child. The preparer belongs to the
//! process generation that started it; a child's writer starts its own
//! (lazily, on its first rotation) and never touches the parent's, whose
//! lock a parent thread may have held at the fork.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use super::format::{SegmentId, MAX_INDEX};
use super::segment::{self, Prepared};
use super::{SpoolError, SpoolOptions};

/// The writer's side of the preparing thread.
#[derive(Debug)]
pub(super) struct Preparer {
    shared: Arc<Shared>,
    options: SpoolOptions,
    producer: u64,
    /// The thread was started (or could not be: then `failed`).
    started: bool,
    failed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Capacity of the segment asked for, until the thread takes it up.
    wanted: Option<u64>,
    /// The thread is creating a segment.
    busy: bool,
    /// What it created, until the writer takes it.
    ready: Option<Result<Prepared, SpoolError>>,
    /// The writer is gone: the thread ends and removes what it creates.
    closed: bool,
    /// The writer stopped spooling while a segment was being made: the
    /// thread removes it instead of handing it over.
    cancelled: bool,
    /// Segments prepared so far: numbers their temporary names.
    made: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves consistent state (plain
        // fields set in one go).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Preparer {
    /// A preparer for the writer of `producer`; starts no thread yet.
    pub fn new(options: SpoolOptions, producer: u64) -> Preparer {
        Preparer {
            shared: Arc::default(),
            options,
            producer,
            started: false,
            failed: false,
        }
    }

    /// The prepared segment, if one is ready (taken from the thread).
    pub fn take(&mut self) -> Option<Result<Prepared, SpoolError>> {
        if !self.started {
            return None;
        }
        self.shared.lock().ready.take()
    }

    /// Asks for a segment of `capacity` data bytes to be prepared, unless
    /// one is ready or being made.
    pub fn request(&mut self, capacity: u64) {
        if self.failed {
            return;
        }
        if !self.started && !self.start() {
            return;
        }
        let mut state = self.shared.lock();
        if state.busy || state.ready.is_some() || state.closed {
            return;
        }
        state.wanted = Some(capacity);
        state.cancelled = false;
        drop(state);
        self.shared.wake.notify_one();
    }

    /// Removes a prepared segment and cancels a request: the writer needs
    /// none until it spools again.
    pub fn cancel(&mut self) {
        if !self.started {
            return;
        }
        let ready = {
            let mut state = self.shared.lock();
            state.wanted = None;
            state.cancelled = state.busy;
            state.ready.take()
        };
        if let Some(Ok(prepared)) = ready {
            prepared.discard();
        }
    }

    /// Starts the thread; false if it could not be (the writer then creates
    /// every segment itself, as without preparation).
    #[cold]
    fn start(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let options = self.options.clone();
        let producer = self.producer;
        let spawned = thread::Builder::new()
            .name("shopify-events-spool".into())
            .spawn(move || run(&shared, &options, producer));
        self.started = spawned.is_ok();
        self.failed = !self.started;
        self.started
    }
}

impl Drop for Preparer {
    /// Ends the thread (without waiting: it may be in the middle of a
    /// creation, which it then removes) and removes a prepared segment.
    /// The caller drops a preparer only in the generation that made it.
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let ready = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.wanted = None;
            state.ready.take()
        };
        self.shared.wake.notify_one();
        if let Some(Ok(prepared)) = ready {
            prepared.discard();
        }
    }
}

/// The thread: waits for a request, creates the segment, hands it over.
fn run(shared: &Shared, options: &SpoolOptions, producer: u64) {
    let mut state = shared.lock();
    loop {
        while state.wanted.is_none() && !state.closed {
            state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.closed {
            return;
        }
        let Some(capacity) = state.wanted.take() else {
            continue;
        };
        state.busy = true;
        // Temporary names count down from the largest index, so they never
        // collide with the temporary name of a segment the writer creates
        // itself (which carries its real index).
        let temp_id = SegmentId {
            producer,
            index: MAX_INDEX - (state.made % (MAX_INDEX / 2)),
        };
        state.made += 1;
        drop(state);
        let made = segment::prepare(options, temp_id, capacity);
        state = shared.lock();
        state.busy = false;
        if state.closed || state.cancelled {
            state.cancelled = false;
            if let Ok(prepared) = made {
                prepared.discard();
            }
            if state.closed {
                return;
            }
            continue;
        }
        state.ready = Some(made);
    }
}
