//! [`DrainMetrics`]: every metric of the drain, and its snapshot.

use serde::{Deserialize, Serialize};

use super::histogram::{Histogram, HistogramSnapshot};
use super::text::{render_labels, TextWriter};
use super::topics::{TopicCounter, TopicsSnapshot};
use super::values::{Counter, Gauge, GaugeF64};

/// Every metric of the drain, shared as `Arc<DrainMetrics>` between the drain
/// loop (the writer) and the HTTP thread and stats file (the readers).
///
/// Fields are public so the drain updates them directly
/// (`metrics.produced.inc()`); the names under which they are exposed are
/// fixed here, in [`DrainMetrics::render`], and are an interface: dashboards
/// and alerts depend on them.
#[derive(Debug)]
pub struct DrainMetrics {
    /// Events taken from the queue into the journal.
    pub received: Counter,
    /// Events acknowledged by Kafka (or written by the stdout sink).
    pub produced: Counter,
    /// Events produced again after a transient failure.
    pub retried: Counter,
    /// Events written to the dead-letter file.
    pub dead_lettered: Counter,
    /// Events produced again from the journal at startup.
    pub recovered: Counter,
    /// Events handed to the producer and not yet acknowledged.
    pub in_flight: Gauge,
    /// Bytes in the journal not yet acknowledged.
    pub journal_pending_bytes: Gauge,
    /// Messages in the SysV queue (`msg_qnum`).
    pub queue_depth: Gauge,
    /// Bytes in the SysV queue (`msg_cbytes`).
    pub queue_bytes: Gauge,
    /// Capacity of the SysV queue in bytes (`msg_qbytes`).
    pub queue_capacity: Gauge,
    /// Age (now - emit time), in seconds, of the oldest event not yet
    /// acknowledged; 0 when nothing is pending.
    pub oldest_event_age: GaugeF64,
    /// Events read from spool segments (the spool directory and the drain's saved spool).
    pub spool_read: Counter,
    /// Damaged records and header words found in spool segments.
    pub spool_damaged: Counter,
    /// Published spool bytes given up after damage (the file is kept as .damaged).
    pub spool_given_up_bytes: Counter,
    /// Spool segments deleted once every event in them was acknowledged.
    pub spool_reclaimed: Counter,
    /// Spool segments of this queue not yet delivered and deleted.
    pub spool_backlog_segments: Gauge,
    /// Spool bytes published and not yet acknowledged (segments being read).
    pub spool_backlog_bytes: Gauge,
    /// Age of the oldest spooled event not yet acknowledged by Kafka.
    pub spool_oldest_event_age: GaugeF64,
    /// Events moved from the queue into the saved spool at shutdown.
    pub saved: Counter,
    /// Damage found in the journal at start (see the log for file and positions).
    pub journal_damaged: Counter,
    /// Dead letters that could not be written to a file and went to the log instead.
    pub dead_letter_failures: Counter,
    /// Old dead-letter files deleted to keep within the configured bound.
    pub dead_letter_files_dropped: Counter,
    /// Events accepted by a producer and never received (loss accounting).
    pub gaps: Counter,
    /// Gaps taken back: the event arrived after it was counted missing.
    pub late: Counter,
    /// Events received more than once.
    pub duplicates: Counter,
    /// Events received without a stamp (version 1, or never numbered).
    pub unaccounted: Counter,
    /// Seconds from emit to Kafka acknowledgement.
    pub delivery_latency: Histogram,
    /// Events and bytes the drain took in, per topic (bounded: see
    /// [`TopicCounter`]).
    pub topics: TopicCounter,
    /// Constant labels, rendered once: `queue="0x53455600"`.
    labels: String,
}

