//! The spool: records round-trip in order from one thread or many, large
//! records get segments that fit, old segments of a live writer are
//! reclaimed, a restarted reader resumes at `acked`, liveness follows the
//! writer's process (and not its forked children), a child writes its own
//! files, foreign files are left alone, and a missing directory is a typed
//! error.
//!
//! Tests that need a writer in another process run this binary again with
//! `CHILD_ENV` set, so that only `child_process` does anything in it.

mod spool_support;

use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use shopify_events_core::process;
use shopify_events_core::spool::{
    segment_name, IgnoreReason, SegmentId, SpoolError, SpoolEvent, SpoolOptions, SpoolReader,
    SpoolWriter, SyncPolicy,
};
use spool_support::{
    assert_in_order, envelope, files, numbers, options, read_all, reader_options, KEY,
};

const CHILD_ENV: &str = "SHOPIFY_EVENTS_SPOOL_TEST_CHILD";

/// In the re-executed binary: act as the writer process `CHILD_ENV` names.
#[test]
fn child_process() {
    let Ok(spec) = env::var(CHILD_ENV) else {
        return; // A normal test run: nothing to do.
    };
    let (mode, dir) = spec.split_once(':').expect("mode:dir");
    let writer = SpoolWriter::new(options(Path::new(dir)));
    for seq in 0..100 {
        writer.append(&envelope(1, seq, 100)).expect("append");
    }
    if mode == "fork-holder" {
        // A child that inherits the writer (and its lock descriptor) and
        // outlives us. It says when it runs, that is after the atfork
        // handlers (until then it does hold the lock).
        let mut pipe = [0i32; 2];
        // SAFETY: a valid out array of two descriptors.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child only writes a byte and sleeps
        // (async-signal-safe) until killed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: our pipe; sleep is async-signal-safe.
            unsafe {
                libc::write(pipe[1], [1u8].as_ptr().cast(), 1);
                loop {
                    libc::sleep(1000);
                }
            }
        }
        let mut byte = [0u8; 1];
        // SAFETY: reads one byte into our buffer.
        assert_eq!(
            unsafe { libc::read(pipe[0], byte.as_mut_ptr().cast(), 1) },
            1
        );
        println!("grandchild {pid}");
    }
    println!("ready");
    loop {
        thread::sleep(Duration::from_secs(1000));
    }
}

/// Starts this binary as a writer process in `mode` and waits until it
/// appended; returns it and the lines it printed before "ready".
fn spawn_writer(mode: &str, dir: &Path) -> (Child, Vec<String>) {
    let mut child = Command::new(env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", dir.display()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let mut lines = Vec::new();
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        // libtest may print "test child_process ... " before our output on
        // the same line.
        let line = line.expect("read writer output");
        if line.ends_with("ready") {
            return (child, lines);
        }
        lines.push(line);
    }
    let status = child.wait();
    panic!("writer exited before it was ready ({status:?}): {lines:?}");
}

fn kill(pid: i32) {
    // SAFETY: kill and waitpid on a process this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

fn open_reader(dir: &Path) -> SpoolReader {
    SpoolReader::open(dir, KEY, reader_options()).expect("open reader")
}

#[test]
fn records_round_trip_in_order_with_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    let sent: Vec<Vec<u8>> = (0..2000)
        .map(|seq| envelope(7, seq, 16 + (seq as usize * 37) % 700))
        .collect();
    for body in &sent {
        writer.append(body).expect("append");
    }
    let mut reader = open_reader(dir.path());
    let mut got = Vec::new();
    for _ in 0..50 {
        reader.refresh().unwrap();
        while let Some(record) = reader.next_record() {
            got.push(reader.body(&record).to_vec());
        }
    }
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "bodies differ");
    let stats = writer.stats();
    assert_eq!(stats.appended, 2000);
    assert!(
        stats.segments_created > 3,
        "small segments rotate: {stats:?}"
    );
    assert_eq!(stats.failures, 0);
}

