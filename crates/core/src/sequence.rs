//! [`Sequencer`]: numbers the events a transport accepts, so the drain can
//! count what went missing (see [`crate::accounting`]).
//!
//! Every transport instance owns one sequencer. Its events carry a
//! [`Stamp`]: the sequencer's producer id and a sequence number counting
//! from 0. A number is assigned **when the transport accepts the event** —
//! the `msgsnd` or spool append succeeded, the socket client took the frame
//! into its buffer, the direct channel took it — and never otherwise:
//! [`Sequencer::sequenced`] takes the next number, lets the caller stamp the
//! envelope with it and send it without blocking, and keeps the number only
//! if the send succeeded. A dropped event therefore never has a number, and
//! the numbers of one producer have no holes unless an accepted event was
//! lost afterwards. That is how the drain tells a drop (counted by the app
//! in `stats[:dropped]`) from a loss (a gap).
//!
//! # Atomic "take, send, keep or give back"
//!
//! Two threads must not take the same number, and the order of the numbers
//! must be the order in which the transport took the events (so a drain
//! that sees 7 before 6 knows it is reordering, not loss). So the number is
//! taken under a lock held across the send. The lock and the counter share
//! one word: bit 63 is the lock, the low 63 bits the next number. Taking it
//! is one atomic `fetch_or`, releasing it one store (of the next number, or
//! of the same one when the send failed). In Ruby the lock is never
//! contended (emit holds the GVL across the non-blocking send); other
//! threads spin briefly and then yield. The send must not call back into
//! the same sequencer (it would wait for itself).
//!
//! # Fork
//!
//! A forked child is a new producer: it must start at 0 under a new
//! producer id, and must never inherit a lock another thread of its parent
//! held at the instant of the fork (that thread does not exist in the
//! child). So each sequencer records the process generation
//! ([`crate::process::generation`]) its state belongs to. The first call in
//! a new generation resets the state — counter 0, unlocked, a new producer
//! id — before anyone can take the lock, and never waits for the parent's
//! state. The check is one relaxed load and a compare on every call.
//!
//! # Producer ids
//!
//! The first sequencer used in a process generation stamps
//! [`crate::process::producer_id`], the id that also names the process's
//! spool files; any further one (a second transport in the same process)
//! gets an id derived from it. One id per sequencer keeps each producer's
//! numbers contiguous per destination: two transports sharing a sequence,
//! sending to two queues, would each show the other's numbers as gaps.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::envelope::Stamp;
use crate::process;

/// Bit 63 of the state word: a thread holds the sequencer.
const LOCKED: u64 = 1 << 63;
/// Bit 63 of the generation word: a thread of the generation in the low
/// bits is resetting the state.
const RESETTING: u64 = 1 << 63;
/// Spins before yielding while another thread holds the sequencer.
const SPINS: u32 = 64;

/// Sequencers used so far in this generation: the generation's low 32 bits
/// in the high half, the count in the low half.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// Numbers the events one transport accepts; see the [module docs](self).
#[derive(Debug)]
pub struct Sequencer {
    /// Bit 63: locked; bits 0..63: the next number.
    state: AtomicU64,
    /// The process generation `state` and `producer` belong to (0: none
    /// yet), or `RESETTING | generation` while being reset.
    generation: AtomicU64,
    producer: AtomicU64,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer::new()
    }
}

impl Sequencer {
    /// A sequencer that gets its producer id on first use.
    pub const fn new() -> Sequencer {
        Sequencer {
            state: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            producer: AtomicU64::new(0),
        }
    }

    /// Takes the next number, calls `send` with the stamp, and keeps the
    /// number if `send` returned `Ok` (the transport accepted the event);
    /// on `Err` the number is given back and the next call gets it. The
    /// sequencer is held while `send` runs: it must not block for long, and
    /// must not use this sequencer again.
    #[inline]
    pub fn sequenced<T, E>(&self, send: impl FnOnce(Stamp) -> Result<T, E>) -> Result<T, E> {
        let generation = process::generation();
        if self.generation.load(Ordering::Acquire) != generation {
            self.renew(generation);
        }
        let seq = self.lock();
        let held = Held {
            state: &self.state,
            seq,
        };
        let stamp = Stamp {
            producer: self.producer.load(Ordering::Relaxed),
            seq,
        };
        let result = send(stamp);
        if result.is_ok() {
            held.keep();
        }
        result
    }

    /// The producer id this sequencer stamps in this process generation
    /// (drawing it if this is the generation's first use).
    pub fn producer(&self) -> u64 {
        let generation = process::generation();
        if self.generation.load(Ordering::Acquire) != generation {
            self.renew(generation);
        }
        self.producer.load(Ordering::Relaxed)
    }

    /// Events accepted in this process generation so far: the next number.
    /// 0 in a forked child that has not sent yet.
    pub fn accepted(&self) -> u64 {
        if self.generation.load(Ordering::Acquire) != process::generation() {
            return 0;
        }
        self.state.load(Ordering::Relaxed) & !LOCKED
    }

    #[inline]
    fn lock(&self) -> u64 {
        let mut spins = 0;
        loop {
            let prev = self.state.fetch_or(LOCKED, Ordering::Acquire);
            if prev & LOCKED == 0 {
                return prev;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Resets the state for `generation`, the current one: counter 0,
    /// unlocked, a producer id of this generation. Whatever the state was —
    /// a parent's, even locked, even half reset by a parent's thread — it
    /// is not waited for.
    #[cold]
    fn renew(&self, generation: u64) {
        let mine = RESETTING | generation;
        loop {
            let seen = self.generation.load(Ordering::Acquire);
            if seen == generation {
                return;
            }
            if seen == mine {
                // Another thread of this generation is resetting: it stores
                // the generation in a few instructions.
                std::hint::spin_loop();
                continue;
            }
            // An older generation's state, or an older generation's reset
            // (its thread does not exist here): take it over.
            if self
                .generation
                .compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.producer
                    .store(producer_for(next_instance(generation)), Ordering::Relaxed);
                self.state.store(0, Ordering::Relaxed);
                self.generation.store(generation, Ordering::Release);
                return;
            }
        }
    }
}

/// The sequencer held by one caller; dropping it gives the number back.
struct Held<'a> {
    state: &'a AtomicU64,
    seq: u64,
}

impl Held<'_> {
    /// Keeps the number: the next caller gets the one after it.
    fn keep(self) {
        let next = (self.seq + 1) & !LOCKED;
        self.state.store(next, Ordering::Release);
        std::mem::forget(self);
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // The send failed (or panicked): the number was not used.
        self.state.store(self.seq, Ordering::Release);
    }
}

/// Which sequencer of `generation` this is, from 0.
fn next_instance(generation: u64) -> u64 {
    let tag = (generation & 0xffff_ffff) << 32;
    let mut seen = INSTANCES.load(Ordering::Relaxed);
    loop {
        let (index, next) = if seen & !0xffff_ffff == tag {
            (seen & 0xffff_ffff, seen + 1)
        } else {
            (0, tag | 1)
        };
        match INSTANCES.compare_exchange_weak(seen, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return index,
            Err(now) => seen = now,
        }
    }
}

/// The producer id of a generation's `index`th sequencer: the process's own
/// for the first, one derived from it (never 0) for the others.
fn producer_for(index: u64) -> u64 {
    let base = process::producer_id();
    if index == 0 {
        return base;
    }
    let id = process::mix(base ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    if id == 0 {
        1
    } else {
        id
    }
}

#[cfg(test)]
mod tests;
