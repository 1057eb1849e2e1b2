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
    let mut readers: Vec<Option<SpoolReader>> = vec![None];
    for discovery in [Discovery::Inotify, Discovery::Poll] {
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
        readers.push(Some(reader));
    }
    // Interleaved slices, so that the machine's drift hits each alike.
    let slices = 5;
    let slice = Duration::from_secs(options.idle_secs).max(Duration::from_secs(slices)) / 5;
    let mut shares = vec![(Duration::ZERO, Duration::ZERO); readers.len()];
    for _ in 0..slices {
        for (reader, (cpu, wall)) in readers.iter_mut().zip(shares.iter_mut()) {
            let (before, start) = (cpu_time(), Instant::now());
            while start.elapsed() < slice {
                if let Some(reader) = reader {
                    reader.refresh().expect("refresh");
                    while reader.next_record().is_some() {}
                }
                sleep(TICK);
            }
            *cpu += cpu_time() - before;
            *wall += start.elapsed();
        }
    }
    let names = [
        "the 10 ms sleep loop alone (baseline)",
        "inotify (+ scan every 60 s)",
        "directory scan every 250 ms",
    ];
    for (name, (cpu, wall)) in names.iter().zip(shares) {
        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        println!("{name:<52} {:>10.3}", share * 100.0);
    }
    // One refresh and one empty next_record pass, back to back (liveness
    // tests included as they fall due: each segment once a second).
    for (name, reader) in names[1..].iter().zip(readers.iter_mut().skip(1).flatten()) {
        let calls = 20_000;
        let (before, start) = (cpu_time(), Instant::now());
        for _ in 0..calls {
            reader.refresh().expect("refresh");
            while reader.next_record().is_some() {}
        }
        let cpu = (cpu_time() - before).as_secs_f64() * 1e6 / calls as f64;
        let wall = start.elapsed().as_secs_f64() * 1e6 / calls as f64;
        println!("  refresh + next_record, {name}: {cpu:.2} µs CPU ({wall:.2} µs wall)");
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

/// CPU time of this process (user and system, in ns, not in ticks).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer and clock id.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
