//! This process as an event producer: its fork generation and its producer id.
//!
//! A forked child inherits its parent's memory but none of its threads, and
//! must not repeat what the parent does: the same event-id random stream, the
//! same producer id, writing into the parent's spool segment or channel. A
//! `pthread_atfork` child handler therefore bumps a generation counter and
//! draws a fresh producer id, so code that keeps per-process state notices a
//! fork with one relaxed atomic load instead of a `getpid` syscall.
//!
//! The handler is registered on first use of anything here, which every
//! emitter does before it can have state worth protecting: a process that
//! forks before it ever emitted has nothing to tell its children apart from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Bumped in every forked child. Starts at 1 so that 0 can mean "never seen".
static GENERATION: AtomicU64 = AtomicU64::new(1);
/// This process's producer id; never 0 once [`register`] ran.
static PRODUCER_ID: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: atomics and the getrandom/getpid syscalls only; no
    // allocation, no lock. The child runs single-threaded until this returns.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    let old = PRODUCER_ID.load(Ordering::Relaxed);
    PRODUCER_ID.store(fresh_id(old), Ordering::Relaxed);
}

/// Registers the atfork handler and draws this process's producer id (once
/// per process; children inherit the registration).
pub fn register() {
    REGISTER.call_once(|| {
        PRODUCER_ID.store(fresh_id(0), Ordering::Relaxed);
        // SAFETY: the handler is a 'static `extern "C" fn` that only touches
        // atomics and makes async-signal-safe syscalls. If registration fails
        // (ENOMEM) forks go unnoticed: a child would share its parent's
        // producer id and random stream, never crash.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

/// The current process generation: different in every forked child.
#[inline]
pub fn generation() -> u64 {
    register();
    GENERATION.load(Ordering::Relaxed)
}

/// This process's producer id: 64 random bits, never 0, drawn anew in every
/// forked child. It names the process's spool files and, with a sequence
/// number, lets the drain account for every event a producer emitted.
#[inline]
pub fn producer_id() -> u64 {
    register();
    PRODUCER_ID.load(Ordering::Relaxed)
}

/// 64 random bits for a new id, never 0 and never `old`.
fn fresh_id(old: u64) -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; getrandom is a
    // plain syscall, safe in an atfork child handler.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    let mut id = u64::from_le_bytes(buf);
    if n != buf.len() as isize {
        // No getrandom (old kernel, seccomp) or the pool is not ready yet:
        // mix the old id, the pid and the clock, which differ per process.
        // SAFETY: getpid has no preconditions and is async-signal-safe.
        let pid = unsafe { libc::getpid() } as u64;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out pointer; clock_gettime is async-signal-safe.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        id = mix(old
            ^ pid.rotate_left(32)
            ^ (ts.tv_sec as u64)
            ^ (ts.tv_nsec as u64).rotate_left(17));
    }
    if id == 0 || id == old {
        id = mix(id.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ old) | 1;
    }
    id
}

/// splitmix64's finaliser: spreads every input bit over the output.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_id_is_stable_within_a_process() {
        let id = producer_id();
        assert_ne!(id, 0);
        assert_eq!(producer_id(), id);
        assert_eq!(generation(), generation());
    }

    #[test]
    fn forked_child_gets_a_new_generation_and_producer_id() {
        let (parent_id, parent_gen) = (producer_id(), generation());
        let mut pipe = [0i32; 2];
        // SAFETY: `pipe` is a valid out array of two fds.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child only calls async-signal-safe code (atomics,
        // write, _exit) before exiting.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let seen = [producer_id(), generation()];
            let bytes: Vec<u8> = seen.iter().flat_map(|v| v.to_le_bytes()).collect();
            // SAFETY: writes our own buffer to the pipe, then exits without
            // running the test harness's destructors.
            unsafe {
                libc::write(pipe[1], bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            }
        }
        let mut buf = [0u8; 16];
        // SAFETY: reads into our own buffer; waits for the child we forked.
        unsafe {
            libc::close(pipe[1]);
            assert_eq!(libc::read(pipe[0], buf.as_mut_ptr().cast(), 16), 16);
            libc::close(pipe[0]);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
        let child_id = u64::from_le_bytes(buf[..8].try_into().unwrap());
        let child_gen = u64::from_le_bytes(buf[8..].try_into().unwrap());
        assert_ne!(
            child_id, parent_id,
            "a child must not share its parent's producer id"
        );
        assert_ne!(child_id, 0);
        assert_eq!(child_gen, parent_gen + 1);
        assert_eq!(producer_id(), parent_id, "the parent keeps its id");
    }
}
