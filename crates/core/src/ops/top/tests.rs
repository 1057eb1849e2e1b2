//! The model of `top` on hand-made readings: rates, estimates, topics,
//! latency and process states, without a queue or a drain.

use super::*;
use crate::metrics::DrainMetrics;
use crate::ops::published::{Down, Liveness};
use crate::ops::{DrainSnapshot, ProxyCounters, ProxySnapshot};

const PID: u32 = 4242;

fn queue(depth: u64, bytes: u64, head: Head) -> Result<QueueReading, String> {
    Ok(QueueReading {
        depth,
        bytes,
        capacity: 1_000_000,
        head,
    })
}

/// A drain snapshot at `at` whose counters are those of `metrics`.
fn drain(at: f64, metrics: &DrainMetrics) -> Liveness<DrainReading> {
    let snapshot = DrainSnapshot {
        pid: PID,
        updated_at: at,
        sink: "stdout (JSON lines)".into(),
        metrics: metrics.snapshot(),
        accounting: None,
    };
    Liveness::Up {
        snapshot: snapshot.into(),
        age: 0.2,
    }
}

fn no_proxy() -> Liveness<ProxySnapshot> {
    Liveness::Down(Down::NoSnapshot)
}

fn sample(at: f64, q: Result<QueueReading, String>, d: Liveness<DrainReading>) -> Sample {
    Sample {
        at,
        queue: q,
        drain: d,
        proxy: no_proxy(),
    }
}

#[test]
fn without_a_drain_rates_are_the_queues_net_change_and_time_to_full_follows_it() {
    let mut top = Top::new(0x5345_5600);
    let down = || Liveness::Down(Down::NoSnapshot);
    top.observe(sample(100.0, queue(0, 0, Head::Empty), down()));
    let first = top.view(5).expect("view");
    assert_eq!(first.rates.basis, RateBasis::None);
    assert_eq!(first.estimates.time_to_full, Estimate::Unknown);
    // 200 events of 100 bytes a second for 2 s, nothing taken out.
    top.observe(sample(
        102.0,
        queue(400, 40_000, Head::EmittedAt(100_000_000)),
        down(),
    ));
    let v = top.view(5).expect("view");
    assert_eq!(v.rates.basis, RateBasis::Queue);
    assert_eq!(
        (v.rates.in_events, v.rates.out_events),
        (Some(200.0), Some(0.0))
    );
    assert_eq!(v.rates.in_bytes, Some(20_000.0));
    assert_eq!(v.rates.delivered_events, None);
    // 960,000 bytes of room at 20,000 bytes/s.
    assert_eq!(v.estimates.time_to_full, Estimate::Seconds(48.0));
    assert_eq!(v.estimates.full_if_drain_stops, Estimate::Seconds(48.0));
    assert_eq!(v.estimates.time_to_drain, Estimate::Never);
    let q = v.queue.expect("queue");
    assert_eq!(
        (q.oldest_age, q.oldest_source.as_str()),
        (Some(2.0), "peek")
    );
    assert_eq!(v.drain.state, ProcessState::Down);
    assert!(v.delivery.is_none() && v.topics.is_none());
}