/// A point-in-time copy of [`DrainMetrics`] as plain numbers, for
/// `shopify-events stats --json` and the drain's stats file.
///
/// Each value is read on its own, so two values may straddle an update (a
/// `produced` one higher than the `received` read just before it); the
/// snapshot is for display and rates, not for exact arithmetic across fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// See [`DrainMetrics::received`].
    pub received: u64,
    /// See [`DrainMetrics::produced`].
    pub produced: u64,
    /// See [`DrainMetrics::retried`].
    pub retried: u64,
    /// See [`DrainMetrics::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`DrainMetrics::recovered`].
    pub recovered: u64,
    /// See [`DrainMetrics::in_flight`].
    pub in_flight: i64,
    /// See [`DrainMetrics::journal_pending_bytes`].
    pub journal_pending_bytes: i64,
    /// See [`DrainMetrics::queue_depth`].
    pub queue_depth: i64,
    /// See [`DrainMetrics::queue_bytes`].
    pub queue_bytes: i64,
    /// See [`DrainMetrics::queue_capacity`].
    pub queue_capacity: i64,
    /// See [`DrainMetrics::oldest_event_age`]; seconds.
    pub oldest_event_age: f64,
    /// See [`DrainMetrics::delivery_latency`].
    pub delivery_latency: HistogramSnapshot,
    /// See [`DrainMetrics::topics`]; `None` (and absent from the JSON) until
    /// the drain counted a topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicsSnapshot>,
    /// See [`DrainMetrics::spool_read`].
    #[serde(default)]
    pub spool_read: u64,
    /// See [`DrainMetrics::spool_damaged`].
    #[serde(default)]
    pub spool_damaged: u64,
    /// See [`DrainMetrics::spool_given_up_bytes`].
    #[serde(default)]
    pub spool_given_up_bytes: u64,
    /// See [`DrainMetrics::spool_reclaimed`].
    #[serde(default)]
    pub spool_reclaimed: u64,
    /// See [`DrainMetrics::spool_backlog_segments`].
    #[serde(default)]
    pub spool_backlog_segments: i64,
    /// See [`DrainMetrics::spool_backlog_bytes`].
    #[serde(default)]
    pub spool_backlog_bytes: i64,
    /// See [`DrainMetrics::spool_oldest_event_age`].
    #[serde(default)]
    pub spool_oldest_event_age: f64,
    /// See [`DrainMetrics::saved`].
    #[serde(default)]
    pub saved: u64,
    /// See [`DrainMetrics::journal_damaged`].
    #[serde(default)]
    pub journal_damaged: u64,
    /// See [`DrainMetrics::dead_letter_failures`].
    #[serde(default)]
    pub dead_letter_failures: u64,
    /// See [`DrainMetrics::dead_letter_files_dropped`].
    #[serde(default)]
    pub dead_letter_files_dropped: u64,
    /// See [`DrainMetrics::gaps`].
    #[serde(default)]
    pub gaps: u64,
    /// See [`DrainMetrics::late`].
    #[serde(default)]
    pub late: u64,
    /// See [`DrainMetrics::duplicates`].
    #[serde(default)]
    pub duplicates: u64,
    /// See [`DrainMetrics::unaccounted`].
    #[serde(default)]
    pub unaccounted: u64,
}

impl DrainMetrics {
    /// Metrics at zero whose every series carries `labels`, e.g.
    /// `&[("queue", "0x53455600")]`. Invalid label-name characters become
    /// `_`; values are escaped.
    pub fn new(labels: &[(&str, &str)]) -> Self {
        Self {
            received: Counter::new(),
            produced: Counter::new(),
            retried: Counter::new(),
            dead_lettered: Counter::new(),
            recovered: Counter::new(),
            in_flight: Gauge::new(),
            journal_pending_bytes: Gauge::new(),
            queue_depth: Gauge::new(),
            queue_bytes: Gauge::new(),
            queue_capacity: Gauge::new(),
            oldest_event_age: GaugeF64::new(),
            spool_read: Counter::new(),
            spool_damaged: Counter::new(),
            spool_given_up_bytes: Counter::new(),
            spool_reclaimed: Counter::new(),
            spool_backlog_segments: Gauge::new(),
            spool_backlog_bytes: Gauge::new(),
            spool_oldest_event_age: GaugeF64::new(),
            saved: Counter::new(),
            journal_damaged: Counter::new(),
            dead_letter_failures: Counter::new(),
            dead_letter_files_dropped: Counter::new(),
            gaps: Counter::new(),
            late: Counter::new(),
            duplicates: Counter::new(),
            unaccounted: Counter::new(),
            delivery_latency: Histogram::latency(),
            topics: TopicCounter::new(),
            labels: render_labels(labels),
        }
    }

    /// Metrics for the drain of queue `key`, labelled `queue="0x53455600"`
    /// (the key in hex, as `ipcs` and `shopify-events stats` show it).
    pub fn for_queue(key: sysvmq::Key) -> Self {
        Self::new(&[("queue", &format!("{key:#010x}"))])
    }

