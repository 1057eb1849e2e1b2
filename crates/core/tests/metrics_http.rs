//! The metrics HTTP server, spoken to over plain TCP (`testkit::net`).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use shopify_events_core::metrics::{self, DrainMetrics, Health, MetricsError};
use shopify_events_core::proxy::ProxyMetrics;
use testkit::net;

const LABEL: &str = r#"queue="0x53455600""#;

struct Server {
    addr: SocketAddr,
    metrics: Arc<DrainMetrics>,
    healthy: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    thread: Option<metrics::Serving>,
}

impl Server {
    fn start() -> Self {
        let listener = metrics::bind("127.0.0.1:0", false).expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(DrainMetrics::for_queue(0x5345_5600));
        let healthy = Arc::new(AtomicBool::new(true));
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = healthy.clone();
        let check = Arc::new(move || match flag.load(Ordering::Relaxed) {
            true => Health::ok("producing"),
            false => Health::failing("kafka unreachable for 42s"),
        });
        let render = {
            let metrics = metrics.clone();
            Arc::new(move |out: &mut String| metrics.render(out))
        };
        let thread = metrics::serve(listener, render, check, shutdown.clone()).unwrap();
        Self {
            addr,
            metrics,
            healthy,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Sends `request` as is and returns (status, head, body).
    fn send(&self, request: &str) -> (u16, String, String) {
        let r = net::request(&self.addr.to_string(), request).expect("a complete response");
        (r.status, r.head, r.body)
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The value of the series `name{queue="0x53455600"<extra>}`.
fn value(body: &str, name: &str, extra: &str) -> f64 {
    let prefix = format!("{name}{{{LABEL}{extra}}} ");
    let line = body.lines().find(|l| l.starts_with(&prefix));
    let line = line.unwrap_or_else(|| panic!("no series {prefix:?} in\n{body}"));
    line[prefix.len()..].parse().unwrap()
}

#[test]
fn metrics_endpoint_exposes_every_metric_with_help_type_and_queue_label() {
    let server = Server::start();
    let (status, head, body) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(head.contains("Connection: close"), "{head}");
    let metrics = [
        ("shopify_events_received_total", "counter"),
        ("shopify_events_produced_total", "counter"),
        ("shopify_events_retried_total", "counter"),
        ("shopify_events_dead_lettered_total", "counter"),
        ("shopify_events_recovered_total", "counter"),
        ("shopify_events_in_flight", "gauge"),
        ("shopify_events_journal_pending_bytes", "gauge"),
        ("shopify_events_queue_depth", "gauge"),
        ("shopify_events_queue_bytes", "gauge"),
        ("shopify_events_queue_capacity_bytes", "gauge"),
        ("shopify_events_oldest_event_age_seconds", "gauge"),
        ("shopify_events_delivery_latency_seconds", "histogram"),
        ("shopify_events_topic_events_total", "counter"),
        ("shopify_events_topic_bytes_total", "counter"),
    ];
    for (name, kind) in metrics {
        let help = format!("# HELP {name} ");
        assert!(body.lines().any(|l| l.starts_with(&help)), "{name}");
        assert!(
            body.lines().any(|l| l == format!("# TYPE {name} {kind}")),
            "{name}"
        );
    }
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.contains(LABEL),
            "series without the queue label: {line}"
        );
    }
}

#[test]
fn counters_and_gauges_show_their_values_after_updates() {
    let server = Server::start();
    let m = &server.metrics;
    m.received.add(10);
    m.produced.inc();
    m.produced.inc();
    m.dead_lettered.inc();
    m.in_flight.add(7);
    m.in_flight.sub(2);
    m.queue_capacity.set(2 << 30);
    m.oldest_event_age.set(1.5);
    let (_, _, body) = server.get("/metrics");
    assert_eq!(value(&body, "shopify_events_received_total", ""), 10.0);
    assert_eq!(value(&body, "shopify_events_produced_total", ""), 2.0);
    assert_eq!(value(&body, "shopify_events_retried_total", ""), 0.0);
    assert_eq!(value(&body, "shopify_events_dead_lettered_total", ""), 1.0);
    assert_eq!(value(&body, "shopify_events_in_flight", ""), 5.0);
    assert_eq!(
        value(&body, "shopify_events_queue_capacity_bytes", ""),
        2147483648.0
    );
    assert_eq!(
        value(&body, "shopify_events_oldest_event_age_seconds", ""),
        1.5
    );
}

#[test]
fn topic_counters_carry_a_topic_label_beside_the_queue_label() {
    let server = Server::start();
    let (_, _, body) = server.get("/metrics");
    assert!(
        !body.contains("shopify_events_topic_events_total{"),
        "a series before any topic was counted:\n{body}"
    );
    server.metrics.topics.record("orders", 100);
    server.metrics.topics.record("orders", 50);
    server.metrics.topics.record("users", 10);
    let (_, _, body) = server.get("/metrics");
    let events = |topic: &str| {
        value(
            &body,
            "shopify_events_topic_events_total",
            &format!(",topic=\"{topic}\""),
        )
    };
    let bytes = |topic: &str| {
        value(
            &body,
            "shopify_events_topic_bytes_total",
            &format!(",topic=\"{topic}\""),
        )
    };
    assert_eq!((events("orders"), bytes("orders")), (2.0, 150.0));
    assert_eq!((events("users"), bytes("users")), (1.0, 10.0));
}

#[test]
fn histogram_buckets_are_cumulative_with_inf_equal_to_count_and_a_sum() {
    let server = Server::start();
    for seconds in [0.0005, 0.003, 0.003, 0.2, 7.0, 7200.0] {
        server.metrics.delivery_latency.observe(seconds);
    }
    let (_, _, body) = server.get("/metrics");
    let name = "shopify_events_delivery_latency_seconds";
    let bucket = |le: &str| value(&body, &format!("{name}_bucket"), &format!(",le=\"{le}\""));
    let expected = [
        ("0.001", 1.0),
        ("0.005", 3.0),
        ("0.01", 3.0),
        ("0.05", 3.0),
        ("0.1", 3.0),
        ("0.5", 4.0),
        ("1", 4.0),
        ("5", 4.0),
        ("10", 5.0),
        ("60", 5.0),
        ("300", 5.0),
        ("900", 5.0),
        ("3600", 5.0),
        ("+Inf", 6.0),
    ];
    for (le, count) in expected {
        assert_eq!(bucket(le), count, "le={le}");
    }
    assert_eq!(value(&body, &format!("{name}_count"), ""), 6.0);
    let sum = value(&body, &format!("{name}_sum"), "");
    assert!((sum - 7207.2065).abs() < 1e-6, "sum {sum}");
}

#[test]
fn health_is_200_or_503_as_the_check_reports() {
    let server = Server::start();
    let (status, _, body) = server.get("/health");
    assert_eq!((status, body.as_str()), (200, "ok producing\n"));
    server.healthy.store(false, Ordering::Relaxed);
    let (status, _, body) = server.get("/health");
    assert_eq!(status, 503);
    assert!(body.contains("kafka unreachable for 42s"), "{body}");
}

#[test]
fn unknown_path_is_404_and_other_methods_are_405() {
    let server = Server::start();
    assert_eq!(server.get("/nope").0, 404);
    let (status, head, _) = server.send("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"), "{head}");
    assert_eq!(
        server.get("/metrics?name[]=x").0,
        200,
        "a query string is ignored"
    );
}

#[test]
fn head_request_gets_the_headers_without_a_body() {
    let server = Server::start();
    let (status, head, body) = server.send("HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(!head.contains("Content-Length: 0"), "{head}");
    assert_eq!(body, "");
}

#[test]
fn oversized_or_malformed_requests_are_refused() {
    let server = Server::start();
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(server.send(&huge).0, 431);
    assert_eq!(server.send("hello\r\n\r\n").0, 400);
}

#[test]
fn silent_client_does_not_block_the_next_one() {
    let server = Server::start();
    let _silent = TcpStream::connect(server.addr).unwrap();
    // Let the server pick the silent connection first.
    std::thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(server.get("/health").0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn setting_shutdown_alone_stops_the_server_within_its_one_second_poll() {
    let mut server = Server::start();
    assert_eq!(server.get("/health").0, 200);
    server.shutdown.store(true, Ordering::Relaxed);
    let thread = server.thread.take().unwrap();
    let started = Instant::now();
    while !thread.is_finished() {
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "server still running after 1.5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    thread.join().unwrap();
}

#[test]
fn bind_refuses_a_public_address_unless_allowed() {
    let err = metrics::bind("0.0.0.0:0", false).unwrap_err();
    assert!(matches!(err, MetricsError::NotLoopback { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("0.0.0.0:0"), "{message}");
    assert!(message.contains("--metrics-allow-public"), "{message}");
    metrics::bind("0.0.0.0:0", true).expect("public when allowed");
}

#[test]
fn bind_accepts_loopback() {
    let listener = metrics::bind("127.0.0.1:0", false).unwrap();
    assert!(listener.local_addr().unwrap().ip().is_loopback());
}

#[test]
fn snapshot_serialises_as_plain_numbers() {
    let m = DrainMetrics::for_queue(0x5345_5600);
    m.produced.add(3);
    m.delivery_latency.observe(0.002);
    let json = serde_json::to_value(m.snapshot()).unwrap();
    assert_eq!(json["produced"], 3);
    assert_eq!(json["delivery_latency"]["count"], 1);
    assert_eq!(json["delivery_latency"]["buckets"][1]["le"], 0.005);
    assert_eq!(json["delivery_latency"]["buckets"][1]["count"], 1);
}

#[test]
fn the_proxy_metrics_are_served_by_the_same_server_through_their_render_callback() {
    let listener = metrics::bind("127.0.0.1:0", false).unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(ProxyMetrics::for_queue(0x5345_5600));
    counters.events_enqueued.add(7);
    let render = {
        let counters = counters.clone();
        Arc::new(move |out: &mut String| counters.render(out))
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    let health = Arc::new(|| Health::ok("proxy running"));
    let thread = metrics::serve(listener, render, health, shutdown.clone()).unwrap();
    let get = |path: &str| net::get(&addr.to_string(), path).expect("a response");
    let metrics = get("/metrics");
    assert_eq!(metrics.status, 200, "{metrics:?}");
    let series = format!("shopify_events_proxy_events_enqueued_total{{{LABEL}}} 7");
    assert!(metrics.body.contains(&series), "{}", metrics.body);
    let health = get("/health");
    assert_eq!(
        (health.status, &health.body[..]),
        (200, "ok proxy running\n")
    );
    shutdown.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

/// A server idle in `poll(2)`, on loopback, rendering nothing.
fn idle_server(shutdown: &Arc<AtomicBool>) -> metrics::Serving {
    let listener = metrics::bind("127.0.0.1:0", false).unwrap();
    let render = Arc::new(|_: &mut String| {});
    let health = Arc::new(|| Health::ok("idle"));
    let serving = metrics::serve(listener, render, health, shutdown.clone()).unwrap();
    // Asleep in its poll by now.
    std::thread::sleep(Duration::from_millis(100));
    serving
}

#[test]
fn join_wakes_an_idle_server_at_once() {
    // Idle, the server wakes only once a second by itself (each wake-up is
    // idle CPU): stopping the drain must not wait for that.
    let shutdown = Arc::new(AtomicBool::new(false));
    let serving = idle_server(&shutdown);
    shutdown.store(true, Ordering::Relaxed);
    let started = Instant::now();
    serving.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "join took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_server_dropped_without_a_join_sleeps_and_still_stops() {
    // Its wake socket's peer is gone: poll(2) would report that end of
    // stream on every call, a busy loop, unless the server lets it go.
    let shutdown = Arc::new(AtomicBool::new(false));
    let tids_before = metrics_threads();
    drop(idle_server(&shutdown));
    let tid = metrics_threads()
        .into_iter()
        .find(|t| !tids_before.contains(t))
        .expect("the server's thread");
    let before = cpu_ticks(tid);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(tid) - before;
    assert!(
        spent <= 5,
        "an idle server spent {spent} ticks of CPU in a second"
    );
    // The flag alone stops it, within its one-second poll.
    shutdown.store(true, Ordering::Relaxed);
    assert!(
        testkit::wait::wait_until(Duration::from_secs(3), || !metrics_threads().contains(&tid)),
        "the server did not stop"
    );
}

/// This process's threads named `metrics-http`.
fn metrics_threads() -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|tid: &u32| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .is_ok_and(|name| name.trim() == "metrics-http")
        })
        .collect()
}

/// utime + stime of one of this process's threads, in clock ticks.
fn cpu_ticks(tid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // Fields after the ")" that ends the name: state is the 1st, utime the
    // 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
