//! The spool under faults, against Tansu and real processes: the drain
//! killed with `kill -9` ten times while it ingests spool files (live
//! writers among them) loses nothing; writers killed mid-record and the
//! drain killed mid-file lose nothing published and deliver nothing torn;
//! a writer that never exits still has its old segments deleted; a spool
//! on a tiny, full tmpfs drops clearly and delivers what it took; a damaged
//! record is logged and counted, the events before it delivered. Needs
//! root (queue capacity, mounting a tmpfs) and a tansu binary.

mod drain_spool_support;

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use drain_spool_support::{check, consume_distinct, reported, spec, Dirs};
use testkit::consume::unique_topic;
use testkit::emitter::{Emitter, EmitterSpec, Route};
use testkit::queue::TestQueue;
use testkit::rng::XorShift;
use testkit::tansu::Tansu;
use testkit::wait::{serial, wait_until};

#[test]
#[ignore = "not a test: the emitting process the spool tests start (testkit::emitter)"]
fn emitter_process() {
    testkit::emitter::main();
}

fn spool_files(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

#[test]
fn drain_killed_ten_times_while_ingesting_spool_files_loses_nothing() {
    const KILLS: usize = 10;
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let topic = unique_topic("spoolkill");
    tansu.create_topic(&topic, 3);
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-spool-kill-");
    let drain_spec = spec(&queue, &dirs).brokers(&tansu.bootstrap);
    // 60,000 events spooled before the drain starts, and two writers that
    // keep appending while it is killed and restarted.
    let mut specs: Vec<EmitterSpec> = (0..2)
        .map(|proc| {
            let mut s = EmitterSpec::new(
                queue.key(),
                &dirs.spool(),
                &topic,
                proc,
                30_000,
                dirs.root(),
            );
            s.route = Route::Spool;
            s
        })
        .collect();
    for s in &specs {
        s.spawn().wait(Duration::from_secs(60));
    }
    let live: Vec<EmitterSpec> = (2..4)
        .map(|proc| {
            let mut s = EmitterSpec::new(
                queue.key(),
                &dirs.spool(),
                &topic,
                proc,
                20_000,
                dirs.root(),
            );
            s.route = Route::Spool;
            s.pace = 100;
            s.pause_ms = 5;
            s
        })
        .collect();
    let mut writers: Vec<Emitter> = live.iter().map(EmitterSpec::spawn).collect();
    specs.extend(live);

    let mut drain = drain_spec.spawn(0);
    let mut rng = XorShift(0x5eed_5e00_0001);
    for n in 1..=KILLS {
        sleep(Duration::from_millis(rng.range(300, 1200)));
        drain.assert_running();
        drain.kill9();
        drain = drain_spec.spawn(n);
    }
    for writer in &mut writers {
        writer.wait(Duration::from_secs(120));
    }
    let expected = reported(&specs);
    assert_eq!(expected, 100_000);
    let records = consume_distinct(&tansu.bootstrap, &topic, expected, Duration::from_secs(180));
    drain.assert_running();
    let checked = check(&records, &specs, false);
    assert_eq!(checked.distinct, expected);
    eprintln!(
        "{expected} spooled events, {KILLS} kill -9s of the drain: 0 lost, {} duplicates; test \
         took {:?}",
        checked.duplicates,
        started.elapsed()
    );
}

#[test]
fn writers_killed_mid_record_and_the_drain_mid_file_lose_nothing_published_and_nothing_torn() {
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("tornwriter");
    tansu.create_topic(&topic, 3);
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-spool-torn-");
    let drain_spec = spec(&queue, &dirs).brokers(&tansu.bootstrap).with_metrics();
    let mut drain = drain_spec.spawn(0);
    let mut rng = XorShift(0x7041_7041);
    let mut specs = Vec::new();
    // Every other event is 256 KiB: most of a writer's time goes into
    // copying, so most kills land mid-record.
    for round in 0..6u32 {
        let writers: Vec<EmitterSpec> = (0..2)
            .map(|n| {
                let mut s = EmitterSpec::new(
                    queue.key(),
                    &dirs.spool(),
                    &topic,
                    round * 2 + n,
                    1_000_000,
                    dirs.root(),
                );
                s.route = Route::Spool;
                s.payload_sizes = vec![300, 256 << 10];
                s.segments = (1 << 20, 4 << 20);
                s
            })
            .collect();
        let mut running: Vec<Emitter> = writers.iter().map(EmitterSpec::spawn).collect();
        sleep(Duration::from_millis(rng.range(150, 600)));
        for writer in &mut running {
            writer.kill9();
        }
        if round % 2 == 1 {
            drain.kill9();
            drain = drain_spec.spawn(round as usize);
        }
        specs.extend(writers);
    }
    let expected = reported(&specs);
    assert!(expected > 100, "the writers wrote little: {expected}");
    let records = consume_distinct(&tansu.bootstrap, &topic, expected, Duration::from_secs(180));
    let checked = check(&records, &specs, false);
    drain.wait_serving(Duration::from_secs(10));
    let metrics = drain.scrape().expect("metrics");
    assert_eq!(
        metrics.get("shopify_events_spool_damaged_total").copied(),
        Some(0.0),
        "a torn tail is no damage: it was never published\n{}",
        drain.log_text()
    );
    eprintln!(
        "12 writers killed mid-stream, the drain killed 3 times: {expected} reported events and \
         {} published ones arrived whole ({} duplicates)",
        checked.distinct, checked.duplicates
    );
}

#[test]
fn a_writer_that_never_exits_has_its_old_segments_deleted() {
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("holder");
    tansu.create_topic(&topic, 1);
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-spool-holder-");
    let mut drain = spec(&queue, &dirs).brokers(&tansu.bootstrap).spawn(0);
    let mut holder = EmitterSpec::new(queue.key(), &dirs.spool(), &topic, 0, 20_000, dirs.root());
    holder.route = Route::Spool;
    holder.segments = (64 << 10, 256 << 10);
    holder.hold = true;
    let mut writer = holder.spawn();
    assert!(
        wait_until(Duration::from_secs(60), || writer
            .log_text()
            .contains("holding")),
        "{}",
        writer.log_text()
    );
    let records = consume_distinct(&tansu.bootstrap, &topic, 20_000, Duration::from_secs(60));
    check(&records, std::slice::from_ref(&holder), true);
    assert!(
        wait_until(Duration::from_secs(10), || spool_files(
            &dirs.spool(),
            ".seg"
        )
        .len()
            == 1),
        "a live writer keeps only its active segment: {:?}",
        spool_files(&dirs.spool(), ".seg")
    );
    assert!(!writer.finished(), "the writer is still alive");
    writer.kill9();
    assert!(
        wait_until(Duration::from_secs(10), || spool_files(
            &dirs.spool(),
            ".seg"
        )
        .is_empty()),
        "its last segment goes once it died: {:?}",
        spool_files(&dirs.spool(), ".seg")
    );
    drain.assert_running();
}

/// A tmpfs of `size` mounted at `path` for the test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a tmpfs at {} (needs root)",
            path.display()
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_spool_on_a_full_tiny_tmpfs_drops_clearly_and_delivers_what_it_took() {
    let _serial = serial();
    let tansu = Tansu::start();
    let topic = unique_topic("tmpfs");
    tansu.create_topic(&topic, 1);
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-spool-tmpfs-");
    let mount = dirs.root().join("tiny");
    let _tmpfs = Tmpfs::mount(&mount, "4m");
    // The bound of the spool is the disk here, not spool_max_bytes.
    let mut full = EmitterSpec::new(queue.key(), &mount, &topic, 0, 40_000, dirs.root());
    full.max_bytes = Some(u64::MAX);
    full.pace = 1000;
    full.spawn().wait(Duration::from_secs(60));
    let emitted = testkit::emitter::read_emitted(&full.ids_file(), 0);
    let dropped = emitted.iter().filter(|e| e.via == 'd').count();
    let spooled = emitted.iter().filter(|e| e.via == 's').count();
    assert!(
        dropped > 0 && spooled > 1000,
        "spooled {spooled}, dropped {dropped}"
    );

    let mut drain = spec(&queue, &dirs)
        .spool_dir(&mount)
        .brokers(&tansu.bootstrap)
        .spawn(0);
    let expected = reported(std::slice::from_ref(&full));
    let records = consume_distinct(&tansu.bootstrap, &topic, expected, Duration::from_secs(60));
    check(&records, std::slice::from_ref(&full), true);
    // Delivered segments are deleted: the spool takes events again.
    assert!(
        wait_until(Duration::from_secs(10), || spool_files(&mount, ".seg")
            .is_empty()),
        "{:?}",
        spool_files(&mount, ".seg")
    );
    let mut again = EmitterSpec::new(queue.key(), &mount, &topic, 1, 1000, dirs.root());
    again.route = Route::Spool;
    again.max_bytes = Some(u64::MAX);
    again.spawn().wait(Duration::from_secs(30));
    let all = [full, again];
    let records = consume_distinct(
        &tansu.bootstrap,
        &topic,
        expected + 1000,
        Duration::from_secs(60),
    );
    check(&records, &all, true);
    drain.assert_running();
    eprintln!("tmpfs of 4 MiB: {spooled} spooled, {dropped} dropped, all spooled delivered");
}

#[test]
fn a_damaged_spool_record_is_logged_and_counted_and_the_events_before_it_delivered() {
    let _serial = serial();
    let queue = TestQueue::with_capacity(64 << 10);
    let dirs = Dirs::new("drain-spool-damage-");
    let mut writer = EmitterSpec::new(queue.key(), &dirs.spool(), "damage", 0, 100, dirs.root());
    writer.route = Route::Spool;
    writer.spawn().wait(Duration::from_secs(30));
    let segments = spool_files(&dirs.spool(), ".seg");
    assert_eq!(segments.len(), 1, "{segments:?}");
    // One flipped byte in the middle of the data: a record there fails its
    // checks (its header's check word, or its envelope's CRC32C).
    let path = dirs.spool().join(&segments[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = 4096 + 100 * 280 / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let mut drain = spec(&queue, &dirs)
        .args(["--sink", "stdout"])
        .with_metrics()
        .spawn(0);
    drain.wait_serving(Duration::from_secs(20));
    let damaged = format!("{}.damaged", segments[0]);
    assert!(
        wait_until(Duration::from_secs(10), || spool_files(
            &dirs.spool(),
            ".damaged"
        ) == [damaged.clone()]),
        "the segment is set aside once what came before the damage is delivered: {:?}\n{}",
        spool_files(&dirs.spool(), ""),
        drain.log_text()
    );
    let delivered = drain.stdout_text().lines().count();
    assert!((1..100).contains(&delivered), "{delivered} delivered");
    let log = drain.log_text();
    assert!(
        log.contains(&format!("{} damaged at data offset", path.display())),
        "{log}"
    );
    assert!(log.contains("giving up"), "{log}");
    let metrics = drain.scrape().expect("metrics");
    assert!(
        metrics["shopify_events_spool_damaged_total"] >= 1.0,
        "{metrics:?}"
    );
    assert!(
        metrics["shopify_events_spool_given_up_bytes_total"] > 0.0,
        "{metrics:?}"
    );
    drain.assert_running();
}
