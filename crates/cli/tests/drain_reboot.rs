//! Planned reboots lose nothing, against Tansu and real processes:
//!
//! - the queue: filled while Kafka is unreachable, the drain stopped with
//!   SIGTERM and `--save-on-stop` twice (the start between cannot deliver
//!   either), the queue removed (`ipcrm`, as a reboot would), the drain
//!   started with Kafka up: every event arrives, in emit order;
//! - the same with the drain killed (`kill -9`) in the middle of its save;
//! - spool files: written and `msync`ed, partly delivered by a drain that is
//!   then killed, the page cache dropped (`echo 3 > /proc/sys/vm/drop_caches`)
//!   and the files copied to a new directory as a disk after a reboot would
//!   hold them: a drain on the copy delivers the rest.
//!
//! Needs root and a tansu binary.

mod drain_spool_support;

use std::thread::sleep;
use std::time::{Duration, Instant};

use drain_spool_support::{check, consume_distinct, spec, spool_emptied, Dirs};
use testkit::consume::unique_topic;
use testkit::drain::DrainProcess;
use testkit::emitter::{EmitterSpec, Route};
use testkit::net::free_port;
use testkit::queue::TestQueue;
use testkit::tansu::Tansu;
use testkit::wait::{serial, wait_until};

#[test]
#[ignore = "not a test: the emitting process the spool tests start (testkit::emitter)"]
fn emitter_process() {
    testkit::emitter::main();
}

/// A port nothing listens on: Kafka unreachable.
fn unreachable() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn stop(drain: &mut DrainProcess) -> String {
    let status = drain.terminate(Duration::from_secs(30));
    let log = drain.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "drain did not stop cleanly\n{log}"
    );
    log
}

/// Emits `n` events into the queue with the drain up and Kafka unreachable:
/// a small journal (256 KiB) keeps most of them in the queue.
fn fill_while_unreachable(queue: &TestQueue, dirs: &Dirs, topic: &str, n: u64) -> EmitterSpec {
    let mut emitter = EmitterSpec::new(queue.key(), &dirs.spool(), topic, 0, n, dirs.root());
    emitter.route = Route::Overflow;
    emitter.spawn().wait(Duration::from_secs(60));
    let emitted = testkit::emitter::read_emitted(&emitter.ids_file(), 0);
    assert!(
        emitted.iter().all(|e| e.via == 'q'),
        "the queue took every event"
    );
    emitter
}

#[test]
fn reboots_with_the_queue_saved_at_stop_lose_nothing_and_keep_order() {
    const N: u64 = 20_000;
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("rebootq");
    tansu.create_topic(&topic, 3);
    let queue = TestQueue::with_capacity(16 << 20);
    let dirs = Dirs::new("drain-reboot-");
    let base = spec(&queue, &dirs).args(["--journal-size", "256KiB"]);
    let unreachable_drain =
        base.clone()
            .brokers(&unreachable())
            .args(["--save-on-stop", "--shutdown-timeout", "1"]);
    // One process emits through two stops of the drain while Kafka is
    // unreachable; a small journal (256 KiB) leaves most events in the
    // queue.
    let mut drain = unreachable_drain.spawn(0);
    let mut emitter = EmitterSpec::new(queue.key(), &dirs.spool(), &topic, 0, N, dirs.root());
    emitter.pace = 100;
    emitter.pause_ms = 10;
    let mut running = emitter.spawn();
    sleep(Duration::from_millis(700));
    let log = stop(&mut drain);
    let first = saved_count(&log);
    assert!(first > 0, "the first stop saved nothing\n{log}");

    // The next start cannot deliver the saved events either, so it leaves
    // the queue alone; its stop saves the queue after them.
    let mut drain = unreachable_drain.spawn(1);
    running.wait(Duration::from_secs(60));
    let emitted = testkit::emitter::read_emitted(&emitter.ids_file(), 0);
    assert!(
        emitted.iter().all(|e| e.via == 'q'),
        "the queue took every event"
    );
    let in_queue = queue.depth();
    let log = stop(&mut drain);
    assert!(log.contains(&format!("saved {in_queue} events")), "{log}");
    assert_eq!(queue.depth(), 0, "the save emptied the queue");
    // The reboot: the kernel queue is gone.
    queue.remove().expect("ipcrm the queue");

    let mut drain = base.brokers(&tansu.bootstrap).spawn(2);
    let records = consume_distinct(
        &tansu.bootstrap,
        &topic,
        N as usize,
        Duration::from_secs(90),
    );
    let checked = check(&records, std::slice::from_ref(&emitter), true);
    assert_eq!(checked.distinct, N as usize);
    assert!(
        drain
            .log_text()
            .contains("delivering the queue saved at the last stop"),
        "{}",
        drain.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_dir(base_saved(
            &dirs
        ))
        .map(|d| d.filter(|e| e.is_ok()).count() == 0)
        .unwrap_or(true)),
        "the saved segments are deleted once delivered"
    );
    stop(&mut drain);
    eprintln!(
        "{N} events through two stops with Kafka unreachable: {first} saved at the first, \
         {in_queue} at the second, the rest in the journal; all arrived in order, {} duplicates",
        checked.duplicates
    );
}

