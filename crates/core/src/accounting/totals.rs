//! [`Totals`]: the tracker's counters, and [`AccountingSnapshot`], what
//! `stats` and `top` read of it.

use serde::{Deserialize, Serialize};

/// The tracker's counters since its state began (they survive restarts
/// with the state file). Every one only grows; what is missing now is
/// [`Totals::missing`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Stamped events admitted (every admission, duplicates included).
    pub admitted: u64,
    /// Events admitted without a stamp (version 1, or unstamped): not
    /// accounted for, never gaps.
    pub unaccounted: u64,
    /// Sequence numbers counted as missing: accepted by a producer's
    /// transport and not seen within the window.
    pub gaps: u64,
    /// Of those, numbers that arrived afterwards (the gap taken back).
    pub late: u64,
    /// Events whose (producer, number) was seen before.
    pub duplicates: u64,
    /// Events below where the tracker's memory of their producer begins:
    /// late or duplicate, it cannot tell.
    pub unclassified: u64,
    /// Producers whose first numbers never arrived: the accounting started
    /// at the lowest number seen (after a fresh or damaged state, a
    /// forgotten producer; otherwise the first events were lost).
    pub joined_late: u64,
    /// Producers forgotten after a long silence.
    pub forgotten: u64,
    /// Producers forgotten early because the tracker holds its maximum.
    pub evicted: u64,
    /// Missing numbers settled before their time because the window's
    /// count or the memory budget was exceeded (a late arrival still takes
    /// the gap back).
    pub forced: u64,
    /// State files found damaged or unreadable at load.
    pub state_damaged: u64,
}

impl Totals {
    /// Gaps not taken back: events accepted and, as far as the drain can
    /// tell, lost.
    pub fn missing(&self) -> u64 {
        self.gaps.saturating_sub(self.late)
    }
}

/// One producer as `stats` and `top` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProducerDetail {
    /// The producer id, 16 lowercase hex digits (as in spool file names).
    pub producer: String,
    /// Its gaps not taken back.
    pub missing: u64,
    /// Its gaps.
    pub gaps: u64,
    /// Its late arrivals.
    pub late: u64,
    /// Its duplicates.
    pub duplicates: u64,
    /// The next number the drain expects from it.
    pub next: u64,
    /// When it was last seen, in Unix seconds.
    pub last_seen: f64,
}

/// The loss accounting as the drain publishes it (in its stats snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountingSnapshot {
    /// The counters.
    #[serde(flatten)]
    pub totals: Totals,
    /// [`Totals::missing`].
    pub missing: u64,
    /// Producers the tracker holds.
    pub producers: u64,
    /// Of those, producers seen lately (not retired).
    pub active_producers: u64,
    /// The most it holds.
    pub max_producers: u64,
    /// When this accounting began, in Unix seconds (a fresh state).
    pub since: f64,
    /// The producers with the most missing events, then duplicates; at
    /// most a handful, none without either.
    pub worst: Vec<ProducerDetail>,
}
