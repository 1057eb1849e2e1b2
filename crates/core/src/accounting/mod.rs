//! End-to-end loss accounting: the drain counts the events that producers
//! accepted and that never arrived (gaps), the ones that arrived twice
//! (duplicates), and the ones that arrived after they were counted missing
//! (late).
//!
//! Every transport numbers the events it accepts
//! ([`crate::sequence::Sequencer`]): a version 2 envelope carries its
//! producer's id and its number in that producer's sequence (the
//! [`Stamp`](crate::envelope::Stamp), `docs/PROTOCOL.md`). A number is
//! assigned only when the transport accepted the event, so an event the
//! app dropped (its drop policy, `stats[:dropped]`) has none and can never
//! look like a gap: a missing number is an event that was accepted and
//! then lost. The drain feeds every event it admits, once, to a
//! [`Tracker`] ([`Tracker::admit`]); retries are not admissions.
//!
//! # What the tracker counts
//!
//! Per producer it keeps a *watermark* `next` (every number below it is
//! settled) and a bitmap of the numbers seen above it (`window.rs`). An
//! event numbered `next` moves the watermark on, over whatever was seen
//! above it; an event numbered higher waits in the bitmap for the missing
//! ones, which may still come: the queue, the spool and the proxy are
//! different paths, a drain restart re-sends its journal, and so on. A
//! missing number becomes a **gap** (counted in [`Totals::gaps`]) when
//!
//! - a later number of the same producer was seen [`TrackerConfig::window`]
//!   ago (60 s) — settled by [`Tracker::tick`], about once a second, to
//!   the granularity of a sixtieth of the window; or
//! - the producer's numbers ran [`TrackerConfig::window_events`] (65,536)
//!   past it, or its bitmap would take the tracker over its memory budget
//!   ([`TrackerConfig::max_window_bytes`]): settled at once and counted in
//!   [`Totals::forced`].
//!
//! A number that arrives after it was counted as a gap is **late**
//! ([`Totals::late`]): the gap is taken back, never silently, and
//! [`Totals::missing`] (gaps − late) is what is lost as far as the drain
//! can tell. A number seen twice is a **duplicate** (a frame the proxy
//! received twice, the journal re-sent after a drain crash). The
//! classification uses each producer's last [`MAX_GAP_RANGES`] (32) ranges
//! of gaps; a number below the forgotten ones, or below where
//! the tracker's view of its producer begins, is **unclassified** (late or
//! duplicate, it cannot tell). Events without a stamp (version 1, or never
//! stamped) are **unaccounted**, never gaps.
//!
//! # Where a producer's accounting begins
//!
//! A producer first seen with number 0 is accounted from its start. One
//! first seen with a higher number `n` — because its first events were lost,
//! or because it emitted before this accounting began (a fresh or damaged
//! state file) or was forgotten — cannot be told apart from the other
//! cases, and a false gap would be worse than a missed one: its accounting
//! begins at the lowest number seen. Numbers up to `HEAD_WINDOW`
//! (1,024) below `n` may still arrive within the window (reordering at the
//! head) and lower that start; once the window has passed, a producer that
//! did not start at 0 is counted in [`Totals::joined_late`]. Outside of a
//! fresh state, that counter rising says the first events of new processes
//! are being lost.
//!
//! # Memory
//!
//! A producer whose numbers arrive in order costs a map entry and no
//! bitmap. A bitmap exists only while a number is missing, is bounded by the
//! window, and all of them together by the memory budget. A producer silent
//! for [`TrackerConfig::retire_after`] (10 min) has everything settled and
//! its bitmap and marks freed; one silent for
//! [`TrackerConfig::forget_after`] (7 days) is forgotten
//! ([`Totals::forgotten`]): if it ever comes back, it joins late. The
//! tracker holds at most [`TrackerConfig::max_producers`] (100,000); past
//! that the longest silent are evicted, their pending numbers settled
//! ([`Totals::evicted`], a metric to alert on: raise the maximum). Each
//! producer costs about 200 bytes plus at most 512 bytes of gap ranges, so
//! the tracker stays under about 100 MiB at its maximum (and a few hundred
//! KiB for a host's usual hundreds of producers).
//!
//! # Restarts
//!
//! The state lives in `accounting-KEY.bin` in the state directory
//! ([`StateFile`]): rewritten whole (temporary file, then rename) about
//! once a second and at shutdown, loaded at start. Events the drain
//! admitted after the last save are not in it; if the drain is killed
//! then, it meets them again only if its journal (or the spool) still holds
//! them. **So the drain must not let its checkpoint pass an event before a
//! state that has admitted it is saved**: it holds its journal checkpoint
//! and spool acknowledgements back to what the last saved state covers.
//! Then after a `kill -9` every event past the saved state is delivered
//! again and admitted again: nothing looks missing, and those admitted
//! before the save count as duplicates (as they are, in Kafka too).
//!
//! Times are the drain's wall clock in Unix milliseconds, passed in by the
//! caller, so that idle times survive a restart; a clock that jumps forward
//! settles pending numbers early (a late arrival then takes the gap back).
//!
//! # State file, version 1 (little-endian)
//!
//! A 128-byte header, then one record per producer.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `SEACCNT1` |
//! | 8 | 4 | format version, 1 |
//! | 12 | 4 | header size, 128 |
//! | 16 | 8 | saved at, Unix ms |
//! | 24 | 8 | since: when this accounting began, Unix ms |
//! | 32 | 8 | producer records that follow |
//! | 40 | 80 | ten counters, u64 each, in this order: admitted, unaccounted, gaps, late, duplicates, unclassified, joined_late, forgotten, evicted, forced ([`Totals`]) |
//! | 120 | 4 | state_damaged (u32) |
//! | 124 | 4 | CRC32C of bytes 0..124 |
//!
//! A producer record (`G` gap ranges, `M` marks, `W` bitmap words):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | magic `SEPR` |
//! | 4 | 4 | record length `L` = 124 + 16·G + 16·M + 8·W, CRC included |
//! | 8 | 8 | producer id, non-zero |
//! | 16 | 8 | start: lowest number accounted |
//! | 24 | 8 | next: the watermark |
//! | 32 | 8 | end: one past the highest number seen, ≥ next |
//! | 40 | 8 | gap floor |
//! | 48 | 8 | last seen, Unix ms |
//! | 56 | 40 | the producer's counters, u64 each: admitted, gaps, late, duplicates, unclassified |
//! | 96 | 8 | bitmap base: the number of bit 0 of word 0, a multiple of 64 |
//! | 104 | 2 | G, at most 32 |
//! | 106 | 2 | M, at most 128 |
//! | 108 | 4 | W |
//! | 112 | 4 | flags: bit 0 counted as joined late, bit 1 retired; others 0 |
//! | 116 | 4 | reserved, 0 |
//! | 120 | 16·G | gap ranges, `from` and `to` (u64 each), ascending, disjoint, below next |
//! | … | 16·M | marks, `end` and `seen_by` (Unix ms) (u64 each), ascending |
//! | … | 8·W | bitmap words: bit `i` of word `j` is number `base + 64j + i` |
//! | L − 4 | 4 | CRC32C of bytes 0..L−4 of the record |
//!
//! Invariants a reader checks: `next ≤ end`; if `next < end`, the bitmap
//! starts at or below `next` and has `end − 1` set; ranges and marks as
//! described; no producer twice.
//!
//! # Damage
//!
//! A file that cannot be read is data, not an excuse to start over in
//! silence. [`StateFile::load`] keeps every record whose CRC and invariants
//! hold and skips a damaged one by searching for the next `SEPR` magic
//! that starts a valid record; a damaged header costs the counters (they
//! restart at 0), not the producers. Each damaged span (offset, length,
//! reason) is in the [`LoadReport`] for the drain to log, the file is kept
//! as `accounting-KEY.bin.damaged` for the operator, and
//! [`Totals::state_damaged`] counts it. Producers lost with the damage join
//! late when they are seen again: damage can hide a loss, never invent one.
//! A file of an unknown version is set aside the same way.

