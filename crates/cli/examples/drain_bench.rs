//! Drain throughput into Tansu next to librdkafka's own producer, in the same
//! run: `bench/drain.sh` (or `cargo run --release -p shopify-events-cli
//! --example drain_bench -- [--events N] [--runs R] [--payload BYTES]
//! [--max-in-flight N] [--idle-secs S] [--drain-bin PATH]`).
//!
//! Per run, interleaved (baseline, drain, baseline, drain, ...), each on a
//! fresh memory-backed Tansu broker with a fresh 3-partition topic:
//!
//! - baseline: `testkit::produce::produce_baseline` - one librdkafka `BaseProducer`
//!   (acks=all, idempotent, lz4, linger.ms=5) sends N unkeyed records of
//!   random hex and flushes; events/s = N / (first send .. flush).
//! - drain: N envelopes with the same payloads are put into a fresh SysV
//!   queue first, then the release `shopify-events drain` starts (fresh
//!   state dir, `--max-in-flight`); events/s = N / (spawn .. queue empty and
//!   `shopify_events_produced_total` == N). Process start, journal creation
//!   and the producer's first connection are inside the time.
//!
//! After the last drain run the drain stays up with an empty queue for the
//! idle measurement (utime+stime from /proc/PID/stat over `--idle-secs`).
//!
//! `--tap GLOB` adds a third measurement to each run: the same drain run
//! with `shopify-events tap --topic GLOB` connected (its stdout to
//! /dev/null) before the clock starts, so the table shows the drain's rate
//! with and without a tapping client, from the same run. A glob matching
//! the bench's topic (`'bench-drain-*'`) taps every event; one matching
//! nothing (`nothing`) shows what an idle client costs.

use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use testkit::command::signal;
use testkit::consume::{consume_all, unique_topic, watermarks};
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::events::event_frame;
use testkit::procfs::{clock_ticks_per_second, cpu_ticks, mib, Mem};
use testkit::produce::produce_baseline_with;
use testkit::queue::TestQueue;
use testkit::rng::XorShift;
use testkit::sysctl::{raise_msgmnb, MIN_MSGMNB};
use testkit::tansu::{tansu_bin, Tansu};
use testkit::tap::TapProcess;

const PARTITIONS: i32 = 3;

