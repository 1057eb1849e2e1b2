//! One producer's accounting: its watermark, the numbers seen above it,
//! the gaps it may still take back. The rules are in the
//! [module docs](super).

use std::collections::VecDeque;

use super::totals::Totals;
use super::window::SeenWindow;
use super::{Admission, Limits};

/// Gap ranges a producer remembers for telling late numbers from
/// duplicates; past this the lowest are forgotten (`gap_floor`).
pub const MAX_GAP_RANGES: usize = 32;
/// Numbers below a new producer's first one that may still arrive, as
/// reordering, before its accounting starts at the lowest seen.
pub(super) const HEAD_WINDOW: u64 = 1024;
/// Marks a producer keeps; past it the two oldest merge (into the later
/// time, so that merging only ever delays a settlement).
const MAX_MARKS: usize = 128;

/// "Numbers below `end` were all followed by a later one seen by
/// `seen_by`": once `seen_by + window` has passed, the missing ones among
/// them are gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) end: u64,
    /// Unix ms, rounded up to the marks' granularity.
    pub(super) seen_by: u64,
}

/// A producer's own counters (the tracker's [`Totals`] add them up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) admitted: u64,
    pub(super) gaps: u64,
    pub(super) late: u64,
    pub(super) duplicates: u64,
    pub(super) unclassified: u64,
}

/// What the tracker knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Producer {
    /// Lowest number the accounting covers: numbers below it are before
    /// the tracker's view of the producer. 0 for a producer first seen at
    /// 0; provisional (it goes down as lower numbers arrive) while
    /// `next < start`.
    pub(super) start: u64,
    /// The watermark: every number below it is settled (seen, a gap, or
    /// below `start`).
    pub(super) next: u64,
    /// One past the highest number seen; `next ≤ end`, equal when nothing
    /// is pending.
    pub(super) end: u64,
    /// Numbers in `[next, end)` seen.
    pub(super) seen: SeenWindow,
    /// Oldest first; only while something is pending.
    pub(super) marks: VecDeque<Mark>,
    /// `[from, to)` ranges counted as gaps whose numbers have not arrived
    /// since, ascending, below `next`.
    pub(super) gaps: Vec<(u64, u64)>,
    /// Numbers below it and outside `gaps` cannot be told late from
    /// duplicate any more (their gap ranges were forgotten).
    pub(super) gap_floor: u64,
    /// Unix ms of the last admission.
    pub(super) last_seen: u64,
    pub(super) counts: Counts,
    /// Counted in `joined_late` (its first numbers were never seen).
    pub(super) joined_late: bool,
    /// Idle: everything settled, window and marks freed.
    pub(super) retired: bool,
}

/// What a producer's operations update besides itself.
pub(super) struct Env<'a> {
    pub(super) totals: &'a mut Totals,
    pub(super) limits: &'a Limits,
    /// Words in every producer's window, for the memory budget.
    pub(super) window_words: &'a mut usize,
}

impl Producer {
    /// A producer first seen with `seq` at `now`.
    pub(super) fn first(seq: u64, now: u64, env: &mut Env<'_>) -> (Producer, Admission) {
        let mut p = Producer {
            start: seq,
            next: seq.saturating_sub(env.limits.head_window),
            end: seq,
            seen: SeenWindow::default(),
            marks: VecDeque::new(),
            gaps: Vec::new(),
            gap_floor: 0,
            last_seen: now,
            counts: Counts::default(),
            joined_late: false,
            retired: false,
        };
        p.end = p.next;
        let admission = p.admit(seq, now, env);
        let admission = if admission == Admission::InOrder && seq == 0 {
            Admission::InOrder
        } else {
            Admission::New
        };
        (p, admission)
    }

    /// Admits `seq`, seen at `now`.
    pub(super) fn admit(&mut self, seq: u64, now: u64, env: &mut Env<'_>) -> Admission {
        self.last_seen = self.last_seen.max(now);
        self.retired = false;
        self.counts.admitted += 1;
        env.totals.admitted += 1;
        // The in-order fast path: nothing pending, the expected number.
        if seq == self.next && self.end == self.next {
            self.next = seq.saturating_add(1);
            self.end = self.next;
            return Admission::InOrder;
        }
        let words = self.seen.len_words();
        let admission = if seq < self.next {
            self.below(seq, env.totals)
        } else if seq < self.end {
            if self.seen.set(self.next, seq) {
                self.counts.duplicates += 1;
                env.totals.duplicates += 1;
                Admission::Duplicate
            } else {
                self.start = self.start.min(seq);
                self.advance();
                Admission::Filled
            }
        } else {
            self.ahead(seq, now, words, env)
        };
        self.check_start(env.totals);
        *env.window_words = (*env.window_words + self.seen.len_words()).saturating_sub(words);
        admission
    }

    /// `seq ≥ end`: beyond every number seen.
    fn ahead(&mut self, seq: u64, now: u64, words: usize, env: &mut Env<'_>) -> Admission {
        let limits = env.limits;
        if seq - self.next >= limits.window_events {
            self.settle_to(seq + 1 - limits.window_events, env.totals);
            env.totals.forced += 1;
        }
        let others = env.window_words.saturating_sub(words);
        let allowed = limits.max_window_words.saturating_sub(others);
        if self.seen.words_to_cover(self.next, seq) > allowed {
            // Over the memory budget: settle this producer's holes now.
            self.settle_to(self.end, env.totals);
            if self.seen.words_to_cover(self.next, seq) > allowed {
                self.settle_to(seq, env.totals);
            }
            env.totals.forced += 1;
        }
        if seq == self.next && self.end == self.next {
            self.next = seq.saturating_add(1);
            self.end = self.next;
            return Admission::InOrder;
        }
        self.seen.set(self.next, seq);
        self.end = seq.saturating_add(1);
        self.mark(now, limits.mark_ms);
        Admission::Ahead
    }

