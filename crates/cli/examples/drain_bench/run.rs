//! One measurement: the baseline producer, or the drain taking N events
//! from the queue or from spool files.

use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::spool::{Appender, SpoolOptions};
use testkit::command::signal;
use testkit::consume::{consume_all, unique_topic, watermarks};
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::procfs::{clock_ticks_per_second, cpu_ticks, Mem};
use testkit::produce::produce_baseline_with;
use testkit::queue::TestQueue;
use testkit::tansu::Tansu;

use crate::cpu::{CpuMark, CpuUse};
use crate::fill::Filler;
use crate::{tap, Options, PARTITIONS};

/// Where the drain finds the N events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The SysV queue (`msgrcv` into the journal).
    Queue,
    /// Spool segment files written by 4 writers (read in place).
    Spool,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Queue => "queue",
            Source::Spool => "spool",
        }
    }
}

/// What one drain run measured.
pub struct DrainRun {
    /// With `--tap`: what the tap was shown and missed.
    pub tap: Option<tap::Seen>,
    pub elapsed: Duration,
    /// Spool: from the clock's start until every spool file was deleted
    /// (reclaimed after its events were acknowledged; not part of
    /// `elapsed`).
    pub reclaimed: Option<Duration>,
    pub peak: Mem,
    pub cpu: CpuUse,
}

