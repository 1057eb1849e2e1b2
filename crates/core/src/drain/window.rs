//! The events out at the sink or finished behind a slower one, in the order
//! they were admitted, with what the sink said about each, and where each
//! lies: in the journal, or in place in a spool segment.
//!
//! Tokens are sequence numbers, so finding an event is an index into a
//! deque: O(1) per send and per outcome, whatever order outcomes arrive in
//! (Kafka acknowledges partitions independently).
//!
//! Each place is acknowledged in its own order, so the window keeps a
//! *lane* per place: the journal's records (whose checkpoint can only move
//! past a contiguous run of finished records) and each spool segment's
//! (whose `acked` word likewise). A lane moves as soon as its own prefix is
//! finished: a slow queue event does not hold back a spool segment's
//! acknowledgement, nor the reverse. The deque itself drops finished events
//! only from its front, so a slow event holds memory behind it, bounded by
//! the drain's window (`max_in_flight` and a few windows' worth of finished
//! events).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use super::journal::RecordRef;
use crate::spool::{self, SegmentId};

/// Which spool reader a spool record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    /// The spool directory the emitting processes write.
    Spool,
    /// The drain's own saved spool (the queue saved at its last stop).
    Saved,
}

/// Where an admitted event lies until it is acknowledged.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A journal record (received from the queue).
    Journal(RecordRef),
    /// A record in a spool segment, read in place.
    Spool(Origin, spool::RecordRef),
}

#[derive(Debug)]
struct Slot {
    place: Place,
    time_us: i64,
    done: bool,
}

/// What the finished prefixes allow to acknowledge.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Acks {
    /// The journal position the checkpoint may move to.
    pub journal: Option<u64>,
    /// Segments whose `acked` may move, and where to.
    pub spool: Vec<(Origin, SegmentId, u64)>,
}

impl Acks {
    /// Whether there is nothing to acknowledge.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.journal.is_none() && self.spool.is_empty()
    }
}

/// A lane: the journal, or one spool segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Journal,
    Segment(Origin, SegmentId),
}

impl Place {
    fn lane(&self) -> Lane {
        match self {
            Place::Journal(_) => Lane::Journal,
            Place::Spool(origin, record) => Lane::Segment(*origin, record.segment()),
        }
    }
}

/// Hashes a [`Lane`] with a multiply and a rotate per word: lanes are few
/// and their fields already spread (producer ids are random), so SipHash's
/// DoS resistance buys nothing here and cost a few percent of the drain's
/// time per event (two lookups each).
#[derive(Debug, Default)]
struct LaneHasher(u64);

impl Hasher for LaneHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(23);
    }

    fn write_isize(&mut self, word: isize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Default)]
pub(crate) struct Window {
    slots: VecDeque<Slot>,
    /// Token of `slots[0]`.
    first: u64,
    /// Events admitted and not yet finished.
    open: usize,
    /// Tokens of each lane's unacknowledged events, in order.
    lanes: HashMap<Lane, VecDeque<u64>, BuildHasherDefault<LaneHasher>>,
    /// Lanes whose front event finished since the last `advance`.
    touched: Vec<Lane>,
}

impl Window {
    /// Admits an event at `place`; returns its token.
    pub(crate) fn push(&mut self, place: Place, time_us: i64) -> u64 {
        let token = self.first + self.slots.len() as u64;
        self.lanes.entry(place.lane()).or_default().push_back(token);
        self.slots.push_back(Slot {
            place,
            time_us,
            done: false,
        });
        self.open += 1;
        token
    }

    fn slot(&self, token: u64) -> Option<&Slot> {
        let index = usize::try_from(token.checked_sub(self.first)?).ok()?;
        self.slots.get(index)
    }

    /// Where an open event lies.
    pub(crate) fn place(&self, token: u64) -> Option<Place> {
        self.slot(token)
            .filter(|s| !s.done)
            .map(|s| s.place.clone())
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
        let lane = slot.place.lane();
        let time_us = slot.time_us;
        if self.lanes.get(&lane).and_then(VecDeque::front) == Some(&token) {
            self.touched.push(lane);
        }
        Some(time_us)
    }

