//! `top` against state it did not expect: a snapshot path that is not a
//! regular file (a FIFO nobody writes, which `read(2)` waits on for ever)
//! and a snapshot far larger than any drain writes.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::sync::mpsc;
use std::time::Duration;

use shopify_events_core::ops::top::Sampler;
use shopify_events_core::ops::{Down, Liveness};
use shopify_events_core::state_dir::StateDir;

const KEY: i32 = 0x7e57_0b01;

fn unreadable<T: std::fmt::Debug>(liveness: &Liveness<T>) -> String {
    match liveness {
        Liveness::Down(Down::Unreadable { reason }) => reason.clone(),
        other => panic!("expected an unreadable snapshot, got {other:?}"),
    }
}

#[test]
fn a_fifo_at_the_snapshot_path_is_unreadable_not_a_hang() {
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), KEY);
    for path in [state.stats_snapshot(), state.proxy_snapshot()] {
        let c = CString::new(path.as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }
    let (tx, rx) = mpsc::channel();
    let (drain_dir, run_dir) = (dir.path().to_owned(), dir.path().to_owned());
    std::thread::spawn(move || {
        let sample = Sampler::new(KEY, drain_dir, run_dir).read();
        let _ = tx.send(sample);
    });
    let sample = match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(sample) => sample,
        Err(_) => {
            // Let the stuck reader go before failing.
            for path in [state.stats_snapshot(), state.proxy_snapshot()] {
                let _ = std::fs::OpenOptions::new().write(true).open(path);
            }
            panic!("top's reading hung on a FIFO at the snapshot path");
        }
    };
    let reason = unreadable(&sample.drain);
    assert!(reason.contains("not a regular file"), "{reason}");
    unreadable(&sample.proxy);
}

#[test]
fn a_snapshot_larger_than_any_drain_writes_is_unreadable_not_read_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let state = StateDir::new(dir.path(), KEY);
    let file = std::fs::File::create(state.stats_snapshot()).expect("create");
    // Sparse: 1 GiB that costs no disk.
    file.set_len(1 << 30).expect("set_len");
    let sample = Sampler::new(KEY, dir.path(), dir.path()).read();
    let reason = unreadable(&sample.drain);
    assert!(reason.contains("larger than"), "{reason}");
}