#[test]
fn with_a_drain_out_is_its_receive_rate_and_in_adds_the_queues_growth() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    top.observe(sample(
        10.0,
        queue(100, 10_000, Head::NotPeeked),
        drain(9.5, &m),
    ));
    m.received.add(3000);
    m.produced.add(2900);
    m.topics.record("orders", 1000);
    top.observe(sample(
        11.0,
        queue(100, 10_000, Head::NotPeeked),
        drain(10.5, &m),
    ));
    // The topic counter began between the two snapshots: no byte rate yet.
    assert_eq!(top.view(5).expect("view").rates.out_bytes, None);
    m.received.add(1000);
    m.produced.add(1000);
    for _ in 0..1000 {
        m.topics.record("orders", 100);
    }
    // The queue grew by 500 events (50 kB) in 2 s while the drain took
    // 4000 in the 2 s between its snapshots.
    top.observe(sample(
        12.0,
        queue(600, 60_000, Head::NotPeeked),
        drain(11.5, &m),
    ));
    let v = top.view(5).expect("view");
    assert_eq!(v.rates.basis, RateBasis::Drain);
    assert_eq!(v.rates.out_events, Some(2000.0));
    assert_eq!(v.rates.delivered_events, Some(1950.0));
    assert_eq!(v.rates.net_events, Some(250.0));
    assert_eq!(v.rates.in_events, Some(2250.0));
    // Bytes need the topic counter in the oldest snapshot kept: not yet.
    assert_eq!(v.rates.out_bytes, None);
    assert_eq!(v.estimates.time_to_drain, Estimate::Never);
    assert_eq!(v.drain.state, ProcessState::Up);
    assert_eq!(v.drain.pid, Some(PID));
    assert_eq!(v.queue.expect("queue").oldest_source, "drain");
}

#[test]
fn a_shrinking_backlog_gives_time_to_drain_and_the_headroom_if_the_drain_stopped() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    m.topics.record("t", 0);
    top.observe(sample(
        0.0,
        queue(10_000, 1_000_000 - 500_000, Head::NotPeeked),
        drain(0.0, &m),
    ));
    m.received.add(3000);
    for _ in 0..3000 {
        m.topics.record("t", 100);
    }
    // Out 3000/s, queue down 1000/s: in is 2000/s (200 kB/s).
    top.observe(sample(
        1.0,
        queue(9_000, 400_000, Head::NotPeeked),
        drain(1.0, &m),
    ));
    let v = top.view(5).expect("view");
    assert_eq!(v.rates.in_events, Some(2000.0));
    assert_eq!(v.rates.in_bytes, Some(200_000.0));
    assert_eq!(v.estimates.time_to_drain, Estimate::Seconds(9.0));
    assert_eq!(v.estimates.time_to_full, Estimate::Never);
    // 600,000 bytes of room at 200,000 bytes/s.
    assert_eq!(v.estimates.full_if_drain_stops, Estimate::Seconds(3.0));
}

#[test]
fn topics_are_ranked_by_rate_and_the_rest_summed() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    for topic in ["a", "b", "c", "d"] {
        m.topics.record(topic, 10);
    }
    top.observe(sample(0.0, queue(0, 0, Head::NotPeeked), drain(0.0, &m)));
    for (topic, n) in [("a", 10), ("b", 40), ("c", 20), ("d", 5), ("e", 8)] {
        for _ in 0..n {
            m.topics.record(topic, 10);
        }
    }
    top.observe(sample(2.0, queue(0, 0, Head::NotPeeked), drain(2.0, &m)));
    let topics = top.view(2).expect("view").topics.expect("topics");
    let names: Vec<(&str, f64)> = topics
        .top
        .iter()
        .map(|t| (t.topic.as_str(), t.events))
        .collect();
    assert_eq!(names, [("b", 20.0), ("c", 10.0)]);
    let rest = topics.rest.expect("rest");
    assert_eq!(rest.topic, "3 more");
    // a 10 + d 5 + e 8 (new since the first snapshot) over 2 s.
    assert_eq!(rest.events, 11.5);
    assert_eq!(rest.bytes, 115.0);
}

#[test]
fn latency_quantiles_cover_only_the_deliveries_of_the_window() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    for _ in 0..100 {
        m.delivery_latency.observe(30.0);
    }
    top.observe(sample(0.0, queue(0, 0, Head::NotPeeked), drain(0.0, &m)));
    assert_eq!(
        top.view(1).expect("view").delivery.expect("delivery").p50,
        None
    );
    for _ in 0..100 {
        m.delivery_latency.observe(0.003);
    }
    m.in_flight.set(7);
    top.observe(sample(1.0, queue(0, 0, Head::NotPeeked), drain(1.0, &m)));
    let d = top.view(1).expect("view").delivery.expect("delivery");
    let (p50, p99) = (d.p50.expect("p50"), d.p99.expect("p99"));
    assert!(p50 > 0.001 && p50 <= 0.005, "{p50}");
    assert!(
        p99 <= 0.005,
        "the 30 s deliveries before the window leaked in: {p99}"
    );
    assert_eq!(d.in_flight, 7);
}

