//! The spool against a hostile operator or neighbour: odd files under the
//! spool's names, files swapped under a running reader. Each test names
//! what must hold; none may hang the drain or lose an accepted event.

mod spool_support;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use shopify_events_core::spool::{
    segment_name, Appender, ReaderOptions, SegmentId, SpoolEvent, SpoolReader, SpoolWriter,
};
use spool_support::{envelope, files, options, read_all, reader_options, KEY};

/// How long a refresh may take before the test calls it hung.
const HANG: Duration = Duration::from_secs(10);

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `f` on a thread of its own and fails the test if it does not
/// return within [`HANG`] (the thread is left blocked; the test process
/// ends anyway).
fn within_bound<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
}

#[test]
fn a_fifo_under_a_temporary_name_does_not_hang_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    writer.append(&envelope(1, 0, 100)).unwrap();
    writer.seal();
    // What a writer's temporary file would be called; old at once.
    let name = format!(".{KEY:08x}-00000000deadbeef-0000000000.seg.tmp");
    mkfifo(&dir.path().join(&name));
    let path = dir.path().to_path_buf();
    let (seen, _) = within_bound("the reader's first scan", move || {
        let options = ReaderOptions {
            temp_grace: Duration::ZERO,
            ..reader_options()
        };
        let mut reader = SpoolReader::open(&path, KEY, options).expect("open");
        read_all(&mut reader, true)
    });
    assert_eq!(seen, vec![(1, 0)], "the real segment is still read");
    assert!(
        dir.path().join(&name).exists(),
        "a FIFO is not a writer's file: left for the operator"
    );
}

#[test]
fn a_fifo_swapped_in_for_a_live_segment_does_not_hang_the_liveness_test() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    writer.append(&envelope(1, 0, 100)).unwrap();
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen, vec![(1, 0)]);
    // Someone renames a FIFO over the live segment the reader has mapped.
    let segment = files(dir.path(), ".seg").pop().expect("the live segment");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    fs::rename(&fifo, &segment).unwrap();
    let reader = within_bound("a refresh testing the writer's liveness", move || {
        reader.refresh().expect("refresh");
        reader
    });
    drop(reader);
    drop(writer);
}

/// The drain's save at stop continues one producer's log across its runs
/// (`Appender::continuing`); a save killed while creating a segment leaves
/// that segment's temporary file. The next save must not fail on it: that
/// would leave the whole queue to the reboot the save is for.
#[test]
fn a_leftover_temporary_file_under_the_next_name_does_not_fail_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let producer = 0x5341_5645_0000_0001;
    let id = SegmentId { producer, index: 0 };
    let leftover = dir.path().join(format!(".{}.tmp", segment_name(KEY, id)));
    fs::write(&leftover, b"").unwrap();
    let mut appender = Appender::continuing(options(dir.path()), producer, 0);
    appender
        .append(&envelope(1, 0, 100))
        .expect("append past a leftover temporary file");
    appender.seal();
    drop(appender);
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen, vec![(1, 0)]);
}

/// A spool directory made by hand (`mkdir` and `chgrp`, without the
/// setgid bit `shopify-events setup` sets): files would take the writer's
/// own group, which the drain (in the directory's group) may not be in:
/// it could not open them, and the writer's events would never be
/// delivered. Segments take the directory's group whatever its bits.
#[test]
fn segments_take_the_spool_directory_group_without_the_setgid_bit() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to give the directory another group");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let group = 54_321;
    std::os::unix::fs::chown(dir.path(), None, Some(group)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o770)).unwrap();
    assert_eq!(fs::metadata(dir.path()).unwrap().mode() & 0o2000, 0);
    let writer = SpoolWriter::new(options(dir.path()));
    writer.append(&envelope(1, 0, 100)).unwrap();
    let segment = files(dir.path(), ".seg").pop().expect("a segment");
    let meta = fs::metadata(&segment).unwrap();
    assert_eq!(meta.gid(), group, "the segment's group");
    assert_eq!(meta.mode() & 0o7777, 0o660);
}

/// Set in the copy of this test binary that runs with a lowered fd limit.
const IN_CHILD: &str = "SHOPIFY_EVENTS_SPOOL_HOSTILE_CHILD";

/// Sets this process's soft `RLIMIT_NOFILE` to `limit`; returns the old.
fn set_fd_limit(limit: libc::rlim_t) -> libc::rlim_t {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: limit,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
    }
    old.rlim_cur
}

