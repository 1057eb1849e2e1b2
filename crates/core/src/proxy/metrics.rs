//! [`ProxyMetrics`]: the proxy's counters, rendered in the Prometheus text
//! format by the same writer as the drain's metrics, and served by
//! [`serve`] on `GET /metrics` (and `GET /health`).

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sysvmq::Key;

use crate::metrics::{render_labels, Counter, Gauge, TextWriter, CONTENT_TYPE};

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
    /// Frames refused with a nack.
    pub frames_nacked: Counter,
    /// Connections closed for a protocol violation (malformed, oversized,
    /// truncated or out-of-order frames).
    pub protocol_errors: Counter,
    /// Connections closed for being silent longer than the idle timeout.
    pub idle_timeouts: Counter,
    /// Frames that found the queue full and waited for room (backpressure).
    pub queue_full_waits: Counter,
    /// Connections waiting for room in the queue right now.
    pub backpressured: Gauge,
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
            frames_nacked: Counter::new(),
            protocol_errors: Counter::new(),
            idle_timeouts: Counter::new(),
            queue_full_waits: Counter::new(),
            backpressured: Gauge::new(),
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
                "Handshakes refused or failed (magic, version, token, timeout).",
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
                "Connections closed for silence past the idle or handshake timeout.",
                &self.idle_timeouts,
            ),
            (
                "shopify_events_proxy_queue_full_waits_total",
                "Frames that waited for room in a full queue (acks withheld).",
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
    }
}

/// How long a scraper has to send its request head, and each write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `GET /metrics` (and `GET /health`, always `200 ok` while the proxy
/// runs) on `listener` from a new thread until `shutdown` is set; the same
/// contract as [`crate::metrics::serve`] for the drain. One connection at a
/// time, each with a 2 s deadline and an 8 KiB request head.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<ProxyMetrics>,
    shutdown: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    thread::Builder::new()
        .name("proxy-metrics".into())
        .spawn(move || {
            let mut body = String::new();
            while !shutdown.load(Relaxed) {
                match crate::metrics::accept_within(&listener, Duration::from_millis(50)) {
                    Ok(Some(stream)) => {
                        let _ = respond(stream, &metrics, &mut body);
                    }
                    Ok(None) => {}
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        })
}

fn respond(
    mut stream: std::net::TcpStream,
    metrics: &ProxyMetrics,
    body: &mut String,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || head.len() > 8192 {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk)? {
            0 => return Ok(()),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    body.clear();
    let (status, content_type) = match (method, path) {
        (b"GET", b"/metrics") => {
            metrics.render(body);
            ("200 OK", CONTENT_TYPE)
        }
        (b"GET", b"/health") => {
            body.push_str("ok proxy running\n");
            ("200 OK", "text/plain; charset=utf-8")
        }
        (b"GET", _) => ("404 Not Found", "text/plain; charset=utf-8"),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}
