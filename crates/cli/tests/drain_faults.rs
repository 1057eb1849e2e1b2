//! The drain against faults of its own files and of its restart (issue 9,
//! items 1, 2 and 5), with the real binary:
//!
//! - a damaged journal with pending records is refused, loudly (file and
//!   positions in the log), untouched, and opened only with
//!   `--discard-damaged-journal`, which is logged and counted;
//! - dead letters that cannot be written go to the log in full and are
//!   counted, and valid events keep flowing; logging them is rate-limited;
//! - a restart after a crash sends what the journal holds under
//!   `--max-in-flight`, and a full producer queue is retried without a busy
//!   loop.
//!
//! Kafka is unreachable where events must stay pending (a port nobody
//! listens on); elsewhere the stdout sink delivers. Needs root (queue
//! capacity).

mod drain_spool_support;

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use drain_spool_support::{spec, Dirs};
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::events::event_frame;
use testkit::net::free_port;
use testkit::procfs::{clock_ticks_per_second, cpu_ticks};
use testkit::queue::TestQueue;
use testkit::wait::{serial, wait_until};

fn unreachable() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn send_events(queue: &TestQueue, n: usize) {
    let mut frame = Vec::new();
    for i in 0..n {
        event_frame(&mut frame, "faults", None, format!("event {i}").as_bytes());
        queue.try_send_frame(&frame).expect("send");
    }
}

/// Leaves `n` events pending in the journal: a drain with Kafka
/// unreachable receives them, and is killed.
fn pending_journal(spec: &DrainSpec, queue: &TestQueue, n: usize, extra: &[&str]) {
    let mut drain = spec
        .clone()
        .brokers(&unreachable())
        .args(extra.iter().copied())
        .spawn(100);
    send_events(queue, n);
    assert!(
        wait_until(Duration::from_secs(30), || queue.depth() == 0),
        "the drain did not receive\n{}",
        drain.log_text()
    );
    sleep(Duration::from_millis(200));
    drain.kill9();
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Data offsets of the journal's first records, walking the slots from 0.
fn record_positions(path: &Path, n: usize) -> Vec<u64> {
    let file = std::fs::read(path).unwrap();
    let mut at = 0u64;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(at);
        let len = read_u64(&file, 4096 + at as usize) & 0xffff_ffff;
        at += 8 + ((len + 7) & !7);
    }
    out
}

fn wait_exit(drain: &mut DrainProcess) -> std::process::ExitStatus {
    drain
        .wait_timeout(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the drain did not exit\n{}", drain.log_text()))
}

#[test]
fn a_journal_damaged_before_pending_records_is_refused_loudly_until_the_operator_allows_it() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(1 << 20);
    let dirs = Dirs::new("drain-faults-journal-");
    let base = spec(&queue, &dirs);
    pending_journal(&base, &queue, 10, &[]);
    let journal = base.state().journal();
    let positions = record_positions(&journal, 10);
    // The fourth record's slot becomes a word that is no record and no
    // message type.
    let mut bytes = std::fs::read(&journal).unwrap();
    let at = 4096 + positions[3] as usize;
    bytes[at..at + 8].copy_from_slice(&(-3i64).to_ne_bytes());
    std::fs::write(&journal, &bytes).unwrap();

    let mut refused = base.clone().args(["--sink", "stdout"]).spawn(0);
    let status = wait_exit(&mut refused);
    let log = refused.log_text();
    assert!(!status.success(), "started over a damaged journal\n{log}");
    assert!(log.contains(&journal.display().to_string()), "{log}");
    assert!(log.contains(&format!("position {}", positions[3])), "{log}");
    assert!(log.contains("6 record headers"), "{log}");
    assert!(log.contains("--discard-damaged-journal"), "{log}");
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        bytes,
        "the refused journal is untouched"
    );
    assert!(refused.stdout_text().is_empty());

    let mut allowed = base
        .clone()
        .args(["--sink", "stdout", "--discard-damaged-journal"])
        .with_metrics()
        .spawn(1);
    allowed.wait_serving(Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(10), || allowed
            .stdout_text()
            .lines()
            .count()
            >= 3),
        "{}",
        allowed.log_text()
    );
    let log = allowed.log_text();
    assert!(
        log.contains(&format!(
            "bytes that are no record at position {}",
            positions[3]
        )),
        "{log}"
    );
    assert!(log.contains("given up"), "{log}");
    let metrics = allowed.scrape().expect("metrics");
    assert_eq!(
        metrics.get("shopify_events_journal_damaged_total"),
        Some(&1.0)
    );
    assert_eq!(
        allowed.stdout_text().lines().count(),
        3,
        "the records before the damage"
    );
}

#[test]
fn a_journal_whose_header_was_wiped_is_refused_not_recreated() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(1 << 20);
    let dirs = Dirs::new("drain-faults-wiped-");
    let base = spec(&queue, &dirs);
    pending_journal(&base, &queue, 10, &[]);
    let journal = base.state().journal();
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[..8].fill(0);
    std::fs::write(&journal, &bytes).unwrap();
    let mut refused = base.clone().args(["--sink", "stdout"]).spawn(0);
    assert!(!wait_exit(&mut refused).success());
    let log = refused.log_text();
    assert!(log.contains("magic is zero"), "{log}");
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        bytes,
        "never set_len(0) over pending records"
    );
}

