//! `--tap GLOB`: the drain's rate with a `shopify-events tap --topic GLOB`
//! connected, next to the same source's rate alone from the same run.
//!
//! The tap's stdout goes to /dev/null, so what is measured is the drain's
//! side: matching each delivered event's topic against the client's globs,
//! formatting its line and handing it to the client's writer thread, and
//! that thread writing the socket (all on the same two cores as the drain
//! and the broker). The tapped run of a source comes just before its run
//! alone, so both see much the same load from the rest of the machine.

use std::path::Path;
use std::time::Duration;

use testkit::drain::DrainSpec;
use testkit::procfs::mib;
use testkit::tap::TapProcess;

use crate::run::{drain_run, DrainRun, Source};
use crate::{median, Options, Series};

/// Starts a tap of `glob` on the drains of `spec` and waits until the drain
/// answered it; its stderr goes to `tap-bench.log` in `log_dir`.
pub fn connect(spec: &DrainSpec, log_dir: &Path, glob: &str) -> TapProcess {
    let mut tap = TapProcess::spawn_discarding(spec, log_dir, "bench", &["--topic", glob]);
    tap.wait_ready(Duration::from_secs(30));
    tap
}

/// What a tap printed: events shown, and events it missed because it read
/// more slowly than the drain delivered (dropped for it, by design).
#[derive(Clone, Copy, Default)]
pub struct Seen {
    pub shown: u64,
    pub missed: u64,
}

/// Ends the tap (Ctrl-C) after the timed part and reads its summary line,
/// `shopify-events tap: N events[, M missed (...)]`.
pub fn disconnect(mut tap: TapProcess) -> Seen {
    tap.interrupt();
    let status = tap.wait_timeout(Duration::from_secs(10));
    let log = tap.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "the tap after Ctrl-C: {status:?}\n{log}"
    );
    let summary = log.lines().last().unwrap_or("tap: no summary");
    eprintln!("    {summary}");
    let count = |after: &str| {
        summary
            .split(after)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Seen {
        shown: count("tap: ").unwrap_or_else(|| panic!("no count in the tap's summary: {log}")),
        missed: count("events, ").unwrap_or(0),
    }
}

/// Run `run` of `source` with a tap of `glob` connected.
pub fn tapped_run(o: &Options, source: Source, glob: &str, run: usize) -> DrainRun {
    let (t, _) = drain_run(o, source, false, Some(glob));
    eprintln!(
        "run {run}: drain ({}) with a tap of {glob:?} {:.3} s = {:.0} events/s, \
         peak RssAnon {:.1} MiB",
        source.name(),
        t.elapsed.as_secs_f64(),
        o.events as f64 / t.elapsed.as_secs_f64(),
        mib(t.peak.rss_anon)
    );
    t
}

/// The table of each source's drain alone and tapped, per run and median.
pub fn report(o: &Options, glob: &str, series: &[Series]) {
    println!();
    println!(
        "With `shopify-events tap --topic {glob}` connected (stdout to /dev/null), measured in \
         the same runs just before the drain alone:"
    );
    println!();
    println!(
        "| source | run | drain alone (events/s) | drain, tapped (events/s) | tapped / alone | \
         tap shown / missed | peak RssAnon alone / tapped |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for s in series {
        let alone = s.rates(o.events);
        let tapped: Vec<f64> = s
            .tapped
            .iter()
            .map(|t| o.events as f64 / t.elapsed.as_secs_f64())
            .collect();
        let ratios: Vec<f64> = tapped.iter().zip(&alone).map(|(t, a)| t / a).collect();
        for (run, (d, t)) in s.runs.iter().zip(&s.tapped).enumerate() {
            let seen = t.tap.unwrap_or_default();
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.2} | {} / {} | {:.1} / {:.1} MiB |",
                s.source.name(),
                run + 1,
                alone[run],
                tapped[run],
                ratios[run],
                seen.shown,
                seen.missed,
                mib(d.peak.rss_anon),
                mib(t.peak.rss_anon)
            );
        }
        println!(
            "| {} | **median** | **{:.0}** | **{:.0}** | **{:.2}** | | |",
            s.source.name(),
            median(&alone),
            median(&tapped),
            median(&ratios)
        );
    }
    println!();
    println!(
        "tapped / alone is the median of the per-run ratios. The tap connects once the drain \
         serves its metrics and before the warm-up event, and is interrupted after the last \
         event is acknowledged. Shown / missed is what the tap printed and what the drain \
         dropped for it because it read more slowly than the drain delivered (the warm-up \
         event included)."
    );
}
