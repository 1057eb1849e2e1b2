//! The cost of the drain's per-topic counter (`TopicCounter::record`) next
//! to the one relaxed add every counter of the drain costs, in one process:
//! `bench/topics.sh` (or `cargo run --release -p shopify-events-core
//! --example topics_bench -- [--runs R] [--ops N]`).
//!
//! Per run, interleaved so that drift hits each variant alike, N records
//! spread round-robin over T topics of 20–30 bytes (as real topic names
//! are), for T = 1, 8, 64 (every slot taken) and 200 (136 topics in the
//! overflow slot, which probe to an empty entry each time). The baseline
//! is `Counter::inc` in the same loop, what the drain already pays per
//! event for `received` and `produced`. Prints the median ns per record of
//! each.

use std::hint::black_box;
use std::time::Instant;

use shopify_events_core::metrics::{Counter, TopicCounter};

fn main() {
    let (mut runs, mut ops) = (7usize, 2_000_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--runs", Some(v)) => runs = v,
            ("--ops", Some(v)) => ops = v,
            _ => {
                eprintln!("usage: topics_bench [--runs R] [--ops N]");
                std::process::exit(2);
            }
        }
    }
    let sets: Vec<(usize, Vec<String>)> = [1, 8, 64, 200]
        .into_iter()
        .map(|n| {
            let topics = (0..n)
                .map(|i| format!("shop.orders.created.v{i:04}"))
                .collect();
            (n, topics)
        })
        .collect();
    let mut baseline = Vec::new();
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); sets.len()];
    for _ in 0..runs {
        // The same walk over the topics as below, so that only the counting
        // differs.
        let counter = Counter::new();
        let topics = &sets[1].1;
        let mut next = 0;
        let start = Instant::now();
        for _ in 0..ops {
            black_box(&topics[next]);
            next += 1;
            if next == topics.len() {
                next = 0;
            }
            black_box(&counter).inc();
        }
        baseline.push(start.elapsed().as_nanos() as f64 / ops as f64);
        for (i, (_, topics)) in sets.iter().enumerate() {
            let counter = TopicCounter::new();
            let mut next = 0;
            let start = Instant::now();
            for _ in 0..ops {
                black_box(&counter).record(black_box(&topics[next]), 255);
                next += 1;
                if next == topics.len() {
                    next = 0;
                }
            }
            results[i].push(start.elapsed().as_nanos() as f64 / ops as f64);
        }
    }
    let base = median(&mut baseline);
    println!("runs {runs}, {ops} records each; median ns per record");
    println!("{:<34}{base:>8.1}", "Counter::inc (baseline)");
    for ((n, _), times) in sets.iter().zip(results.iter_mut()) {
        let t = median(times);
        println!(
            "{:<34}{t:>8.1}   ({:+.1} ns over the baseline)",
            format!("TopicCounter::record, {n} topics"),
            t - base
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