struct Options {
    events: usize,
    runs: usize,
    payload: usize,
    max_in_flight: usize,
    idle_secs: u64,
    drain_bin: PathBuf,
    verify: bool,
    /// Steady state (default): both producers warmed by one event first.
    /// `--cold`: the drain starts on a full queue, timed from spawn.
    warm: bool,
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
            "--help" | "-h" => {
                println!(
                    "drain_bench [--events N] [--runs R] [--payload BYTES] \
                     [--max-in-flight N] [--idle-secs S] [--drain-bin PATH] [--verify] [--cold] [--tap GLOB]\n\
                     --verify: also read both topics back (untimed) and count records and ids\n\
                     --cold: start the drain on a full queue and time from spawn (default: both \
                     producers warmed by one event, then timed)\n\
                     --tap GLOB: each run also times the drain with `shopify-events tap --topic GLOB` connected"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    o
}

/// What one drain run measured.
struct DrainRun {
    elapsed: Duration,
    /// From the metrics endpoint answering (drain opened) to all acked.
    from_ready: Duration,
    peak: Mem,
    cpu: CpuUse,
}

/// CPU seconds spent while one measurement ran: by the producing process
/// (this bench for the baseline, the drain process for the drain), by the
/// broker, and by the whole machine, next to the wall time and core count.
#[derive(Clone, Copy, Default)]
struct CpuUse {
    producer: f64,
    broker: f64,
    machine: f64,
    capacity: f64,
}

/// A reading of the CPU counters `CpuUse` is the difference of.
struct CpuMark {
    producer: u64,
    broker: u64,
    busy: u64,
    all: u64,
}

impl CpuMark {
    fn take(producer: u32, broker: u32) -> CpuMark {
        let (busy, all) = machine_ticks();
        CpuMark {
            producer: cpu_ticks(producer).unwrap_or(0),
            broker: cpu_ticks(broker).unwrap_or(0),
            busy,
            all,
        }
    }

    fn since(&self, start: &CpuMark) -> CpuUse {
        let hz = clock_ticks_per_second() as f64;
        CpuUse {
            producer: self.producer.saturating_sub(start.producer) as f64 / hz,
            broker: self.broker.saturating_sub(start.broker) as f64 / hz,
            machine: self.busy.saturating_sub(start.busy) as f64 / hz,
            capacity: self.all.saturating_sub(start.all) as f64 / hz,
        }
    }
}

/// Busy and total ticks of all CPUs, from the first line of /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let all: u64 = fields.iter().take(8).sum();
    (all.saturating_sub(idle), all)
}

fn baseline_run(o: &Options) -> (Duration, CpuUse) {
    let tansu = Tansu::start();
    let topic = unique_topic("bench-baseline");
    tansu.create_topic(&topic, PARTITIONS);
    let mark = CpuMark::take(std::process::id(), tansu.pid());
    let (elapsed, acked) =
        produce_baseline_with(&tansu.bootstrap, &topic, o.events, o.payload, o.warm);
    let cpu = CpuMark::take(std::process::id(), tansu.pid()).since(&mark);
    assert_eq!(acked, o.events, "baseline: not every record acknowledged");
    if o.verify {
        verify(
            &tansu.bootstrap,
            &topic,
            o.events + usize::from(o.warm),
            "baseline",
        );
    }
    (elapsed, cpu)
}

/// One drain run; with `idle` the drain is handed back alive for the idle
/// measurement.
fn drain_run(o: &Options, keep: bool, tap: Option<&str>) -> (DrainRun, Option<Idle>) {
    let tansu = Tansu::start();
    let topic = unique_topic("bench-drain");
    tansu.create_topic(&topic, PARTITIONS);
    let mut frame = Vec::new();
    let mut payload = vec![0u8; o.payload];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    // Every envelope has the same size: room for N of them plus 1 MiB.
    event_frame(&mut frame, &topic, None, &payload);
    let envelope = (frame.len() - sysvmq::HEADER_LEN) as u64;
    let capacity = (o.events as u64 * envelope + (1 << 20)).max(64 << 20);
    let queue = TestQueue::with_capacity(capacity);
    let mut fill = |count: usize| {
        for _ in 0..count {
            rng.fill_hex(&mut payload);
            event_frame(&mut frame, &topic, None, &payload);
            queue
                .try_send_frame(&frame)
                .unwrap_or_else(|e| panic!("filling the queue: {e}"));
        }
    };
    if !o.warm {
        fill(o.events);
        assert_eq!(queue.depth(), o.events as u64);
    }
    let state = tempfile::Builder::new()
        .prefix("drain-bench-")
        .tempdir()
        .expect("tempdir");
    let mut start = Instant::now();
    let mut mark = CpuMark::take(0, tansu.pid());
    let state_dir = state.path().join("state");
    let spec = DrainSpec::new(&o.drain_bin, queue.key(), &state_dir, state.path())
        .brokers(&tansu.bootstrap)
        .with_metrics()
        .args(["--max-in-flight", &o.max_in_flight.to_string()]);
    let mut drain = spec.spawn(0);
    drain.wait_serving(Duration::from_secs(30));
    let tap = tap.map(|glob| {
        let mut tap =
            TapProcess::spawn_discarding(&spec, state.path(), "bench", &["--topic", glob]);
        tap.wait_ready(Duration::from_secs(30));
        tap
    });
    let mut ready = Instant::now();
    let pid = drain.pid();
    let total = o.events + usize::from(o.warm);
    if o.warm {
        // Steady state: one event through the drain first (broker
        // connections, metadata, idempotent producer id), then the drain is
        // stopped while the queue fills, and the clock starts at SIGCONT.
        fill(1);
        let warm_deadline = Instant::now() + Duration::from_secs(30);
        while drain
            .scrape()
            .and_then(|m| m.get("shopify_events_produced_total").copied())
            .unwrap_or(0.0)
            < 1.0
        {
            assert!(
                Instant::now() < warm_deadline,
                "warm-up event not delivered in 30 s"
            );
            sleep(Duration::from_millis(5));
        }
        signal(pid, "STOP");
        fill(o.events);
        signal(pid, "CONT");
        // The clock starts when the drain takes its first event: an idle
        // drain sleeps up to 50 ms between polls of an empty queue, a pickup
        // latency, not throughput.
        while queue.depth() >= o.events as u64 {
            sleep(Duration::from_micros(100));
        }
        start = Instant::now();
        ready = start;
        mark = CpuMark::take(pid, tansu.pid());
    }
    let mut peak = Mem::default();
    let deadline = start + Duration::from_secs(300);
    loop {
        if let Some(m) = Mem::read(pid) {
            peak.vm_rss = peak.vm_rss.max(m.vm_rss);
            peak.rss_anon = peak.rss_anon.max(m.rss_anon);
            peak.rss_file = peak.rss_file.max(m.rss_file);
            peak.vm_hwm = peak.vm_hwm.max(m.vm_hwm);
        }
        // Cheap msgctl first; scrape only once the queue is empty.
        if queue.depth() == 0 {
            let produced = drain
                .scrape()
                .and_then(|m| m.get("shopify_events_produced_total").copied())
                .unwrap_or(0.0);
            if produced >= total as f64 {
                break;
            }
        }
        drain.assert_running();
        assert!(Instant::now() < deadline, "drain run took over 300 s");
        sleep(Duration::from_millis(5));
    }
    let end = Instant::now();
    if let Some(mut tap) = tap {
        tap.interrupt();
        tap.wait_timeout(Duration::from_secs(10));
        let log = tap.log_text();
        eprintln!("    {}", log.lines().last().unwrap_or("tap: no summary"));
    }
    let run = DrainRun {
        elapsed: end - start,
        from_ready: end - ready,
        peak,
        cpu: CpuMark::take(pid, tansu.pid()).since(&mark),
    };
    let counters = drain.scrape().unwrap_or_default();
    let counter = |name: &str| counters.get(name).copied().unwrap_or(f64::NAN);
    eprintln!(
        "    drain counters: received {}, produced {}, retried {}, dead_lettered {}, recovered {}",
        counter("shopify_events_received_total"),
        counter("shopify_events_produced_total"),
        counter("shopify_events_retried_total"),
        counter("shopify_events_dead_lettered_total"),
        counter("shopify_events_recovered_total"),
    );
    // The topic must hold every event (read back outside the timed part;
    // Tansu 0.6.0's high watermark is the last batch's base offset, so
    // watermarks cannot count records there).
    let distinct = verify(&tansu.bootstrap, &topic, total, "drain");
    assert_eq!(
        distinct,
        total,
        "distinct event ids in the drain's topic\n--- drain log ---\n{}",
        drain.log_text()
    );
    let idle = keep.then(|| Idle::measure(&drain, o.idle_secs));
    let status = drain.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "drain exit after SIGTERM: {status:?}\n{}",
        drain.log_text()
    );
    drop(queue);
    (run, idle)
}