pub fn baseline_run(o: &Options) -> (Duration, CpuUse) {
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

fn counter(drain: &DrainProcess, name: &str) -> f64 {
    drain
        .scrape()
        .and_then(|m| m.get(name).copied())
        .unwrap_or(0.0)
}

/// One drain run taking N events from `source`; with `keep` the drain is
/// measured idle afterwards (with 32 idle live writer files after a spool
/// run); with `tap` a `shopify-events tap --topic GLOB` is connected before
/// the first event and stays until the last is acknowledged.
pub fn drain_run(
    o: &Options,
    source: Source,
    keep: bool,
    tap: Option<&str>,
) -> (DrainRun, Option<Idle>) {
    let tansu = Tansu::start();
    let topic = unique_topic("bench-drain");
    tansu.create_topic(&topic, PARTITIONS);
    let mut filler = Filler::new(&topic, o.payload);
    // Every envelope has the same size: room for N of them plus 1 MiB.
    let envelope = (filler.next().len() - sysvmq::HEADER_LEN) as u64;
    let capacity = (o.events as u64 * envelope + (1 << 20)).max(64 << 20);
    let queue = TestQueue::with_capacity(capacity);
    let state = tempfile::Builder::new()
        .prefix("drain-bench-")
        .tempdir()
        .expect("tempdir");
    let spool_dir = state.path().join("spool");
    std::fs::create_dir_all(&spool_dir).expect("spool dir");
    if !o.warm {
        match source {
            Source::Queue => filler.queue(&queue, o.events),
            Source::Spool => filler.spool(&spool_dir, queue.key(), o.events),
        }
    }
    let mut start = Instant::now();
    let mut mark = CpuMark::take(0, tansu.pid());
    let state_dir = state.path().join("state");
    let spec = DrainSpec::new(&o.drain_bin, queue.key(), &state_dir, state.path())
        .spool_dir(&spool_dir)
        .brokers(&tansu.bootstrap)
        .with_metrics()
        .args(["--max-in-flight", &o.max_in_flight.to_string()]);
    let mut drain = spec.spawn(0);
    drain.wait_serving(Duration::from_secs(30));
    let tap = tap.map(|glob| tap::connect(&spec, state.path(), glob));
    let pid = drain.pid();
    let total = o.events + usize::from(o.warm);
    if o.warm {
        // Steady state: one event through the drain first (broker
        // connections, metadata, idempotent producer id), then the drain is
        // stopped while the source fills, and the clock starts when it takes
        // its first event after SIGCONT.
        filler.queue(&queue, 1);
        let warm_deadline = Instant::now() + Duration::from_secs(30);
        while counter(&drain, "shopify_events_produced_total") < 1.0 {
            assert!(
                Instant::now() < warm_deadline,
                "warm-up event not delivered in 30 s"
            );
            sleep(Duration::from_millis(5));
        }
        signal(pid, "STOP");
        match source {
            Source::Queue => filler.queue(&queue, o.events),
            Source::Spool => filler.spool(&spool_dir, queue.key(), o.events),
        }
        signal(pid, "CONT");
        // An idle drain sleeps up to 50 ms between polls, and learns of
        // new spool files at its next refresh: a pickup latency, not
        // throughput.
        match source {
            Source::Queue => {
                while queue.depth() >= o.events as u64 {
                    sleep(Duration::from_micros(100));
                }
            }
            Source::Spool => {
                while counter(&drain, "shopify_events_spool_read_total") < 1.0 {
                    sleep(Duration::from_micros(500));
                }
            }
        }
        start = Instant::now();
        mark = CpuMark::take(pid, tansu.pid());
    }
    let mut peak = Mem::default();
    // Spool: the clock stops when every event is acknowledged (the counter
    // is scraped every round), and the run goes on until every file is
    // deleted, which came up to a second after the last acknowledgement in
    // runs of 20,000 events: reclamation, reported apart.
    let mut acked: Option<(Instant, CpuMark)> = None;
    let deadline = start + Duration::from_secs(300);
    // Every file but the drain's reader lock (drain-KEY.lock) gone.
    let spool_empty = || {
        std::fs::read_dir(&spool_dir).map_or(true, |d| {
            d.filter_map(Result::ok).all(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("drain-") && name.ends_with(".lock")
            })
        })
    };
    loop {
        if let Some(m) = Mem::read(pid) {
            peak.vm_rss = peak.vm_rss.max(m.vm_rss);
            peak.rss_anon = peak.rss_anon.max(m.rss_anon);
            peak.rss_file = peak.rss_file.max(m.rss_file);
            peak.vm_hwm = peak.vm_hwm.max(m.vm_hwm);
        }
        // Cheap checks first (msgctl, readdir); scrape only once the source
        // is empty. Spool files are deleted once every event in them is
        // acknowledged.
        let empty = match source {
            Source::Queue => queue.depth() == 0,
            Source::Spool => {
                if acked.is_none()
                    && counter(&drain, "shopify_events_produced_total") >= total as f64
                {
                    acked = Some((Instant::now(), CpuMark::take(pid, tansu.pid())));
                }
                acked.is_some() && spool_empty()
            }
        };
        if empty && counter(&drain, "shopify_events_produced_total") >= total as f64 {
            break;
        }
        drain.assert_running();
        assert!(Instant::now() < deadline, "drain run took over 300 s");
        sleep(Duration::from_millis(5));
    }
    let end = Instant::now();
    let (reclaimed, (end, cpu_end)) = match acked {
        Some(acked) => (Some(end - start), acked),
        None => (None, (end, CpuMark::take(pid, tansu.pid()))),
    };
    let run = DrainRun {
        tap: tap.map(tap::disconnect),
        elapsed: end - start,
        reclaimed,
        peak,
        cpu: cpu_end.since(&mark),
    };
    let counters = drain.scrape().unwrap_or_default();
    let get = |name: &str| counters.get(name).copied().unwrap_or(f64::NAN);
    eprintln!(
        "    drain counters: received {}, spool_read {}, produced {}, retried {}, dead_lettered {}, \
         recovered {}",
        get("shopify_events_received_total"),
        get("shopify_events_spool_read_total"),
        get("shopify_events_produced_total"),
        get("shopify_events_retried_total"),
        get("shopify_events_dead_lettered_total"),
        get("shopify_events_recovered_total"),
    );
    // The topic must hold every event (read back outside the timed part;
    // Tansu 0.6.0's high watermark is the last batch's base offset, so
    // watermarks cannot count records there).
    let distinct = verify(&tansu.bootstrap, &topic, total, source.name());
    assert_eq!(
        distinct,
        total,
        "distinct event ids in the drain's topic\n--- drain log ---\n{}",
        drain.log_text()
    );
    let idle = keep.then(|| match source {
        Source::Queue => Idle::measure(&drain, o.idle_secs, 0),
        Source::Spool => {
            // 32 live writers, each with one delivered event in its file:
            // segments the drain keeps and tests for liveness.
            let writers: Vec<Appender> = (0..32)
                .map(|_| {
                    let mut writer = Appender::new(SpoolOptions::new(&spool_dir, queue.key()));
                    let frame = filler.next().to_vec();
                    writer.append(&frame[sysvmq::HEADER_LEN..]).expect("append");
                    writer
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(30);
            while counter(&drain, "shopify_events_produced_total") < (total + 32) as f64 {
                assert!(
                    Instant::now() < deadline,
                    "the idle writers' events not delivered"
                );
                sleep(Duration::from_millis(10));
            }
            let idle = Idle::measure(&drain, o.idle_secs, writers.len());
            drop(writers);
            idle
        }
    });
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
pub fn verify(bootstrap: &str, topic: &str, expected: usize, what: &str) -> usize {
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

/// The drain's CPU and memory while idle.
pub struct Idle {
    pub cpu_percent: f64,
    pub mem: Mem,
    pub secs: u64,
    /// Live, idle writer files in the spool while measured.
    pub writers: usize,
}

impl Idle {
    fn measure(drain: &DrainProcess, secs: u64, writers: usize) -> Idle {
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
            writers,
        }
    }
}