/// N of the drain's "saved N events" line.
fn saved_count(log: &str) -> u64 {
    log.split("saved ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn base_saved(dirs: &Dirs) -> std::path::PathBuf {
    dirs.state().join("saved")
}

#[test]
fn a_drain_killed_during_its_save_loses_nothing() {
    const N: u64 = 60_000;
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("savekill");
    tansu.create_topic(&topic, 3);
    let queue = TestQueue::with_capacity(32 << 20);
    let dirs = Dirs::new("drain-savekill-");
    let base = spec(&queue, &dirs).args(["--journal-size", "256KiB"]);
    let mut drain = base
        .clone()
        .brokers(&unreachable())
        .args(["--save-on-stop", "--shutdown-timeout", "0"])
        .spawn(0);
    let emitter = fill_while_unreachable(&queue, &dirs, &topic, N);
    let before = queue.depth();
    drain.signal_term();
    // Killed once the save has taken part of the queue.
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || queue.depth() < before * 3 / 4),
        "the save did not start\n{}",
        drain.log_text()
    );
    drain.kill9();
    let left = queue.depth();
    eprintln!(
        "killed {:?} into the save with {left} of {before} events still in the queue",
        started.elapsed()
    );
    assert!(left > 0, "the save finished before the kill: emit more");

    let mut drain = base.brokers(&tansu.bootstrap).spawn(1);
    let records = consume_distinct(
        &tansu.bootstrap,
        &topic,
        N as usize,
        Duration::from_secs(120),
    );
    let checked = check(&records, std::slice::from_ref(&emitter), false);
    assert_eq!(checked.distinct, N as usize);
    stop(&mut drain);
}

#[test]
fn spool_files_written_back_and_read_after_a_reboot_lose_nothing() {
    const N: u64 = 60_000;
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("rebootspool");
    tansu.create_topic(&topic, 3);
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-reboot-spool-");
    let mut writer = EmitterSpec::new(queue.key(), &dirs.spool(), &topic, 0, N, dirs.root());
    writer.route = Route::Spool;
    writer.flush = true;
    writer.spawn().wait(Duration::from_secs(60));

    // A drain delivers part of it (its first segments are deleted) and is
    // killed mid-file.
    let segments = || std::fs::read_dir(dirs.spool()).unwrap().count();
    let written = segments();
    let base = spec(&queue, &dirs).brokers(&tansu.bootstrap);
    let mut drain = base.spawn(0);
    assert!(
        wait_until(Duration::from_secs(60), || segments() < written),
        "nothing delivered\n{}",
        drain.log_text()
    );
    drain.kill9();

    // What a disk holds after a clean reboot: written back, the page cache
    // gone, the files read from the device.
    let status = std::process::Command::new("sync").status().expect("sync");
    assert!(status.success());
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop the page cache (root)");
    let after = dirs.root().join("spool-after-reboot");
    std::fs::create_dir_all(&after).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(dirs.spool()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), after.join(entry.file_name())).unwrap();
        copied += 1;
    }
    assert!(copied > 0, "the killed drain left segments");
    sleep(Duration::from_millis(100));

    let mut drain = base.clone().spool_dir(&after).spawn(1);
    let records = consume_distinct(
        &tansu.bootstrap,
        &topic,
        N as usize,
        Duration::from_secs(90),
    );
    let checked = check(&records, std::slice::from_ref(&writer), false);
    assert_eq!(checked.distinct, N as usize);
    assert!(
        wait_until(Duration::from_secs(10), || spool_emptied(&after)),
        "the copied segments are deleted once delivered"
    );
    stop(&mut drain);
    eprintln!(
        "{N} spooled events, {copied} segments copied after the page cache was dropped: all \
         arrived, {} duplicates",
        checked.duplicates
    );
}
