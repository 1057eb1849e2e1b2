//! [`TopicCounter`]: events and bytes per topic, for a bounded set of topics.
//!
//! "Which topic is it?" is the first question when a queue grows, but a
//! series per topic is unbounded cardinality: an app that builds topic names
//! from data would flood Prometheus and the stats file. So the counter has a
//! fixed table. The first [`TOPIC_SLOTS`] distinct topics each get a slot
//! for the life of the process and keep it; every later topic is counted in
//! one shared overflow slot, exported as `topic="(other)"` (parentheses are
//! not allowed in Kafka topic names, so it cannot collide with a topic).
//! Slots are never reassigned, so every series is a true counter: it only
//! goes up and never disappears, and Prometheus' `rate()` and
//! `shopify-events top` (which ranks topics by the rate between two
//! snapshots) both work on it. The busiest topics are chosen by the reader,
//! not by the counter.
//!
//! # Cost on the drain's path
//!
//! [`TopicCounter::record`] hashes the topic (a multiply per 8 bytes),
//! probes an open-addressed table twice as large as the slot limit
//! (so at most half full: a probe ends at the topic or at an empty entry
//! within a few steps), compares one string and makes two relaxed atomic
//! adds. No lock, no allocation after a topic's first event. A topic's name
//! is set once ([`OnceLock`]), so readers never see it change.
//! `bench/topics.sh` measures it next to a bare counter add.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Topics counted each on its own; the rest share the `(other)` slot.
pub const TOPIC_SLOTS: usize = 64;
/// The label value of the overflow slot.
pub const OTHER_TOPICS: &str = "(other)";

const TABLE: usize = TOPIC_SLOTS * 2;

/// Events and bytes per topic for at most [`TOPIC_SLOTS`] topics, plus an
/// overflow slot; see the module docs.
#[derive(Debug)]
pub struct TopicCounter {
    table: Box<[Slot]>,
    claimed: AtomicUsize,
    other: Counts,
}

#[derive(Debug, Default)]
struct Slot {
    name: OnceLock<Box<str>>,
    counts: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    events: AtomicU64,
    bytes: AtomicU64,
}

impl Counts {
    fn add(&self, bytes: usize) {
        self.events.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }
}

/// A point-in-time copy of a [`TopicCounter`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicsSnapshot {
    /// One entry per topic with a slot, sorted by topic.
    pub topics: Vec<TopicCount>,
    /// Events of topics that found every slot taken.
    pub other_events: u64,
    /// Bytes of those events.
    pub other_bytes: u64,
}

/// One topic's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCount {
    /// The topic.
    pub topic: String,
    /// Events counted.
    pub events: u64,
    /// Their envelope bytes.
    pub bytes: u64,
}

impl Default for TopicCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl TopicCounter {
    /// A counter with every slot free.
    pub fn new() -> Self {
        Self {
            table: (0..TABLE).map(|_| Slot::default()).collect(),
            claimed: AtomicUsize::new(0),
            other: Counts::default(),
        }
    }

    /// Counts one event of `topic` whose envelope is `bytes` long.
    #[inline]
    pub fn record(&self, topic: &str, bytes: usize) {
        let mut index = hash(topic.as_bytes()) as usize % TABLE;
        // Bounded: at most half the entries are ever claimed, so an empty
        // one is always reached; the bound only guards against a bug.
        for _ in 0..TABLE {
            let slot = &self.table[index];
            match slot.name.get() {
                Some(name) if **name == *topic => return slot.counts.add(bytes),
                Some(_) => index = (index + 1) % TABLE,
                None => {
                    if self.claimed.fetch_add(1, Relaxed) >= TOPIC_SLOTS {
                        self.claimed.fetch_sub(1, Relaxed);
                        break;
                    }
                    if slot.name.set(topic.into()).is_err() {
                        // Another thread named this entry first: look again.
                        self.claimed.fetch_sub(1, Relaxed);
                        continue;
                    }
                    return slot.counts.add(bytes);
                }
            }
        }
        self.other.add(bytes);
    }

