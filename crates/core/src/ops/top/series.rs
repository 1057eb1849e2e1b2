//! [`Series`]: the readings of the last few seconds, and rates over them.
//!
//! A rate is the change of a counter between the oldest and the newest
//! reading kept, over the time between them, where "time" is the clock of
//! whoever took the reading: `top`'s own for the queue, the writer's
//! `updated_at` for a snapshot. A drain writes its snapshot once a second
//! at its own phase, so two of `top`'s refreshes may see the same snapshot
//! and the next one two new seconds: rates over the writer's timestamps are
//! exact where rates over `top`'s refreshes would jump between 0 and double.

use std::collections::VecDeque;

/// One reading, taken at `at` (Unix seconds, on the clock of its source).
pub trait Point {
    /// When it was taken.
    fn at(&self) -> f64;
}

/// The readings of the last `window` seconds, plus the newest one older
/// than that, so the span covered is at least `window` once it is that old.
#[derive(Debug, Clone)]
pub struct Series<P> {
    window: f64,
    points: VecDeque<P>,
}

impl<P: Point> Series<P> {
    /// An empty series keeping `window` seconds.
    pub fn new(window: f64) -> Self {
        Series {
            window,
            points: VecDeque::new(),
        }
    }

    /// Adds a reading. One not newer than the newest kept is ignored (the
    /// same snapshot read twice).
    pub fn push(&mut self, point: P) {
        if self
            .newest()
            .is_some_and(|newest| point.at() <= newest.at())
        {
            return;
        }
        let cutoff = point.at() - self.window;
        self.points.push_back(point);
        while self.points.len() > 2 && self.points[1].at() <= cutoff {
            self.points.pop_front();
        }
    }

    /// Forgets every reading (its source restarted: counters began again).
    pub fn clear(&mut self) {
        self.points.clear();
    }

    /// The newest reading.
    pub fn newest(&self) -> Option<&P> {
        self.points.back()
    }

    /// The oldest reading kept.
    pub fn oldest(&self) -> Option<&P> {
        self.points.front()
    }

    /// Seconds between the oldest and the newest reading.
    pub fn span(&self) -> f64 {
        match (self.oldest(), self.newest()) {
            (Some(old), Some(new)) => new.at() - old.at(),
            _ => 0.0,
        }
    }

    /// Change per second of `value` from the oldest to the newest reading;
    /// `None` with fewer than two readings.
    pub fn rate(&self, value: impl Fn(&P) -> f64) -> Option<f64> {
        let (old, new) = (self.oldest()?, self.newest()?);
        let span = new.at() - old.at();
        (span > 0.0).then(|| (value(new) - value(old)) / span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct P(f64, f64);

    impl Point for P {
        fn at(&self) -> f64 {
            self.0
        }
    }

    #[test]
    fn a_rate_needs_two_readings_and_spans_the_window() {
        let mut s = Series::new(5.0);
        s.push(P(100.0, 0.0));
        assert_eq!(s.rate(|p| p.1), None);
        for t in 1..=10 {
            s.push(P(100.0 + f64::from(t), f64::from(t) * 20.0));
        }
        // Kept: 105..=110, 5 s of readings at 20 per second.
        assert_eq!(s.oldest(), Some(&P(105.0, 100.0)));
        assert_eq!(s.span(), 5.0);
        assert_eq!(s.rate(|p| p.1), Some(20.0));
    }

    #[test]
    fn a_reading_not_newer_than_the_last_is_ignored() {
        let mut s = Series::new(5.0);
        s.push(P(1.0, 1.0));
        s.push(P(2.0, 3.0));
        s.push(P(2.0, 99.0));
        s.push(P(1.5, 99.0));
        assert_eq!(s.rate(|p| p.1), Some(2.0));
    }

    #[test]
    fn after_a_gap_longer_than_the_window_the_last_two_readings_remain() {
        let mut s = Series::new(5.0);
        s.push(P(0.0, 0.0));
        s.push(P(1.0, 10.0));
        s.push(P(60.0, 70.0));
        assert_eq!(s.oldest(), Some(&P(1.0, 10.0)));
        assert_eq!(s.rate(|p| p.1), Some(60.0 / 59.0));
    }
}
