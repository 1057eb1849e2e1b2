//! The events between the journal's checkpoint and its write position, in
//! journal order, with what the sink said about each.
//!
//! Tokens are sequence numbers, so finding an event is an index into a
//! deque: O(1) per send and per outcome, whatever order outcomes arrive in
//! (Kafka acknowledges partitions independently). The checkpoint can only
//! move past a contiguous run of finished events at the front.

use std::collections::VecDeque;

use super::journal::RecordRef;

#[derive(Debug)]
struct Slot {
    record: RecordRef,
    time_us: i64,
    done: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Window {
    slots: VecDeque<Slot>,
    /// Token of `slots[0]`.
    first: u64,
    /// Events admitted and not yet finished.
    open: usize,
}

impl Window {
    /// Admits a journal record; returns its token.
    pub(crate) fn push(&mut self, record: RecordRef, time_us: i64) -> u64 {
        self.slots.push_back(Slot {
            record,
            time_us,
            done: false,
        });
        self.open += 1;
        self.first + self.slots.len() as u64 - 1
    }

    fn slot(&self, token: u64) -> Option<&Slot> {
        let index = usize::try_from(token.checked_sub(self.first)?).ok()?;
        self.slots.get(index)
    }

    /// The journal record of an open event.
    pub(crate) fn record(&self, token: u64) -> Option<RecordRef> {
        self.slot(token)
            .filter(|s| !s.done)
            .map(|s| s.record.clone())
    }

    /// Marks an event finished (delivered or dead-lettered); returns its emit
    /// time, or None if the token is unknown or already finished.
    pub(crate) fn finish(&mut self, token: u64) -> Option<i64> {
        let index = usize::try_from(token.checked_sub(self.first)?).ok()?;
        let slot = self.slots.get_mut(index)?;
        if slot.done {
            return None;
        }
        slot.done = true;
        self.open -= 1;
        Some(slot.time_us)
    }

    /// Drops the finished events at the front; returns the journal position
    /// the checkpoint may move to, if it moved (positions are virtual and
    /// only grow, also across the journal's wraps).
    pub(crate) fn advance(&mut self) -> Option<u64> {
        let mut checkpoint = None;
        while self.slots.front().is_some_and(|s| s.done) {
            if let Some(slot) = self.slots.pop_front() {
                checkpoint = Some(slot.record.end);
                self.first += 1;
            }
        }
        checkpoint
    }

    /// Events admitted and not yet finished.
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    /// Events held, finished or not (bounded by `max_in_flight`).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Emit time of the oldest unfinished event.
    pub(crate) fn oldest_time_us(&self) -> Option<i64> {
        self.slots.iter().find(|s| !s.done).map(|s| s.time_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64) -> RecordRef {
        RecordRef {
            offset,
            end: offset + 16,
            len: 8,
        }
    }

    #[test]
    fn checkpoint_moves_only_past_a_finished_prefix() {
        let mut window = Window::default();
        let a = window.push(record(0), 1);
        let b = window.push(record(16), 2);
        let c = window.push(record(32), 3);
        assert_eq!(window.finish(b), Some(2));
        assert_eq!(window.advance(), None);
        assert_eq!(window.oldest_time_us(), Some(1));
        assert_eq!(window.finish(a), Some(1));
        assert_eq!(window.advance(), Some(32));
        assert_eq!(window.len(), 1);
        assert_eq!(window.finish(c), Some(3));
        assert_eq!(window.finish(c), None, "finishing twice is ignored");
        assert_eq!(window.advance(), Some(48));
        assert!(window.is_empty());
        assert_eq!(window.open(), 0);
    }

    #[test]
    fn unknown_tokens_are_ignored() {
        let mut window = Window::default();
        let a = window.push(record(0), 1);
        window.finish(a);
        window.advance();
        assert_eq!(window.finish(a), None);
        assert_eq!(window.finish(99), None);
        assert!(window.record(a).is_none());
    }
}
