//! Drain throughput into Tansu next to librdkafka's own producer, in the
//! same run, from the queue and from spool files: `bench/drain.sh` (or
//! `cargo run --release -p shopify-events-cli --example drain_bench --
//! [--events N] [--runs R] [--payload BYTES] [--max-in-flight N]
//! [--idle-secs S] [--drain-bin PATH] [--source queue|spool|both]`).
//!
//! Per run, interleaved (baseline, drain from the queue, drain from the
//! spool, baseline, ...), each on a fresh memory-backed Tansu broker with a
//! fresh 3-partition topic:
//!
//! - baseline: `testkit::produce::produce_baseline` - one librdkafka
//!   `BaseProducer` (acks=all, idempotent, lz4, linger.ms=5) sends N unkeyed
//!   records of random hex and flushes; events/s = N / (first send ..
//!   flush).
//! - drain (`run.rs`): the release `shopify-events drain` (fresh state dir,
//!   `--max-in-flight`) delivers N envelopes with the same payloads, put
//!   into a SysV queue (`queue`) or appended to spool files by 4 writers
//!   (`spool`) while it is stopped; timed from its first event to the
//!   source empty and `shopify_events_produced_total` == N.
//!
//! After the last runs the drain stays up for the idle measurements
//! (utime+stime from /proc/PID/stat over `--idle-secs`): with an empty
//! queue, and with 32 live, idle writer files in the spool. `copy.rs`
//! measures what copying spooled events into the journal would add.
//!
//! `--tap GLOB` (`tap.rs`) adds a measurement to each run of each source:
//! the same drain run with `shopify-events tap --topic GLOB` connected
//! (its stdout to /dev/null) before the clock starts, so a table shows the
//! drain's rate with and without a tapping client, from the same run. A
//! glob matching the bench's topic (`'bench-drain-*'`) taps every event; one
//! matching nothing (`nothing`) shows what an idle client costs.

mod copy;
mod cpu;
mod fill;
mod report;
mod run;
mod tap;

use std::path::PathBuf;
use std::process::Command;

use testkit::procfs::mib;
use testkit::sysctl::{raise_msgmnb, MIN_MSGMNB};
use testkit::tansu::tansu_bin;

use run::{baseline_run, drain_run, DrainRun, Idle, Source};

const PARTITIONS: i32 = 3;

pub struct Options {
    events: usize,
    runs: usize,
    payload: usize,
    max_in_flight: usize,
    idle_secs: u64,
    drain_bin: PathBuf,
    verify: bool,
    /// Steady state (default): both producers warmed by one event first.
    /// `--cold`: the drain starts on a full source, timed from spawn.
    warm: bool,
    sources: Vec<Source>,
    /// `--tap GLOB`: also time each drain run with a tap of GLOB connected.
    tap: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        events: 200_000,
        runs: 5,
        payload: 200,
        max_in_flight: 10_000,
        idle_secs: 10,
        drain_bin: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/release/shopify-events"),
        verify: false,
        warm: true,
        sources: vec![Source::Queue, Source::Spool],
        tap: None,
    };
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        o.drain_bin = PathBuf::from(dir).join("release/shopify-events");
    }
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--events" => o.events = value().parse().expect("--events N"),
            "--runs" => o.runs = value().parse().expect("--runs N"),
            "--payload" => o.payload = value().parse().expect("--payload BYTES"),
            "--max-in-flight" => o.max_in_flight = value().parse().expect("--max-in-flight N"),
            "--idle-secs" => o.idle_secs = value().parse().expect("--idle-secs S"),
            "--drain-bin" => o.drain_bin = PathBuf::from(value()),
            "--verify" => o.verify = true,
            "--cold" => o.warm = false,
            "--tap" => o.tap = Some(value()),
            "--source" => {
                o.sources = match value().as_str() {
                    "queue" => vec![Source::Queue],
                    "spool" => vec![Source::Spool],
                    "both" => vec![Source::Queue, Source::Spool],
                    other => panic!("--source {other:?}: queue, spool or both"),
                }
            }
            "--help" | "-h" => {
                println!(
                    "drain_bench [--events N] [--runs R] [--payload BYTES] \
                     [--max-in-flight N] [--idle-secs S] [--drain-bin PATH] [--verify] [--cold] \
                     [--source queue|spool|both] [--tap GLOB]\n\
                     --verify: also read both topics back (untimed) and count records and ids\n\
                     --cold: start the drain on a full queue and time from spawn (default: both \
                     producers warmed by one event, then timed)\n\
                     --tap GLOB: each run also times the drain with `shopify-events tap --topic \
                     GLOB` connected"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    o
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One drain source's runs.
struct Series {
    source: Source,
    runs: Vec<DrainRun>,
    /// The same runs with a tap connected (`--tap`), else empty.
    tapped: Vec<DrainRun>,
    idle: Option<Idle>,
}

impl Series {
    fn rates(&self, events: usize) -> Vec<f64> {
        self.runs
            .iter()
            .map(|d| events as f64 / d.elapsed.as_secs_f64())
            .collect()
    }
}

fn main() {
    let o = options();
    assert!(
        o.drain_bin.is_file(),
        "no drain binary at {} (cargo build --release -p shopify-events-cli, or --drain-bin)",
        o.drain_bin.display()
    );
    assert!(o.runs > 0 && o.events > 0);
    let msgmnb = raise_msgmnb(MIN_MSGMNB);
    let tansu_version = Command::new(tansu_bin())
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    eprintln!(
        "drain_bench: {} events x {} B, {} runs, drain {} (--max-in-flight {}), sources {:?}, \
         kernel.msgmnb {msgmnb}",
        o.events,
        o.payload,
        o.runs,
        o.drain_bin.display(),
        o.max_in_flight,
        o.sources
    );
    let machine = cpu::machine();
    let mut baseline = Vec::new();
    let mut baseline_cpu = Vec::new();
    let mut series: Vec<Series> = o
        .sources
        .iter()
        .map(|&source| Series {
            source,
            runs: Vec::new(),
            tapped: Vec::new(),
            idle: None,
        })
        .collect();
    for run in 0..o.runs {
        let (b, b_cpu) = baseline_run(&o);
        baseline_cpu.push(b_cpu);
        let b_rate = o.events as f64 / b.as_secs_f64();
        eprintln!(
            "run {}: baseline {:.3} s = {:.0} events/s",
            run + 1,
            b.as_secs_f64(),
            b_rate
        );
        baseline.push(b_rate);
        for s in &mut series {
            if let Some(glob) = &o.tap {
                s.tapped.push(tap::tapped_run(&o, s.source, glob, run + 1));
            }
            let (d, idle) = drain_run(&o, s.source, run + 1 == o.runs, None);
            eprintln!(
                "run {}: drain ({}) {:.3} s = {:.0} events/s, peak RssAnon {:.1} MiB, VmRSS {:.1} MiB",
                run + 1,
                s.source.name(),
                d.elapsed.as_secs_f64(),
                o.events as f64 / d.elapsed.as_secs_f64(),
                mib(d.peak.rss_anon),
                mib(d.peak.vm_rss)
            );
            s.runs.push(d);
            if idle.is_some() {
                s.idle = idle;
            }
        }
    }
    let (in_place, copied) = copy::measure(o.events, o.payload);
    report::report(
        &o,
        &machine,
        &tansu_version,
        &baseline,
        &baseline_cpu,
        &series,
        (in_place, copied),
    );
    if let Some(glob) = &o.tap {
        tap::report(&o, glob, &series);
    }
}
