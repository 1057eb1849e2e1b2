//! Events the sink gave back, sent again in the order they were first
//! admitted, before anything newer.
//!
//! Per-partition order through librdkafka: the idempotent producer keeps
//! the order of what it holds, its own retries included, and the drain runs
//! it without a message timeout, so it gives an event back only when its
//! local queue is full (refused at `send`) or when a fatal error made the
//! sink purge everything in flight. An event given back must not be
//! overtaken by a later one of the same partition. So the drain sends
//! nothing new while anything waits here, and sends these by token (the
//! admission order), the oldest first: a refused one stays first until the
//! sink takes it. The wait is short: refused events are due at the next
//! round, failed ones after [`BACKOFF`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::kafka::retry::BACKOFF;

/// Tokens waiting to be sent again, with the time each is due.
#[derive(Debug, Default)]
pub(crate) struct Resends {
    due: BTreeMap<u64, Instant>,
}

impl Resends {
    /// `token` was refused for lack of room: due now.
    pub(crate) fn refused(&mut self, token: u64) {
        self.due.insert(token, Instant::now());
    }

    /// `token` failed for now: due after [`BACKOFF`].
    pub(crate) fn failed(&mut self, token: u64) {
        self.due.insert(token, Instant::now() + BACKOFF);
    }

    /// The oldest token, if it is due at `now`. One not yet due holds back
    /// every later one.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u64> {
        match self.due.first_key_value() {
            Some((_, &due)) if due <= now => self.due.pop_first().map(|(token, _)| token),
            _ => None,
        }
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_again_oldest_first_and_a_waiting_one_holds_back_the_rest() {
        let mut resends = Resends::default();
        resends.refused(9);
        resends.failed(4);
        resends.refused(7);
        let now = Instant::now();
        assert_eq!(
            resends.pop_due(now),
            None,
            "4 waits its backoff, 7 and 9 behind it"
        );
        let later = now + BACKOFF;
        assert_eq!(resends.pop_due(later), Some(4));
        // 7 refused again: it stays first.
        assert_eq!(resends.pop_due(later), Some(7));
        resends.refused(7);
        assert_eq!(resends.pop_due(Instant::now()), Some(7));
        assert_eq!(resends.pop_due(Instant::now()), Some(9));
        assert!(resends.is_empty());
    }
}