mod file;
mod format;
pub(crate) mod producer;
mod totals;
mod tracker;
pub(crate) mod window;

use std::time::Duration;

pub use file::{AccountingError, Damage, LoadReport, StateFile};
pub use format::{FORMAT_VERSION, MAGIC};
pub use producer::MAX_GAP_RANGES;
pub use totals::{AccountingSnapshot, ProducerDetail, Totals};
pub use tracker::Tracker;

use crate::defaults;

/// What one admission was, as [`Tracker::admit`] classified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// No stamp (version 1, or unstamped): counted as unaccounted.
    Unaccounted,
    /// The first number seen of a producer the tracker did not hold, other
    /// than a start at 0.
    New,
    /// The number expected next.
    InOrder,
    /// Ahead of a number not seen yet, which the window waits for.
    Ahead,
    /// A number that was missing, within the window: reordering.
    Filled,
    /// Seen before.
    Duplicate,
    /// Counted as a gap, arrived now: the gap is taken back.
    Late,
    /// Below where the tracker's memory of its producer begins.
    Unclassified,
}

/// The tracker's settings; [`Default`] takes them from [`crate::defaults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// How long a missing number may wait after a later one arrived.
    pub window: Duration,
    /// How far a producer's numbers may run past a missing one.
    pub window_events: u64,
    /// Silence after which a producer's pending numbers are settled and its
    /// window freed; at least `window` (raised to it).
    pub retire_after: Duration,
    /// Silence after which a producer is forgotten; at least `retire_after`.
    pub forget_after: Duration,
    /// Producers held at most (at least 1).
    pub max_producers: usize,
    /// Bytes all bitmaps may take together.
    pub max_window_bytes: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            window: defaults::ACCOUNTING_WINDOW,
            window_events: defaults::ACCOUNTING_WINDOW_EVENTS,
            retire_after: defaults::ACCOUNTING_RETIRE_AFTER,
            forget_after: defaults::ACCOUNTING_FORGET_AFTER,
            max_producers: defaults::ACCOUNTING_MAX_PRODUCERS,
            max_window_bytes: defaults::ACCOUNTING_MAX_WINDOW_BYTES,
        }
    }
}

/// [`TrackerConfig`] in the units the tracker computes with, made
/// consistent (retire after at least a window, forget after retiring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) window_ms: u64,
    pub(crate) window_events: u64,
    /// Granularity of the time marks: a sixtieth of the window.
    pub(crate) mark_ms: u64,
    pub(crate) head_window: u64,
    pub(crate) retire_ms: u64,
    pub(crate) forget_ms: u64,
    pub(crate) max_producers: usize,
    pub(crate) max_window_words: usize,
}

impl From<&TrackerConfig> for Limits {
    fn from(c: &TrackerConfig) -> Limits {
        let window_ms = millis(c.window);
        let window_events = c.window_events.max(64);
        let retire_ms = millis(c.retire_after).max(window_ms);
        Limits {
            window_ms,
            window_events,
            mark_ms: (window_ms / 60).max(1),
            head_window: producer::HEAD_WINDOW.min(window_events / 2),
            retire_ms,
            forget_ms: millis(c.forget_after).max(retire_ms),
            max_producers: c.max_producers.max(1),
            max_window_words: c.max_window_bytes / 8,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