    /// Moves every lane whose front finished past its finished prefix, and
    /// drops the finished events at the front of the window. `acks` gets
    /// where each moved lane may be acknowledged up to (journal positions
    /// are virtual and only grow, also across the journal's wraps; spool
    /// offsets are the segment's data offsets).
    pub(crate) fn advance(&mut self, acks: &mut Acks) {
        acks.journal = None;
        acks.spool.clear();
        let mut touched = std::mem::take(&mut self.touched);
        for lane in touched.drain(..) {
            let Some(tokens) = self.lanes.get_mut(&lane) else {
                continue;
            };
            let mut end = None;
            while let Some(&token) = tokens.front() {
                let Some(slot) = token
                    .checked_sub(self.first)
                    .and_then(|i| self.slots.get(usize::try_from(i).ok()?))
                else {
                    break;
                };
                if !slot.done {
                    break;
                }
                end = Some(match &slot.place {
                    Place::Journal(record) => record.end,
                    Place::Spool(_, record) => record.end(),
                });
                tokens.pop_front();
            }
            if tokens.is_empty() {
                self.lanes.remove(&lane);
            }
            match (lane, end) {
                (Lane::Journal, Some(end)) => acks.journal = Some(end),
                (Lane::Segment(origin, segment), Some(end)) => {
                    acks.spool.push((origin, segment, end));
                }
                (_, None) => {}
            }
        }
        self.touched = touched;
        // A finished event at the front is its lane's first too, so its lane
        // moved past it above.
        while self.slots.front().is_some_and(|s| s.done) {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// Events admitted and not yet finished.
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    /// Events held, finished or not (bounded by the drain's window).
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

    fn journal(offset: u64) -> Place {
        Place::Journal(RecordRef {
            offset,
            end: offset + 16,
            len: 8,
        })
    }

    fn advance(window: &mut Window) -> Acks {
        let mut acks = Acks::default();
        window.advance(&mut acks);
        acks
    }

    #[test]
    fn checkpoint_moves_only_past_a_finished_prefix() {
        let mut window = Window::default();
        let a = window.push(journal(0), 1);
        let b = window.push(journal(16), 2);
        let c = window.push(journal(32), 3);
        assert_eq!(window.finish(b), Some(2));
        assert!(advance(&mut window).is_empty());
        assert_eq!(window.oldest_time_us(), Some(1));
        assert_eq!(window.finish(a), Some(1));
        assert_eq!(advance(&mut window).journal, Some(32));
        assert_eq!(window.len(), 1);
        assert_eq!(window.finish(c), Some(3));
        assert_eq!(window.finish(c), None, "finishing twice is ignored");
        assert_eq!(advance(&mut window).journal, Some(48));
        assert!(window.is_empty());
        assert_eq!(window.open(), 0);
    }

    fn spool(origin: Origin, index: u64, offset: u64) -> Place {
        let segment = SegmentId { producer: 7, index };
        Place::Spool(origin, spool::RecordRef::made_up(segment, offset, 48))
    }

    #[test]
    fn each_place_is_acknowledged_past_its_own_finished_prefix() {
        let mut window = Window::default();
        let slow = window.push(journal(0), 1);
        let s0 = window.push(spool(Origin::Spool, 0, 0), 2);
        let s1 = window.push(spool(Origin::Spool, 0, 56), 3);
        let t0 = window.push(spool(Origin::Spool, 1, 0), 4);
        let saved = window.push(spool(Origin::Saved, 0, 0), 5);
        let quick = window.push(journal(16), 6);
        for token in [s1, t0, saved, quick] {
            window.finish(token);
        }
        let acks = advance(&mut window);
        assert_eq!(acks.journal, None, "the slow queue event holds the journal");
        let segment = |index| SegmentId { producer: 7, index };
        assert_eq!(
            acks.spool,
            vec![
                (Origin::Spool, segment(1), 56),
                (Origin::Saved, segment(0), 56)
            ],
            "s0 holds segment 0; segment 1 and the saved one move"
        );
        window.finish(s0);
        let acks = advance(&mut window);
        assert_eq!(acks.spool, vec![(Origin::Spool, segment(0), 112)]);
        assert_eq!(window.len(), 6, "the slow event holds the window's memory");
        window.finish(slow);
        assert_eq!(advance(&mut window).journal, Some(32));
        assert!(window.is_empty());
    }

    #[test]
    fn unknown_tokens_are_ignored() {
        let mut window = Window::default();
        let a = window.push(journal(0), 1);
        window.finish(a);
        advance(&mut window);
        assert_eq!(window.finish(a), None);
        assert_eq!(window.finish(99), None);
        assert!(window.place(a).is_none());
    }
}
