//! [`TopView`]: the numbers `top` shows, derived from the readings kept by
//! [`Top`](super::Top). Plain data: the CLI lays it out on a terminal, as a
//! text line ([`TopView::line`]) or as JSON.

use serde::Serialize;

use super::estimate::Estimate;
use super::sample::{LossAccounting, SpoolBacklog};

/// Everything `top` shows at one refresh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopView {
    /// The queue key in hex (`0x53455600`).
    pub key: String,
    /// When the readings were taken, in Unix seconds.
    pub at: f64,
    /// The queue; `None` when it cannot be read (see `queue_error`).
    pub queue: Option<QueueView>,
    /// Why the queue cannot be read.
    pub queue_error: Option<String>,
    /// The spool's backlog, when the drain reports it.
    pub spool: Option<SpoolBacklog>,
    /// Events and bytes per second into and out of the queue.
    pub rates: Rates,
    /// When the queue is full or empty at these rates.
    pub estimates: Estimates,
    /// The busiest topics, when the drain counts topics.
    pub topics: Option<TopicsView>,
    /// Deliveries, when the drain is up.
    pub delivery: Option<DeliveryView>,
    /// Gaps and duplicates, when the drain reports them.
    pub accounting: Option<LossAccounting>,
    /// The drain process.
    pub drain: ProcessView,
    /// The proxy process.
    pub proxy: ProcessView,
    /// The proxy's traffic, when it is up.
    pub proxy_traffic: Option<ProxyView>,
}

/// The queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    /// Messages waiting.
    pub depth: u64,
    /// Bytes waiting.
    pub bytes: u64,
    /// Capacity in bytes.
    pub capacity: u64,
    /// The larger of bytes and messages over the capacity, 0–100.
    pub fill_percent: f64,
    /// Age of the oldest event not yet delivered, in seconds; `None` when
    /// it cannot be told (see `oldest_source`).
    pub oldest_age: Option<f64>,
    /// Where the age comes from: `drain` (its snapshot: in flight or the
    /// queue's head), `peek` (the queue's head, copied by `top`), `empty`,
    /// or why it is unknown.
    pub oldest_source: String,
}

/// What the rates are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateBasis {
    /// The drain's counters plus the queue's change.
    Drain,
    /// The queue's change alone (no drain up): a net rate, in or out.
    Queue,
    /// One reading so far.
    None,
}

/// Per-second rates over the last few seconds (`window_seconds`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rates {
    /// What they are computed from.
    pub basis: RateBasis,
    /// Seconds of readings they span.
    pub window_seconds: f64,
    /// Events into the queue (from the apps and the proxy).
    pub in_events: Option<f64>,
    /// Bytes into the queue.
    pub in_bytes: Option<f64>,
    /// Events out of the queue (taken by the drain).
    pub out_events: Option<f64>,
    /// Bytes out of the queue.
    pub out_bytes: Option<f64>,
    /// Events delivered (acknowledged by Kafka, or written by the stdout sink).
    pub delivered_events: Option<f64>,
    /// Net change of the queue, events per second (in − out).
    pub net_events: Option<f64>,
    /// Net change of the queue, bytes per second.
    pub net_bytes: Option<f64>,
}

/// Time estimates; see [`time_to_full`](super::time_to_full) and [`time_to_drain`](super::time_to_drain).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimates {
    /// Until the queue is full, at the net rate.
    pub time_to_full: Estimate,
    /// Until the queue is empty, at the net rate.
    pub time_to_drain: Estimate,
    /// Until the queue is full if the drain stopped now (the in-rate alone).
    pub full_if_drain_stops: Estimate,
}

/// The busiest topics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicsView {
    /// The busiest, by events per second, at most the number asked for.
    pub top: Vec<TopicRate>,
    /// Every other topic together (the drain's overflow slot included);
    /// `None` when there is none.
    pub rest: Option<TopicRate>,
}

/// One topic's rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicRate {
    /// The topic (`(other)`: topics past the drain's slot limit; `N more`:
    /// the sum of those not listed).
    pub topic: String,
    /// Events per second.
    pub events: f64,
    /// Bytes per second.
    pub bytes: f64,
}

/// Deliveries, from the drain's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryView {
    /// Median emit-to-ack latency over the window, in seconds.
    pub p50: Option<f64>,
    /// 99th percentile of the same.
    pub p99: Option<f64>,
    /// Events sent and not yet acknowledged.
    pub in_flight: i64,
    /// Events delivered since the drain started.
    pub produced: u64,
    /// Retries since the drain started.
    pub retried: u64,
    /// Retries per second.
    pub retry_rate: Option<f64>,
    /// Dead letters since the drain started.
    pub dead_lettered: u64,
    /// Dead letters per second.
    pub dead_letter_rate: Option<f64>,
    /// Where the drain delivers.
    pub sink: String,
}

/// Whether a process is running, by its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    /// Alive and publishing its snapshot.
    Up,
    /// Alive but its snapshot stopped changing.
    Stale,
    /// Not running.
    Down,
}

/// A process `top` watches (the drain, the proxy).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessView {
    /// Up, stale or down.
    pub state: ProcessState,
    /// Its pid, when its snapshot names one.
    pub pid: Option<u32>,
    /// Seconds since its last snapshot.
    pub snapshot_age: Option<f64>,
    /// One line more: where it delivers or listens, or why it is down.
    pub detail: String,
}

/// The proxy's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyView {
    /// Connections open.
    pub connections_open: i64,
    /// Events per second it takes: into the queue or its spool.
    pub events: Option<f64>,
    /// Bytes per second.
    pub bytes: Option<f64>,
    /// Connections waiting for room in a full queue (and spool).
    pub backpressured: i64,
    /// Frames refused since it started.
    pub frames_nacked: u64,
    /// `msgsnd` failures other than "full" since it started.
    pub queue_errors: u64,
}
