//! Segments created ahead ([`SpoolOptions::prepare_ahead`]): the writer
//! places them in index order, every record reads back in order, a sealed
//! episode and a dropped writer leave no prepared file behind, and a forked
//! child never places its parent's prepared segment.

mod spool_support;

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::process;
use shopify_events_core::spool::SpoolReader;
use shopify_events_core::spool::{SpoolOptions, SpoolWriter};
use spool_support::{assert_in_order, envelope, files, options, read_all, reader_options, KEY};

fn preparing(dir: &Path) -> SpoolOptions {
    SpoolOptions {
        prepare_ahead: true,
        ..options(dir)
    }
}

/// Temporary files in `dir` (prepared segments waiting to be placed).
fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(2));
    }
}

/// Appends records of stream 1 from `seq` on until the writer filled its
/// first segment (the next one is then prepared); returns the next `seq`.
fn fill_a_segment(writer: &SpoolWriter, mut seq: u64) -> u64 {
    // The first append of an episode creates a segment; filling it, one more.
    let target = writer.stats().segments_created + if seq == 0 { 2 } else { 1 };
    while writer.stats().segments_created < target {
        writer.append(&envelope(1, seq, 100)).unwrap();
        seq += 1;
    }
    seq
}

/// Indices of the segments in `dir`, sorted.
fn indices(dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = files(dir, ".seg")
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name[26..36].parse().unwrap()
        })
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn prepared_segments_are_placed_in_index_order_and_every_record_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(preparing(dir.path()));
    for seq in 0..3000 {
        writer.append(&envelope(1, seq, 200)).unwrap();
        if seq % 50 == 0 {
            // Time for the thread to prepare the next segment.
            sleep(Duration::from_millis(1));
        }
    }
    let stats = writer.stats();
    assert!(stats.segments_created > 10, "{stats:?}");
    assert!(
        stats.segments_prepared >= stats.segments_created / 2,
        "most segments came prepared: {stats:?}"
    );
    let found = indices(dir.path());
    assert_eq!(
        found,
        (0..stats.segments_created).collect::<Vec<_>>(),
        "no gap, no stray"
    );
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, events) = read_all(&mut reader, false);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(assert_in_order(&seen).get(&1), Some(&3000));
}

#[test]
fn a_record_too_large_for_the_prepared_segment_gets_one_created_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(preparing(dir.path()));
    let seq = fill_a_segment(&writer, 0);
    wait_for("a prepared segment", || !temps(dir.path()).is_empty());
    writer.append(&envelope(1, seq, 200 * 1024)).unwrap();
    writer.append(&envelope(1, seq + 1, 100)).unwrap();
    assert_eq!(indices(dir.path()), [0, 1, 2]);
    assert_eq!(
        writer.stats().segments_prepared,
        0,
        "the prepared one was too small"
    );
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, _) = read_all(&mut reader, false);
    assert_eq!(assert_in_order(&seen).get(&1), Some(&(seq + 2)));
}

#[test]
fn sealing_and_dropping_the_writer_remove_the_prepared_segment() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(preparing(dir.path()));
    let seq = fill_a_segment(&writer, 0);
    wait_for("a prepared segment", || temps(dir.path()).len() == 1);
    writer.seal();
    wait_for("the prepared segment to go", || {
        temps(dir.path()).is_empty()
    });

    writer.append(&envelope(1, seq, 100)).unwrap();
    sleep(Duration::from_millis(50));
    assert!(
        temps(dir.path()).is_empty(),
        "an episode's first segment prepares nothing"
    );
    fill_a_segment(&writer, seq + 1);
    wait_for("a prepared segment", || temps(dir.path()).len() == 1);
    drop(writer);
    wait_for("the prepared segment to go", || {
        temps(dir.path()).is_empty()
    });
}

#[test]
fn a_forked_child_never_places_its_parents_prepared_segment() {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(preparing(dir.path()));
    let parent_seq = fill_a_segment(&writer, 0);
    wait_for("a prepared segment", || temps(dir.path()).len() == 1);
    let parent_temp = temps(dir.path());
    // SAFETY: the child appends and leaves with _exit; glibc keeps malloc
    // usable after fork; the parent's preparing thread does not exist in
    // the child, whose writer starts its own.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut ok = true;
        for seq in 0..500 {
            ok &= writer.append(&envelope(2, seq, 200)).is_ok();
        }
        let own = format!("-{:016x}-", process::producer_id());
        let names = files(dir.path(), ".seg");
        ok &= names.iter().any(|p| p.to_string_lossy().contains(&own));
        // The parent's prepared file is still there, unplaced.
        ok &= temps(dir.path()).iter().any(|t| parent_temp.contains(t));
        // SAFETY: ends the child without running the harness's code.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );
    for seq in parent_seq..500 {
        writer.append(&envelope(1, seq, 200)).unwrap();
    }
    assert!(
        writer.stats().segments_prepared > 0,
        "the parent placed its own"
    );
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
    let (seen, events) = read_all(&mut reader, false);
    assert!(events.is_empty(), "{events:?}");
    let counts = assert_in_order(&seen);
    assert_eq!((counts.get(&1), counts.get(&2)), (Some(&500), Some(&500)));
}
