//! [`ProxyMetrics`]: the proxy's counters, rendered in the Prometheus text
//! format by the same writer as the drain's metrics, and served by the same
//! server ([`crate::metrics::serve`]).

use sysvmq::Key;

use crate::metrics::{render_labels, Counter, Gauge, TextWriter};

/// Every counter of one proxy, shared as `Arc<ProxyMetrics>` by the
/// connection threads (writers) and the metrics endpoint (reader). The
/// exposed names are fixed in [`ProxyMetrics::render`]; they are an interface.
#[derive(Debug)]
pub struct ProxyMetrics {
    /// Connections accepted (including ones refused at the limit).
    pub connections_accepted: Counter,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: Counter,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Handshakes refused or failed (bad magic, version, token, timeout).
    pub handshake_failures: Counter,
    /// Data frames read.
    pub frames_received: Counter,
    /// Envelopes put into the host queue (and acknowledged).
    pub events_enqueued: Counter,
    /// Envelope bytes put into the host queue.
    pub bytes_enqueued: Counter,
    /// Envelopes appended to the proxy's spool (and acknowledged): larger
    /// than the queue takes, or the queue was full.
    pub events_spooled: Counter,
    /// Envelope bytes appended to the proxy's spool.
    pub bytes_spooled: Counter,
    /// Frames refused with a nack.
    pub frames_nacked: Counter,
    /// Connections closed for a protocol violation (malformed, oversized,
    /// truncated or out-of-order frames).
    pub protocol_errors: Counter,
    /// Connections closed for being silent longer than the idle timeout.
    pub idle_timeouts: Counter,
    /// Frames that waited because neither the queue nor the spool could
    /// take them (backpressure).
    pub queue_full_waits: Counter,
    /// Connections waiting for room in the queue right now.
    pub backpressured: Gauge,
    /// Connections served at once at most: `max_connections`, or fewer if
    /// the descriptor limit says so.
    pub connection_limit: Gauge,
    /// `msgsnd` failures other than "full" (permissions, queue removed, ...).
    pub queue_errors: Counter,
    labels: String,
}

impl ProxyMetrics {
    /// Metrics labelled with the queue they feed (`queue="0x53455600"`).
    pub fn for_queue(key: Key) -> ProxyMetrics {
        ProxyMetrics {
            connections_accepted: Counter::new(),
            connections_refused: Counter::new(),
            connections_open: Gauge::new(),
            handshake_failures: Counter::new(),
            frames_received: Counter::new(),
            events_enqueued: Counter::new(),
            bytes_enqueued: Counter::new(),
            events_spooled: Counter::new(),
            bytes_spooled: Counter::new(),
            frames_nacked: Counter::new(),
            protocol_errors: Counter::new(),
            idle_timeouts: Counter::new(),
            queue_full_waits: Counter::new(),
            backpressured: Gauge::new(),
            connection_limit: Gauge::new(),
            queue_errors: Counter::new(),
            labels: render_labels(&[("queue", &format!("{:#010x}", key as u32))]),
        }
    }

    /// Appends the Prometheus text exposition to `out`.
    pub fn render(&self, out: &mut String) {
        let mut w = TextWriter::new(out, &self.labels);
        let counters = [
            (
                "shopify_events_proxy_connections_accepted_total",
                "Connections accepted.",
                &self.connections_accepted,
            ),
            (
                "shopify_events_proxy_connections_refused_total",
                "Connections refused at the connection limit.",
                &self.connections_refused,
            ),
            (
                "shopify_events_proxy_handshake_failures_total",
                "Handshakes refused or failed (magic, version, token, timeout, closed for a newer one).",
                &self.handshake_failures,
            ),
            (
                "shopify_events_proxy_frames_received_total",
                "Data frames read.",
                &self.frames_received,
            ),
            (
                "shopify_events_proxy_events_enqueued_total",
                "Envelopes put into the host queue and acknowledged.",
                &self.events_enqueued,
            ),
            (
                "shopify_events_proxy_bytes_enqueued_total",
                "Envelope bytes put into the host queue.",
                &self.bytes_enqueued,
            ),
            (
                "shopify_events_proxy_events_spooled_total",
                "Envelopes appended to the proxy's spool (too large for the queue, or it was full) and acknowledged.",
                &self.events_spooled,
            ),
            (
                "shopify_events_proxy_bytes_spooled_total",
                "Envelope bytes appended to the proxy's spool.",
                &self.bytes_spooled,
            ),
            (
                "shopify_events_proxy_frames_nacked_total",
                "Frames refused with a nack.",
                &self.frames_nacked,
            ),
            (
                "shopify_events_proxy_protocol_errors_total",
                "Connections closed for malformed, oversized, truncated or out-of-order input.",
                &self.protocol_errors,
            ),
            (
                "shopify_events_proxy_idle_timeouts_total",
                "Connections closed for silence past the idle or handshake timeout, or for a newer handshake.",
                &self.idle_timeouts,
            ),
            (
                "shopify_events_proxy_queue_full_waits_total",
                "Frames that waited because neither the queue nor the spool could take them (acks withheld).",
                &self.queue_full_waits,
            ),
            (
                "shopify_events_proxy_queue_errors_total",
                "msgsnd failures other than a full queue.",
                &self.queue_errors,
            ),
        ];
        for (name, help, counter) in counters {
            w.counter(name, help, counter.get());
        }
        w.gauge(
            "shopify_events_proxy_connections_open",
            "Connections open now.",
            self.connections_open.get(),
        );
        w.gauge(
            "shopify_events_proxy_backpressured_connections",
            "Connections waiting for room in the queue now.",
            self.backpressured.get(),
        );
        w.gauge(
            "shopify_events_proxy_connection_limit",
            "Connections served at once at most (max_connections, or fewer under the descriptor limit).",
            self.connection_limit.get(),
        );
    }
}
