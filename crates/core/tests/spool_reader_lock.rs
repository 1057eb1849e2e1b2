//! The drain's reader lock (`drain-<key>.lock`) under a hostile operator:
//! a full filesystem does not keep the drain from the spool whose reading
//! is what frees it, and a lock file removed or replaced under its holder
//! is noticed (`ReaderLock::in_place`), so the drain can take it again
//! before a second drain does.

mod spool_support;

use std::path::Path;
use std::process::Command;

use shopify_events_core::spool::{ReaderLock, SpoolOptions, SpoolReader, SpoolWriter};
use spool_support::{envelope, options, read_all, reader_options, KEY};

/// Fills `dir` with spooled records until the filesystem refuses one;
/// returns how many were accepted.
fn fill_with_segments(dir: &Path) -> u64 {
    let writer = SpoolWriter::new(SpoolOptions {
        max_bytes: Some(u64::MAX),
        min_free: Some(0),
        segment_min: 64 * 1024,
        segment_max: 64 * 1024,
        ..options(dir)
    });
    let mut appended = 0;
    while writer.append(&envelope(1, appended, 2000)).is_ok() {
        appended += 1;
    }
    writer.seal();
    // Whatever room the last segment's rounding left: taken too.
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("create the filler");
    while std::io::Write::write(&mut file, &[0; 4096]).is_ok_and(|n| n > 0) {}
    appended
}

#[test]
fn a_full_filesystem_does_not_keep_the_drain_from_the_spool_that_fills_it() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to mount a 1 MiB tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0770", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount a 1 MiB tmpfs");
    let result = std::panic::catch_unwind(|| {
        let appended = fill_with_segments(dir.path());
        assert!(appended > 10, "room for some records first: {appended}");
        // The drain starts on the full disk: it takes the lock (its pid
        // cannot be written; that only serves the next drain's message)
        // and reads what fills the disk.
        let lock = ReaderLock::acquire(dir.path(), KEY, 0o660)
            .expect("the reader lock on a full filesystem");
        let mut reader = SpoolReader::open(dir.path(), KEY, reader_options()).unwrap();
        let (seen, _) = read_all(&mut reader, true);
        assert_eq!(seen.len() as u64, appended);
        drop(lock);
    });
    let unmounted = Command::new("umount").arg(dir.path()).status();
    assert!(unmounted.is_ok_and(|s| s.success()), "umount");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_reader_lock_removed_or_replaced_under_its_holder_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let lock = ReaderLock::acquire(dir.path(), KEY, 0o660).expect("the lock");
    assert!(lock.in_place());

    // Removed: a second reader would create a new file and lock it.
    std::fs::remove_file(lock.path()).unwrap();
    assert!(!lock.in_place());

    // Taken again by its holder: the second reader is refused.
    let lock = ReaderLock::acquire(dir.path(), KEY, 0o660).expect("taken again");
    let refused = ReaderLock::acquire(dir.path(), KEY, 0o660).unwrap_err();
    assert!(refused.is_in_use(), "{refused}");

    // Replaced by another file under its name.
    let other = dir.path().join("other");
    std::fs::write(&other, b"").unwrap();
    std::fs::rename(&other, lock.path()).unwrap();
    assert!(!lock.in_place());

    // The spool directory itself replaced (rm -rf; mkdir).
    let lock = ReaderLock::acquire(dir.path(), KEY, 0o660).expect("taken again");
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let inner = ReaderLock::acquire(&spool, KEY, 0o660).expect("the lock");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::create_dir(&spool).unwrap();
    assert!(!inner.in_place());
    assert!(lock.in_place());
}
