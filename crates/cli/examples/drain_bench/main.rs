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

mod copy;
mod cpu;
mod run;

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
                     [--source queue|spool|both]\n\
                     --verify: also read both topics back (untimed) and count records and ids\n\
                     --cold: start the drain on a full queue and time from spawn (default: both \
                     producers warmed by one event, then timed)"
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
            let (d, idle) = drain_run(&o, s.source, run + 1 == o.runs);
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
    report(
        &o,
        &machine,
        &tansu_version,
        &baseline,
        &baseline_cpu,
        &series,
        (in_place, copied),
    );
}

fn report(
    o: &Options,
    machine: &str,
    tansu_version: &str,
    baseline: &[f64],
    baseline_cpu: &[CpuUse],
    series: &[Series],
    copy: (f64, f64),
) {
    let mb = median(baseline);
    println!();
    println!("## Drain throughput into Tansu vs librdkafka's own producer");
    println!();
    println!("Machine: {machine}");
    println!("Broker: {tansu_version} (memory storage, one broker, fresh per measurement), topic with {PARTITIONS} partitions");
    println!(
        "Load: {} events of {} B random-hex payload per measurement, {} runs interleaved \
         (baseline, then the drain from each source); all with acks=all, idempotence, lz4, \
         linger.ms=5",
        o.events, o.payload, o.runs
    );
    println!();
    let mut header = "| run | librdkafka BaseProducer (events/s) |".to_owned();
    let mut rule = "|---:|---:|".to_owned();
    for s in series {
        header += &format!(
            " drain, {} (events/s) | {} / baseline |",
            s.source.name(),
            s.source.name()
        );
        rule += "---:|---:|";
    }
    println!("{header}");
    println!("{rule}");
    for (run, base) in baseline.iter().enumerate() {
        let mut row = format!("| {} | {base:.0} |", run + 1);
        for s in series {
            let rate = s.rates(o.events)[run];
            row += &format!(" {rate:.0} | {:.2} |", rate / base);
        }
        println!("{row}");
    }
    let mut row = format!("| **median** | **{mb:.0}** |");
    for s in series {
        let md = median(&s.rates(o.events));
        row += &format!(" **{md:.0}** | **{:.2}** |", md / mb);
    }
    println!("{row}");
    println!();
    if let [queue, spool] = series {
        let ratios: Vec<f64> = spool
            .rates(o.events)
            .iter()
            .zip(queue.rates(o.events))
            .map(|(s, q)| s / q)
            .collect();
        println!(
            "Spool / queue, median of the per-run ratios: {:.2}.",
            median(&ratios)
        );
        println!();
    }
    let per_event = |secs: f64| secs / o.events as f64 * 1e6;
    let cpu_row = |what: &str, cpu: &[CpuUse]| {
        let pick = |f: fn(&CpuUse) -> f64| median(&cpu.iter().map(f).collect::<Vec<_>>());
        println!(
            "| {what} | {:.2} | {:.2} | {:.2} | {:.0} % |",
            per_event(pick(|c| c.producer)),
            per_event(pick(|c| c.broker)),
            per_event(pick(|c| c.machine)),
            pick(|c| c.machine / c.capacity.max(f64::MIN_POSITIVE)) * 100.0
        );
    };
    println!(
        "CPU per event while timed (medians; µs of CPU time from /proc, 10 ms ticks): the producing \
         process (the bench's BaseProducer, or the drain), the broker, and every process on the \
         machine, with how busy all cores were:"
    );
    println!();
    println!("| | producer µs/event | broker µs/event | machine µs/event | cores busy |");
    println!("|---|---:|---:|---:|---:|");
    cpu_row("baseline", baseline_cpu);
    for s in series {
        let cpu: Vec<CpuUse> = s.runs.iter().map(|d| d.cpu).collect();
        cpu_row(&format!("drain, {}", s.source.name()), &cpu);
    }
    println!();
    println!("| drain resources | value |");
    println!("|---|---:|");
    for s in series {
        let peak = |f: fn(&testkit::procfs::Mem) -> u64| {
            s.runs.iter().map(|d| f(&d.peak)).max().unwrap_or(0)
        };
        let name = s.source.name();
        println!(
            "| peak VmRSS during a run ({name}) | {:.1} MiB |",
            mib(peak(|m| m.vm_rss))
        );
        println!(
            "| peak RssAnon during a run ({name}) | {:.1} MiB |",
            mib(peak(|m| m.rss_anon))
        );
        println!(
            "| peak RssFile during a run ({name}: journal and spool mappings + binary) | {:.1} MiB |",
            mib(peak(|m| m.rss_file))
        );
        if let Some(i) = &s.idle {
            let what = if i.writers > 0 {
                format!("{} live, idle writer files in the spool", i.writers)
            } else {
                "empty queue and spool".to_owned()
            };
            println!(
                "| idle CPU ({what}, {} s) | {:.2} % of one core |",
                i.secs, i.cpu_percent
            );
            println!("| idle VmRSS ({what}) | {:.1} MiB |", mib(i.mem.vm_rss));
        }
    }
    println!();
    println!(
        "Journal copy for spooled events (not done: records are read in place): reading {} \
         spooled records in place costs {:.0} ns per event in this process, reading and copying \
         each into a journal frame (reserve, copy, commit, a checkpoint per 512) {:.0} ns.",
        o.events, copy.0, copy.1
    );
    println!();
    let timing = if o.warm {
        "Both warmed (steady state): the baseline producer sends and flushes one record before \
         its timer starts; the drain delivers one event, is stopped (SIGSTOP) while the queue is \
         filled or the spool written, and is timed from its first event after SIGCONT (the \
         queue: its depth polled every 0.1 ms; the spool: `shopify_events_spool_read_total` \
         polled every 0.5 ms; an idle drain sleeps up to 50 ms between polls, a pickup latency)"
    } else {
        "Cold: the drain is timed from spawning the process (exec, journal preallocation, first \
         broker connection and producer id included)"
    };
    println!("{timing}.");
    println!(
        "Method: baseline = `produce_baseline` (one BaseProducer, send + poll(0) per record, then \
         flush; timed from the first send to the end of the flush, producer creation excluded). \
         Drain = the queue holds, or 4 sealed writers' spool files hold, {} envelopes when the \
         release drain's clock starts (fresh state dir, --max-in-flight {}); timed until the \
         queue is empty or every spool file deleted (each is deleted once all its events are \
         acknowledged), and `shopify_events_produced_total` = N (polled every 5 ms); the drain \
         adds a 36-byte `event_id` header and the emit timestamp to each record. The drain's \
         topic is read back after each run (untimed): all N event ids must be there. Memory \
         from /proc/PID/status sampled every 5 ms; idle CPU = utime+stime from /proc/PID/stat \
         over {} s after the last run. Everything (broker, benchmark, drain) shares the \
         machine's cores with other concurrent work, so rates vary run to run.",
        o.events, o.max_in_flight, o.idle_secs
    );
}
