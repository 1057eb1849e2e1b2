//! Reading: `msgrcv` of the same message next to `SpoolReader`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shopify_events_core::spool::{Appender, Discovery, ReaderOptions, SpoolOptions, SpoolReader};
use sysvmq::Queue;

use super::{median, Options};

const KEY: i32 = 0x5b00_0002;

/// Medians in ns per record, the floor first.
pub fn run(options: &Options, body: &[u8]) -> Vec<(String, f64)> {
    let queue = Queue::create_private(0o600).expect("create a private queue");
    let frame: Vec<u8> = 1i64.to_ne_bytes().iter().chain(body).copied().collect();
    let batch = 10_000.min(options.ops);
    if let Err(err) = queue.set_capacity((batch * (body.len() + 64)) as u64) {
        eprintln!("cannot size the queue for {batch} messages ({err}); run as root");
    }
    let (mut floor, mut spool) = (Vec::new(), Vec::new());
    for _ in 0..options.runs {
        floor.push(msgrcv(&queue, &frame, options.ops, batch));
        spool.push(reader(options, body));
    }
    let _ = queue.remove();
    vec![
        ("msgrcv, private queue (floor)".into(), median(&mut floor)),
        (
            "SpoolReader next_record + body + ack, per record".into(),
            median(&mut spool),
        ),
    ]
}

/// ns per msgrcv, in timed batches, filled untimed between.
fn msgrcv(queue: &Queue, frame: &[u8], ops: usize, batch: usize) -> f64 {
    let mut buf = vec![0u8; frame.len() + 64];
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < ops {
        let n = batch.min(ops - done);
        for _ in 0..n {
            queue.try_send_frame(frame).expect("fill the bench queue");
        }
        let start = Instant::now();
        for _ in 0..n {
            let got = queue.try_receive_into(&mut buf, 0).expect("msgrcv");
            black_box(got.expect("a message"));
        }
        elapsed += start.elapsed();
        done += n;
    }
    elapsed.as_nanos() as f64 / ops as f64
}

/// ns per record read, its body touched, and acknowledged, from segments
/// of the default sizes written beforehand.
fn reader(options: &Options, body: &[u8]) -> f64 {
    let dir = tempfile::tempdir_in(&options.dir).expect("temp dir");
    let mut appender = Appender::new(SpoolOptions::new(dir.path(), KEY));
    for _ in 0..options.ops {
        appender.append(body).expect("append");
    }
    appender.seal();
    let reader_options = ReaderOptions {
        discovery: Discovery::Poll,
        poll_interval: Duration::ZERO,
        ..ReaderOptions::default()
    };
    let mut reader = SpoolReader::open(dir.path(), KEY, reader_options).expect("open reader");
    let start = Instant::now();
    let mut read = 0;
    while read < options.ops {
        while let Some(record) = reader.next_record() {
            black_box(reader.body(&record).last());
            reader.ack(record.segment(), record.end());
            read += 1;
        }
        // Past a segment's end: map the next one (and delete the done).
        reader.refresh().expect("refresh");
    }
    start.elapsed().as_nanos() as f64 / read as f64
}
