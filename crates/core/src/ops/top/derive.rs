//! [`Top::view`]: the numbers shown, derived from the readings [`Top`]
//! keeps (see the parent module's docs for where each comes from).

use std::collections::HashMap;

use super::{
    fmt_age, quantile, time_to_drain, time_to_full, DeliveryView, DrainReading, Estimate,
    Estimates, Head, ProcessState, ProcessView, ProxyView, QueueReading, QueueView, RateBasis,
    Rates, Room, Sample, Top, TopView, TopicRate, TopicsView,
};
use crate::metrics::{TopicCount, TopicsSnapshot, OTHER_TOPICS};
use crate::ops::published::{Down, Liveness};

impl Top {
    /// What to show, with at most `topics` topics listed; `None` before the
    /// first [`Top::observe`].
    pub fn view(&self, topics: usize) -> Option<TopView> {
        let sample = self.last.as_ref()?;
        let drain = sample.drain.up();
        let rates = self.rates(drain.is_some());
        let queue = sample.queue.as_ref().ok().map(|q| queue_view(sample, q));
        let estimates = match sample.queue.as_ref().ok() {
            Some(q) => {
                let room = Room {
                    bytes: q.capacity as f64 - q.bytes as f64,
                    messages: q.capacity as f64 - q.depth as f64,
                };
                Estimates {
                    time_to_full: time_to_full(room, rates.net_bytes, rates.net_events),
                    time_to_drain: time_to_drain(q.depth, rates.net_events),
                    full_if_drain_stops: time_to_full(room, rates.in_bytes, rates.in_events),
                }
            }
            None => Estimates {
                time_to_full: Estimate::Unknown,
                time_to_drain: Estimate::Unknown,
                full_if_drain_stops: Estimate::Unknown,
            },
        };
        Some(TopView {
            key: self.key.clone(),
            at: sample.at,
            queue,
            queue_error: sample.queue.as_ref().err().cloned(),
            spool: drain.and_then(|d| d.spool),
            rates,
            estimates,
            topics: drain.and_then(|_| self.topics(topics)),
            delivery: drain.map(|d| self.delivery(d)),
            accounting: drain.and_then(|d| d.accounting),
            drain: process_view(
                &sample.drain,
                |d| d.snapshot.pid,
                |d| d.snapshot.sink.clone(),
            ),
            proxy: process_view(&sample.proxy, |p| p.pid, |p| p.listeners.join(", ")),
            proxy_traffic: sample.proxy.up().map(|p| ProxyView {
                connections_open: p.counters.connections_open,
                events: self.proxy.rate(|p| p.events),
                bytes: self.proxy.rate(|p| p.bytes),
                backpressured: p.counters.backpressured,
                frames_nacked: p.counters.frames_nacked,
                queue_errors: p.counters.queue_errors,
            }),
        })
    }

    fn rates(&self, drain_up: bool) -> Rates {
        let net_events = self.queue.rate(|p| p.depth);
        let net_bytes = self.queue.rate(|p| p.bytes);
        let plus = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        if drain_up {
            let out_events = self.drain.rate(|p| p.received);
            let out_bytes = match (self.drain.oldest(), self.drain.newest()) {
                (Some(old), Some(new)) if old.topics.is_some() && new.topics.is_some() => self
                    .drain
                    .rate(|p| p.topics.as_ref().map_or(0, TopicsSnapshot::total_bytes) as f64),
                _ => None,
            };
            return Rates {
                basis: if out_events.is_some() {
                    RateBasis::Drain
                } else {
                    RateBasis::None
                },
                window_seconds: self.drain.span(),
                in_events: plus(out_events, net_events),
                in_bytes: plus(out_bytes, net_bytes),
                out_events,
                out_bytes,
                delivered_events: self.drain.rate(|p| p.produced),
                net_events,
                net_bytes,
            };
        }
        // Written so that no -0.0 reaches the JSON.
        let grows = |rate: Option<f64>| rate.map(|r| if r > 0.0 { r } else { 0.0 });
        let shrinks = |rate: Option<f64>| rate.map(|r| if r < 0.0 { -r } else { 0.0 });
        Rates {
            basis: if net_events.is_some() {
                RateBasis::Queue
            } else {
                RateBasis::None
            },
            window_seconds: self.queue.span(),
            in_events: grows(net_events),
            in_bytes: grows(net_bytes),
            out_events: shrinks(net_events),
            out_bytes: shrinks(net_bytes),
            delivered_events: None,
            net_events,
            net_bytes,
        }
    }

