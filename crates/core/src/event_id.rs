//! Event ids: UUIDv7 (RFC 9562), unique and ordered by emit time.
//!
//! Layout: 48-bit Unix milliseconds, version 7, 12 bits of sub-millisecond
//! precision (RFC 9562 §6.2 method 3: the microseconds within the millisecond
//! scaled to 0..4096), variant `0b10`, then 62 random bits. Ids made at
//! increasing microseconds therefore sort increasing, and the random bits keep
//! ids from different processes apart.
//!
//! The random bits come from a thread-local wyrand generator seeded from
//! `getrandom`. A forked child inherits that state, so it would repeat its
//! parent's ids: each generator reseeds when the process generation
//! ([`crate::process::generation`]) moved. That costs one relaxed atomic load
//! per id instead of a `getpid` syscall.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

/// A 16-byte UUIDv7 identifying one event; consumers use it to drop duplicates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId([u8; 16]);

impl EventId {
    /// Makes a new id for an event emitted at `time_us` (microseconds since the
    /// Unix epoch). Times before the epoch are clamped to it.
    pub fn generate(time_us: i64) -> EventId {
        let time_us = time_us.max(0) as u64;
        let millis = (time_us / 1000) & 0xFFFF_FFFF_FFFF;
        // Scale 0..1000 µs onto 0..4096 so the 12 bits stay monotonic in time.
        let sub_ms = ((time_us % 1000) * 4096 / 1000) as u16;
        let rand = next_random();

        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(millis << 16).to_be_bytes());
        b[6..8].copy_from_slice(&(0x7000 | sub_ms).to_be_bytes());
        b[8..].copy_from_slice(&rand.to_be_bytes());
        b[8] = 0x80 | (b[8] & 0x3F);
        EventId(b)
    }

    /// Wraps 16 bytes in RFC 9562 byte order, without checking version or variant.
    pub const fn from_bytes(bytes: [u8; 16]) -> EventId {
        EventId(bytes)
    }

    /// The 16 bytes in RFC 9562 byte order, as they appear in the envelope.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id as 36 ASCII bytes, lowercase 8-4-4-4-12 hex: what `Display`
    /// prints, without the formatting machinery (the Ruby extension turns it
    /// into the String `emit` returns).
    pub fn hyphenated(&self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = [0u8; 36];
        let mut at = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s[at] = b'-';
                at += 1;
            }
            s[at] = HEX[usize::from(byte >> 4)];
            s[at + 1] = HEX[usize::from(byte & 0xF)];
            at += 2;
        }
        s
    }

    /// The millisecond Unix timestamp held in the first 48 bits.
    pub fn unix_millis(&self) -> u64 {
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(ms)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.hyphenated();
        // Only ASCII hex digits and hyphens were written.
        f.write_str(std::str::from_utf8(&s).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not a hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid event id {input:?}: expected 32 hex digits as 8-4-4-4-12 \
     (e.g. 0192d5e4-8f3a-7b2c-9d4e-5f6a7b8c9d0e)"
)]
pub struct ParseEventIdError {
    /// The rejected text.
    pub input: String,
}

impl FromStr for EventId {
    type Err = ParseEventIdError;

    /// Parses the hyphenated form; hex digits may be upper or lower case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseEventIdError {
            input: s.to_owned(),
        };
        let text = s.as_bytes();
        if text.len() != 36 {
            return Err(err());
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in text.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(err());
                }
                continue;
            }
            let v = (c as char).to_digit(16).ok_or_else(err)? as u8;
            let byte = out.get_mut(nibbles / 2).ok_or_else(err)?;
            *byte = (*byte << 4) | v;
            nibbles += 1;
        }
        Ok(EventId(out))
    }
}

#[derive(Clone, Copy)]
struct Rng {
    state: u64,
    generation: u64,
}

thread_local! {
    static RNG: Cell<Rng> = const { Cell::new(Rng { state: 0, generation: 0 }) };
}

/// 64 random bits from the thread-local generator, reseeding it first if
/// this thread never seeded it or the process forked since.
fn next_random() -> u64 {
    let generation = crate::process::generation();
    RNG.try_with(|cell| {
        let mut rng = cell.get();
        if rng.generation != generation {
            rng = Rng {
                state: seed(),
                generation,
            };
        }
        let out = wyrand(&mut rng.state);
        cell.set(rng);
        out
    })
    // Thread-local storage is gone only while the thread is being torn down.
    .unwrap_or_else(|_| {
        let mut state = seed();
        wyrand(&mut state)
    })
}

/// wyrand (Wang Yi): passes BigCrush/PractRand, one multiply per output.
#[inline]
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state).wrapping_mul(u128::from(*state ^ 0xe703_7ed1_a0b4_28db));
    ((t >> 64) as u64) ^ (t as u64)
}