/// Reads `topic` back (untimed), prints how many records, distinct
/// `event_id` headers, records per partition and the broker's watermarks it
/// holds, and returns the distinct ids.
fn verify(bootstrap: &str, topic: &str, expected: usize, what: &str) -> usize {
    let records = consume_all(bootstrap, topic, expected, Duration::from_secs(20));
    let mut ids = std::collections::HashSet::new();
    let mut per_partition = std::collections::BTreeMap::new();
    let mut max_offset = std::collections::BTreeMap::new();
    for r in &records {
        if let Some(id) = r.header("event_id") {
            ids.insert(id.to_vec());
        }
        *per_partition.entry(r.partition).or_insert(0usize) += 1;
        let m = max_offset.entry(r.partition).or_insert(-1i64);
        *m = (*m).max(r.offset);
    }
    let watermarks: Vec<_> = (0..PARTITIONS)
        .map(|p| watermarks(bootstrap, topic, p))
        .collect();
    eprintln!(
        "    verify {what}: read {} records ({} distinct event ids) of {expected}; \
         per partition {per_partition:?}; max offset {max_offset:?}; watermarks {watermarks:?}",
        records.len(),
        ids.len()
    );
    ids.len()
}

struct Idle {
    cpu_percent: f64,
    mem: Mem,
    secs: u64,
}

