//! The append variants and their `msgsnd` floor; segment creation.

use std::cell::UnsafeCell;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use shopify_events_core::spool::{Appender, SpoolOptions, SpoolWriter, SyncPolicy};
use sysvmq::Queue;

use super::{median, Options};

const KEY: i32 = 0x5b00_0001;

/// Medians in ns/op, the floor first.
pub fn run(options: &Options, body: &[u8]) -> Vec<(String, f64)> {
    let queue = Queue::create_private(0o600).expect("create a private queue");
    let frame: Vec<u8> = 1i64.to_ne_bytes().iter().chain(body).copied().collect();
    let batch = 10_000.min(options.ops);
    if let Err(err) = queue.set_capacity((batch * (body.len() + 64)) as u64) {
        eprintln!("cannot size the queue for {batch} messages ({err}); run as root");
    }
    let ops = options.ops;
    let steady = |dir: &Path| SpoolOptions {
        segment_min: (ops as u64 + 1) * 272,
        segment_max: (ops as u64 + 1) * 272,
        ..SpoolOptions::new(dir, KEY)
    };
    type Variant<'a> = (&'a str, Box<dyn Fn(&Path) -> f64 + 'a>);
    let variants: Vec<Variant> = vec![
        (
            "msgsnd(IPC_NOWAIT), private queue (floor)",
            Box::new(|_| msgsnd(&queue, &frame, ops, batch)),
        ),
        (
            "Appender::append, no lock, preallocated segment",
            Box::new(|dir| no_lock(steady(dir), body, ops)),
        ),
        (
            "Appender::append, no lock, default segment sizes",
            Box::new(|dir| no_lock(SpoolOptions::new(dir, KEY), body, ops)),
        ),
        (
            "std Mutex + Appender::append, 1 thread",
            Box::new(|dir| mutex(steady(dir), body, ops, 1)),
        ),
        (
            "SpoolWriter::append (Mutex + fork check), 1 thread",
            Box::new(|dir| writer(steady(dir), body, ops, 1)),
        ),
        (
            "spinlock + Appender::append, 1 thread",
            Box::new(|dir| spin(steady(dir), body, ops, 1)),
        ),
        (
            "std Mutex + Appender::append, 2 threads",
            Box::new(|dir| mutex(steady(dir), body, ops, 2)),
        ),
        (
            "SpoolWriter::append (Mutex + fork check), 2 threads",
            Box::new(|dir| writer(steady(dir), body, ops, 2)),
        ),
        (
            "spinlock + Appender::append, 2 threads",
            Box::new(|dir| spin(steady(dir), body, ops, 2)),
        ),
        (
            "SpoolWriter::append, SyncPolicy::Interval(10 ms)",
            Box::new(|dir| {
                let sync = SyncPolicy::Interval(Duration::from_millis(10));
                writer(
                    SpoolOptions {
                        sync,
                        ..steady(dir)
                    },
                    body,
                    ops,
                    1,
                )
            }),
        ),
        (
            "SpoolWriter::append, SyncPolicy::Always (ops / 100)",
            Box::new(|dir| {
                let sync = SyncPolicy::Always;
                writer(
                    SpoolOptions {
                        sync,
                        ..steady(dir)
                    },
                    body,
                    (ops / 100).max(1),
                    1,
                )
            }),
        ),
    ];
    let mut samples = vec![Vec::new(); variants.len()];
    for _ in 0..options.runs {
        for (i, (_, variant)) in variants.iter().enumerate() {
            let dir = tempfile::tempdir_in(&options.dir).expect("temp dir");
            samples[i].push(variant(dir.path()));
        }
    }
    let _ = queue.remove();
    variants
        .iter()
        .zip(samples.iter_mut())
        .map(|((name, _), s)| (name.to_string(), median(s)))
        .collect()
}

/// ns per non-blocking msgsnd, in timed batches, emptied untimed between.
fn msgsnd(queue: &Queue, frame: &[u8], ops: usize, batch: usize) -> f64 {
    let mut buf = vec![0u8; frame.len() + 64];
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < ops {
        let n = batch.min(ops - done);
        let start = Instant::now();
        for _ in 0..n {
            queue
                .try_send_frame(frame)
                .expect("msgsnd into the bench queue");
        }
        elapsed += start.elapsed();
        while queue.try_receive_into(&mut buf, 0).ok().flatten().is_some() {}
        done += n;
    }
    elapsed.as_nanos() as f64 / ops as f64
}

fn no_lock(options: SpoolOptions, body: &[u8], ops: usize) -> f64 {
    let mut appender = Appender::new(options);
    appender.append(body).expect("first append");
    let start = Instant::now();
    for _ in 0..ops {
        appender.append(black_box(body)).expect("append");
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// ns per append over all threads (total time / total appends).
fn threaded(threads: usize, ops: usize, append: impl Fn() + Sync) -> f64 {
    let each = ops / threads;
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..each {
                    append();
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed();
    elapsed.as_nanos() as f64 / (each * threads) as f64
}

fn writer(options: SpoolOptions, body: &[u8], ops: usize, threads: usize) -> f64 {
    let writer = Arc::new(SpoolWriter::new(options));
    writer.append(body).expect("first append");
    threaded(threads, ops, || {
        writer.append(black_box(body)).expect("append")
    })
}

/// The lock SpoolWriter uses, without its fork check.
fn mutex(options: SpoolOptions, body: &[u8], ops: usize, threads: usize) -> f64 {
    let appender = Mutex::new(Appender::new(options));
    let append = || {
        let mut guard = appender.lock().unwrap_or_else(|p| p.into_inner());
        guard.append(black_box(body)).expect("append");
    };
    append();
    threaded(threads, ops, append)
}

/// The alternative measured against the std Mutex: a test-and-set lock
/// whose unlock is a plain release store.
struct SpinLocked {
    locked: AtomicBool,
    appender: UnsafeCell<Appender>,
}

// SAFETY: `appender` is only reached while `locked` is held.
unsafe impl Sync for SpinLocked {}

impl SpinLocked {
    fn append(&self, body: &[u8]) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held.
        let result = unsafe { (*self.appender.get()).append(body) };
        self.locked.store(false, Ordering::Release);
        result.expect("append");
    }
}

fn spin(options: SpoolOptions, body: &[u8], ops: usize, threads: usize) -> f64 {
    let locked = SpinLocked {
        locked: AtomicBool::new(false),
        appender: UnsafeCell::new(Appender::new(options)),
    };
    locked.append(body);
    threaded(threads, ops, || locked.append(black_box(body)))
}

/// µs per segment creation of several sizes: each append after a seal
/// creates a segment (temp file, fallocate, map, prefault, rename).
pub fn creation(options: &Options) {
    println!(
        "{:<52} {:>10}",
        "segment creation (append after seal)", "µs/segment"
    );
    for (size, count) in [(64u64 << 10, 200), (1 << 20, 50), (16 << 20, 10)] {
        let mut samples = Vec::new();
        for _ in 0..options.runs.min(3) {
            let dir = tempfile::tempdir_in(&options.dir).expect("temp dir");
            let writer = SpoolWriter::new(SpoolOptions {
                segment_min: size,
                segment_max: size,
                ..SpoolOptions::new(dir.path(), KEY)
            });
            let body = super::envelope(super::ENVELOPE_LEN);
            let start = Instant::now();
            for _ in 0..count {
                writer.append(&body).expect("append");
                writer.seal();
            }
            samples.push(start.elapsed().as_secs_f64() * 1e6 / count as f64);
        }
        let name = format!("{} KiB segment", size >> 10);
        println!("{name:<52} {:>10.1}", median(&mut samples));
    }
}
