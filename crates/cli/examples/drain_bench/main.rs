//! Drain throughput into Tansu next to librdkafka's own producer, in the
//! same run, from the queue and from spool files: `bench/drain.sh` (or
//! `cargo run --release -p shopify-events-cli --example drain_bench --
//! [--events N] [--runs R] [--payload BYTES] [--max-in-flight N]
//! [--idle-secs S] [--drain-bin PATH] [--source queue|spool|both]
//! [--baseline rust|c|both] [--rdkperf PATH]`).
//!
//! Per run, interleaved (the baselines, drain from the queue, drain from
//! the spool, the baselines, ...), each on a fresh memory-backed Tansu
//! broker with a fresh 3-partition topic:
//!
//! - baseline `rust`: `testkit::produce::produce_baseline` - one librdkafka
//!   `BaseProducer` (acks=all, idempotent, lz4, linger.ms=5) sends N unkeyed
//!   records of random hex and flushes; events/s = N / (first send ..
//!   flush).
//! - baseline `c` (`rdkperf.rs`): librdkafka's own C producer benchmark,
//!   `rdkafka_performance`, built by `bench/rdkafka_performance.sh` from the
//!   same librdkafka, with the drain's librdkafka defaults; events/s as the
//!   tool measures it (first produce .. last delivery report).
//! - drain (`run.rs`): the release `shopify-events drain` (fresh state dir,
//!   `--max-in-flight`) delivers N envelopes with the same payloads, put
//!   into a SysV queue (`queue`) or appended to spool files by 4 writers
//!   (`spool`) while it is stopped; timed from its first event to
//!   `shopify_events_produced_total` == N (the time until every spool file
//!   is deleted is reported apart).
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
mod rdkperf;
mod report;
mod run;
mod tap;

use std::path::PathBuf;
use std::process::Command;

use testkit::procfs::mib;
use testkit::sysctl::{raise_msgmnb, MIN_MSGMNB};
use testkit::tansu::tansu_bin;

use cpu::CpuUse;
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
    baselines: Vec<Baseline>,
    /// The `rdkafka_performance` binary (`bench/rdkafka_performance.sh`).
    rdkperf: PathBuf,
}

/// A producer the drain is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// rust-rdkafka's `BaseProducer` in this process.
    Rust,
    /// librdkafka's C `rdkafka_performance`, a child process.
    C,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Rust => "BaseProducer",
            Baseline::C => "rdkafka_performance",
        }
    }
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
        baselines: vec![Baseline::Rust, Baseline::C],
        rdkperf: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/rdkperf/rdkafka_performance"),
    };
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        o.drain_bin = PathBuf::from(&dir).join("release/shopify-events");
        o.rdkperf = PathBuf::from(dir).join("rdkperf/rdkafka_performance");
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
            "--rdkperf" => o.rdkperf = PathBuf::from(value()),
            "--baseline" => {
                o.baselines = match value().as_str() {
                    "rust" => vec![Baseline::Rust],
                    "c" => vec![Baseline::C],
                    "both" => vec![Baseline::Rust, Baseline::C],
                    other => panic!("--baseline {other:?}: rust, c or both"),
                }
            }
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
                     [--source queue|spool|both] [--tap GLOB] [--baseline rust|c|both] \
                     [--rdkperf PATH]\n\
                     --verify: also read both topics back (untimed) and count records and ids\n\
                     --cold: start the drain on a full queue and time from spawn (default: the \
                     baselines and the drain warmed by one event, then timed)\n\
                     --tap GLOB: each run also times the drain with `shopify-events tap --topic \
                     GLOB` connected\n\
                     --baseline: rust = rust-rdkafka's BaseProducer in this process, c = \
                     librdkafka's rdkafka_performance (bench/rdkafka_performance.sh builds it; \
                     --rdkperf PATH, default target/rdkperf/rdkafka_performance); default both"
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

/// One baseline's runs: events/s and CPU while timed.
pub struct BaselineRuns {
    baseline: Baseline,
    rates: Vec<f64>,
    cpu: Vec<CpuUse>,
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
    assert!(
        !o.baselines.contains(&Baseline::C) || o.rdkperf.is_file(),
        "no rdkafka_performance at {} (bench/rdkafka_performance.sh builds it after cargo build \
         --release; or --rdkperf PATH, or --baseline rust)",
        o.rdkperf.display()
    );
    let msgmnb = raise_msgmnb(MIN_MSGMNB);
    let tansu_version = Command::new(tansu_bin())
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    eprintln!(
        "drain_bench: {} events x {} B, {} runs, drain {} (--max-in-flight {}), sources {:?}, \
         baselines {:?}, kernel.msgmnb {msgmnb}",
        o.events,
        o.payload,
        o.runs,
        o.drain_bin.display(),
        o.max_in_flight,
        o.sources,
        o.baselines
    );
    let machine = cpu::machine();
    let mut baselines: Vec<BaselineRuns> = o
        .baselines
        .iter()
        .map(|&baseline| BaselineRuns {
            baseline,
            rates: Vec::new(),
            cpu: Vec::new(),
        })
        .collect();
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
        for b in &mut baselines {
            let (elapsed, cpu) = match b.baseline {
                Baseline::Rust => {
                    let (elapsed, cpu) = baseline_run(&o);
                    eprintln!(
                        "run {}: BaseProducer {:.3} s = {:.0} events/s",
                        run + 1,
                        elapsed.as_secs_f64(),
                        o.events as f64 / elapsed.as_secs_f64()
                    );
                    (elapsed, cpu)
                }
                Baseline::C => rdkperf::rdkperf_run(&o, &o.rdkperf, run + 1),
            };
            b.rates.push(o.events as f64 / elapsed.as_secs_f64());
            b.cpu.push(cpu);
        }
        for s in &mut series {
            if let Some(glob) = &o.tap {
                s.tapped.push(tap::tapped_run(&o, s.source, glob, run + 1));
            }
            let (d, idle) = drain_run(&o, s.source, run + 1 == o.runs, None);
            let reclaimed = d.reclaimed.map_or(String::new(), |r| {
                format!(" (every spool file deleted after {:.3} s)", r.as_secs_f64())
            });
            eprintln!(
                "run {}: drain ({}) {:.3} s = {:.0} events/s{reclaimed}, peak RssAnon {:.1} MiB, \
                 VmRSS {:.1} MiB",
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
        &baselines,
        &series,
        (in_place, copied),
    );
    if let Some(glob) = &o.tap {
        tap::report(&o, glob, &series);
    }
}
