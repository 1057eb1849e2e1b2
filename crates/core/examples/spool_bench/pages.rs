//! What a spool page costs the kernel, per 4 KiB page, in CPU time of this
//! process: the question behind creating segments ahead (which moves the
//! cost to another thread) and recycling them (which would avoid it).
//!
//! - fresh: `posix_fallocate` + `MADV_POPULATE_WRITE` of a new file's
//!   mapping: what creating a segment costs (page allocation, zeroing,
//!   filesystem block allocation);
//! - rewrite, still dirty: writing again into pages not yet written back:
//!   what recycling a segment acknowledged within the write-back delay
//!   (`vm.dirty_expire_centisecs`, 30 s) would cost;
//! - write-back (`msync`): the write-back itself, which the kernel's
//!   flusher threads pay for every page the spool dirties, whatever
//!   creates the segments;
//! - populate after write-back: making written-back pages writable again:
//!   what recycling an older segment would cost.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::time::Duration;

use memmap2::{Advice, MmapOptions};

use super::{median, Options};

const LEN: usize = 16 << 20;
const PAGES: f64 = (LEN / 4096) as f64;

fn cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = cpu();
    f();
    (cpu() - start).as_nanos() as f64 / PAGES
}

pub fn run(options: &Options) {
    let mut fresh = Vec::new();
    let mut dirty = Vec::new();
    let mut writeback = Vec::new();
    let mut again = Vec::new();
    for _ in 0..options.runs.max(3) {
        let dir = tempfile::tempdir_in(&options.dir).expect("temp dir");
        let path = dir.path().join("pages");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        let mut map = None;
        fresh.push(timed(|| {
            // SAFETY: posix_fallocate on our descriptor.
            let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, LEN as libc::off_t) };
            assert_eq!(rc, 0, "fallocate");
            let m = MmapOptions::new().len(LEN).map_raw(&file).expect("map");
            m.advise(Advice::PopulateWrite).expect("populate");
            map = Some(m);
        }));
        let map = map.expect("mapped");
        // SAFETY: our private file's mapping, LEN bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr(), LEN) };
        bytes.fill(b'a');
        dirty.push(timed(|| bytes.fill(b'b')));
        writeback.push(timed(|| map.flush().expect("msync")));
        again.push(timed(|| {
            map.advise(Advice::PopulateWrite).expect("populate");
        }));
    }
    println!(
        "{:<52} {:>10}",
        "a spool page (4 KiB), CPU of this process", "ns/page"
    );
    for (name, samples) in [
        ("fresh: fallocate + populate (segment creation)", &mut fresh),
        ("rewrite, still dirty (recycling, < 30 s)", &mut dirty),
        ("write-back: msync (the flusher's share)", &mut writeback),
        ("populate after write-back (recycling, later)", &mut again),
    ] {
        println!("{name:<52} {:>10.0}", median(samples));
    }
    println!(
        "per 255-byte event (15.5 per page): divide by 15.5; the fresh page is what \
         each event pays for its segment, on whichever thread creates it"
    );
}
