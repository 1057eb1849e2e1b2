//! `shopify-events top`: the pipeline of one queue, refreshed live.
//!
//! The CLI takes a [`Sample`] with a [`Sampler`] every refresh, hands it to
//! [`Top::observe`] and draws [`Top::view`]. Everything here is the model
//! (what is read, how rates and estimates are derived, how numbers are
//! spelled); the CLI only lays it out.
//!
//! # Where each number comes from
//!
//! - **Queue** depth, bytes, capacity and fill: `msgctl(IPC_STAT)` at every
//!   refresh, drain or not. Fill is the larger of bytes and messages over
//!   the capacity, since a send fails when either reaches it.
//! - **Oldest event's age**: with a drain up, its snapshot (the oldest event
//!   in flight, else the queue's head), plus the snapshot's own age. With
//!   no drain, `top` copies the head message (`msgrcv` with `MSG_COPY`,
//!   which leaves it queued and the queue's receive time untouched) and
//!   reads its emit time.
//! - **Rates** ([`Series`]): over the last [`RATE_WINDOW`] seconds.
//!   - With a drain up: *out* is the drain's `received` counter per second
//!     (events taken from the queue), and its per-topic byte counter for
//!     bytes; *in* is out plus the queue's net change (what arrived is what
//!     was taken plus what stayed). *Delivered* is its `produced` counter.
//!     Counter rates use the drain's snapshot timestamps.
//!   - Without a drain: only the queue's net change is known, shown as
//!     *in* when it grows and *out* when something else takes from it.
//! - **Time to full / to drain** ([`time_to_full`], [`time_to_drain`]): the queue's room over its
//!   net growth, and its depth over its net shrinking; also the room over
//!   the in-rate alone (how long the drain may stop).
//! - **Topics**: the drain's bounded per-topic counters
//!   ([`TopicCounter`](crate::metrics::TopicCounter)), ranked by their rate
//!   between the oldest and newest snapshot kept.
//! - **Latency** p50/p99 ([`quantile`]): the difference of the drain's
//!   histogram over the window.
//! - **Drain and proxy**: up, stale or down from their snapshots
//!   ([`read_published`](crate::ops::read_published)).
//!
//! Sections that other parts of the pipeline will report (the spool's
//! backlog, loss accounting) are [`DrainReading`] fields: `top` shows
//! each as soon as the drain's snapshot carries it.

mod derive;
mod estimate;
mod format;
mod latency;
mod sample;
mod series;
mod view;

pub use estimate::{time_to_drain, time_to_full, Estimate, Room};
pub use format::{fmt_age, fmt_bytes_rate, fmt_count, fmt_estimate, fmt_latency, fmt_rate};
pub use latency::quantile;
pub use sample::{DrainReading, Head, LossAccounting, QueueReading, Sample, Sampler, SpoolBacklog};
pub use series::{Point, Series};
pub use view::{
    DeliveryView, Estimates, ProcessState, ProcessView, ProxyView, QueueView, RateBasis, Rates,
    TopView, TopicRate, TopicsView,
};

use crate::metrics::{HistogramSnapshot, TopicsSnapshot};

/// Seconds of readings that rates are computed over.
pub const RATE_WINDOW: f64 = 5.0;

/// The readings of the last [`RATE_WINDOW`] seconds and the latest sample.
#[derive(Debug, Clone)]
pub struct Top {
    key: String,
    queue: Series<QueuePoint>,
    drain: Series<DrainPoint>,
    drain_pid: Option<u32>,
    proxy: Series<ProxyPoint>,
    proxy_pid: Option<u32>,
    last: Option<Sample>,
}

#[derive(Debug, Clone)]
struct QueuePoint {
    at: f64,
    depth: f64,
    bytes: f64,
}

#[derive(Debug, Clone)]
struct DrainPoint {
    at: f64,
    received: f64,
    produced: f64,
    retried: f64,
    dead_lettered: f64,
    topics: Option<TopicsSnapshot>,
    latency: HistogramSnapshot,
}

#[derive(Debug, Clone)]
struct ProxyPoint {
    at: f64,
    events: f64,
    bytes: f64,
}

impl Point for QueuePoint {
    fn at(&self) -> f64 {
        self.at
    }
}

impl Point for DrainPoint {
    fn at(&self) -> f64 {
        self.at
    }
}

impl Point for ProxyPoint {
    fn at(&self) -> f64 {
        self.at
    }
}

impl Top {
    /// Nothing observed yet, for queue `key`.
    pub fn new(key: sysvmq::Key) -> Top {
        Top {
            key: format!("{:#010x}", key as u32),
            queue: Series::new(RATE_WINDOW),
            drain: Series::new(RATE_WINDOW),
            drain_pid: None,
            proxy: Series::new(RATE_WINDOW),
            proxy_pid: None,
            last: None,
        }
    }

    /// Takes in one refresh's readings.
    pub fn observe(&mut self, sample: Sample) {
        match &sample.queue {
            Ok(q) => self.queue.push(QueuePoint {
                at: sample.at,
                depth: q.depth as f64,
                bytes: q.bytes as f64,
            }),
            Err(_) => self.queue.clear(),
        }
        match sample.drain.up() {
            Some(drain) => {
                let s = &drain.snapshot;
                let m = &s.metrics;
                let point = DrainPoint {
                    at: s.updated_at,
                    received: m.received as f64,
                    produced: m.produced as f64,
                    retried: m.retried as f64,
                    dead_lettered: m.dead_lettered as f64,
                    topics: m.topics.clone(),
                    latency: m.delivery_latency.clone(),
                };
                let restarted = self.drain_pid != Some(s.pid)
                    || self
                        .drain
                        .newest()
                        .is_some_and(|n| point.received < n.received);
                if restarted {
                    self.drain.clear();
                    self.drain_pid = Some(s.pid);
                }
                self.drain.push(point);
            }
            None => {
                self.drain.clear();
                self.drain_pid = None;
            }
        }
        match sample.proxy.up() {
            Some(proxy) => {
                let point = ProxyPoint {
                    at: proxy.updated_at,
                    // What the proxy took: into the queue or its spool.
                    events: (proxy.counters.events_enqueued + proxy.counters.events_spooled) as f64,
                    bytes: (proxy.counters.bytes_enqueued + proxy.counters.bytes_spooled) as f64,
                };
                let restarted = self.proxy_pid != Some(proxy.pid)
                    || self.proxy.newest().is_some_and(|n| point.events < n.events);
                if restarted {
                    self.proxy.clear();
                    self.proxy_pid = Some(proxy.pid);
                }
                self.proxy.push(point);
            }
            None => {
                self.proxy.clear();
                self.proxy_pid = None;
            }
        }
        self.last = Some(sample);
    }
}

#[cfg(test)]
mod tests;