    /// `seq < next`: late, duplicate, or beyond what it remembers.
    fn below(&mut self, seq: u64, totals: &mut Totals) -> Admission {
        if seq < self.start {
            self.counts.unclassified += 1;
            totals.unclassified += 1;
            return Admission::Unclassified;
        }
        if let Some(i) = self.gaps.iter().position(|&(a, b)| a <= seq && seq < b) {
            let (a, b) = self.gaps[i];
            let mut parts = Vec::with_capacity(2);
            if a < seq {
                parts.push((a, seq));
            }
            if seq + 1 < b {
                parts.push((seq + 1, b));
            }
            self.gaps.splice(i..=i, parts);
            self.trim_gaps();
            self.counts.late += 1;
            totals.late += 1;
            return Admission::Late;
        }
        if seq < self.gap_floor {
            self.counts.unclassified += 1;
            totals.unclassified += 1;
            return Admission::Unclassified;
        }
        self.counts.duplicates += 1;
        totals.duplicates += 1;
        Admission::Duplicate
    }

    /// Moves the watermark over numbers seen.
    fn advance(&mut self) {
        self.next = self
            .seen
            .next_missing(self.next, self.end)
            .unwrap_or(self.end);
        self.tidy();
    }

    /// Frees what lies below the watermark; everything when nothing is pending.
    fn tidy(&mut self) {
        if self.next >= self.end {
            self.seen.clear();
            self.marks.clear();
        } else {
            self.seen.drop_below(self.next);
            while self.marks.front().is_some_and(|m| m.end <= self.next) {
                self.marks.pop_front();
            }
        }
    }

    fn mark(&mut self, now: u64, mark_ms: u64) {
        let seen_by = (now / mark_ms + 1).saturating_mul(mark_ms);
        match self.marks.back_mut() {
            Some(last) if last.seen_by >= seen_by => last.end = last.end.max(self.end),
            _ => self.marks.push_back(Mark {
                end: self.end,
                seen_by,
            }),
        }
        if self.marks.len() > MAX_MARKS {
            if let Some(oldest) = self.marks.pop_front() {
                if let Some(front) = self.marks.front_mut() {
                    front.end = front.end.max(oldest.end);
                }
            }
        }
    }

    /// Settles every number below `target`: the missing ones become gaps
    /// (those below `start` are before the accounting and are not).
    pub(super) fn settle_to(&mut self, target: u64, totals: &mut Totals) {
        if target <= self.next {
            return;
        }
        let seen_to = target.min(self.end);
        let mut from = self.next;
        while let Some(missing) = self.seen.next_missing(from, seen_to) {
            let to = self.seen.next_seen(missing, seen_to).unwrap_or(seen_to);
            self.count_missing(missing, to, totals);
            from = to;
        }
        if target > self.end {
            self.count_missing(self.end.max(self.next), target, totals);
            self.end = target;
        }
        self.next = target;
        self.seen.drop_below(self.next);
        self.advance();
        self.check_start(totals);
    }

    /// Once the watermark passed the start, the start is final: a producer
    /// that did not start at 0 joined late.
    fn check_start(&mut self, totals: &mut Totals) {
        if !self.joined_late && self.start > 0 && self.next >= self.start {
            self.joined_late = true;
            totals.joined_late += 1;
        }
    }

    /// Settles what has waited a whole window since a later number came.
    pub(super) fn settle_ripe(&mut self, now: u64, window_ms: u64, env: &mut Env<'_>) {
        let words = self.seen.len_words();
        while let Some(mark) = self.marks.front().copied() {
            if mark.seen_by.saturating_add(window_ms) > now {
                break;
            }
            self.marks.pop_front();
            self.settle_to(mark.end, env.totals);
        }
        *env.window_words = (*env.window_words + self.seen.len_words()).saturating_sub(words);
    }

    /// Settles everything pending and frees the window: the producer is
    /// idle (or being evicted).
    pub(super) fn retire(&mut self, env: &mut Env<'_>) {
        let words = self.seen.len_words();
        self.settle_to(self.end, env.totals);
        self.seen = SeenWindow::default();
        self.marks = VecDeque::new();
        self.gaps.shrink_to_fit();
        self.retired = true;
        *env.window_words = env.window_words.saturating_sub(words);
    }

    fn count_missing(&mut self, from: u64, to: u64, totals: &mut Totals) {
        let from = from.max(self.start);
        if from >= to {
            return;
        }
        let n = to - from;
        self.counts.gaps = self.counts.gaps.saturating_add(n);
        totals.gaps = totals.gaps.saturating_add(n);
        match self.gaps.last_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => self.gaps.push((from, to)),
        }
        self.trim_gaps();
    }

    fn trim_gaps(&mut self) {
        while self.gaps.len() > MAX_GAP_RANGES {
            let (_, to) = self.gaps.remove(0);
            self.gap_floor = self.gap_floor.max(to);
        }
    }

    /// Events counted as gaps that have not arrived since.
    pub(super) fn missing(&self) -> u64 {
        self.counts.gaps.saturating_sub(self.counts.late)
    }
}