#[test]
fn many_threads_append_every_record_once_in_each_threads_order() {
    const THREADS: u64 = 8;
    const EACH: u64 = 5000;
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(SpoolWriter::new(options(dir.path())));
    let handles: Vec<_> = (0..THREADS)
        .map(|stream| {
            let writer = Arc::clone(&writer);
            thread::spawn(move || {
                for seq in 0..EACH {
                    writer
                        .append(&envelope(stream, seq, 40 + (seq as usize % 200)))
                        .expect("append");
                }
            })
        })
        .collect();
    let mut reader = open_reader(dir.path());
    let mut seen = Vec::new();
    // Read while they write.
    while handles.iter().any(|h| !h.is_finished()) {
        let (got, events) = read_all(&mut reader, true);
        assert!(events.is_empty(), "{events:?}");
        seen.extend(got);
    }
    for handle in handles {
        handle.join().unwrap();
    }
    seen.extend(read_all(&mut reader, true).0);
    let counts = assert_in_order(&seen);
    assert_eq!(counts.len() as u64, THREADS);
    assert!(counts.values().all(|&n| n == EACH), "{counts:?}");
}

#[test]
fn a_record_larger_than_the_segment_gets_a_segment_that_fits_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    writer.append(&envelope(1, 0, 100)).unwrap();
    writer.append(&envelope(1, 1, 300_000)).unwrap();
    writer.append(&envelope(1, 2, 100)).unwrap();
    let mut reader = open_reader(dir.path());
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen, vec![(1, 0), (1, 1), (1, 2)]);

    let too_large = envelope(1, 3, 2 << 20);
    match writer.append(&too_large) {
        Err(SpoolError::RecordTooLarge { len, max_record }) => {
            assert_eq!((len, max_record), (too_large.len(), 1 << 20));
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    let err = writer
        .append(b"not an envelope at all, just text")
        .unwrap_err();
    assert!(matches!(err, SpoolError::NotAnEnvelope { .. }), "{err}");
}

#[test]
fn a_writer_that_never_exits_has_its_old_segments_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    for seq in 0..3000 {
        writer.append(&envelope(1, seq, 200)).unwrap();
    }
    assert!(writer.stats().segments_created >= 4);
    assert!(!writer.drained(), "nothing acknowledged yet");
    let mut reader = open_reader(dir.path());

    let (seen, _) = read_all(&mut reader, false);
    assert_eq!(seen.len(), 3000);
    assert!(!writer.drained(), "read is not acknowledged");
    reader.refresh().unwrap();
    assert!(
        files(dir.path(), ".seg").len() >= 4,
        "nothing acked, nothing deleted"
    );

    // Acknowledge everything: the sealed segments go, the live one stays.
    drop(reader);
    let mut reader = open_reader(dir.path());
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen.len(), 3000, "unacknowledged records come again");
    reader.refresh().unwrap();
    let left = files(dir.path(), ".seg");
    assert_eq!(left.len(), 1, "only the live segment stays: {left:?}");
    assert!(writer.drained());

    // The writer goes on; what it writes now is read, and once it seals
    // (leaves spool mode) its last segment goes too.
    writer.append(&envelope(1, 3000, 200)).unwrap();
    assert!(!writer.drained());
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen, vec![(1, 3000)]);
    assert!(writer.drained());
    writer.seal();
    reader.refresh().unwrap();
    assert!(files(dir.path(), ".seg").is_empty());
    assert!(reader.stats().reclaimed >= 4);
}

#[test]
fn a_reader_reopened_resumes_from_acked_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    for seq in 0..500 {
        writer.append(&envelope(1, seq, 150)).unwrap();
    }
    // A reader acknowledges the first 300 records, then "dies": nothing of
    // it survives but what it stored in the segments.
    let mut first = open_reader(dir.path());
    let mut acked = 0;
    while acked < 300 {
        first.refresh().unwrap();
        while let Some(record) = first.next_record() {
            if acked < 300 {
                assert!(first.ack(record.segment(), record.end()));
                acked += 1;
            }
        }
    }
    drop(first);
    let mut second = open_reader(dir.path());
    let (seen, _) = read_all(&mut second, false);
    let expected: Vec<(u64, u64)> = (300..500).map(|seq| (1, seq)).collect();
    assert_eq!(seen, expected, "resumes exactly at the persisted acked");
    let backlog = second.backlog();
    assert!(backlog.bytes > 0);
    assert_eq!(backlog.oldest_us, Some(1_700_000_000_000_000 + 300));
    // Killed before acknowledging anything: all of it again.
    drop(second);
    let mut third = open_reader(dir.path());
    assert_eq!(read_all(&mut third, true).0, expected);
    assert_eq!(third.backlog().bytes, 0);
    assert_eq!(third.backlog().oldest_us, None);
}

