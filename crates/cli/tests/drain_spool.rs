//! The drain takes the spool beside the queue, against a real broker
//! (Tansu) and real processes: emitters (this binary run again, see
//! `testkit::emitter`) overflow a 64 KiB queue into their spool files as
//! the sysv transport does, and every event arrives, in emit order per
//! key; events larger than `kernel.msgmax` go through the spool whole; a
//! spooled event is delivered within a second, from a new file and from a
//! file its writer still appends to.
//! Needs root (queue capacity) and a tansu binary (`testkit::tansu`).

mod drain_spool_support;

use std::time::{Duration, Instant};

use drain_spool_support::{check, consume_distinct, reported, spec, spool_emptied, Dirs};
use testkit::consume::unique_topic;
use testkit::emitter::{EmitterSpec, Route};
use testkit::queue::TestQueue;
use testkit::tansu::Tansu;
use testkit::wait::serial;

#[test]
#[ignore = "not a test: the emitting process the spool tests start (testkit::emitter)"]
fn emitter_process() {
    testkit::emitter::main();
}

#[test]
fn four_processes_overflowing_a_64k_queue_into_the_spool_arrive_whole_and_in_order() {
    const PER_PROCESS: u64 = 50_000;
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let topic = unique_topic("overflow");
    tansu.create_topic(&topic, 3);
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-spool-");
    let drain_spec = spec(&queue, &dirs).brokers(&tansu.bootstrap);

    // The drain is stopped: each process fills its share of the queue, then
    // spools the rest.
    let stopped: Vec<EmitterSpec> = (0..4)
        .map(|proc| {
            EmitterSpec::new(
                queue.key(),
                &dirs.spool(),
                &topic,
                proc,
                PER_PROCESS,
                dirs.root(),
            )
        })
        .collect();
    let mut running: Vec<_> = stopped.iter().map(EmitterSpec::spawn).collect();
    for emitter in &mut running {
        emitter.wait(Duration::from_secs(120));
        eprintln!("{}", emitter.log_text().trim());
    }
    let emitted_at = started.elapsed();
    let queued = queue.depth();
    assert!(queued > 0, "nothing went to the queue");
    assert_eq!(
        reported(&stopped),
        4 * PER_PROCESS as usize,
        "an event was dropped"
    );

    // The drain starts; once it delivered that, four more processes emit
    // in bursts while it runs, going back and forth between the queue and
    // the spool.
    let mut drain = drain_spec.spawn(0);
    let first = consume_distinct(
        &tansu.bootstrap,
        &topic,
        4 * PER_PROCESS as usize,
        Duration::from_secs(180),
    );
    check(&first, &stopped, true);
    assert!(
        testkit::wait::wait_until(Duration::from_secs(30), || {
            queue.depth() == 0 && spool_emptied(&dirs.spool())
        }),
        "the drain did not catch up\n{}",
        drain.log_text()
    );
    let caught_up = started.elapsed();
    let live: Vec<EmitterSpec> = (4..8)
        .map(|proc| {
            let mut spec = EmitterSpec::new(
                queue.key(),
                &dirs.spool(),
                &topic,
                proc,
                PER_PROCESS / 2,
                dirs.root(),
            );
            spec.pace = 400;
            spec.pause_ms = 50;
            spec
        })
        .collect();
    let mut running: Vec<_> = live.iter().map(EmitterSpec::spawn).collect();
    for emitter in &mut running {
        emitter.wait(Duration::from_secs(180));
        eprintln!("{}", emitter.log_text().trim());
    }
    let all: Vec<EmitterSpec> = stopped.into_iter().chain(live).collect();
    let expected = reported(&all);
    assert_eq!(expected, 6 * PER_PROCESS as usize, "an event was dropped");

    let records = consume_distinct(&tansu.bootstrap, &topic, expected, Duration::from_secs(180));
    drain.assert_running();
    let checked = check(&records, &all, true);
    assert_eq!(checked.distinct, expected);
    let log = drain.log_text();
    let status = drain.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{log}");
    eprintln!(
        "{expected} events ({queued} in the queue while the drain was stopped) emitted by \
         {emitted_at:?}, the first 200,000 delivered by {caught_up:?}; all arrived in order, {} \
         duplicates; test took {:?}",
        checked.duplicates,
        started.elapsed()
    );
    assert!(
        spool_emptied(&dirs.spool()),
        "every spool segment was deleted once delivered"
    );
}

#[test]
fn events_of_100_kib_and_900_kib_go_through_the_spool_whole() {
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("large");
    tansu.create_topic(&topic, 1);
    let queue = TestQueue::with_capacity(1 << 20);
    let dirs = Dirs::new("drain-spool-large-");
    // librdkafka refuses records above its message.max.bytes (1,000,000 by
    // default) on its own side; a 900 KiB payload (921,600 bytes, plus
    // key, headers and framing) fits under it. Tansu has no broker-side
    // limit. For events up to max_event_bytes (1 MiB) set
    // `--kafka message.max.bytes=...` and the brokers' own limit.
    let mut drain = spec(&queue, &dirs).brokers(&tansu.bootstrap).spawn(0);
    let mut large = EmitterSpec::new(queue.key(), &dirs.spool(), &topic, 0, 6, dirs.root());
    large.payload_sizes = vec![100 << 10, 900 << 10, 200];
    large.segments = (64 << 10, 4 << 20);
    large.route = Route::Overflow;
    large.spawn().wait(Duration::from_secs(30));
    let records = consume_distinct(&tansu.bootstrap, &topic, 6, Duration::from_secs(60));
    let checked = check(&records, &[large], true);
    assert_eq!(checked.distinct, 6, "{}", drain.log_text());
    let sizes: Vec<usize> = records.iter().map(|r| r.payload.len()).collect();
    assert!(sizes.contains(&(900 << 10)), "{sizes:?}");
    drain.assert_running();
}

#[test]
fn a_spooled_event_is_delivered_within_a_second_from_a_new_file_and_from_a_live_one() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-spool-latency-");
    let mut drain = spec(&queue, &dirs)
        .args(["--sink", "stdout"])
        .with_metrics()
        .spawn(0);
    drain.wait_serving(Duration::from_secs(20));
    // Two events 2 s apart from one live writer: the first in a new file,
    // the second appended to the same file while its writer lives on.
    let mut writer = EmitterSpec::new(queue.key(), &dirs.spool(), "latency", 0, 2, dirs.root());
    writer.route = Route::Spool;
    writer.pace = 1;
    writer.pause_ms = 2000;
    writer.hold = true;
    let running = writer.spawn();
    let produced = || {
        drain
            .scrape()
            .and_then(|m| m.get("shopify_events_produced_total").copied())
            .unwrap_or(0.0)
    };
    let mut latencies = Vec::new();
    for n in 1..=2 {
        assert!(
            testkit::wait::wait_until(Duration::from_secs(10), || running.emitted().len() >= n),
            "the writer did not emit\n{}",
            running.log_text()
        );
        let emitted = Instant::now();
        while produced() < n as f64 {
            assert!(
                emitted.elapsed() < Duration::from_secs(5),
                "event {n} not delivered\n{}",
                drain.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        latencies.push(emitted.elapsed());
    }
    eprintln!("spooled to delivered: {latencies:?}");
    for latency in &latencies {
        assert!(*latency < Duration::from_secs(1), "{latencies:?}");
    }
}
