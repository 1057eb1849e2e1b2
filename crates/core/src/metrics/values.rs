//! Single-value metrics: [`Counter`], [`Gauge`] and [`GaugeF64`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// A monotonic count of events (Prometheus `counter`).
///
/// Only ever goes up; a restart of the drain resets it to zero, which
/// Prometheus' `rate()` already understands.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Adds `n` (a whole batch at once costs the same as one event).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down (Prometheus `gauge`), such as events in
/// flight or bytes in the queue.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero.
    pub const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    /// Replaces the value (for values sampled elsewhere, e.g. `msgctl`).
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    /// Adds `n` (for values the drain tracks itself, e.g. in flight).
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// Subtracts `n`.
    #[inline]
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// A gauge holding an `f64` (stored as its bits, since there is no atomic
/// float), for values with a fraction such as an age in seconds.
#[derive(Debug, Default)]
pub struct GaugeF64(AtomicU64);

impl GaugeF64 {
    /// A gauge at `0.0` (whose bit pattern is all zeroes).
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Replaces the value. Only `set` is offered: an atomic float add would
    /// need a compare-and-swap loop and no metric of the drain needs it.
    #[inline]
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_start_at_zero_and_follow_updates() {
        let c = Counter::new();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);

        let g = Gauge::new();
        g.add(5);
        g.sub(7);
        assert_eq!(g.get(), -2);
        g.set(10);
        assert_eq!(g.get(), 10);

        let f = GaugeF64::new();
        assert_eq!(f.get(), 0.0);
        f.set(1.25);
        assert_eq!(f.get(), 1.25);
    }
}
