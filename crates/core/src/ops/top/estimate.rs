//! Time to full and time to drain, from the queue's net rate of change.
//!
//! Both come from how fast the queue grows or shrinks (the net rate, what
//! arrives minus what the drain takes), not from one side alone: a queue
//! taking 10k events/s and giving the drain 8k/s fills at 2k/s, and a
//! backlog shrinks at out − in, not at out. The third estimate, "full if the
//! drain stopped", is the headroom at the in-rate alone: how long a drain
//! restart or a Kafka outage may last before `emit` starts to spool or drop.

use serde::Serialize;

/// A time estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimate {
    /// In this many seconds, if the rates hold.
    Seconds(f64),
    /// Not at these rates (the queue is not growing, or not shrinking).
    Never,
    /// No rates yet (one reading so far), or no queue.
    Unknown,
}

/// Room left in the queue: the kernel refuses a send once either the bytes
/// or the message count reach the capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Room {
    /// Capacity minus bytes queued.
    pub bytes: f64,
    /// Capacity minus messages queued.
    pub messages: f64,
}

/// When the queue is full if it changes by `bytes_per_sec` and
/// `events_per_sec` (net), whichever limit comes first.
pub fn time_to_full(
    room: Room,
    bytes_per_sec: Option<f64>,
    events_per_sec: Option<f64>,
) -> Estimate {
    let (Some(bytes_rate), Some(events_rate)) = (bytes_per_sec, events_per_sec) else {
        return Estimate::Unknown;
    };
    let soonest = [(room.bytes, bytes_rate), (room.messages, events_rate)]
        .into_iter()
        .filter(|&(_, rate)| rate > 0.0)
        .map(|(left, rate)| left.max(0.0) / rate)
        .reduce(f64::min);
    soonest.map_or(Estimate::Never, Estimate::Seconds)
}

/// When a backlog of `events` is gone if the queue changes by
/// `events_per_sec` (net; negative while it shrinks).
pub fn time_to_drain(events: u64, events_per_sec: Option<f64>) -> Estimate {
    if events == 0 {
        return Estimate::Seconds(0.0);
    }
    match events_per_sec {
        None => Estimate::Unknown,
        Some(rate) if rate < 0.0 => Estimate::Seconds(events as f64 / -rate),
        Some(_) => Estimate::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_queue_is_full_when_the_first_limit_is_reached() {
        let room = Room {
            bytes: 1000.0,
            messages: 50.0,
        };
        assert_eq!(
            time_to_full(room, Some(100.0), Some(1.0)),
            Estimate::Seconds(10.0)
        );
        assert_eq!(
            time_to_full(room, Some(100.0), Some(10.0)),
            Estimate::Seconds(5.0)
        );
    }

    #[test]
    fn a_queue_that_does_not_grow_is_never_full_and_without_rates_it_is_unknown() {
        let room = Room {
            bytes: 10.0,
            messages: 10.0,
        };
        assert_eq!(time_to_full(room, Some(0.0), Some(-3.0)), Estimate::Never);
        assert_eq!(time_to_full(room, None, Some(1.0)), Estimate::Unknown);
    }

    #[test]
    fn a_backlog_drains_at_the_net_rate_only_while_it_shrinks() {
        assert_eq!(time_to_drain(600, Some(-20.0)), Estimate::Seconds(30.0));
        assert_eq!(time_to_drain(600, Some(0.0)), Estimate::Never);
        assert_eq!(time_to_drain(600, None), Estimate::Unknown);
        assert_eq!(time_to_drain(0, None), Estimate::Seconds(0.0));
    }
}