/// A drain out of descriptors (or of mappings: `vm.max_map_count`) fails
/// to open a segment for a while. That is no verdict on the segment: it
/// must be read once the drain can, in its producer's order, and not be
/// skipped until the drain restarts while the producer's later segments
/// overtake it. Runs in a child process, whose fd limit it lowers.
#[test]
fn segments_the_reader_cannot_open_for_a_while_are_read_later_in_order() {
    let name = "segments_the_reader_cannot_open_for_a_while_are_read_later_in_order";
    if std::env::var_os(IN_CHILD).is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads", "1"])
            .env(IN_CHILD, "1")
            .status()
            .expect("run the child");
        assert!(status.success(), "child failed: {status}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // inotify: learning of the names then needs no new descriptor.
    let options = ReaderOptions {
        liveness_interval: Duration::ZERO,
        ..ReaderOptions::default()
    };
    let mut reader = SpoolReader::open(dir.path(), KEY, options).unwrap();
    assert!(reader.uses_inotify(), "this test needs inotify");
    let writer = SpoolWriter::new(options_for_rotation(dir.path()));
    for seq in 0..12 {
        writer.append(&envelope(1, seq, 1000)).unwrap();
    }
    writer.seal();
    assert!(files(dir.path(), ".seg").len() >= 2, "the writer rotated");
    // No descriptor left: every open fails with EMFILE.
    let probe = fs::File::open("/dev/null").unwrap();
    let lowest_free = std::os::fd::AsRawFd::as_raw_fd(&probe);
    drop(probe);
    let old = set_fd_limit(lowest_free as libc::rlim_t);
    reader.refresh().expect("refresh out of descriptors");
    assert!(reader.next_record().is_none(), "nothing can be mapped");
    set_fd_limit(old);

    let deadline = std::time::Instant::now() + HANG;
    let mut seen = Vec::new();
    while seen.len() < 12 && std::time::Instant::now() < deadline {
        reader.refresh().unwrap();
        while let Some(record) = reader.next_record() {
            seen.push(spool_support::numbers(reader.body(&record)));
            assert!(reader.ack(record.segment(), record.end()));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let expected: Vec<(u64, u64)> = (0..12).map(|seq| (1, seq)).collect();
    assert_eq!(seen, expected, "every record, in order, once it can");
}

/// Writer options whose segments hold a handful of 1 KB events.
fn options_for_rotation(dir: &Path) -> shopify_events_core::spool::SpoolOptions {
    shopify_events_core::spool::SpoolOptions {
        segment_min: 4096,
        segment_max: 4096,
        ..options(dir)
    }
}

#[test]
fn a_segment_replaced_under_its_name_while_read_is_not_deleted_but_read_as_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let aside = tempfile::tempdir_in(dir.path().parent().unwrap()).unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    for seq in 0..3 {
        writer.append(&envelope(1, seq, 100)).unwrap();
    }
    writer.seal();
    let segment = files(dir.path(), ".seg").pop().expect("a segment");
    // A copy taken by hand (a backup, say), its `acked` still 0.
    let copy = aside.path().join("copy");
    fs::copy(&segment, &copy).unwrap();

    // The reader reads and acknowledges every record of the file...
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let mut read = 0;
    while let Some(record) = reader.next_record() {
        assert!(reader.ack(record.segment(), record.end()));
        read += 1;
    }
    assert_eq!(read, 3);
    // ...and before it deletes it, the copy is put back over the name.
    fs::rename(&copy, &segment).unwrap();
    let (again, events) = read_all(&mut reader, true);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SpoolEvent::Replaced { path } if *path == segment)),
        "{events:?}"
    );
    // The file the reader never read was read, not deleted unread; once
    // read and acknowledged, it is deleted as any segment.
    assert_eq!(again, vec![(1, 0), (1, 1), (1, 2)]);
    assert!(files(dir.path(), ".seg").is_empty());
}

#[test]
fn a_writer_whose_segment_is_removed_by_hand_moves_to_a_new_one_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    writer.append(&envelope(1, 0, 100)).unwrap();
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen, vec![(1, 0)]);

    // Removed by hand under the live writer; the drain, finding it gone,
    // takes its writer for done and lets it go.
    let removed = files(dir.path(), ".seg").pop().expect("a segment");
    fs::remove_file(&removed).unwrap();
    read_all(&mut reader, true);

    // Past the check interval, the next append notices and goes to a new
    // segment the drain reads.
    thread::sleep(Duration::from_millis(1100));
    writer.append(&envelope(1, 1, 100)).unwrap();
    let (seen, _) = read_all(&mut reader, true);
    assert_eq!(seen, vec![(1, 1)], "the event after the removal");
    let stats = writer.stats();
    assert_eq!((stats.segments_orphaned, stats.failures), (1, 1));
    assert_eq!(stats.segments_created, 2);
    // The orphan is not waited for: everything the drain could see is
    // acknowledged.
    assert!(writer.drained());
}