fn seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n == buf.len() as isize {
        return u64::from_le_bytes(buf);
    }
    // getrandom is missing (old kernel, seccomp) or the pool is not ready yet
    // (early boot): mix time, pid, thread and a stack address instead.
    let local = 0u8;
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() } as u64;
    let mut s = crate::clock::now_micros() as u64
        ^ (std::ptr::addr_of!(local) as u64).rotate_left(32)
        ^ pid.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    wyrand(&mut s) ^ wyrand(&mut s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_version_7_and_variant_10() {
        let id = EventId::generate(1_700_000_000_123_456);
        assert_eq!(id.as_bytes()[6] >> 4, 7);
        assert_eq!(id.as_bytes()[8] >> 6, 0b10);
        assert_eq!(id.unix_millis(), 1_700_000_000_123);
    }

    #[test]
    fn sub_millisecond_bits_scale_micros_to_12_bits() {
        let at = |us: i64| {
            let b = EventId::generate(1_700_000_000_000_000 + us).0;
            u16::from_be_bytes([b[6], b[7]]) & 0x0FFF
        };
        assert_eq!(at(0), 0);
        assert_eq!(at(500), 2048);
        assert_eq!(at(999), 4091);
    }

    #[test]
    fn ids_sort_by_microsecond() {
        let base = 1_700_000_000_000_000;
        let ids: Vec<_> = (0..5000).map(|us| EventId::generate(base + us)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn negative_time_is_clamped_to_the_epoch() {
        assert_eq!(EventId::generate(-5).unix_millis(), 0);
    }

    #[test]
    fn display_and_from_str_round_trip() {
        let id = EventId::generate(1_700_000_000_123_456);
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(format!("{id:?}"), text);
        assert_eq!(text.parse::<EventId>(), Ok(id));
        assert_eq!(text.to_uppercase().parse::<EventId>(), Ok(id));
    }

    #[test]
    fn display_is_lowercase_hyphenated_8_4_4_4_12() {
        let id = EventId::from_bytes(
            *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef",
        );
        assert_eq!(id.to_string(), "01234567-89ab-cdef-0123-456789abcdef");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "01234567-89ab-cdef-0123-456789abcde",
            "01234567-89ab-cdef-0123-456789abcdefa",
            "0123456789ab-cdef-0123-456789abcdef-",
            "01234567-89ab-cdef-0123-456789abcdeg",
            "01234567+89ab-cdef-0123-456789abcdef",
            "01234567-89ab-cdef-0123-456789abcdé",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_million_ids_in_one_thread_are_unique() {
        let now = crate::clock::now_micros();
        let mut seen = std::collections::HashSet::with_capacity(1_000_000);
        for i in 0..1_000_000 {
            // Many ids per microsecond, as in a burst: only the random bits separate them.
            assert!(seen.insert(EventId::generate(now + i / 100)));
        }
    }

    #[test]
    fn forked_child_does_not_repeat_parent_ids() {
        let now = crate::clock::now_micros();
        // Seed this thread's generator before forking, as a Puma master would.
        let _ = EventId::generate(now);
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        const N: usize = 1000;
        // SAFETY: the child only generates ids, writes to the pipe and calls _exit,
        // never returning into the test harness's threads or destructors.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let mut bytes = Vec::with_capacity(N * 16);
            for _ in 0..N {
                bytes.extend_from_slice(EventId::generate(now).as_bytes());
            }
            let mut off = 0;
            while off < bytes.len() {
                // SAFETY: writes from a live buffer within its bounds to our own pipe fd.
                let n =
                    unsafe { libc::write(fds[1], bytes[off..].as_ptr().cast(), bytes.len() - off) };
                if n <= 0 {
                    break;
                }
                off += n as usize;
            }
            // SAFETY: _exit skips atexit handlers and the harness, as a forked child must.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: closing our copy of the write end so the read below sees EOF.
        unsafe { libc::close(fds[1]) };
        let parent: std::collections::HashSet<_> = (0..N).map(|_| EventId::generate(now)).collect();
        let mut child = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a live buffer within its bounds from our own pipe fd.
            let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            child.extend_from_slice(&buf[..n as usize]);
        }
        let mut status = 0;
        // SAFETY: waits for the child we forked; `status` is a valid out pointer.
        unsafe {
            libc::close(fds[0]);
            libc::waitpid(pid, &mut status, 0);
        }
        assert_eq!(child.len(), N * 16, "child sent all its ids");
        for chunk in child.chunks_exact(16) {
            let mut b = [0u8; 16];
            b.copy_from_slice(chunk);
            assert!(
                !parent.contains(&EventId::from_bytes(b)),
                "child repeated a parent id"
            );
        }
    }
}
