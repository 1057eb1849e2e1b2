//! A lock-free Prometheus histogram of durations in seconds.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the delivery-latency buckets: 1 ms to an hour,
/// roughly ×5/×2 apart, so both a healthy drain (milliseconds) and one
/// catching up on a backlog after a Kafka outage (minutes) land in buckets
/// that tell them apart.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A histogram of durations in seconds (Prometheus `histogram`).
///
/// Each observation costs a binary search over the bounds and two relaxed
/// atomic adds: one on its own (non-cumulative) bucket and one on the sum.
/// There is no separate count: the count is the total of the buckets, so a
/// scrape racing an observation still shows `+Inf` equal to `_count`. The sum
/// is kept in whole microseconds so it can be a plain `fetch_add` rather than
/// a compare-and-swap loop on float bits; a microsecond is far below what
/// delivery latency is measured to, and `u64` microseconds last 584 000 years.
#[derive(Debug)]
pub struct Histogram {
    /// Strictly increasing, finite upper bounds; `+Inf` is implicit.
    bounds: Box<[f64]>,
    /// One per bound plus the `+Inf` overflow bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`], with cumulative buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// One entry per finite bound, each counting observations `<= le`.
    pub buckets: Vec<BucketCount>,
    /// Every observation (the implicit `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum: f64,
}

/// One cumulative bucket of a [`HistogramSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BucketCount {
    /// Upper bound, in seconds.
    pub le: f64,
    /// Observations less than or equal to `le`.
    pub count: u64,
}

impl Histogram {
    /// A histogram with the given upper bounds, in seconds.
    ///
    /// Bounds that are not finite or not greater than the one before are
    /// skipped rather than refused: the bounds are constants chosen by the
    /// programmer, and a skipped bucket is better than a drain that panics.
    pub fn new(bounds: &[f64]) -> Self {
        let mut kept: Vec<f64> = Vec::with_capacity(bounds.len());
        for &b in bounds {
            if b.is_finite() && kept.last().map_or(true, |&last| b > last) {
                kept.push(b);
            }
        }
        let buckets = (0..=kept.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds: kept.into_boxed_slice(),
            buckets,
            sum_micros: AtomicU64::new(0),
        }
    }

    /// A histogram with [`LATENCY_BUCKETS`].
    pub fn latency() -> Self {
        Self::new(&LATENCY_BUCKETS)
    }

    /// Records one duration. Negative values and NaN count as zero: they come
    /// from a wall clock stepped backwards between emit and ack, and dropping
    /// them would hide that the event was delivered.
    #[inline]
    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds > 0.0 { seconds } else { 0.0 };
        let index = self.bounds.partition_point(|&b| b < seconds);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Relaxed);
        }
        // `as` saturates, so an absurd duration cannot wrap the sum by itself.
        self.sum_micros
            .fetch_add((seconds * 1e6).round() as u64, Relaxed);
    }

    /// The finite upper bounds, in seconds.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Reads every bucket and the sum, accumulating the buckets.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (&le, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            running += bucket.load(Relaxed);
            buckets.push(BucketCount { le, count: running });
        }
        let overflow = self.buckets.last().map_or(0, |b| b.load(Relaxed));
        HistogramSnapshot {
            buckets,
            count: running + overflow,
            sum: self.sum_micros.load(Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_on_a_bound_counts_in_that_bucket() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.1);
        h.observe(0.5);
        h.observe(2.0);
        let s = h.snapshot();
        assert_eq!(s.buckets[0], BucketCount { le: 0.1, count: 1 });
        assert_eq!(s.buckets[1], BucketCount { le: 1.0, count: 2 });
        assert_eq!(s.count, 3);
        assert!((s.sum - 2.6).abs() < 1e-9);
    }

    #[test]
    fn negative_and_nan_observations_count_as_zero() {
        let h = Histogram::new(&[0.1]);
        h.observe(-3.0);
        h.observe(f64::NAN);
        let s = h.snapshot();
        assert_eq!((s.buckets[0].count, s.count, s.sum), (2, 2, 0.0));
    }

    #[test]
    fn unordered_or_infinite_bounds_are_skipped() {
        let h = Histogram::new(&[1.0, 0.5, 1.0, f64::INFINITY, 2.0, f64::NAN]);
        assert_eq!(h.bounds(), &[1.0, 2.0]);
    }
}