#[test]
fn a_restarted_drain_starts_its_rates_afresh() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    m.received.add(1_000_000);
    top.observe(sample(0.0, queue(0, 0, Head::NotPeeked), drain(0.0, &m)));
    let fresh = DrainMetrics::new(&[]);
    fresh.received.add(10);
    let mut restarted = drain(1.0, &fresh);
    if let Liveness::Up { snapshot, .. } = &mut restarted {
        snapshot.snapshot.pid = PID + 1;
    }
    top.observe(sample(1.0, queue(0, 0, Head::NotPeeked), restarted));
    let v = top.view(1).expect("view");
    assert_eq!(v.rates.out_events, None, "no rate across a restart");
    assert_eq!(v.drain.pid, Some(PID + 1));
}

#[test]
fn sections_the_drain_reports_later_are_shown_when_present() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    let mut d = drain(0.0, &m);
    if let Liveness::Up { snapshot, .. } = &mut d {
        snapshot.spool = Some(SpoolBacklog {
            segments: 3,
            bytes: 4096,
            oldest_age: 12.0,
        });
        snapshot.accounting = Some(LossAccounting {
            gaps: 1,
            duplicates: 2,
        });
    }
    top.observe(sample(0.0, queue(0, 0, Head::NotPeeked), d));
    let v = top.view(1).expect("view");
    assert_eq!(v.spool.map(|s| s.segments), Some(3));
    assert_eq!(v.accounting.map(|a| a.gaps), Some(1));
    let line = v.line();
    assert!(
        line.contains(" spool_segments=3 spool_bytes=4.0KiB spool_oldest=12s"),
        "{line}"
    );
    assert!(line.contains(" gaps=1 duplicates=2"), "{line}");
}

#[test]
fn the_spool_backlog_comes_from_the_drains_own_metrics() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    m.spool_backlog_segments.set(2);
    m.spool_backlog_bytes.set(8192);
    m.spool_oldest_event_age.set(7.0);
    top.observe(sample(0.0, queue(0, 0, Head::NotPeeked), drain(0.0, &m)));
    let v = top.view(1).expect("view");
    assert_eq!(
        v.spool,
        Some(SpoolBacklog {
            segments: 2,
            bytes: 8192,
            oldest_age: 7.0
        })
    );
    assert!(
        v.line()
            .contains(" spool_segments=2 spool_bytes=8.0KiB spool_oldest=7.0s"),
        "{}",
        v.line()
    );
}