    /// Reads every slot; `None` while nothing was ever recorded (a drain
    /// that does not count topics shows as such, not as zero traffic).
    pub fn snapshot(&self) -> Option<TopicsSnapshot> {
        let mut topics: Vec<TopicCount> = Vec::new();
        for slot in self.table.iter() {
            if let Some(name) = slot.name.get() {
                topics.push(TopicCount {
                    topic: name.to_string(),
                    events: slot.counts.events.load(Relaxed),
                    bytes: slot.counts.bytes.load(Relaxed),
                });
            }
        }
        let other_events = self.other.events.load(Relaxed);
        if topics.is_empty() && other_events == 0 {
            return None;
        }
        // Table order is hash order: sort by name so that the output is
        // stable between snapshots.
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        Some(TopicsSnapshot {
            topics,
            other_events,
            other_bytes: self.other.bytes.load(Relaxed),
        })
    }
}

impl TopicsSnapshot {
    /// Events over every topic, the overflow slot included.
    pub fn total_events(&self) -> u64 {
        self.topics.iter().map(|t| t.events).sum::<u64>() + self.other_events
    }

    /// Bytes over every topic, the overflow slot included.
    pub fn total_bytes(&self) -> u64 {
        self.topics.iter().map(|t| t.bytes).sum::<u64>() + self.other_bytes
    }

    /// Every slot as (topic label, events, bytes), the overflow slot last
    /// (labelled [`OTHER_TOPICS`]) when it counted anything.
    pub fn series(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        let other =
            (self.other_events > 0).then_some((OTHER_TOPICS, self.other_events, self.other_bytes));
        self.topics
            .iter()
            .map(|t| (t.topic.as_str(), t.events, t.bytes))
            .chain(other)
    }
}

/// A multiply-rotate hash over 8-byte words (the Fx hash of rustc): four
/// steps for a typical topic name, and spread enough for a table of 128
/// entries. A byte-at-a-time hash (FNV) would chain a dependent multiply
/// per byte: 25 of them for a typical topic instead of 4.
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    let mut h = bytes.len() as u64;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = step(h, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(word));
    }
    // A multiply mixes only upwards and the index takes the low bits: one
    // more round moves the well-mixed high bits down.
    h = (h ^ (h >> 29)).wrapping_mul(K);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_recorded_has_no_snapshot() {
        assert_eq!(TopicCounter::new().snapshot(), None);
    }

    #[test]
    fn each_topic_counts_its_events_and_bytes() {
        let c = TopicCounter::new();
        c.record("orders", 100);
        c.record("users", 10);
        c.record("orders", 50);
        let s = c.snapshot().expect("recorded");
        let by_name: Vec<_> = s.series().collect();
        assert_eq!(by_name, vec![("orders", 2, 150), ("users", 1, 10)]);
        assert_eq!((s.total_events(), s.total_bytes()), (3, 160));
    }

    #[test]
    fn topics_past_the_slot_limit_share_the_other_slot_and_earlier_ones_keep_theirs() {
        let c = TopicCounter::new();
        for i in 0..TOPIC_SLOTS + 10 {
            c.record(&format!("t{i}"), 1);
        }
        c.record("t0", 1);
        c.record("late", 7);
        let s = c.snapshot().expect("recorded");
        assert_eq!(s.topics.len(), TOPIC_SLOTS);
        assert_eq!((s.other_events, s.other_bytes), (11, 17));
        let t0 = s.topics.iter().find(|t| t.topic == "t0").expect("t0 kept");
        assert_eq!(t0.events, 2);
        assert_eq!(s.series().last(), Some((OTHER_TOPICS, 11, 17)));
        assert_eq!(s.total_events(), TOPIC_SLOTS as u64 + 12);
    }

    #[test]
    fn topics_that_differ_in_any_byte_spread_over_the_table() {
        let mut used = std::collections::HashSet::new();
        for i in 0..64 {
            used.insert(hash(format!("shop.orders.created.v{i:04}").as_bytes()) as usize % TABLE);
        }
        // 64 keys into 128 entries: a uniform hash leaves about 50 distinct.
        assert!(used.len() >= 40, "only {} distinct entries", used.len());
    }

    #[test]
    fn threads_recording_the_same_new_topics_get_one_slot_each() {
        let c = std::sync::Arc::new(TopicCounter::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        c.record(&format!("topic-{}", i % 10), 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let s = c.snapshot().expect("recorded");
        assert_eq!(s.topics.len(), 10);
        assert!(s.topics.iter().all(|t| t.events == 400), "{s:?}");
        assert_eq!(s.other_events, 0);
    }
}
