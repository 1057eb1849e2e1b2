//! A log line budget: at most so many lines of one kind per minute, then a
//! count of what was left out, so a flood of the same trouble (a stream of
//! malformed events, a damaged spool) cannot drown the log or the disk.

use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_secs(60);

/// Lines of one kind allowed per minute.
#[derive(Debug)]
pub(crate) struct LogLimit {
    per_minute: u32,
    started: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl LogLimit {
    /// A budget of `per_minute` lines a minute.
    pub(crate) const fn new(per_minute: u32) -> LogLimit {
        LogLimit {
            per_minute,
            started: None,
            lines: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be written now. When a new minute starts after
    /// lines were left out, `on_resume` is called first with their number,
    /// to say so in one line.
    pub(crate) fn allow(&mut self, now: Instant, on_resume: impl FnOnce(u64)) -> bool {
        let expired = match self.started {
            Some(started) => now.duration_since(started) >= PERIOD,
            None => true,
        };
        if expired {
            if self.suppressed > 0 {
                on_resume(self.suppressed);
            }
            self.started = Some(now);
            self.lines = 0;
            self.suppressed = 0;
        }
        if self.lines < self.per_minute {
            self.lines += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Lines left out in the current minute.
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_budget_then_counts_and_reports_the_rest_next_minute() {
        let mut limit = LogLimit::new(2);
        let start = Instant::now();
        let mut resumed = Vec::new();
        let allowed: Vec<bool> = (0..5)
            .map(|_| limit.allow(start, |n| resumed.push(n)))
            .collect();
        assert_eq!(allowed, [true, true, false, false, false]);
        assert_eq!(limit.suppressed(), 3);
        assert!(limit.allow(start + PERIOD, |n| resumed.push(n)));
        assert_eq!(resumed, [3]);
        assert_eq!(limit.suppressed(), 0);
    }
}