#[test]
fn ack_only_moves_forward_to_a_record_boundary_that_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    for seq in 0..3 {
        writer.append(&envelope(1, seq, 100)).unwrap();
    }
    let mut reader = open_reader(dir.path());
    let first = reader.next_record().expect("a record");
    let id = first.segment();
    assert!(!reader.ack(id, first.end() + 8), "past what was read");
    assert!(!reader.ack(id, first.end() - 8), "inside the record");
    let unknown = SegmentId {
        producer: 1,
        index: 0,
    };
    assert!(!reader.ack(unknown, first.end()));
    assert!(reader.ack(id, first.end()));
    assert!(!reader.ack(id, first.end()), "not again");
    assert!(!reader.ack(id, 0), "not backwards");
}

#[test]
fn a_live_writers_segment_stays_and_sigkill_makes_it_reclaimable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = spawn_writer("live-writer", dir.path());
    let mut reader = open_reader(dir.path());
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen.len(), 100);
    reader.refresh().unwrap();
    assert_eq!(files(dir.path(), ".seg").len(), 1, "live writer, unsealed");
    kill(child.id() as i32);
    let _ = child.wait();
    reader.refresh().unwrap();
    assert!(
        files(dir.path(), ".seg").is_empty(),
        "a writer killed with SIGKILL is dead: its acknowledged segment goes"
    );
}

#[test]
fn a_forked_child_does_not_keep_its_parents_segment_alive() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = spawn_writer("fork-holder", dir.path());
    let grandchild: i32 = lines
        .iter()
        .find_map(|l| l.split("grandchild ").nth(1))
        .expect("grandchild pid")
        .parse()
        .unwrap();
    let mut reader = open_reader(dir.path());
    assert_eq!(read_all(&mut reader, true).0.len(), 100);
    reader.refresh().unwrap();
    assert_eq!(files(dir.path(), ".seg").len(), 1);
    kill(child.id() as i32);
    let _ = child.wait();
    reader.refresh().unwrap();
    let left = files(dir.path(), ".seg");
    // The grandchild is still running with a copy of every descriptor the
    // writer had, except the lock's, which the atfork handler closed.
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(grandchild, 0) }, 0, "grandchild alive");
    kill(grandchild);
    assert!(left.is_empty(), "the segment looked alive: {left:?}");
}

#[test]
fn a_forked_child_writes_its_own_files_and_never_its_parents_segment() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    for seq in 0..10 {
        writer.append(&envelope(1, seq, 100)).unwrap();
    }
    let parent_files = files(dir.path(), ".seg");
    assert_eq!(parent_files.len(), 1);
    // SAFETY: the child appends and exits with _exit; glibc keeps malloc
    // usable after fork, and the writer's state of this generation is not
    // touched in the child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut ok = true;
        for seq in 0..10 {
            ok &= writer.append(&envelope(2, seq, 100)).is_ok();
        }
        ok &= writer.stats().appended == 10;
        // Its files are named after its own producer id.
        let own = format!("-{:016x}-", process::producer_id());
        ok &= files(dir.path(), ".seg")
            .iter()
            .any(|p| p.to_string_lossy().contains(&own));
        // SAFETY: ends the child without running the harness's code.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    for seq in 10..20 {
        writer.append(&envelope(1, seq, 100)).unwrap();
    }
    let all = files(dir.path(), ".seg");
    assert_eq!(all.len(), 2, "the child made its own file: {all:?}");
    let mut reader = open_reader(dir.path());
    let (seen, events) = read_all(&mut reader, true);
    assert!(events.is_empty(), "{events:?}");
    let counts = assert_in_order(&seen);
    assert_eq!(
        counts.get(&1),
        Some(&20),
        "the parent's segment holds only its 20"
    );
    assert_eq!(counts.get(&2), Some(&10));
}

