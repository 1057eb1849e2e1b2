//! The drain's metrics: counters, gauges and a latency histogram, exposed in
//! the Prometheus text format on a small loopback HTTP server. The proxy's
//! counters ([`crate::proxy::ProxyMetrics`]) use the same values, the same
//! text writer and the same server.
//!
//! [`DrainMetrics`] holds every metric the drain reports (what it received,
//! produced, retried, dead-lettered and recovered; what is in flight; the
//! queue's depth, bytes and capacity; the oldest pending event's age;
//! emit-to-ack latency; and events and bytes per topic, for a bounded set
//! of topics ([`TopicCounter`])). The drain loop updates them, [`serve`] serves their
//! rendering on `GET /metrics`, and [`DrainMetrics::snapshot`] copies them for
//! `shopify-events stats --json` and the drain's stats file.
//!
//! Every update is a relaxed atomic operation, so the drain's hot path pays
//! one uncontended add per event and never waits for a scrape. Relaxed is
//! enough because no metric guards other memory: each is a number read on
//! its own, and a scrape is a sample at an arbitrary instant anyway. Values
//! read in one scrape may straddle an update (`produced` just ahead of
//! `received`), which rates over time absorb. The one invariant a scraper
//! checks, a histogram's `+Inf` bucket equal to its `_count`, holds by
//! construction (see [`Histogram`]).
//!
//! The server binds loopback by default ([`bind()`]): the endpoints are not
//! authenticated.

mod drain;
mod histogram;
mod http;
mod listen;
mod request;
mod text;
mod topics;
mod values;

pub use drain::{DrainMetrics, MetricsSnapshot};
pub use histogram::{BucketCount, Histogram, HistogramSnapshot, LATENCY_BUCKETS};
pub use http::{serve, Health, HealthCheck, RenderMetrics, Serving};
pub use listen::{bind, MetricsError};
pub use text::CONTENT_TYPE;
pub use topics::{TopicCount, TopicCounter, TopicsSnapshot, OTHER_TOPICS, TOPIC_SLOTS};
// The proxy renders its own metrics with the same writer.
pub(crate) use text::{render_labels, TextWriter};
pub use values::{Counter, Gauge, GaugeF64};
