//! One drain per queue and spool directory: a second drain given the same
//! spool directory (and its own state directory, so the state lock does not
//! stop it) would read every segment from its `acked` word and deliver it
//! again. It refuses to start, naming the directory, the holder's pid and
//! the fix; a drain killed with -9 leaves no lock behind; a drain without a
//! spool directory takes no spool lock.
//! Needs root (the queue).

mod drain_spool_support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use drain_spool_support::{spec, Dirs};
use testkit::drain::DrainSpec;
use testkit::queue::TestQueue;
use testkit::wait::{serial, wait_until};

#[test]
fn a_second_drain_on_the_same_spool_directory_refuses_to_start_until_the_first_is_killed() {
    let _serial = serial();
    let queue = TestQueue::new();
    let dirs = Dirs::new("drain-spool-lock-");
    let mut first = serving_drain(&queue, &dirs);

    let mut refused = second_drain(&queue, &dirs).spawn(1);
    let status = refused
        .wait_timeout(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the second drain runs\n{}", refused.log_text()));
    let log = refused.log_text();
    assert!(!status.success(), "{log}");
    let spool = dirs.spool().display().to_string();
    for needle in [
        spool.as_str(),
        &format!("pid {}", first.pid()),
        "one drain per queue and spool directory",
    ] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }

    // The lock follows the spool's file rules (the segments' mode for the
    // default 0660 queue), and the reader does not take it for junk.
    let lock = lock_path(&queue, &dirs);
    let mode = std::fs::metadata(&lock)
        .expect("the lock file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o660, "{}", lock.display());
    assert!(
        !first.log_text().contains("not a spool segment"),
        "{}",
        first.log_text()
    );

    // A drain without a spool directory (`spool_dir = ""`: queue only)
    // takes no spool lock, and starts beside the first.
    queue_only_drain_starts(env!("CARGO_BIN_EXE_shopify-events"), &queue, &dirs);

    // kill -9 releases the lock: the second drain starts now.
    first.kill9();
    let mut second = second_drain(&queue, &dirs).spawn(3);
    second.wait_serving(Duration::from_secs(20));
    let log = second.log_text();
    assert!(!log.contains("cannot read the spool"), "{log}");
    second.terminate(Duration::from_secs(20));
}

/// Starts a drain of `queue` with no spool directory, waits for its start
/// line, checks it runs, and kills it (our own child).
fn queue_only_drain_starts(bin: &str, queue: &TestQueue, dirs: &Dirs) {
    let config = dirs.root().join("queue-only.toml");
    std::fs::write(&config, "spool_dir = \"\"\n").expect("write config");
    let log = dirs.root().join("queue-only.log");
    let mut child = Command::new(bin)
        .arg("drain")
        .args(["--queue-key", &queue.hex()])
        .arg("--state-dir")
        .arg(dirs.root().join("state-3"))
        .arg("--config")
        .arg(&config)
        .args(["--sink", "stdout"])
        .env_remove("SHOPIFY_EVENTS_CONFIG")
        .env_remove("SHOPIFY_EVENTS_SPOOL_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create log"))
        .spawn()
        .expect("run the drain");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = wait_until(Duration::from_secs(20), || {
        text().contains("draining queue") || child.try_wait().ok().flatten().is_some()
    });
    let running = child.try_wait().expect("try_wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        started && running,
        "the queue-only drain did not run:\n{}",
        text()
    );
}

#[test]
fn a_drain_whose_lock_file_was_removed_takes_it_again_so_a_second_drain_still_refuses() {
    let _serial = serial();
    let queue = TestQueue::new();
    let dirs = Dirs::new("drain-spool-lock-rm-");
    let mut first = serving_drain(&queue, &dirs);

    // An operator's clean-up removes the lock file (say, `find -mtime +7
    // -delete`: a long-running drain's lock is the spool's oldest file).
    let lock = lock_path(&queue, &dirs);
    std::fs::remove_file(&lock).expect("remove the lock file");
    // The first drain checks its lock once a second.
    wait_until(Duration::from_secs(5), || {
        first.log_text().contains("taken again")
    });

    let mut refused = second_drain(&queue, &dirs).spawn(1);
    let status = refused.wait_timeout(Duration::from_secs(20));
    let log = refused.log_text();
    if status.is_none() {
        refused.kill9();
    }
    assert!(
        status.is_some_and(|s| !s.success()),
        "the second drain runs:\n{log}"
    );
    assert!(log.contains(&format!("pid {}", first.pid())), "{log}");
    assert!(
        first.log_text().contains("taken again"),
        "{}",
        first.log_text()
    );
    first.terminate(Duration::from_secs(20));
}

/// A drain of `queue` and `dirs`' spool, serving its metrics.
fn serving_drain(queue: &TestQueue, dirs: &Dirs) -> testkit::drain::DrainProcess {
    let mut drain = spec(queue, dirs)
        .args(["--sink", "stdout"])
        .with_metrics()
        .spawn(0);
    drain.wait_serving(Duration::from_secs(20));
    drain
}

/// Another drain: another state directory, the same spool directory and
/// queue.
fn second_drain(queue: &TestQueue, dirs: &Dirs) -> DrainSpec {
    let other_state = dirs.root().join("state-2");
    DrainSpec::new(
        env!("CARGO_BIN_EXE_shopify-events"),
        queue.key(),
        &other_state,
        dirs.root(),
    )
    .spool_dir(&dirs.spool())
    .args(["--sink", "stdout"])
    .with_metrics()
}

/// The reader lock's file for `queue` in the spool directory.
fn lock_path(queue: &TestQueue, dirs: &Dirs) -> std::path::PathBuf {
    dirs.spool()
        .join(format!("drain-{:08x}.lock", queue.key() as u32))
}
