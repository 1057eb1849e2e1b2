//! What the drain's tap hook (`Tap::delivered`, one call per delivered
//! event) costs, in one process: `bench/tap.sh` (or `cargo run --release
//! -p shopify-events-core --example tap_bench -- [--runs R] [--ops N]`).
//!
//! Per run, interleaved so that drift hits each variant alike, N calls on
//! the same 200-byte-payload envelope:
//!
//! - `loop`: the loop alone (the envelope passed through `black_box`);
//! - `Counter::inc`: one relaxed atomic add, what each of the drain's
//!   counters costs per event (for scale);
//! - `tap, nobody tapping`: the hook as the drain calls it, no client:
//!   the claim is one relaxed load, so this should sit at `loop` plus a
//!   fraction of a nanosecond;
//! - `tap, a client, no match`: one client whose glob matches nothing:
//!   decode (CRC) and the glob, nothing sent;
//! - `tap, 8 clients x 64 globs, no match`: the most clients a drain
//!   serves, each with the most globs, none matching: what tapping
//!   clients can make the drain loop pay per event at worst (each
//!   client's verdict per topic is kept, so this is lookups, not matches);
//! - `tap, a client, every event`: one client taking everything, its
//!   items taken and given back by a thread of its own (the copy into the
//!   buffer and the channel send; the JSON is formatted on the client's
//!   thread in the drain, not measured here).
//!
//! Prints the median ns per call of each.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use shopify_events_core::defaults::{TAP_MAX_CLIENTS, TAP_MAX_GLOBS};
use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use shopify_events_core::metrics::Counter;
use shopify_events_core::tap::{Tap, TopicFilter};

fn main() {
    let (mut runs, mut ops) = (7usize, 2_000_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--runs", Some(v)) => runs = v,
            ("--ops", Some(v)) => ops = v,
            _ => {
                eprintln!("usage: tap_bench [--runs R] [--ops N]");
                std::process::exit(2);
            }
        }
    }
    let mut body = Vec::new();
    envelope::encode(
        &mut body,
        EventId::generate(1),
        1,
        "shop.orders.created.v0001",
        None,
        &[],
        &[b'x'; 200],
    )
    .expect("encode");
    let body = body.as_slice();

    let names = [
        "loop",
        "Counter::inc",
        "tap, nobody tapping",
        "tap, a client, no match",
        "tap, 8 clients x 64 globs, no match",
        "tap, a client, every event",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..runs {
        times[0].push(per_call(ops, || {
            black_box(body);
        }));
        let counter = Counter::new();
        times[1].push(per_call(ops, || {
            black_box(body);
            black_box(&counter).inc();
        }));
        let tap = Tap::off();
        times[2].push(per_call(ops, || {
            black_box(&tap).delivered(|| Some(black_box(body)));
        }));
        let filter = TopicFilter::parse(&["payments.*"]).expect("glob");
        let client = tap.hub().subscribe(filter).expect("subscribe");
        times[3].push(per_call(ops, || {
            black_box(&tap).delivered(|| Some(black_box(body)));
        }));
        tap.hub().unsubscribe(&client);
        let globs: Vec<String> = (0..TAP_MAX_GLOBS)
            .map(|i| format!("*s*o*p*x{i}*d"))
            .collect();
        let many: Vec<_> = (0..TAP_MAX_CLIENTS)
            .map(|_| {
                let filter = TopicFilter::parse(&globs).expect("globs");
                tap.hub().subscribe(filter).expect("subscribe")
            })
            .collect();
        times[4].push(per_call(ops, || {
            black_box(&tap).delivered(|| Some(black_box(body)));
        }));
        for client in &many {
            tap.hub().unsubscribe(client);
        }
        let client = tap
            .hub()
            .subscribe(TopicFilter::default())
            .expect("subscribe");
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let done = done.clone();
            std::thread::spawn(move || {
                while !done.load(Relaxed) {
                    for item in client.items().try_iter() {
                        client.done(&item);
                    }
                }
                client
            })
        };
        times[5].push(per_call(ops, || {
            black_box(&tap).delivered(|| Some(black_box(body)));
        }));
        done.store(true, Relaxed);
        let client = reader.join().expect("reader");
        tap.hub().unsubscribe(&client);
    }
    let base = median(&mut times[0].clone());
    println!(
        "runs {runs}, {ops} calls each, envelope of {} bytes; median ns per call",
        body.len()
    );
    for (name, t) in names.iter().zip(times.iter_mut()) {
        let t = median(t);
        println!("{name:<38}{t:>8.2}   ({:+.2} ns over the loop)", t - base);
    }
}

#[inline(never)]
fn per_call(ops: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ops {
        f();
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