#[test]
fn stale_and_exited_processes_say_so_and_a_live_proxy_shows_its_traffic() {
    let mut top = Top::new(1);
    let m = DrainMetrics::new(&[]);
    let stale = match drain(0.0, &m) {
        Liveness::Up { snapshot, .. } => Liveness::Stale {
            snapshot,
            age: 42.0,
        },
        other => other,
    };
    let proxy = |at: f64, events: u64| Liveness::Up {
        snapshot: ProxySnapshot {
            pid: 77,
            updated_at: at,
            listeners: vec!["tcp://127.0.0.1:7070".into()],
            counters: ProxyCounters {
                connections_open: 3,
                // A quarter went to the proxy's spool: the rate counts both.
                events_enqueued: events - events / 4,
                bytes_enqueued: (events - events / 4) * 50,
                events_spooled: events / 4,
                bytes_spooled: events / 4 * 50,
                ..ProxyCounters::default()
            },
        },
        age: 0.5,
    };
    for (at, events) in [(0.0, 0), (2.0, 800)] {
        top.observe(Sample {
            at,
            queue: queue(5, 500, Head::EmittedAt(-10_000_000)),
            drain: stale.clone(),
            proxy: proxy(at, events),
        });
    }
    let v = top.view(1).expect("view");
    assert_eq!(v.drain.state, ProcessState::Stale);
    assert!(v.drain.detail.contains("42s"), "{}", v.drain.detail);
    assert!(
        v.delivery.is_none(),
        "a stale drain's counters are not rates"
    );
    // A stale drain does not report the head: top peeked it.
    assert_eq!(v.queue.as_ref().expect("queue").oldest_source, "peek");
    let traffic = v.proxy_traffic.as_ref().expect("proxy traffic");
    assert_eq!((traffic.connections_open, traffic.events), (3, Some(400.0)));
    assert_eq!(traffic.bytes, Some(20_000.0));
    assert_eq!(v.proxy.detail, "tcp://127.0.0.1:7070");
    let line = v.line();
    assert!(
        line.contains(" drain=stale drain_pid=4242 proxy=up"),
        "{line}"
    );

    let mut gone = Top::new(1);
    gone.observe(Sample {
        at: 0.0,
        queue: Err("queue 0x00000001 does not exist".into()),
        drain: Liveness::Down(Down::Exited { pid: 9, age: 300.0 }),
        proxy: no_proxy(),
    });
    let v = gone.view(1).expect("view");
    assert_eq!(v.drain.detail, "exited; last snapshot 5m00s ago");
    assert!(v.queue.is_none());
    assert_eq!(v.estimates.time_to_full, Estimate::Unknown);
    assert!(
        v.line().contains(" depth=- error=queue_unreadable"),
        "{}",
        v.line()
    );
}

#[test]
fn the_drains_loss_accounting_reaches_top_as_missing_and_duplicates() {
    let m = DrainMetrics::new(&[]);
    let mut snapshot = DrainSnapshot::now("stdout".into(), m.snapshot());
    let mut accounting = crate::accounting::AccountingSnapshot::default();
    accounting.totals.gaps = 5;
    accounting.totals.late = 2;
    accounting.missing = 3;
    accounting.totals.duplicates = 4;
    snapshot.accounting = Some(accounting);
    let reading = DrainReading::from(snapshot);
    assert_eq!(
        reading.accounting,
        Some(LossAccounting {
            gaps: 3,
            duplicates: 4
        })
    );
}

#[test]
fn a_snapshot_with_a_huge_topic_table_is_ranked_without_a_quadratic_walk() {
    // A drain counts 64 topics; a hostile or corrupt snapshot may list
    // 50,000. Matching old and new by a scan per topic was 1.25e9 string
    // comparisons per refresh: `top` froze.
    let table = |events: u64| crate::metrics::TopicsSnapshot {
        topics: (0..50_000u64)
            .map(|i| crate::metrics::TopicCount {
                topic: format!("topic.{i:06}"),
                events: events + i,
                bytes: 10 * (events + i),
            })
            .collect(),
        other_events: 0,
        other_bytes: 0,
    };
    let metrics = DrainMetrics::new(&[]);
    let mut top = Top::new(1);
    for (at, events) in [(1.0, 0), (2.0, 100)] {
        let mut reading = drain(at, &metrics);
        if let Liveness::Up { snapshot, .. } = &mut reading {
            snapshot.snapshot.metrics.topics = Some(table(events));
        }
        top.observe(sample(at, queue(0, 0, Head::NotPeeked), reading));
    }
    let started = std::time::Instant::now();
    let topics = top.view(3).expect("view").topics.expect("topics");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "ranking took {:?}",
        started.elapsed()
    );
    assert_eq!(topics.top.len(), 3);
    assert_eq!(topics.top[0].events, 100.0);
    assert_eq!(topics.rest.expect("rest").topic, "49997 more");
}