impl Idle {
    fn measure(drain: &DrainProcess, secs: u64) -> Idle {
        let pid = drain.pid();
        // Let the last deliveries and the 1 s tick settle first.
        sleep(Duration::from_secs(2));
        let hz = clock_ticks_per_second() as f64;
        let t0 = cpu_ticks(pid).expect("read /proc/PID/stat");
        let w0 = Instant::now();
        sleep(Duration::from_secs(secs));
        let t1 = cpu_ticks(pid).expect("read /proc/PID/stat");
        let wall = w0.elapsed().as_secs_f64();
        Idle {
            cpu_percent: (t1 - t0) as f64 / hz / wall * 100.0,
            mem: Mem::read(pid).unwrap_or_default(),
            secs,
        }
    }
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

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{model}, {cores} cores, Linux {kernel} (load average at start {load})")
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
        "drain_bench: {} events x {} B, {} runs, drain {} (--max-in-flight {}), kernel.msgmnb {msgmnb}",
        o.events,
        o.payload,
        o.runs,
        o.drain_bin.display(),
        o.max_in_flight
    );
    let machine = machine();
    let mut baseline = Vec::new();
    let mut baseline_cpu = Vec::new();
    let mut drained = Vec::new();
    let mut tapped: Vec<DrainRun> = Vec::new();
    let mut idle = None;
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
        if let Some(glob) = &o.tap {
            let (t, _) = drain_run(&o, false, Some(glob));
            eprintln!(
                "run {}: drain with a tap of {glob:?} {:.3} s = {:.0} events/s, peak RssAnon {:.1} MiB",
                run + 1,
                t.elapsed.as_secs_f64(),
                o.events as f64 / t.elapsed.as_secs_f64(),
                mib(t.peak.rss_anon)
            );
            tapped.push(t);
        }
        let (d, i) = drain_run(&o, run + 1 == o.runs, None);
        let d_rate = o.events as f64 / d.elapsed.as_secs_f64();
        eprintln!(
            "run {}: drain    {:.3} s = {:.0} events/s ({:.0}/s from ready), peak RssAnon {:.1} MiB, \
             VmRSS {:.1} MiB",
            run + 1,
            d.elapsed.as_secs_f64(),
            d_rate,
            o.events as f64 / d.from_ready.as_secs_f64(),
            mib(d.peak.rss_anon),
            mib(d.peak.vm_rss)
        );
        baseline.push(b_rate);
        drained.push(d);
        if i.is_some() {
            idle = i;
        }
    }

    let d_rates: Vec<f64> = drained
        .iter()
        .map(|d| o.events as f64 / d.elapsed.as_secs_f64())
        .collect();
    let d_ready: Vec<f64> = drained
        .iter()
        .map(|d| o.events as f64 / d.from_ready.as_secs_f64())
        .collect();
    let ratios: Vec<f64> = d_rates.iter().zip(&baseline).map(|(d, b)| d / b).collect();
    let (mb, md) = (median(&baseline), median(&d_rates));
    let peak = |f: fn(&Mem) -> u64| drained.iter().map(|d| f(&d.peak)).max().unwrap_or(0);

    println!();
    println!("## Drain throughput into Tansu vs librdkafka's own producer");
    println!();
    println!("Machine: {machine}");
    println!("Broker: {tansu_version} (memory storage, one broker, fresh per measurement), topic with {PARTITIONS} partitions");
    println!(
        "Load: {} events of {} B random-hex payload per measurement, {} runs interleaved \
         (baseline, drain, baseline, drain, ...); both with acks=all, idempotence, lz4, linger.ms=5",
        o.events, o.payload, o.runs
    );
    println!();
    println!("| run | librdkafka BaseProducer (events/s) | drain (events/s) | drain / baseline |");
    println!("|---:|---:|---:|---:|");
    for run in 0..o.runs {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} |",
            run + 1,
            baseline[run],
            d_rates[run],
            ratios[run]
        );
    }
    println!(
        "| **median** | **{mb:.0}** | **{md:.0}** | **{:.2}** |",
        md / mb
    );
    println!();
    if let Some(glob) = &o.tap {
        let t_rates: Vec<f64> = tapped
            .iter()
            .map(|t| o.events as f64 / t.elapsed.as_secs_f64())
            .collect();
        let t_ratios: Vec<f64> = t_rates.iter().zip(&d_rates).map(|(t, d)| t / d).collect();
        println!(
            "With `shopify-events tap --topic {glob}` connected (stdout to /dev/null), measured in \
             the same runs just before the drain alone:"
        );
        println!();
        println!("| run | drain alone (events/s) | drain, tapped (events/s) | tapped / alone | peak RssAnon alone / tapped |");
        println!("|---:|---:|---:|---:|---:|");
        for run in 0..o.runs {
            println!(
                "| {} | {:.0} | {:.0} | {:.2} | {:.1} / {:.1} MiB |",
                run + 1,
                d_rates[run],
                t_rates[run],
                t_ratios[run],
                mib(drained[run].peak.rss_anon),
                mib(tapped[run].peak.rss_anon)
            );
        }
        println!(
            "| **median** | **{md:.0}** | **{:.0}** | **{:.2}** | |",
            median(&t_rates),
            median(&t_ratios)
        );
        println!();
    }
    println!(
        "Median drain rate counted from the drain being ready (journal open, metrics up) \
         instead of from spawn: {:.0} events/s ({:.2} x baseline). Median of the per-run ratios: {:.2}.",
        median(&d_ready),
        median(&d_ready) / mb,
        median(&ratios)
    );
    println!();
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
    cpu_row("baseline", &baseline_cpu);
    cpu_row("drain", &drained.iter().map(|d| d.cpu).collect::<Vec<_>>());
    println!();
    println!("| drain resources | value |");
    println!("|---|---:|");
    println!(
        "| peak VmRSS during a run | {:.1} MiB |",
        mib(peak(|m| m.vm_rss))
    );
    println!(
        "| peak RssAnon during a run | {:.1} MiB |",
        mib(peak(|m| m.rss_anon))
    );
    println!(
        "| peak RssFile during a run (journal mapping + binary) | {:.1} MiB |",
        mib(peak(|m| m.rss_file))
    );
    if let Some(i) = &idle {
        println!(
            "| idle CPU (empty queue, {} s) | {:.2} % of one core |",
            i.secs, i.cpu_percent
        );
        println!("| idle VmRSS | {:.1} MiB |", mib(i.mem.vm_rss));
        println!("| idle RssAnon | {:.1} MiB |", mib(i.mem.rss_anon));
        println!("| idle RssFile | {:.1} MiB |", mib(i.mem.rss_file));
    }
    println!();
    let timing = if o.warm {
        "Both warmed (steady state): the baseline producer sends and flushes one record before \
         its timer starts; the drain delivers one event, is stopped (SIGSTOP) while the queue is \
         filled, and is timed from its first receive after SIGCONT (polled every 0.1 ms; an idle \
         drain sleeps up to 50 ms between polls of an empty queue, a pickup latency)"
    } else {
        "Cold: the drain is timed from spawning the process (exec, journal preallocation, first \
         broker connection and producer id included)"
    };
    println!("{timing}.");
    println!(
        "Method: baseline = `produce_baseline` (one BaseProducer, send + poll(0) per record, then \
         flush; timed from the first send to the end of the flush, producer creation excluded). \
         Drain = the queue holds {} envelopes when the release drain's clock starts (fresh \
         state dir, --max-in-flight {}); timed until the queue is empty and \
         `shopify_events_produced_total` = N (polled every 5 ms; queue depth via msgctl, \
         /metrics only once the queue is empty); the drain adds a 36-byte `event_id` header and \
         the emit timestamp to each record. The drain's topic is read back after each run \
         (untimed): all N event ids must be there. Memory from /proc/PID/status sampled every 5 ms; idle CPU = utime+stime \
         from /proc/PID/stat over {} s after the last run. Everything (broker, benchmark, drain) \
         shares the machine's cores with other concurrent work, so rates vary run to run.",
        o.events, o.max_in_flight, o.idle_secs
    );
}