#[test]
fn other_queues_other_versions_and_other_files_are_reported_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let other_key = SpoolOptions::new(dir.path(), KEY + 1);
    SpoolWriter::new(other_key)
        .append(&envelope(9, 0, 100))
        .unwrap();
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    let id = SegmentId {
        producer: 42,
        index: 0,
    };
    let future = dir.path().join(segment_name(KEY, id));
    let mut header = vec![0u8; 8192];
    header[..8].copy_from_slice(b"SESPOOL1");
    header[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&future, &header).unwrap();

    let mut reader = open_reader(dir.path());
    let (seen, events) = read_all(&mut reader, true);
    assert!(seen.is_empty());
    let reasons: Vec<&IgnoreReason> = events
        .iter()
        .map(|e| match e {
            SpoolEvent::Ignored { reason, .. } => reason,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(reasons.len(), 3, "each reported once: {events:?}");
    assert!(reasons.contains(&&IgnoreReason::NotASpoolFile));
    assert!(reasons.contains(&&IgnoreReason::OtherVersion { version: 2 }));
    assert!(reasons.contains(&&IgnoreReason::OtherQueue {
        key: (KEY + 1) as u32
    }));
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        3,
        "nothing deleted"
    );
}

#[test]
fn a_missing_directory_is_a_typed_error_naming_it_and_the_fix() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("spool");
    let writer = SpoolWriter::new(options(&dir));
    let err = writer.append(&envelope(1, 0, 100)).unwrap_err();
    assert!(matches!(err, SpoolError::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(
        text.contains("shopify-events setup") && text.contains("spool_dir"),
        "{text}"
    );
    // Within a second: the same error, without trying again.
    fs::create_dir(&dir).unwrap();
    let again = writer.append(&envelope(1, 0, 100)).unwrap_err();
    assert!(matches!(again, SpoolError::Unavailable { .. }), "{again:?}");
    thread::sleep(Duration::from_millis(1100));
    writer
        .append(&envelope(1, 0, 100))
        .expect("tries again after a second");
    assert_eq!(writer.stats().failures, 2);

    let not_a_dir = base.path().join("file");
    fs::write(&not_a_dir, b"").unwrap();
    let err = SpoolWriter::new(options(&not_a_dir))
        .append(&envelope(1, 0, 100))
        .unwrap_err();
    assert!(matches!(err, SpoolError::Unavailable { .. }), "{err:?}");
    let err = SpoolReader::open(dir.join("missing"), KEY, reader_options()).unwrap_err();
    assert!(matches!(err, SpoolError::Unavailable { .. }), "{err:?}");
}

#[test]
fn an_unwritable_directory_is_unavailable() {
    // Root ignores mode bits, so a read-only mount stands in for them.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to mount a read-only tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("run mount");
    assert!(status.success(), "mount a read-only tmpfs");
    let err = SpoolWriter::new(options(dir.path()))
        .append(&envelope(1, 0, 100))
        .unwrap_err();
    let _ = Command::new("umount").arg(dir.path()).status();
    assert!(matches!(err, SpoolError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn sync_policies_publish_the_same_records() {
    for sync in [
        SyncPolicy::Always,
        SyncPolicy::Interval(Duration::from_millis(1)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let writer = SpoolWriter::new(SpoolOptions {
            sync,
            ..options(dir.path())
        });
        for seq in 0..300 {
            writer.append(&envelope(1, seq, 100)).unwrap();
        }
        writer.flush().unwrap();
        let (seen, _) = read_all(&mut open_reader(dir.path()), true);
        assert_eq!(seen.len(), 300, "{sync:?}");
    }
}

#[test]
fn inotify_discovers_a_new_segment_without_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut reader = SpoolReader::open(dir.path(), KEY, Default::default()).unwrap();
    assert!(reader.uses_inotify());
    reader.refresh().unwrap(); // the first scan is done
    let writer = SpoolWriter::new(options(dir.path()));
    writer.append(&envelope(1, 0, 100)).unwrap();
    reader.refresh().unwrap();
    let record = reader.next_record().expect("found through inotify");
    assert_eq!(numbers(reader.body(&record)), (1, 0));
}

#[test]
fn two_writers_of_one_process_on_one_queue_are_two_producers() {
    let dir = tempfile::tempdir().unwrap();
    let first = SpoolWriter::new(options(dir.path()));
    let second = SpoolWriter::new(options(dir.path()));
    for seq in 0..50 {
        first.append(&envelope(1, seq, 100)).unwrap();
        second.append(&envelope(2, seq, 100)).unwrap();
    }
    let mut reader = open_reader(dir.path());
    let (seen, events) = read_all(&mut reader, true);
    assert!(events.is_empty(), "{events:?}");
    let counts = assert_in_order(&seen);
    assert_eq!(counts.get(&1), Some(&50));
    assert_eq!(counts.get(&2), Some(&50));
}
