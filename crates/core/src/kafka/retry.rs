//! When an event a sink gave back is sent again: the one retry policy of
//! the drain and the direct transport.
//!
//! A sink gives an event back in two ways, and they wait differently:
//!
//! - **refused** for lack of room ([`Rejected::Full`](crate::sink::Rejected):
//!   librdkafka's local queue is full, stdout blocks): due at once, so it
//!   goes again right after the next poll, which is what makes room;
//! - **failed for now** ([`Outcome::Retry`](crate::sink::Outcome): brokers
//!   down past `message.timeout.ms`, a request timed out): due after
//!   [`BACKOFF`], so brokers that fail fast are not hammered in a loop.
//!
//! Neither gives up. The drain keeps retrying for as long as it runs (the
//! event stays in its journal meanwhile); the direct transport until its
//! shutdown grace ends.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long an event that failed for now waits before it is sent again.
pub const BACKOFF: Duration = Duration::from_millis(500);

/// Events waiting to be sent again, each with the time it is due, in the
/// order they were given back.
#[derive(Debug)]
pub struct Retries<T> {
    queue: VecDeque<(T, Instant)>,
}

impl<T> Default for Retries<T> {
    fn default() -> Self {
        Retries {
            queue: VecDeque::new(),
        }
    }
}

impl<T> Retries<T> {
    /// `item` was refused for lack of room: due now.
    pub fn refused(&mut self, item: T) {
        self.queue.push_back((item, Instant::now()));
    }

    /// `item` failed for now: due after [`BACKOFF`].
    pub fn failed(&mut self, item: T) {
        self.queue.push_back((item, Instant::now() + BACKOFF));
    }

    /// The oldest waiting item, if it is due at `now`. Items are taken in
    /// the order they were given back: one not yet due holds back those
    /// behind it, which keeps retries in order and the check O(1).
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        match self.queue.front() {
            Some(&(_, due)) if due <= now => self.queue.pop_front().map(|(item, _)| item),
            _ => None,
        }
    }

    /// When the oldest waiting item is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|&(_, due)| due)
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_item_is_due_at_once_and_a_failed_one_after_the_backoff() {
        let mut retries = Retries::default();
        retries.refused(1);
        retries.failed(2);
        let now = Instant::now();
        assert_eq!(retries.pop_due(now), Some(1));
        assert_eq!(retries.pop_due(now), None, "not yet due");
        assert!(retries.next_due().is_some_and(|due| due > now));
        assert_eq!(retries.pop_due(now + BACKOFF), Some(2));
        assert!(retries.is_empty());
    }

    #[test]
    fn items_come_back_in_the_order_they_were_given_back() {
        let mut retries = Retries::default();
        retries.failed(1);
        retries.refused(2);
        let now = Instant::now();
        assert_eq!(retries.pop_due(now), None, "1 holds 2 back");
        assert_eq!(retries.len(), 2);
        let later = now + BACKOFF;
        assert_eq!(retries.pop_due(later), Some(1));
        assert_eq!(retries.pop_due(later), Some(2));
    }
}
