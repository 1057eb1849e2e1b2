//! Delivery latency quantiles from two readings of the drain's histogram.
//!
//! The histogram counts every delivery since the drain started, so the
//! quantiles of the last few seconds come from the difference of two
//! readings, bucket by bucket. Within a bucket the value is interpolated
//! linearly, as Prometheus' `histogram_quantile` does; a quantile that falls
//! past the last bound is reported as that bound (the histogram cannot say
//! more). With buckets ×2–×5 apart the result is an estimate of that
//! precision: good enough to tell 5 ms from 500 ms, not 5 from 6.

use crate::metrics::HistogramSnapshot;

/// The `q` quantile (0–1) of the observations made between `older` and
/// `newer`, in seconds; of all of `newer`'s when `older` is `None` or has
/// other bounds. `None` when no observation was made in between.
pub fn quantile(
    newer: &HistogramSnapshot,
    older: Option<&HistogramSnapshot>,
    q: f64,
) -> Option<f64> {
    let older = older.filter(|o| {
        o.buckets.len() == newer.buckets.len()
            && o.buckets
                .iter()
                .zip(&newer.buckets)
                .all(|(a, b)| a.le == b.le)
            && o.count <= newer.count
    });
    let base = |i: usize| older.map_or(0, |o| o.buckets[i].count);
    let total = newer.count - older.map_or(0, |o| o.count);
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for (i, bucket) in newer.buckets.iter().enumerate() {
        let cumulative = bucket.count.saturating_sub(base(i));
        if cumulative as f64 >= rank && cumulative > below {
            let share = (rank - below as f64) / (cumulative - below) as f64;
            return Some(lower + (bucket.le - lower) * share.clamp(0.0, 1.0));
        }
        (lower, below) = (bucket.le, cumulative);
    }
    // Past the last finite bound.
    newer.buckets.last().map(|b| b.le)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Histogram;

    fn observed(values: &[f64]) -> Histogram {
        let h = Histogram::new(&[0.01, 0.1, 1.0]);
        for &v in values {
            h.observe(v);
        }
        h
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_they_fall_in() {
        // 50 in (0, 0.01], 49 in (0.01, 0.1], 1 in (0.1, 1].
        let mut values = vec![0.005; 50];
        values.extend([0.05; 49]);
        values.push(0.5);
        let s = observed(&values).snapshot();
        assert_eq!(quantile(&s, None, 0.5), Some(0.01));
        let p99 = quantile(&s, None, 0.99).expect("p99");
        assert!((p99 - 0.1).abs() < 1e-9, "{p99}");
        let p25 = quantile(&s, None, 0.25).expect("p25");
        assert!((p25 - 0.005).abs() < 1e-9, "{p25}");
    }

    #[test]
    fn only_the_observations_between_two_readings_count() {
        let h = observed(&[0.5; 100]);
        let before = h.snapshot();
        for _ in 0..10 {
            h.observe(0.005);
        }
        let after = h.snapshot();
        let p99 = quantile(&after, Some(&before), 0.99).expect("p99");
        assert!(p99 <= 0.01, "old slow deliveries leaked in: {p99}");
        assert_eq!(quantile(&before, Some(&before), 0.5), None);
    }

    #[test]
    fn a_quantile_past_the_last_bound_is_that_bound() {
        let s = observed(&[5.0, 7.0]).snapshot();
        assert_eq!(quantile(&s, None, 0.99), Some(1.0));
    }
}