    /// Appends every metric to `out` in the Prometheus text format 0.0.4
    /// (serve it with [`CONTENT_TYPE`](super::CONTENT_TYPE)).
    pub fn render(&self, out: &mut String) {
        let mut w = TextWriter::new(out, &self.labels);
        let s = self.snapshot();
        w.counter(
            "shopify_events_received_total",
            "Events taken from the queue into the journal.",
            s.received,
        );
        w.counter(
            "shopify_events_produced_total",
            "Events acknowledged by Kafka (or written by the stdout sink).",
            s.produced,
        );
        w.counter(
            "shopify_events_retried_total",
            "Events produced again after a transient failure.",
            s.retried,
        );
        w.counter(
            "shopify_events_dead_lettered_total",
            "Events written to the dead-letter file.",
            s.dead_lettered,
        );
        w.counter(
            "shopify_events_recovered_total",
            "Events produced again from the journal at startup.",
            s.recovered,
        );
        w.gauge(
            "shopify_events_in_flight",
            "Events handed to the producer and not yet acknowledged.",
            s.in_flight,
        );
        w.gauge(
            "shopify_events_journal_pending_bytes",
            "Bytes in the journal not yet acknowledged.",
            s.journal_pending_bytes,
        );
        w.gauge(
            "shopify_events_queue_depth",
            "Messages in the SysV queue.",
            s.queue_depth,
        );
        w.gauge(
            "shopify_events_queue_bytes",
            "Bytes in the SysV queue.",
            s.queue_bytes,
        );
        w.gauge(
            "shopify_events_queue_capacity_bytes",
            "Capacity of the SysV queue in bytes (msg_qbytes).",
            s.queue_capacity,
        );
        w.gauge_f64(
            "shopify_events_oldest_event_age_seconds",
            "Age of the oldest event not yet acknowledged by Kafka.",
            s.oldest_event_age,
        );
        w.counter(
            "shopify_events_spool_read_total",
            "Events read from spool segments (the spool directory and the drain's saved spool).",
            s.spool_read,
        );
        w.counter(
            "shopify_events_spool_damaged_total",
            "Damaged records and header words found in spool segments.",
            s.spool_damaged,
        );
        w.counter(
            "shopify_events_spool_given_up_bytes_total",
            "Published spool bytes given up after damage (the file is kept as .damaged).",
            s.spool_given_up_bytes,
        );
        w.counter(
            "shopify_events_spool_reclaimed_segments_total",
            "Spool segments deleted once every event in them was acknowledged.",
            s.spool_reclaimed,
        );
        w.gauge(
            "shopify_events_spool_backlog_segments",
            "Spool segments of this queue not yet delivered and deleted.",
            s.spool_backlog_segments,
        );
        w.gauge(
            "shopify_events_spool_backlog_bytes",
            "Spool bytes published and not yet acknowledged (segments being read).",
            s.spool_backlog_bytes,
        );
        w.gauge_f64(
            "shopify_events_spool_oldest_event_age_seconds",
            "Age of the oldest spooled event not yet acknowledged by Kafka.",
            s.spool_oldest_event_age,
        );
        w.counter(
            "shopify_events_saved_total",
            "Events moved from the queue into the saved spool at shutdown.",
            s.saved,
        );
        w.counter(
            "shopify_events_journal_damaged_total",
            "Damage found in the journal at start (see the log for file and positions).",
            s.journal_damaged,
        );
        w.counter(
            "shopify_events_dead_letter_failures_total",
            "Dead letters that could not be written to a file and went to the log instead.",
            s.dead_letter_failures,
        );
        w.counter(
            "shopify_events_dead_letter_files_dropped_total",
            "Old dead-letter files deleted to keep within the configured bound.",
            s.dead_letter_files_dropped,
        );
        w.counter(
            "shopify_events_gaps_total",
            "Events a producer accepted (numbered) that the drain never received within the accounting window.",
            s.gaps,
        );
        w.counter(
            "shopify_events_late_total",
            "Gaps taken back: the event arrived after it was counted missing.",
            s.late,
        );
        w.counter(
            "shopify_events_duplicates_total",
            "Events the drain received more than once (same producer and number).",
            s.duplicates,
        );
        w.counter(
            "shopify_events_unaccounted_total",
            "Events received without a stamp (version 1 envelopes, or never numbered): not accounted.",
            s.unaccounted,
        );
        w.histogram(
            "shopify_events_delivery_latency_seconds",
            "Seconds from emit to Kafka acknowledgement.",
            &s.delivery_latency,
        );
        let topics = s.topics.unwrap_or_default();
        w.counter_by(
            "shopify_events_topic_events_total",
            "Events the drain took in, by topic (64 topics; later ones as topic=\"(other)\").",
            "topic",
            topics.series().map(|(topic, events, _)| (topic, events)),
        );
        w.counter_by(
            "shopify_events_topic_bytes_total",
            "Envelope bytes the drain took in, by topic (as shopify_events_topic_events_total).",
            "topic",
            topics.series().map(|(topic, _, bytes)| (topic, bytes)),
        );
    }

    /// Reads every metric.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            received: self.received.get(),
            produced: self.produced.get(),
            retried: self.retried.get(),
            dead_lettered: self.dead_lettered.get(),
            recovered: self.recovered.get(),
            in_flight: self.in_flight.get(),
            journal_pending_bytes: self.journal_pending_bytes.get(),
            queue_depth: self.queue_depth.get(),
            queue_bytes: self.queue_bytes.get(),
            queue_capacity: self.queue_capacity.get(),
            oldest_event_age: self.oldest_event_age.get(),
            delivery_latency: self.delivery_latency.snapshot(),
            topics: self.topics.snapshot(),
            spool_read: self.spool_read.get(),
            spool_damaged: self.spool_damaged.get(),
            spool_given_up_bytes: self.spool_given_up_bytes.get(),
            spool_reclaimed: self.spool_reclaimed.get(),
            spool_backlog_segments: self.spool_backlog_segments.get(),
            spool_backlog_bytes: self.spool_backlog_bytes.get(),
            spool_oldest_event_age: self.spool_oldest_event_age.get(),
            saved: self.saved.get(),
            journal_damaged: self.journal_damaged.get(),
            dead_letter_failures: self.dead_letter_failures.get(),
            dead_letter_files_dropped: self.dead_letter_files_dropped.get(),
            gaps: self.gaps.get(),
            late: self.late.get(),
            duplicates: self.duplicates.get(),
            unaccounted: self.unaccounted.get(),
        }
    }
}
