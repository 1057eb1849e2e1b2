//! What a hostile or broken neighbour can write straight into the queue,
//! against the real drain binary (a debug build: arithmetic overflow
//! panics): emit times at the ends of `i64`, and garbage at a high rate
//! while valid events keep flowing. Issue 9, item 7 and the hostile-client
//! tests.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use shopify_events_core::transport::{FrameSink, SysvEmitter};
use sysvmq::Queue;
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::queue::TestQueue;
use testkit::rng::XorShift;
use testkit::sysctl::MIN_MSGMNB;
use testkit::wait::{serial, wait_until};

fn spec(queue: &TestQueue, dir: &Path) -> DrainSpec {
    let bin = env!("CARGO_BIN_EXE_shopify-events");
    DrainSpec::new(bin, queue.key(), &dir.join("state"), dir)
}

/// A queue frame for an envelope emitted at `time_us`; returns its id.
fn frame_at(frame: &mut Vec<u8>, time_us: i64, payload: &[u8]) -> String {
    SysvEmitter::new(0, 0).begin_frame(frame);
    let id = EventId::generate(time_us.max(0));
    envelope::encode(frame, id, time_us, "hostile.times", None, &[], payload).unwrap();
    id.to_string()
}

fn send(queue: &Queue, frame: &[u8]) {
    queue
        .try_send_frame(frame)
        .expect("send into the test queue");
}

/// Event ids the stdout sink printed.
fn printed_ids(drain: &DrainProcess) -> HashSet<String> {
    drain
        .stdout_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn emit_times_at_the_ends_of_i64_never_take_the_drain_down() {
    let _serial = serial();
    let queue = TestQueue::new();
    let dir = tempfile::tempdir().unwrap();
    let mut frame = Vec::new();
    let mut ids = Vec::new();
    // The oldest first: its age is what the drain's status reports each
    // second while it is in flight.
    for time in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
        ids.push(frame_at(&mut frame, time, b"{}"));
        send(&queue, &frame);
    }

    // Kafka unreachable: the events stay in flight, so the status tick
    // takes the age of the oldest (emitted at i64::MIN) every second.
    let unreachable =
        spec(&queue, dir.path()).args(["--brokers", "127.0.0.1:9", "--sink", "kafka"]);
    let mut drain = unreachable.spawn(0);
    thread::sleep(Duration::from_millis(2500));
    drain.assert_running();
    drain.kill9();

    // Delivered (stdout): every delivery's latency is taken from its emit
    // time. The journal hands the same events to the next drain.
    let mut drain = spec(&queue, dir.path()).args(["--sink", "stdout"]).spawn(1);
    assert!(
        wait_until(Duration::from_secs(20), || printed_ids(&drain).len()
            == ids.len()),
        "printed {:?} of {ids:?}\n{}",
        printed_ids(&drain),
        drain.log_text()
    );
    thread::sleep(Duration::from_millis(1500));
    drain.assert_running();
    let printed = printed_ids(&drain);
    for id in &ids {
        assert!(printed.contains(id), "{id} not delivered");
    }
}

#[test]
fn garbage_written_into_the_queue_at_a_high_rate_does_not_stop_valid_events() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(MIN_MSGMNB);
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&queue, dir.path())
        .args(["--sink", "stdout"])
        .with_metrics();
    let mut drain = spec.spawn(0);
    drain.wait_serving(Duration::from_secs(20));

    let stop = Arc::new(AtomicBool::new(false));
    let garbage = {
        let (stop, key) = (stop.clone(), queue.key());
        thread::spawn(move || {
            let queue = Queue::open(key).unwrap();
            let mut rng = XorShift(0x5eed_0009);
            let mut valid = Vec::new();
            let mut sent = 0u64;
            let mut frame = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                frame_at(&mut valid, 1_700_000_000_000_000, b"{\"valid\":true}");
                frame.clear();
                match rng.range(0, 3) {
                    // Random bytes of a random length.
                    0 => {
                        frame.extend_from_slice(&valid[..8]);
                        for _ in 0..rng.range(1, 300) {
                            frame.push(rng.next_u64() as u8);
                        }
                    }
                    // A valid envelope cut short.
                    1 => {
                        let cut = rng.range(9, valid.len() as u64 - 1) as usize;
                        frame.extend_from_slice(&valid[..cut]);
                    }
                    // One bit flipped somewhere in the envelope.
                    2 => {
                        frame.extend_from_slice(&valid);
                        let at = rng.range(8, valid.len() as u64 - 1) as usize;
                        frame[at] ^= 1 << rng.range(0, 7);
                    }
                    // An impossible total length inside.
                    _ => {
                        frame.extend_from_slice(&valid);
                        frame[8 + 4..8 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
                    }
                }
                match queue.try_send_frame(&frame) {
                    // At most some 50,000 a second: the dead letters of
                    // more only fill the test machine's disk.
                    Ok(()) if sent % 100 == 99 => {
                        sent += 1;
                        thread::sleep(Duration::from_millis(2));
                    }
                    Ok(()) => sent += 1,
                    Err(sysvmq::Error::Full { .. }) => thread::sleep(Duration::from_micros(200)),
                    Err(e) => panic!("garbage writer: {e}"),
                }
            }
            sent
        })
    };

    let mut frame = Vec::new();
    let mut valid = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        valid.push(frame_at(
            &mut frame,
            shopify_events_core::clock::now_micros(),
            b"{\"i\":1}",
        ));
        loop {
            match queue.try_send_frame(&frame) {
                Ok(()) => break,
                Err(sysvmq::Error::Full { .. }) => thread::sleep(Duration::from_micros(200)),
                Err(e) => panic!("{e}"),
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    let garbage_sent = garbage.join().unwrap();

    assert!(
        wait_until(Duration::from_secs(60), || {
            let printed = printed_ids(&drain);
            valid.iter().all(|id| printed.contains(id))
        }),
        "valid events missing after the garbage\n{}",
        drain.log_text()
    );
    drain.assert_running();
    // Every garbage message is accounted for: a flipped bit may leave a
    // valid envelope (its CRC then fails; a flip in the CRC itself too),
    // so garbage is either dead-lettered or, never, delivered.
    let printed = printed_ids(&drain);
    assert_eq!(
        printed.len(),
        valid.len(),
        "only the valid events are delivered"
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            drain
                .scrape()
                .and_then(|m| m.get("shopify_events_dead_lettered_total").copied())
                .is_some_and(|n| n as u64 == garbage_sent)
        }),
        "dead letters {:?} != {garbage_sent} garbage messages",
        drain
            .scrape()
            .map(|m| m.get("shopify_events_dead_lettered_total").copied())
    );
    eprintln!(
        "{} valid events and {garbage_sent} garbage messages in {:?}",
        valid.len(),
        started.elapsed()
    );
}
