//! [`Tracker`]: every producer's accounting, the counters, and the bounds
//! on memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::producer::{Env, Producer};
use super::totals::{AccountingSnapshot, ProducerDetail, Totals};
use super::{Admission, Limits, TrackerConfig};
use crate::envelope::Stamp;

/// The drain's loss accounting: fed each admitted event's stamp once, it
/// counts gaps, late arrivals and duplicates per producer. See the
/// [module docs](super) for the rules.
#[derive(Debug)]
pub struct Tracker {
    pub(super) limits: Limits,
    pub(super) producers: HashMap<u64, Producer, Keyed>,
    pub(super) totals: Totals,
    /// Unix ms when this accounting began.
    pub(super) since: u64,
    /// Words in every producer's window.
    pub(super) window_words: usize,
    /// Changed since [`Tracker::saved`].
    dirty: bool,
}

impl Tracker {
    /// An empty tracker: accounting begins `now` (Unix ms).
    pub fn new(config: &TrackerConfig, now: u64) -> Tracker {
        Tracker::with_parts(Limits::from(config), Totals::default(), now)
    }

    pub(super) fn with_parts(limits: Limits, totals: Totals, since: u64) -> Tracker {
        Tracker {
            limits,
            producers: HashMap::with_hasher(Keyed::new()),
            totals,
            since,
            window_words: 0,
            dirty: true,
        }
    }

    /// Admits one event with its stamp (`None`: version 1 or unstamped),
    /// at `now` (Unix ms). Call it once per event the drain admits, before
    /// delivering it; not again for retries.
    #[inline]
    pub fn admit(&mut self, stamp: Option<Stamp>, now: u64) -> Admission {
        self.dirty = true;
        let Some(Stamp { producer, seq }) = stamp else {
            self.totals.unaccounted += 1;
            return Admission::Unaccounted;
        };
        let mut env = Env {
            totals: &mut self.totals,
            limits: &self.limits,
            window_words: &mut self.window_words,
        };
        if let Some(p) = self.producers.get_mut(&producer) {
            return p.admit(seq, now, &mut env);
        }
        if self.producers.len() >= self.limits.max_producers {
            self.evict();
        }
        let mut env = Env {
            totals: &mut self.totals,
            limits: &self.limits,
            window_words: &mut self.window_words,
        };
        let (p, admission) = Producer::first(seq, now, &mut env);
        self.producers.insert(producer, p);
        admission
    }

    /// Counts missing numbers that waited a whole window, retires idle
    /// producers and forgets long silent ones. Call it about once a second.
    pub fn tick(&mut self, now: u64) {
        let limits = self.limits;
        let mut env = Env {
            totals: &mut self.totals,
            limits: &self.limits,
            window_words: &mut self.window_words,
        };
        let mut forgotten = 0;
        self.producers.retain(|_, p| {
            if !p.marks.is_empty() {
                p.settle_ripe(now, limits.window_ms, &mut env);
            }
            let idle = now.saturating_sub(p.last_seen);
            if idle >= limits.forget_ms {
                p.retire(&mut env);
                forgotten += 1;
                return false;
            }
            if !p.retired && idle >= limits.retire_ms {
                p.retire(&mut env);
            }
            true
        });
        if forgotten > 0 {
            self.totals.forgotten += forgotten;
        }
        self.dirty = true;
    }

    /// Makes room for a new producer: forgets the longest silent 1/64th of
    /// the maximum (at least one), settling what they had pending.
    #[cold]
    fn evict(&mut self) {
        let count = (self.limits.max_producers / 64).clamp(1, self.producers.len());
        let mut by_age: Vec<(u64, u64)> = self
            .producers
            .iter()
            .map(|(&id, p)| (p.last_seen, id))
            .collect();
        by_age.select_nth_unstable(count - 1);
        let mut env = Env {
            totals: &mut self.totals,
            limits: &self.limits,
            window_words: &mut self.window_words,
        };
        for &(_, id) in &by_age[..count] {
            if let Some(mut p) = self.producers.remove(&id) {
                p.retire(&mut env);
                env.totals.evicted += 1;
            }
        }
    }

    /// The counters.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Producers held.
    pub fn producers(&self) -> usize {
        self.producers.len()
    }

    /// Bytes the reordering windows take together.
    pub fn window_bytes(&self) -> usize {
        self.window_words * 8
    }

    /// When this accounting began (Unix ms).
    pub fn since(&self) -> u64 {
        self.since
    }

    /// Whether anything changed since the state was last saved.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Records that the state as it is now was saved.
    pub fn saved(&mut self) {
        self.dirty = false;
    }

    /// Counts a damaged or unreadable state file.
    pub(super) fn count_damage(&mut self) {
        self.totals.state_damaged += 1;
    }

    /// One producer's counters: (missing, duplicates, next expected), if held.
    pub fn producer(&self, id: u64) -> Option<(u64, u64, u64)> {
        self.producers
            .get(&id)
            .map(|p| (p.missing(), p.counts.duplicates, p.next))
    }

    /// The accounting for `stats` and `top`, with the `worst` producers
    /// (most missing, then most duplicates; only those with either).
    pub fn snapshot(&self, worst: usize) -> AccountingSnapshot {
        let mut ranked: Vec<(&u64, &Producer)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.missing() > 0 || p.counts.duplicates > 0)
            .collect();
        ranked.sort_by(|a, b| {
            (b.1.missing(), b.1.counts.duplicates, a.0).cmp(&(
                a.1.missing(),
                a.1.counts.duplicates,
                b.0,
            ))
        });
        ranked.truncate(worst);
        AccountingSnapshot {
            totals: self.totals,
            missing: self.totals.missing(),
            producers: self.producers.len() as u64,
            active_producers: self.producers.values().filter(|p| !p.retired).count() as u64,
            max_producers: self.limits.max_producers as u64,
            since: self.since as f64 / 1000.0,
            worst: ranked
                .into_iter()
                .map(|(id, p)| ProducerDetail {
                    producer: format!("{id:016x}"),
                    missing: p.missing(),
                    gaps: p.counts.gaps,
                    late: p.counts.late,
                    duplicates: p.counts.duplicates,
                    next: p.next,
                    last_seen: p.last_seen as f64 / 1000.0,
                })
                .collect(),
        }
    }
}

/// Hashes a producer id (already 64 random bits) with a per-tracker key, so
/// that ids chosen to collide cannot slow the map down.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keyed(u64);

impl Keyed {
    fn new() -> Keyed {
        Keyed(std::collections::hash_map::RandomState::new().hash_one(0x5345_4143_u64))
    }
}

impl BuildHasher for Keyed {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0)
    }
}

/// The hasher of [`Keyed`]: splitmix64's finaliser over the key and the id.
#[derive(Debug)]
pub(super) struct KeyedHasher(u64);

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        crate::process::mix(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = crate::process::mix(self.0 ^ id);
    }
}
