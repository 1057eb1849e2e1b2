//! Numbering at acceptance: the `sysv` transport (queue and spool
//! overflow) and the `spool` transport stamp every event they accept with
//! one producer's next number, contiguous from 0; an event the transport
//! refused (queue full, no spool) takes no number; a version 1 envelope
//! goes unnumbered; the proxy path is covered by `proxy_server.rs`.

use std::path::Path;
use std::time::Duration;

use shopify_events_core::envelope::{
    encode, encode_bytes, Envelope, Seal, Stamp, CRC_LEN, STAMP_LEN, STAMP_OFFSET,
};
use shopify_events_core::event_id::EventId;
use shopify_events_core::spool::{Discovery, ReaderOptions, SpoolOptions, SpoolReader};
use shopify_events_core::topic::Topic;
use shopify_events_core::transport::{FrameSink, SendError, SpoolEmitter, SysvEmitter};
use testkit::queue::TestQueue;

fn frame(sink: &impl FrameSink, payload_len: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    sink.begin_frame(&mut buf);
    let time = 1_700_000_000_000_000;
    let payload = vec![b'p'; payload_len];
    encode(
        &mut buf,
        EventId::generate(time),
        time,
        "numbering.test",
        None,
        &[],
        &payload,
    )
    .expect("encode");
    buf
}

fn stamp_of(envelope: &[u8]) -> Option<Stamp> {
    Envelope::decode(envelope)
        .expect("an intact envelope")
        .stamp
}

fn spool_bodies(dir: &Path, key: sysvmq::Key) -> Vec<Vec<u8>> {
    let options = ReaderOptions {
        discovery: Discovery::Poll,
        poll_interval: Duration::ZERO,
        liveness_interval: Duration::ZERO,
        ..ReaderOptions::default()
    };
    let mut reader = SpoolReader::open(dir, key, options).expect("open the spool");
    let mut out = Vec::new();
    for _ in 0..3 {
        reader.refresh().expect("refresh");
        while let Some(record) = reader.next_record() {
            out.push(reader.body(&record).to_vec());
        }
    }
    out
}

