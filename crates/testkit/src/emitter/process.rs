//! The emitting process itself: the loop [`EmitterSpec::spawn`] runs.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use shopify_events_core::clock::now_micros;
use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use shopify_events_core::spool::{SpoolOptions, SpoolWriter, SyncPolicy};
use sysvmq::Queue;

use super::{key, payload, EmitterSpec, Route, ENV};

/// Runs the emitter the environment describes: call it from the test
/// binary's ignored [`HELPER_TEST`](super::HELPER_TEST).
pub fn main() {
    let spec = EmitterSpec::from_json(
        &std::env::var(ENV).expect("run by EmitterSpec::spawn, which sets the spec"),
    );
    let mut options = SpoolOptions::new(&spec.spool_dir, spec.key);
    options.segment_min = spec.segments.0;
    options.segment_max = spec.segments.1;
    options.max_bytes = spec.max_bytes;
    options.sync = SyncPolicy::PageCache;
    let writer = SpoolWriter::new(options);
    let queue =
        (spec.route == Route::Overflow).then(|| Queue::open(spec.key).expect("open the queue"));
    let msgmax = sysvmq::message_size_limit() as usize;
    let mut ids = OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.ids_file())
        .expect("open ids file");
    let mut frame: Vec<u8> = Vec::new();
    let mut spooling = spec.route == Route::Spool;
    let (mut queued, mut spooled, mut dropped, mut episodes) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..spec.count {
        let len = spec.payload_sizes[i as usize % spec.payload_sizes.len()];
        frame.clear();
        frame.extend_from_slice(&1i64.to_ne_bytes());
        let time = now_micros();
        let id = EventId::generate(time);
        let key = key(spec.proc, i, spec.keys);
        let (proc_text, seq) = (spec.proc.to_string(), i.to_string());
        let headers: [(&str, &[u8]); 2] = [("proc", proc_text.as_bytes()), ("seq", seq.as_bytes())];
        let body = payload(spec.proc, i, len);
        envelope::encode(
            &mut frame,
            id,
            time,
            &spec.topic,
            Some(key.as_bytes()),
            &headers,
            &body,
        )
        .expect("encode");
        let envelope = &frame[8..];
        if spooling && spec.route == Route::Overflow && writer.drained() {
            writer.seal();
            spooling = false;
        }
        let mut via = 's';
        if !spooling && envelope.len() <= msgmax {
            let queue = queue.as_ref().expect("overflow has a queue");
            match queue.try_send_frame(&frame) {
                Ok(()) => via = 'q',
                Err(sysvmq::Error::Full { .. }) => {
                    spooling = true;
                    episodes += 1;
                }
                Err(e) => panic!("msgsnd: {e}"),
            }
        } else if !spooling {
            // Larger than msgmax: the spool takes it; order keeps later
            // events there until the drain took it.
            spooling = true;
            episodes += 1;
        }
        if via == 's' {
            if let Err(e) = writer.append(envelope) {
                assert!(e.is_full(), "spool append: {e}");
                via = 'd';
            }
        }
        match via {
            'q' => queued += 1,
            's' => spooled += 1,
            _ => dropped += 1,
        }
        let hyphenated = id.hyphenated();
        let line = format!("{i}\t{}\t{via}\n", String::from_utf8_lossy(&hyphenated));
        ids.write_all(line.as_bytes()).expect("write ids");
        if spec.pace > 0 && (i + 1) % spec.pace == 0 {
            std::thread::sleep(Duration::from_millis(spec.pause_ms));
        }
    }
    if spec.flush {
        writer.flush().expect("flush the spool");
    }
    println!(
        "emitter {}: queued={queued} spooled={spooled} dropped={dropped} episodes={episodes}",
        spec.proc
    );
    if spec.hold {
        println!("holding");
        loop {
            std::thread::sleep(Duration::from_secs(1000));
        }
    }
}
