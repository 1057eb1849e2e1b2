//! The drain's loss accounting ([`crate::accounting`]): every event it
//! admits, from the journal or a spool, is fed once to the [`Tracker`];
//! the tracker's state is loaded at start from `accounting-KEY.bin` in the
//! state directory and saved there at most once a second (when
//! acknowledgements wait for it, and at the tick once it changed) and at
//! stop, synced to disk.
//!
//! # Acknowledgements wait for a save
//!
//! An event whose place (journal checkpoint, spool segment's `acked`) is
//! acknowledged is never delivered again, so after a `kill -9` the drain
//! meets it again only if the saved state already admitted it. So
//! acknowledgements are *held* here until a state covering every event
//! admitted before them is saved: [`Accounting::release`] saves (at most
//! every [`defaults::ACCOUNTING_SAVE_INTERVAL`], or at once when asked)
//! and hands them back. Events re-sent after a crash are then either in
//! the state (counted as duplicates, as they may well be in Kafka) or
//! admitted for the first time: never a false gap. A save that fails is
//! logged and the acknowledgements are released anyway: delivery never
//! waits for the accounting, which may then count false gaps after a
//! crash (the log says so).

use std::time::{Duration, Instant};

use super::super::window::{Acks, Origin};
use crate::accounting::{AccountingSnapshot, StateFile, Totals, Tracker, TrackerConfig};
use crate::defaults;
use crate::envelope::Stamp;
use crate::metrics::DrainMetrics;
use crate::spool::SegmentId;
use crate::state_dir::StateDir;

/// How many producers the snapshot names (the worst first).
const WORST: usize = 5;

/// Acknowledgements waiting for a save of the state.
#[derive(Debug, Default)]
pub(super) struct Released {
    /// The journal position the checkpoint may move to.
    pub journal: Option<u64>,
    /// Spool segments whose `acked` may move, and where to.
    pub spool: Vec<(Origin, SegmentId, u64)>,
}

/// The tracker, its state file and the acknowledgements held for it.
pub(super) struct Accounting {
    tracker: Tracker,
    file: StateFile,
    held: Released,
    last_save: Instant,
    save_every: Duration,
    /// Totals already added to the metrics (this process's counters).
    counted: Totals,
    save_failed: bool,
    /// Unix ms, read once per turn of the drain loop (in `release`) rather
    /// than once per event: the window is a minute, its marks a second.
    now: u64,
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    u64::try_from(crate::clock::now_micros() / 1000).unwrap_or(0)
}

impl Accounting {
    /// Loads the state of `state`'s queue (a damaged file is reported in
    /// the log and set aside, a missing one is a fresh start).
    pub fn open(state: &StateDir, config: &TrackerConfig) -> Accounting {
        let file = StateFile::new(state);
        let (tracker, report) = file.load(config, now_ms());
        if report.is_damaged() || report.unreadable.is_some() {
            eprintln!("shopify-events drain: loss accounting state damaged: {report}");
        } else if report.found {
            eprintln!(
                "shopify-events drain: loss accounting resumed from {} ({} producers)",
                report.path.display(),
                report.producers
            );
        }
        let counted = tracker.totals();
        let now = now_ms();
        Accounting {
            tracker,
            file,
            held: Released::default(),
            last_save: Instant::now(),
            save_every: defaults::ACCOUNTING_SAVE_INTERVAL,
            counted,
            save_failed: false,
            now,
        }
    }

    /// Counts one admitted event.
    #[inline]
    pub fn admit(&mut self, stamp: Option<Stamp>) {
        self.tracker.admit(stamp, self.now);
    }

    /// Holds what `acks` allows until a state covering it is saved.
    pub fn hold(&mut self, acks: &Acks) {
        if let Some(journal) = acks.journal {
            self.held.journal = Some(journal);
        }
        self.held.spool.extend_from_slice(&acks.spool);
    }

    /// The held acknowledgements, once a state that covers them is saved:
    /// at once if nothing was admitted since the last save, after a save
    /// if one is due; `None` while they wait. `stopping` saves now and
    /// syncs the state to disk.
    pub fn release(&mut self, stopping: bool) -> Option<Released> {
        self.now = now_ms();
        let nothing_held = self.held.journal.is_none() && self.held.spool.is_empty();
        if nothing_held && !stopping {
            return None;
        }
        if self.tracker.is_dirty() || stopping {
            if !stopping && self.last_save.elapsed() < self.save_every {
                return None;
            }
            self.save(stopping);
        }
        Some(std::mem::take(&mut self.held))
    }

    /// Saves the state; `sync` also writes it to disk.
    fn save(&mut self, sync: bool) {
        self.last_save = Instant::now();
        match self.file.save(&mut self.tracker, self.now, sync) {
            Ok(()) => {
                if std::mem::take(&mut self.save_failed) {
                    eprintln!("shopify-events drain: loss accounting state saved again");
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut self.save_failed, true) {
                    eprintln!(
                        "shopify-events drain: cannot save the loss accounting state: {e}; \
                         delivery goes on, but a crash now may count false gaps"
                    );
                }
            }
        }
    }

    /// Once a second: settles what the window allows, saves the state if
    /// it changed (so the file follows the accounting even while nothing
    /// is acknowledged, Kafka down) and adds what the totals grew by to
    /// the metrics.
    pub fn tick(&mut self, metrics: &DrainMetrics) {
        self.now = now_ms();
        self.tracker.tick(self.now);
        if self.tracker.is_dirty() && self.last_save.elapsed() >= self.save_every {
            self.save(false);
        }
        let totals = self.tracker.totals();
        let grew = |now: u64, before: u64| now.saturating_sub(before);
        metrics.gaps.add(grew(totals.gaps, self.counted.gaps));
        metrics.late.add(grew(totals.late, self.counted.late));
        metrics
            .duplicates
            .add(grew(totals.duplicates, self.counted.duplicates));
        metrics
            .unaccounted
            .add(grew(totals.unaccounted, self.counted.unaccounted));
        self.counted = totals;
    }

    /// What `stats` and `top` show: totals since the accounting began.
    pub fn snapshot(&self) -> AccountingSnapshot {
        self.tracker.snapshot(WORST)
    }
}