#[test]
fn a_full_queue_without_spool_drops_without_taking_a_number() {
    let queue = TestQueue::new();
    queue.set_capacity(4096).unwrap();
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    let mut refused = 0;
    for _ in 0..10 {
        match emitter.send_frame(&mut frame(&emitter, 1000)) {
            Ok(()) => {}
            Err(SendError::QueueFull { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0, "the queue took every event");
    let accepted = 10 - refused;
    assert_eq!(emitter.sequencer().accepted(), accepted);
    let producer = emitter.sequencer().producer();
    let stamps: Vec<_> = queue.bodies().iter().map(|b| stamp_of(b)).collect();
    let expected: Vec<_> = (0..accepted)
        .map(|seq| Some(Stamp { producer, seq }))
        .collect();
    assert_eq!(stamps, expected, "numbers contiguous from 0, drops skipped");

    // Room again: the next event takes the next number, not a later one.
    emitter
        .send_frame(&mut frame(&emitter, 10))
        .expect("room now");
    assert_eq!(
        stamp_of(&queue.bodies()[0]),
        Some(Stamp {
            producer,
            seq: accepted
        })
    );
}

#[test]
fn queue_and_spool_overflow_share_one_contiguous_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(4096).unwrap();
    let emitter = SysvEmitter::new(queue.key(), 0o600).with_spool(SpoolOptions {
        segment_min: 16 * 4096,
        ..SpoolOptions::new(dir.path(), queue.key())
    });
    for _ in 0..20 {
        emitter
            .send_frame(&mut frame(&emitter, 1000))
            .expect("queue or spool");
    }
    let producer = emitter.sequencer().producer();
    let mut bodies = queue.bodies();
    let queued = bodies.len();
    bodies.extend(spool_bodies(dir.path(), queue.key()));
    assert!(queued > 0 && queued < 20, "{queued} queued");
    let seqs: Vec<_> = bodies
        .iter()
        .map(|b| {
            let stamp = stamp_of(b).expect("stamped");
            assert_eq!(stamp.producer, producer);
            stamp.seq
        })
        .collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
}

#[test]
fn the_spool_transport_numbers_what_it_appends() {
    let dir = tempfile::tempdir().unwrap();
    let key = testkit::queue::KeyGuard::new();
    let emitter = SpoolEmitter::new(SpoolOptions::new(dir.path(), key.key()));
    for _ in 0..5 {
        emitter
            .send_frame(&mut frame(&emitter, 100))
            .expect("append");
    }
    let producer = emitter.sequencer().producer();
    let stamps: Vec<_> = spool_bodies(dir.path(), key.key())
        .iter()
        .map(|b| stamp_of(b))
        .collect();
    assert_eq!(
        stamps,
        (0..5)
            .map(|seq| Some(Stamp { producer, seq }))
            .collect::<Vec<_>>()
    );
}

/// A frame whose envelope leaves its CRC to the transport.
fn unsealed_frame(sink: &impl FrameSink) -> Vec<u8> {
    let mut buf = Vec::new();
    sink.begin_frame(&mut buf);
    let time = 1_700_000_000_000_000;
    let id = EventId::generate(time);
    encode_bytes(
        &mut buf,
        id,
        time,
        &Topic::new("numbering.test").unwrap(),
        None,
        b"{}",
        Seal::ByStamp,
    )
    .expect("encode");
    buf
}

#[test]
fn the_numbering_transports_seal_what_the_caller_left_unsealed() {
    // Queue, spool overflow and the spool transport: what arrives is whole.
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(4096).unwrap();
    let sysv = SysvEmitter::new(queue.key(), 0o600).with_spool(SpoolOptions {
        segment_min: 16 * 4096,
        ..SpoolOptions::new(dir.path(), queue.key())
    });
    assert!(sysv.seals());
    for _ in 0..200 {
        sysv.send_frame(&mut unsealed_frame(&sysv))
            .expect("queue or spool");
    }
    let mut bodies = queue.bodies();
    let queued = bodies.len();
    bodies.extend(spool_bodies(dir.path(), queue.key()));
    assert!(
        queued > 0 && queued < 200,
        "{queued} queued: both paths taken"
    );
    assert_eq!(bodies.len(), 200);
    for (seq, body) in bodies.iter().enumerate() {
        let stamp = stamp_of(body).expect("decodes: sealed by the stamp");
        assert_eq!(stamp.seq, seq as u64);
    }

    let spool_dir = tempfile::tempdir().unwrap();
    let key = testkit::queue::KeyGuard::new();
    let spool = SpoolEmitter::new(SpoolOptions::new(spool_dir.path(), key.key()));
    assert!(spool.seals());
    for _ in 0..5 {
        spool
            .send_frame(&mut unsealed_frame(&spool))
            .expect("append");
    }
    let bodies = spool_bodies(spool_dir.path(), key.key());
    assert_eq!(bodies.len(), 5);
    assert!(bodies.iter().all(|b| stamp_of(b).is_some()));
}

#[test]
fn a_version_1_envelope_goes_unnumbered() {
    let queue = TestQueue::new();
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    let mut v2 = frame(&emitter, 10);
    let prefix = sysvmq::HEADER_LEN;
    let v1 = as_version_1(&v2[prefix..]);
    v2.truncate(prefix);
    v2.extend_from_slice(&v1);
    emitter.send_frame(&mut v2).expect("send");
    assert_eq!(emitter.sequencer().accepted(), 0);
    let body = &queue.bodies()[0];
    assert_eq!(body, &v1);
    assert_eq!(stamp_of(body), None);
}

/// The version 1 form of a version 2 envelope: the stamp cut out, version,
/// length and CRC rewritten, as gems before the stamp wrote it.
fn as_version_1(v2: &[u8]) -> Vec<u8> {
    let mut v1 = [&v2[..STAMP_OFFSET], &v2[STAMP_OFFSET + STAMP_LEN..]].concat();
    v1[2] = 1;
    let len = v1.len() as u32;
    v1[4..8].copy_from_slice(&len.to_le_bytes());
    let body = v1.len() - CRC_LEN;
    let crc = crc32c::crc32c(&v1[..body]);
    v1[body..].copy_from_slice(&crc.to_le_bytes());
    v1
}
