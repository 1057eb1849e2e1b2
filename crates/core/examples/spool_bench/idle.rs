//! The reader's idle cost with 32 idle writer processes.

use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::spool::{
    Discovery, ReaderOptions, SpoolOptions, SpoolReader, SpoolWriter,
};

use super::Options;

const KEY: i32 = 0x5b00_0003;
const WRITERS: usize = 32;
/// How often the measured loop calls `refresh` (a busy drain's idle poll).
const TICK: Duration = Duration::from_millis(10);

pub fn run(options: &Options) {
    let dir = tempfile::tempdir_in(&options.dir).expect("temp dir");
    let body = super::envelope(super::ENVELOPE_LEN);
    let mut children = Vec::new();
    for _ in 0..WRITERS {
        // SAFETY: the bench has no other threads now; the child appends one
        // record and sleeps until killed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let writer = SpoolWriter::new(SpoolOptions::new(dir.path(), KEY));
            let code = i32::from(writer.append(&body).is_err());
            if code != 0 {
                // SAFETY: ends the child.
                unsafe { libc::_exit(code) };
            }
            loop {
                // SAFETY: waits for the signal that kills it.
                unsafe { libc::pause() };
            }
        }
        children.push(pid);
    }
    let started = Instant::now();
    while count_segments(dir.path()) < WRITERS && started.elapsed() < Duration::from_secs(30) {
        sleep(Duration::from_millis(10));
    }
    println!(
        "{:<52} {:>10}",
        format!("idle reader, {WRITERS} idle writers, refresh every 10 ms"),
        "% of a core"
    );
    let before = cpu_time();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(options.idle_secs) {
        sleep(TICK);
    }
    let share = (cpu_time() - before).as_secs_f64() / start.elapsed().as_secs_f64();
    println!(
        "{:<52} {:>10.3}",
        "the 10 ms sleep loop alone (baseline)",
        share * 100.0
    );
    for (name, discovery) in [
        ("inotify (+ scan every 60 s)", Discovery::Inotify),
        ("directory scan every 250 ms", Discovery::Poll),
    ] {
        let reader_options = ReaderOptions {
            discovery,
            ..ReaderOptions::default()
        };
        let mut reader = SpoolReader::open(dir.path(), KEY, reader_options).expect("open reader");
        // Take and acknowledge the one record of each writer first.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            reader.refresh().expect("refresh");
            while let Some(record) = reader.next_record() {
                reader.ack(record.segment(), record.end());
            }
            sleep(TICK);
        }
        let before = cpu_time();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(options.idle_secs) {
            reader.refresh().expect("refresh");
            while reader.next_record().is_some() {}
            sleep(TICK);
        }
        let share = (cpu_time() - before).as_secs_f64() / start.elapsed().as_secs_f64();
        println!("{name:<52} {:>10.3}", share * 100.0);
    }
    for pid in children {
        // SAFETY: kill and reap the children forked above.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

fn count_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .count()
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain old data, written by getrusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}
