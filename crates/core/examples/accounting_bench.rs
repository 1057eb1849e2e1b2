//! What loss accounting costs per event, in one process:
//! `bench/accounting.sh` (or `cargo run --release -p shopify-events-core
//! --example accounting_bench -- [--runs R] [--ops N]`).
//!
//! Emit side, against the one relaxed atomic add every emitter already pays
//! for its counters: `Sequencer::sequenced` around an empty send (the lock,
//! the generation check, the give-back guard); `envelope::stamp` on
//! envelopes of 100, 300 and 1,000 bytes (the stamp plus a second CRC32C
//! over the envelope) next to the CRC32C the encoder already computes.
//! Drain side: `Tracker::admit` in order for 1, 64 and 1,000 producers
//! interleaved, and with every 100th number arriving 10 places late.
//! Variants are interleaved within each run so that drift hits each alike;
//! prints the median ns per operation of R runs.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use shopify_events_core::accounting::{Tracker, TrackerConfig};
use shopify_events_core::envelope::{encode, stamp, Stamp};
use shopify_events_core::event_id::EventId;
use shopify_events_core::sequence::Sequencer;

type Case = (String, Box<dyn FnMut(usize)>);

fn main() {
    let (mut runs, mut ops) = (7usize, 2_000_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--runs", Some(v)) => runs = v,
            ("--ops", Some(v)) => ops = v,
            _ => {
                eprintln!("usage: accounting_bench [--runs R] [--ops N]");
                std::process::exit(2);
            }
        }
    }
    let mut cases = cases();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, (_, run)) in cases.iter_mut().enumerate() {
            let start = Instant::now();
            run(ops);
            times[i].push(start.elapsed().as_nanos() as f64 / ops as f64);
        }
    }
    println!("runs {runs}, {ops} operations each; median ns per operation");
    let base = median(&mut times[0]);
    for ((name, _), t) in cases.iter().zip(times.iter_mut()) {
        let t = median(t);
        println!(
            "{name:<46}{t:>8.1}   ({:+.1} ns over the baseline)",
            t - base
        );
    }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let counter = AtomicU64::new(0);
    cases.push((
        "AtomicU64::fetch_add, relaxed (baseline)".into(),
        Box::new(move |ops| {
            for _ in 0..ops {
                black_box(&counter).fetch_add(1, Ordering::Relaxed);
            }
        }),
    ));
    let sequencer = Sequencer::new();
    cases.push((
        "Sequencer::sequenced, empty send".into(),
        Box::new(move |ops| {
            for _ in 0..ops {
                let _ = black_box(&sequencer).sequenced(|s| black_box(Ok::<_, ()>(s)));
            }
        }),
    ));
    for size in [100usize, 300, 1000] {
        let mut bytes = Vec::new();
        encode(
            &mut bytes,
            EventId::generate(0),
            0,
            "orders.created",
            None,
            &[],
            b"",
        )
        .unwrap();
        let payload = vec![b'x'; size - bytes.len()];
        bytes.clear();
        encode(
            &mut bytes,
            EventId::generate(0),
            0,
            "orders.created",
            None,
            &[],
            &payload,
        )
        .unwrap();
        assert_eq!(bytes.len(), size);
        let body = bytes.clone();
        cases.push((
            format!("crc32c over {size} bytes (the encoder's)"),
            Box::new(move |ops| {
                for _ in 0..ops {
                    black_box(crc32c::crc32c(black_box(&body[..size - 4])));
                }
            }),
        ));
        cases.push((
            format!("envelope::stamp, {size}-byte envelope"),
            Box::new(move |ops| {
                for seq in 0..ops as u64 {
                    let _ = stamp(black_box(&mut bytes), Stamp { producer: 1, seq });
                }
            }),
        ));
    }
    for producers in [1u64, 64, 1000] {
        cases.push((
            format!("Tracker::admit in order, {producers} producers"),
            Box::new(move |ops| {
                let mut t = Tracker::new(&TrackerConfig::default(), 0);
                let mut seq = 0;
                let mut p = 0;
                for _ in 0..ops {
                    black_box(t.admit(
                        Some(Stamp {
                            producer: p + 1,
                            seq,
                        }),
                        0,
                    ));
                    p += 1;
                    if p == producers {
                        p = 0;
                        seq += 1;
                    }
                }
            }),
        ));
    }
    cases.push((
        "Tracker::admit, every 100th 10 late, 64 producers".into(),
        Box::new(move |ops| {
            let mut t = Tracker::new(&TrackerConfig::default(), 0);
            let order = late_order(ops as u64 / 64 + 1);
            let mut n = 0;
            'outer: for &seq in &order {
                for p in 1..=64 {
                    black_box(t.admit(Some(Stamp { producer: p, seq }), 0));
                    n += 1;
                    if n == ops {
                        break 'outer;
                    }
                }
            }
        }),
    ));
    cases
}

/// `0..n` with every 100th number moved 10 places later.
fn late_order(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    for at in (0..v.len().saturating_sub(11)).step_by(100) {
        let x = v.remove(at);
        v.insert(at + 10, x);
    }
    v
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