#[test]
fn dead_letters_that_cannot_be_written_go_to_the_log_and_valid_events_keep_flowing() {
    const VALID: usize = 300;
    let _serial = serial();
    let queue = TestQueue::with_capacity(1 << 20);
    let dirs = Dirs::new("drain-faults-dead-");
    let base = spec(&queue, &dirs);
    // Every write to the dead-letter file fails (ENOSPC).
    std::fs::create_dir_all(dirs.state()).unwrap();
    std::os::unix::fs::symlink("/dev/full", base.state().dead_letters()).unwrap();
    let mut garbage = 1i64.to_ne_bytes().to_vec();
    garbage.extend_from_slice(b"no envelope, sent by a hostile or broken process");
    queue.try_send_frame(&garbage).unwrap();
    send_events(&queue, VALID);

    // A window of 10 holds at most 40 events: an event pinned by a dead
    // letter that keeps failing would stop the rest.
    let mut drain = base
        .clone()
        .args(["--sink", "stdout", "--max-in-flight", "10"])
        .with_metrics()
        .spawn(0);
    drain.wait_serving(Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(20), || drain
            .stdout_text()
            .lines()
            .count()
            >= VALID),
        "{} of {VALID} valid events delivered\n{}",
        drain.stdout_text().lines().count(),
        drain.log_text()
    );
    let log = drain.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("cannot write dead letter"))
        .unwrap_or_else(|| panic!("no fallback line\n{log}"));
    let json = line
        .split("the dead letter in full: ")
        .nth(1)
        .expect("the line");
    let dead: serde_json::Value = serde_json::from_str(json).expect("the dead letter as JSON");
    assert!(dead["reason"]
        .as_str()
        .unwrap()
        .contains("malformed envelope"));
    assert!(dead["envelope_base64"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let metrics = drain.scrape().expect("metrics");
    assert_eq!(
        metrics.get("shopify_events_dead_letter_failures_total"),
        Some(&1.0)
    );
    assert_eq!(
        metrics.get("shopify_events_dead_lettered_total"),
        Some(&1.0)
    );
}

#[test]
fn a_flood_of_dead_letters_is_written_whole_and_logged_within_a_budget() {
    const BAD: usize = 200;
    let _serial = serial();
    let queue = TestQueue::with_capacity(1 << 20);
    let dirs = Dirs::new("drain-faults-flood-");
    let base = spec(&queue, &dirs);
    for i in 0..BAD {
        let mut garbage = 1i64.to_ne_bytes().to_vec();
        garbage.extend_from_slice(format!("garbage {i}").as_bytes());
        queue.try_send_frame(&garbage).unwrap();
    }
    let mut drain = base.clone().args(["--sink", "stdout"]).spawn(0);
    let path = base.state().dead_letters();
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read_to_string(&path)
            .is_ok_and(|t| t.lines().count() == BAD)),
        "{}",
        drain.log_text()
    );
    drain.assert_running();
    let logged = drain
        .log_text()
        .lines()
        .filter(|l| l.contains("dead-lettered event"))
        .count();
    assert!(
        logged <= 10,
        "{logged} dead-letter lines logged in the first minute"
    );
}

#[test]
fn a_restart_after_a_crash_sends_the_journal_under_max_in_flight_without_a_busy_loop() {
    const PENDING: usize = 20_000;
    let _serial = serial();
    let queue = TestQueue::with_capacity(16 << 20);
    let dirs = Dirs::new("drain-faults-recover-");
    let base = spec(&queue, &dirs);
    pending_journal(&base, &queue, PENDING, &["--max-in-flight", "50000"]);

    let mut small = base
        .clone()
        .brokers(&unreachable())
        .args(["--max-in-flight", "100"])
        .with_metrics()
        .spawn(0);
    small.wait_serving(Duration::from_secs(20));
    sleep(Duration::from_millis(1500));
    let metrics = small.scrape().expect("metrics");
    assert_eq!(
        metrics.get("shopify_events_recovered_total"),
        Some(&(PENDING as f64))
    );
    let in_flight = metrics["shopify_events_in_flight"];
    assert!(
        in_flight <= 100.0,
        "{in_flight} in flight with --max-in-flight 100"
    );
    small.kill9();

    // librdkafka takes 1,000 and refuses the rest: what it refuses waits,
    // it is not sent again in a loop.
    let mut refused = base
        .clone()
        .brokers(&unreachable())
        .args([
            "--max-in-flight",
            "20000",
            "--kafka",
            "queue.buffering.max.messages=1000",
        ])
        .with_metrics()
        .spawn(1);
    refused.wait_serving(Duration::from_secs(20));
    sleep(Duration::from_secs(1));
    let pid = refused.pid();
    let (ticks, at) = (cpu_ticks(pid).unwrap(), Instant::now());
    sleep(Duration::from_secs(3));
    let used = (cpu_ticks(pid).unwrap() - ticks) as f64 / clock_ticks_per_second() as f64;
    let share = used / at.elapsed().as_secs_f64();
    let metrics = refused.scrape().expect("metrics");
    // The 1,000 librdkafka holds and the one it refused.
    assert!(
        metrics["shopify_events_in_flight"] <= 1001.0,
        "{} in flight past librdkafka's queue",
        metrics["shopify_events_in_flight"]
    );
    assert!(
        share < 0.2,
        "the drain used {:.0} % of a core waiting for room in librdkafka's queue",
        share * 100.0
    );
    refused.assert_running();
    eprintln!(
        "{PENDING} recovered events: at most 100 in flight with --max-in-flight 100; {:.1} % of a \
         core while librdkafka's queue was full",
        share * 100.0
    );
}
