//! A full spool: appends into a 2 MiB tmpfs, and into a directory whose
//! `max_bytes` is reached, fail with the typed error (no SIGBUS, no crash),
//! everything appended before stays readable, and appends succeed again
//! once the drain freed space.

mod spool_support;

use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use shopify_events_core::spool::{SpoolError, SpoolOptions, SpoolReader, SpoolWriter};
use spool_support::{assert_in_order, envelope, files, options, read_all, reader_options, KEY};

/// Appends numbered records until one fails; returns how many succeeded
/// and the error.
fn fill(writer: &SpoolWriter, payload: usize) -> (u64, SpoolError) {
    for seq in 0.. {
        if let Err(err) = writer.append(&envelope(1, seq, payload)) {
            return (seq, err);
        }
    }
    unreachable!()
}

fn check_full_then_recover(dir: &Path, options: SpoolOptions) {
    let writer = SpoolWriter::new(options);
    let (appended, err) = fill(&writer, 2000);
    assert!(appended > 100, "room for some records first: {appended}");
    assert!(err.is_full(), "{err:?}");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    // Meanwhile: the same error, no retry.
    let again = writer.append(&envelope(1, appended, 2000)).unwrap_err();
    assert!(again.is_full(), "{again:?}");

    // The drain takes everything that was accepted and frees the space.
    writer.seal();
    let mut reader = SpoolReader::open(dir, KEY, reader_options()).unwrap();
    let (seen, events) = read_all(&mut reader, true);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(assert_in_order(&seen).get(&1), Some(&appended));
    reader.refresh().unwrap();

    sleep(Duration::from_millis(1100)); // the writer's retry delay
    writer
        .append(&envelope(1, appended, 2000))
        .expect("room again once the drain freed it");
    assert!(writer.stats().failures >= 2);
}

#[test]
fn max_bytes_bounds_the_directory_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        max_bytes: Some(1 << 20),
        ..options(dir.path())
    };
    check_full_then_recover(dir.path(), options);
}

#[test]
fn a_full_filesystem_fails_appends_without_sigbus_and_keeps_what_was_spooled() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to mount a 2 MiB tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m,mode=0770", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount a 2 MiB tmpfs");
    // No max_bytes and no free-space reserve: the filesystem itself fills
    // (posix_fallocate fails with ENOSPC, before any page is touched).
    let options = SpoolOptions {
        max_bytes: Some(u64::MAX),
        min_free: Some(0),
        segment_max: 256 * 1024,
        ..options(dir.path())
    };
    let result = std::panic::catch_unwind(|| check_full_then_recover(dir.path(), options));
    let unmounted = Command::new("umount").arg(dir.path()).status();
    assert!(unmounted.is_ok_and(|s| s.success()), "umount");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_writer_whose_own_segment_filled_max_bytes_writes_again_once_the_drain_took_it() {
    let dir = tempfile::tempdir().unwrap();
    // Room for one 64 KiB segment: the second creation fails.
    let options = SpoolOptions {
        segment_min: 64 * 1024,
        segment_max: 64 * 1024,
        max_bytes: Some(100 * 1024),
        ..options(dir.path())
    };
    let writer = SpoolWriter::new(options);
    let (appended, err) = fill(&writer, 2000);
    assert!(err.is_full(), "{err:?}");
    // No seal by the caller: the failed rotation sealed the full segment,
    // so the drain can finish it and delete it.
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, events) = read_all(&mut reader, true);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(assert_in_order(&seen).get(&1), Some(&appended));
    reader.refresh().unwrap();
    assert!(
        files(dir.path(), ".seg").is_empty(),
        "the full segment was deleted"
    );
    assert!(writer.drained());

    sleep(Duration::from_millis(1100)); // the writer's retry delay
    writer
        .append(&envelope(1, appended, 2000))
        .expect("room again once the drain deleted the full segment");
}

#[test]
fn a_nearly_full_spool_still_takes_small_segments_when_a_grown_one_would_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        segment_min: 16 * 1024,
        segment_max: 1 << 20,
        max_bytes: Some(150 * 1024),
        ..options(dir.path())
    };
    let writer = SpoolWriter::new(options);
    let (appended, err) = fill(&writer, 2000);
    assert!(err.is_full(), "{err:?}");
    // 16 KiB, 64 KiB, then (256 KiB refused) 16 KiB segments while they fit.
    let stats = writer.stats();
    assert!(stats.segments_created >= 4, "{stats:?}");
    let used: u64 = files(dir.path(), ".seg")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(used <= 150 * 1024 && used > 120 * 1024, "{used}");
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, _) = read_all(&mut reader, false);
    assert_eq!(assert_in_order(&seen).get(&1), Some(&appended));
}