    fn topics(&self, limit: usize) -> Option<TopicsView> {
        let (old, new) = (self.drain.oldest()?, self.drain.newest()?);
        let (old_topics, new_topics) = (old.topics.as_ref()?, new.topics.as_ref()?);
        let span = new.at - old.at;
        if span <= 0.0 {
            return None;
        }
        // By name, not by a scan per topic: a snapshot's table is the
        // drain's 64 slots, but a corrupt or hostile one may list many more.
        let before: HashMap<&str, &TopicCount> = old_topics
            .topics
            .iter()
            .map(|o| (o.topic.as_str(), o))
            .collect();
        let mut rates: Vec<TopicRate> = new_topics
            .topics
            .iter()
            .map(|t| {
                let before = before.get(t.topic.as_str());
                let (events, bytes) = before.map_or((0, 0), |b| (b.events, b.bytes));
                TopicRate {
                    topic: t.topic.clone(),
                    events: t.events.saturating_sub(events) as f64 / span,
                    bytes: t.bytes.saturating_sub(bytes) as f64 / span,
                }
            })
            .collect();
        rates.sort_by(|a, b| b.events.total_cmp(&a.events).then(a.topic.cmp(&b.topic)));
        let rest_named = rates.split_off(limit.min(rates.len()));
        let overflow = TopicRate {
            topic: OTHER_TOPICS.into(),
            events: new_topics
                .other_events
                .saturating_sub(old_topics.other_events) as f64
                / span,
            bytes: new_topics
                .other_bytes
                .saturating_sub(old_topics.other_bytes) as f64
                / span,
        };
        let has_overflow = new_topics.other_events > 0;
        let rest = match (rest_named.len(), has_overflow) {
            (0, false) => None,
            (0, true) => Some(overflow),
            (n, overflow_too) => Some(TopicRate {
                topic: if overflow_too {
                    format!("{n} more + {}", OTHER_TOPICS)
                } else {
                    format!("{n} more")
                },
                events: rest_named.iter().map(|t| t.events).sum::<f64>() + overflow.events,
                bytes: rest_named.iter().map(|t| t.bytes).sum::<f64>() + overflow.bytes,
            }),
        };
        Some(TopicsView { top: rates, rest })
    }

    fn delivery(&self, drain: &DrainReading) -> DeliveryView {
        let m = &drain.snapshot.metrics;
        let window = match (self.drain.oldest(), self.drain.newest()) {
            (Some(old), Some(new)) if new.at > old.at => Some((old, new)),
            _ => None,
        };
        let q =
            |q: f64| window.and_then(|(old, new)| quantile(&new.latency, Some(&old.latency), q));
        DeliveryView {
            p50: q(0.5),
            p99: q(0.99),
            in_flight: m.in_flight,
            produced: m.produced,
            retried: m.retried,
            retry_rate: self.drain.rate(|p| p.retried),
            dead_lettered: m.dead_lettered,
            dead_letter_rate: self.drain.rate(|p| p.dead_lettered),
            sink: drain.snapshot.sink.clone(),
        }
    }
}

fn queue_view(sample: &Sample, q: &QueueReading) -> QueueView {
    let used = q.bytes.max(q.depth);
    let fill_percent = if q.capacity == 0 {
        100.0
    } else {
        used as f64 * 100.0 / q.capacity as f64
    };
    let (oldest_age, oldest_source) = match (sample.drain.up(), q.head) {
        (Some(drain), _) => {
            let s = &drain.snapshot;
            let age = s.metrics.oldest_event_age;
            // The drain measured it when it wrote the snapshot; it has aged since.
            let now = if age > 0.0 {
                age + (sample.at - s.updated_at).max(0.0)
            } else {
                0.0
            };
            (Some(now), "drain".to_owned())
        }
        (None, Head::EmittedAt(us)) => (
            Some((sample.at - us as f64 / 1e6).max(0.0)),
            "peek".to_owned(),
        ),
        (None, Head::Empty) => (None, "empty".to_owned()),
        (None, Head::NotPeeked) => (None, "not peeked".to_owned()),
        (None, Head::Unknown(why)) => (None, why.to_owned()),
    };
    QueueView {
        depth: q.depth,
        bytes: q.bytes,
        capacity: q.capacity,
        fill_percent,
        oldest_age,
        oldest_source,
    }
}

fn process_view<T>(
    liveness: &Liveness<T>,
    pid: impl Fn(&T) -> u32,
    detail: impl Fn(&T) -> String,
) -> ProcessView {
    match liveness {
        Liveness::Up { snapshot, age } => ProcessView {
            state: ProcessState::Up,
            pid: Some(pid(snapshot)),
            snapshot_age: Some(*age),
            detail: detail(snapshot),
        },
        Liveness::Stale { snapshot, age } => ProcessView {
            state: ProcessState::Stale,
            pid: Some(pid(snapshot)),
            snapshot_age: Some(*age),
            detail: format!(
                "pid alive, no snapshot for {}: stuck, or the pid was reused",
                fmt_age(*age)
            ),
        },
        Liveness::Down(Down::NoSnapshot) => ProcessView {
            state: ProcessState::Down,
            pid: None,
            snapshot_age: None,
            detail: "no snapshot: not running with this directory and queue".into(),
        },
        Liveness::Down(Down::Exited { pid, age }) => ProcessView {
            state: ProcessState::Down,
            pid: Some(*pid),
            snapshot_age: Some(*age),
            detail: format!("exited; last snapshot {} ago", fmt_age(*age)),
        },
        Liveness::Down(Down::Unreadable { reason }) => ProcessView {
            state: ProcessState::Down,
            pid: None,
            snapshot_age: None,
            detail: format!("snapshot unreadable: {reason}"),
        },
    }
}
