//! Spool costs next to the SysV floor, in one process: `bench/spool.sh` (or
//! `cargo run --release -p shopify-events-core --example spool_bench --
//! [--runs R] [--ops N] [--dir DIR] [--idle-secs S] [--part P]`).
//!
//! Per run, interleaved so that drift hits each variant alike, N operations
//! each of one 255-byte envelope (the size of a `bench/emit.rb` event):
//!
//! - `msgsnd` floor: bare non-blocking `msgsnd` into a private queue sized
//!   for the batch (needs CAP_SYS_RESOURCE above `kernel.msgmnb`; the queue
//!   is removed at the end, no sysctl is changed);
//! - `Appender::append`, no lock (one thread owns it): the floor of the
//!   format; in one preallocated segment, and with the default segment
//!   sizes (64 KiB growing to 16 MiB: creations included);
//! - the `Appender` behind a std `Mutex` and behind a spinlock, and
//!   `SpoolWriter::append` (the `Mutex` plus its fork-generation check),
//!   from 1 thread and from 2;
//! - `SpoolWriter` with `SyncPolicy::Interval(10 ms)`, and `Always` (fewer
//!   operations: each one is an `msync`);
//! - reading: `msgrcv` of the same message (floor), and `SpoolReader`
//!   `next_record` + `body` + `ack` per record.
//!
//! Then segment creation (µs per segment of 64 KiB, 1 MiB, 16 MiB), what a
//! spool page costs the kernel (`pages.rs`: fresh, rewritten, written
//! back), and the
//! reader's idle cost with 32 idle writer processes, under inotify and
//! under polling, with `refresh` called every 10 ms: CPU time of this
//! process over `--idle-secs`.

mod append;
mod idle;
mod pages;
mod read;

use std::path::PathBuf;

use shopify_events_core::envelope::encode;
use shopify_events_core::event_id::EventId;

/// Bytes of the envelope every variant appends or sends.
const ENVELOPE_LEN: usize = 255;

struct Options {
    /// Which parts to run: all, or one of append, read, create, idle.
    part: String,
    runs: usize,
    ops: usize,
    dir: PathBuf,
    idle_secs: u64,
}

fn options() -> Options {
    let mut options = Options {
        part: "all".into(),
        runs: 7,
        ops: 200_000,
        dir: std::env::temp_dir(),
        idle_secs: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--runs" => options.runs = value().parse().unwrap_or_else(|_| usage("--runs N")),
            "--ops" => options.ops = value().parse().unwrap_or_else(|_| usage("--ops N")),
            "--dir" => options.dir = PathBuf::from(value()),
            "--part" => options.part = value(),
            "--idle-secs" => {
                options.idle_secs = value().parse().unwrap_or_else(|_| usage("--idle-secs S"))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    options
}

fn usage(problem: &str) -> ! {
    eprintln!("spool_bench: {problem}");
    eprintln!(
        "usage: spool_bench [--runs R] [--ops N] [--dir DIR] [--idle-secs S] \
         [--part all|append|read|create|pages|idle]"
    );
    std::process::exit(2);
}

/// An envelope of exactly `len` bytes.
fn envelope(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let time = 1_700_000_000_000_000;
    let write = |out: &mut Vec<u8>, payload: &[u8]| {
        out.clear();
        encode(
            out,
            EventId::generate(time),
            time,
            "bench.events",
            None,
            &[],
            payload,
        )
        .expect("encode");
    };
    write(&mut out, b"");
    let payload = vec![b'a'; len - out.len()];
    write(&mut out, &payload);
    assert_eq!(out.len(), len);
    out
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn machine(dir: &std::path::Path) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let fs = std::process::Command::new("findmnt")
        .args(["-no", "FSTYPE", "-T"])
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores; spool dir on {fs}")
}

fn main() {
    let options = options();
    let body = envelope(ENVELOPE_LEN);
    println!("spool_bench: {}", machine(&options.dir));
    println!(
        "{} runs of {} operations, {ENVELOPE_LEN}-byte envelope, medians\n",
        options.runs, options.ops
    );
    let part = |name: &str| options.part == "all" || options.part == name;
    if part("append") {
        let results = append::run(&options, &body);
        let floor = results.first().map_or(1.0, |r| r.1);
        println!("{:<52} {:>10} {:>8}", "append / send", "ns/op", "x floor");
        for (name, ns) in &results {
            println!("{name:<52} {ns:>10.1} {:>8.3}", ns / floor);
        }
        println!();
    }
    if part("read") {
        let reads = read::run(&options, &body);
        let floor = reads.first().map_or(1.0, |r| r.1);
        println!("{:<52} {:>10} {:>12}", "read", "ns/op", "records/s");
        for (name, ns) in &reads {
            println!(
                "{name:<52} {ns:>10.1} {:>12.0}   ({:.2}x floor)",
                1e9 / ns,
                ns / floor
            );
        }
        println!();
    }
    if part("create") {
        append::creation(&options);
        println!();
    }
    if part("pages") {
        pages::run(&options);
        println!();
    }
    if part("idle") {
        idle::run(&options);
    }
}
