//! The benchmark's Markdown report: rates against the baseline, CPU per
//! event, the drain's memory and idle cost.

use testkit::procfs::mib;

use crate::cpu::CpuUse;
use crate::{median, BaselineRuns, Options, Series, PARTITIONS};

pub fn report(
    o: &Options,
    machine: &str,
    tansu_version: &str,
    baselines: &[BaselineRuns],
    series: &[Series],
    copy: (f64, f64),
) {
    println!();
    println!("## Drain throughput into Tansu vs librdkafka's own producers");
    println!();
    println!("Machine: {machine}");
    println!("Broker: {tansu_version} (memory storage, one broker, fresh per measurement), topic with {PARTITIONS} partitions");
    println!(
        "Load: {} events of {} B random-hex payload per measurement, {} runs interleaved \
         (the baselines, then the drain from each source); all with acks=all, idempotence, \
         lz4, linger.ms=5",
        o.events, o.payload, o.runs
    );
    println!();
    let mut header = "| run |".to_owned();
    let mut rule = "|---:|".to_owned();
    for b in baselines {
        header += &format!(" {} (events/s) |", b.baseline.name());
        rule += "---:|";
    }
    for s in series {
        header += &format!(" drain, {} (events/s) |", s.source.name());
        rule += "---:|";
        for b in baselines {
            header += &format!(" {} / {} |", s.source.name(), b.baseline.name());
            rule += "---:|";
        }
    }
    println!("{header}");
    println!("{rule}");
    for run in 0..o.runs {
        let mut row = format!("| {} |", run + 1);
        for b in baselines {
            row += &format!(" {:.0} |", b.rates[run]);
        }
        for s in series {
            let rate = s.rates(o.events)[run];
            row += &format!(" {rate:.0} |");
            for b in baselines {
                row += &format!(" {:.2} |", rate / b.rates[run]);
            }
        }
        println!("{row}");
    }
    let mut row = "| **median** |".to_owned();
    for b in baselines {
        row += &format!(" **{:.0}** |", median(&b.rates));
    }
    for s in series {
        let md = median(&s.rates(o.events));
        row += &format!(" **{md:.0}** |");
        for b in baselines {
            row += &format!(" **{:.2}** |", md / median(&b.rates));
        }
    }
    println!("{row}");
    println!();
    println!(
        "Ratios at {} (ratio of the medians; in brackets the median and range of the per-run \
         ratios):",
        if o.warm { "steady state" } else { "cold start" }
    );
    println!();
    for s in series {
        let rates = s.rates(o.events);
        for b in baselines {
            let per_run: Vec<f64> = rates.iter().zip(&b.rates).map(|(d, r)| d / r).collect();
            let (lo, hi) = per_run.iter().fold((f64::INFINITY, 0f64), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
            println!(
                "- drain ({}) / {}: **{:.2}** ({:.2}; {lo:.2}-{hi:.2})",
                s.source.name(),
                b.baseline.name(),
                median(&rates) / median(&b.rates),
                median(&per_run)
            );
        }
    }
    println!();
    for s in series {
        let reclaimed: Vec<f64> = s
            .runs
            .iter()
            .filter_map(|d| d.reclaimed.map(|r| r.as_secs_f64()))
            .collect();
        if !reclaimed.is_empty() {
            println!(
                "Drain ({}): every file deleted (reclaimed) a median {:.3} s after the clock's \
                 start; not timed, the rates stop at the last acknowledgement.",
                s.source.name(),
                median(&reclaimed)
            );
            println!();
        }
    }
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
         process (this bench for the BaseProducer, the rdkafka_performance process, or the \
         drain), the broker, and every process on the machine, with how busy all cores were:"
    );
    println!();
    println!("| | producer µs/event | broker µs/event | machine µs/event | cores busy |");
    println!("|---|---:|---:|---:|---:|");
    for b in baselines {
        cpu_row(&format!("baseline, {}", b.baseline.name()), &b.cpu);
    }
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
        "All warmed (steady state): each baseline producer sends and flushes one record before \
         its timer starts (rdkafka_performance: inside rd_kafka_topic_new, by the bench's link-time \
         shim, just before the tool starts its clock); the drain delivers one event, is stopped (SIGSTOP) while the queue is \
         filled or the spool written, and is timed from its first event after SIGCONT (the \
         queue: its depth polled every 0.1 ms; the spool: `shopify_events_spool_read_total` \
         polled every 0.5 ms; an idle drain sleeps up to 50 ms between polls, a pickup latency)"
    } else {
        "Cold: the drain is timed from spawning the process (exec, journal preallocation, first \
         broker connection and producer id included); the baselines from just after creating \
         their producer (connection and producer id included, process start not)"
    };
    println!("{timing}.");
    println!(
        "Method: baseline = `produce_baseline` (one BaseProducer, send + poll(0) per record, then \
         flush; timed from the first send to the end of the flush, producer creation excluded). \
         rdkafka_performance = librdkafka's examples/rdkafka_performance.c built from the \
         librdkafka the drain links (bench/rdkafka_performance.sh), run as `rdkafka_performance \
         {rdkperf_args}` (the drain's librdkafka defaults, the library's retry defaults the tool \
         overrides restored, statistics off); its own figure, first produce call to the last delivery report; a link-time \
         shim warms it and gives each record its own slice of random hex (the tool would send \
         one buffer N times, which lz4 compresses across a batch), copied by librdkafka \
         (RD_KAFKA_MSG_F_COPY) as the drain's and BaseProducer's records are; its CPU window is \
         bracketed by the shim stopping on stdin at both ends. \
         Drain = the queue holds, or 4 sealed writers' spool files hold, {} envelopes when the \
         release drain's clock starts (fresh state dir, --max-in-flight {}); timed until \
         `shopify_events_produced_total` = N (every event acknowledged; for the queue checked \
         once it is empty, for the spool scraped every 5 ms, and the time until every spool \
         file is deleted reported apart); the drain \
         adds a 36-byte `event_id` header and the emit timestamp to each record. The drain's \
         topic is read back after each run (untimed): all N event ids must be there. Memory \
         from /proc/PID/status sampled every 5 ms; idle CPU = utime+stime from /proc/PID/stat \
         over {} s after the last run. Everything (broker, benchmark, drain) shares the \
         machine's cores with other concurrent work, so rates vary run to run.",
        o.events,
        o.max_in_flight,
        o.idle_secs,
        rdkperf_args = crate::rdkperf::args(o, "BROKER", "TOPIC").join(" "),
    );
}
