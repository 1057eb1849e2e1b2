//! The `sysv` transport's spool overflow: a full queue and an envelope the
//! queue can never take go to the spool (same bytes, read back intact);
//! once spooled, later events follow into the spool until the drain
//! acknowledged it, then the queue is used again, also between threads; a
//! spool that is full or missing fails with a typed, droppable error; an
//! envelope above `max_event_bytes` raises naming both limits; a forked
//! child spools into files of its own.
//!
//! Queues get fresh keys and are removed on drop (testkit); no sysctl is
//! changed: queue capacities are lowered per queue, and "larger than
//! `kernel.msgmax`" is measured against the value found at run time.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use shopify_events_core::process;
use shopify_events_core::spool::{
    Discovery, ReaderOptions, SpoolError, SpoolOptions, SpoolReader, DEFAULT_MAX_RECORD,
};
use shopify_events_core::transport::{FrameSink, SendError, SpoolWhy, SysvEmitter};
use sysvmq::HEADER_LEN;
use testkit::queue::TestQueue;

/// A frame for `emitter` carrying an envelope whose payload starts with
/// `seq` (8 bytes, little-endian) and is `payload_len` bytes long.
fn frame(emitter: &SysvEmitter, seq: u64, payload_len: usize) -> Vec<u8> {
    let mut payload = vec![b'p'; payload_len.max(8)];
    payload[..8].copy_from_slice(&seq.to_le_bytes());
    let mut buf = Vec::new();
    emitter.begin_frame(&mut buf);
    let time = 1_700_000_000_000_000 + seq as i64;
    encode(
        &mut buf,
        EventId::generate(time),
        time,
        "overflow.test",
        None,
        &[],
        &payload,
    )
    .expect("encode");
    buf
}

fn seq_of(envelope: &[u8]) -> u64 {
    let decoded = Envelope::decode(envelope).expect("an intact envelope");
    u64::from_le_bytes(decoded.payload[..8].try_into().unwrap())
}

fn spool_options(dir: &Path, queue: &TestQueue) -> SpoolOptions {
    SpoolOptions {
        segment_min: 16 * 4096,
        ..SpoolOptions::new(dir, queue.key())
    }
}

fn reader(dir: &Path, queue: &TestQueue) -> SpoolReader {
    let options = ReaderOptions {
        discovery: Discovery::Poll,
        poll_interval: Duration::ZERO,
        liveness_interval: Duration::ZERO,
        ..ReaderOptions::default()
    };
    SpoolReader::open(dir, queue.key(), options).expect("open the spool")
}

/// Every envelope readable now, acknowledged if `ack`.
fn read_spool(reader: &mut SpoolReader, ack: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..3 {
        reader.refresh().expect("refresh");
        while let Some(record) = reader.next_record() {
            out.push(reader.body(&record).to_vec());
            if ack {
                assert!(reader.ack(record.segment(), record.end()));
            }
        }
    }
    let events = reader.take_events();
    assert!(events.is_empty(), "the reader reported {events:?}");
    out
}

/// Bodies in the queue, in order.
fn read_queue(queue: &TestQueue) -> Vec<Vec<u8>> {
    queue.bodies()
}

#[test]
fn a_full_queue_spools_the_same_envelope_and_the_send_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(4096).unwrap();
    let emitter =
        SysvEmitter::new(queue.key(), 0o600).with_spool(spool_options(dir.path(), &queue));
    let mut sent = Vec::new();
    for seq in 0..20 {
        let mut frame = frame(&emitter, seq, 1000);
        emitter
            .send_frame(&mut frame)
            .expect("queue or spool takes it");
        sent.push(frame[HEADER_LEN..].to_vec());
    }
    let stats = emitter.stats().snapshot();
    assert!(stats.spooled > 0 && stats.spooled < 20, "{stats:?}");
    assert_eq!(stats.emitted, 20);
    assert_eq!(stats.queue_full, 1, "after the first full queue, the spool");
    assert_eq!(
        stats.spooled_bytes,
        sent[20 - stats.spooled as usize..]
            .iter()
            .map(|e| e.len() as u64)
            .sum::<u64>()
    );
    assert_eq!(emitter.spooling(), Some(true));

    // Queue first, then spool: together the envelopes sent, byte for byte,
    // in order.
    let mut got = read_queue(&queue);
    got.extend(read_spool(&mut reader(dir.path(), &queue), false));
    assert_eq!(got, sent);
}

#[test]
fn an_envelope_above_msgmax_or_the_queues_capacity_is_spooled_intact() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(2048).unwrap();
    let emitter =
        SysvEmitter::new(queue.key(), 0o600).with_spool(spool_options(dir.path(), &queue));
    let msgmax = sysvmq::message_size_limit() as usize;
    let mut sizes = vec![3000]; // above the queue's capacity, within msgmax
    if msgmax + 4096 <= DEFAULT_MAX_RECORD {
        sizes.push(msgmax + 1000); // above kernel.msgmax
    } else {
        eprintln!(
            "kernel.msgmax is {msgmax}: the above-msgmax case is covered by the capacity one"
        );
    }
    sizes.extend(
        [100 * 1024, 900 * 1024]
            .into_iter()
            .filter(|&s| s + 100 < DEFAULT_MAX_RECORD),
    );
    let mut sent = Vec::new();
    for (seq, size) in sizes.iter().enumerate() {
        let mut frame = frame(&emitter, seq as u64, *size);
        emitter.send_frame(&mut frame).expect("spooled");
        sent.push(frame[HEADER_LEN..].to_vec());
    }
    assert_eq!(queue.depth(), 0);
    assert_eq!(emitter.stats().snapshot().spooled, sizes.len() as u64);
    assert_eq!(read_spool(&mut reader(dir.path(), &queue), false), sent);
}

#[test]
fn after_spooling_events_follow_into_the_spool_until_it_is_drained_then_use_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(1500).unwrap();
    let emitter =
        SysvEmitter::new(queue.key(), 0o600).with_spool(spool_options(dir.path(), &queue));
    emitter.send_frame(&mut frame(&emitter, 0, 1000)).unwrap(); // queue
    emitter.send_frame(&mut frame(&emitter, 1, 1000)).unwrap(); // full: spool
    assert_eq!(read_queue(&queue).len(), 1, "the queue has room again");
    emitter.send_frame(&mut frame(&emitter, 2, 100)).unwrap(); // still spool
    assert_eq!(
        queue.depth(),
        0,
        "order: not the queue while events wait in the spool"
    );
    assert_eq!(emitter.spooling(), Some(true));

    let mut reader = reader(dir.path(), &queue);
    let spooled: Vec<u64> = read_spool(&mut reader, true)
        .iter()
        .map(|e| seq_of(e))
        .collect();
    assert_eq!(spooled, [1, 2]);
    // Drained: the next send seals the episode and uses the queue again.
    emitter.send_frame(&mut frame(&emitter, 3, 100)).unwrap();
    assert_eq!(emitter.spooling(), Some(false));
    let queued: Vec<u64> = read_queue(&queue).iter().map(|e| seq_of(e)).collect();
    assert_eq!(queued, [3]);
    assert_eq!(emitter.stats().snapshot().spooled, 2);
    // The sealed, acknowledged segment is reclaimed.
    read_spool(&mut reader, true);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Four threads send a totally ordered sequence (a mutex around number and
/// send) into a queue that fills and empties while a consumer takes the
/// queue and another acknowledges the spool: no event that went to the
/// queue was sent before every earlier spooled event was acknowledged.
#[test]
fn between_threads_no_queued_event_overtakes_an_earlier_spooled_one() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(8 * 600).unwrap();
    let emitter = Arc::new(
        SysvEmitter::new(queue.key(), 0o600).with_spool(spool_options(dir.path(), &queue)),
    );
    const TOTAL: u64 = 20_000;
    let next = Arc::new(Mutex::new(0u64));
    // Spooled sequence numbers in the order the spool reader acknowledged
    // them, and how many it had acknowledged when each queued event arrived.
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let done = Arc::new(AtomicU64::new(0));
    let queue_key = queue.key();
    let spool_dir = dir.path().to_path_buf();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (emitter, next) = (Arc::clone(&emitter), Arc::clone(&next));
            scope.spawn(move || loop {
                let mut n = next.lock().unwrap();
                if *n == TOTAL {
                    break;
                }
                let mut frame = frame(&emitter, *n, 400);
                emitter.send_frame(&mut frame).expect("queue or spool");
                *n += 1;
                drop(n);
                // Slow enough for the spool's reader to catch up now and
                // then, so that episodes end and the queue is used again.
                std::thread::sleep(Duration::from_micros(20));
            });
        }
        let spool_acked = Arc::clone(&acked);
        let spool_done = Arc::clone(&done);
        scope.spawn(move || {
            let mut reader = SpoolReader::open(
                &spool_dir,
                queue_key,
                ReaderOptions {
                    discovery: Discovery::Poll,
                    poll_interval: Duration::ZERO,
                    liveness_interval: Duration::ZERO,
                    ..ReaderOptions::default()
                },
            )
            .unwrap();
            while spool_done.load(Ordering::Acquire) == 0 {
                reader.refresh().unwrap();
                while let Some(record) = reader.next_record() {
                    let seq = seq_of(reader.body(&record));
                    // Recorded before the ack: a send that finds the spool
                    // drained comes after both.
                    spool_acked.lock().unwrap().push(seq);
                    reader.ack(record.segment(), record.end());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        // The queue consumer, slower than the senders so the queue fills.
        let mut queued = Vec::new(); // (seq, acks made when it arrived)
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut msg = sysvmq::Message::with_capacity(1, 64 * 1024);
        loop {
            let taken = *next.lock().unwrap() == TOTAL;
            let mut got = 0;
            while got < 4 && queue.try_receive(&mut msg, 0).unwrap() {
                let seen = acked.lock().unwrap().len();
                queued.push((seq_of(msg.body()), seen));
                got += 1;
            }
            if taken && got == 0 && queued.len() + acked.lock().unwrap().len() == TOTAL as usize {
                break;
            }
            assert!(Instant::now() < deadline, "the senders did not finish");
            std::thread::sleep(Duration::from_micros(300));
        }
        done.store(1, Ordering::Release);
        let spooled: Vec<u64> = acked.lock().unwrap().clone();
        assert!(
            !spooled.is_empty(),
            "the queue never filled: nothing was spooled"
        );
        assert!(!queued.is_empty());
        assert_eq!(spooled.len() + queued.len(), TOTAL as usize);
        // Spooled events by number, with the position of their ack; the
        // latest ack among all spooled events below each number.
        let mut by_seq: Vec<(u64, usize)> = spooled.iter().copied().zip(0..).collect();
        by_seq.sort_unstable();
        let latest: Vec<usize> = by_seq
            .iter()
            .scan(0, |max, &(_, at)| {
                *max = at.max(*max);
                Some(*max)
            })
            .collect();
        for &(seq, acks) in &queued {
            let below = by_seq.partition_point(|&(s, _)| s < seq);
            if below > 0 {
                assert!(
                    latest[below - 1] < acks,
                    "event {seq} reached the queue before every earlier spooled event was \
                     acknowledged ({acks} acks then)"
                );
            }
        }
        // Episodes: runs of queued numbers interrupted by spooled ones.
        let mut seqs: Vec<u64> = queued.iter().map(|&(s, _)| s).collect();
        seqs.sort_unstable();
        let resumed = seqs.windows(2).filter(|w| w[1] != w[0] + 1).count();
        eprintln!(
            "{} events queued, {} spooled, the queue used again {resumed} times",
            queued.len(),
            spooled.len()
        );
        assert!(
            resumed >= 3,
            "too few episodes ended to test the rule: {resumed}"
        );
    });
}

#[test]
fn a_missing_spool_directory_fails_with_a_droppable_error_naming_it() {
    let queue = TestQueue::new();
    queue.set_capacity(1024).unwrap();
    let missing = std::env::temp_dir().join(format!("no-such-spool-{}", std::process::id()));
    let emitter =
        SysvEmitter::new(queue.key(), 0o600).with_spool(SpoolOptions::new(&missing, queue.key()));
    emitter.send_frame(&mut frame(&emitter, 0, 900)).unwrap();
    let err = emitter
        .send_frame(&mut frame(&emitter, 1, 900))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            SendError::Spool {
                why: SpoolWhy::QueueFull { .. },
                source: SpoolError::Unavailable { .. }
            }
        ),
        "{err:?}"
    );
    assert!(err.is_droppable());
    let text = err.to_string();
    assert!(
        text.contains(&missing.display().to_string()) && text.contains("shopify-events setup"),
        "{text}"
    );
    emitter.count_drop();
    let stats = emitter.stats().snapshot();
    assert_eq!(
        (stats.spool_failures, stats.dropped, stats.spooled),
        (1, 1, 0)
    );
    assert_eq!(
        emitter.spooling(),
        Some(false),
        "nothing spooled: the queue is tried next"
    );
}

#[test]
fn a_full_spool_fails_with_a_droppable_full_error() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(1024).unwrap();
    let options = SpoolOptions {
        max_bytes: Some(200 * 1024),
        ..spool_options(dir.path(), &queue)
    };
    let emitter = SysvEmitter::new(queue.key(), 0o600).with_spool(options);
    let mut accepted = 0;
    let err = loop {
        match emitter.send_frame(&mut frame(&emitter, accepted, 900)) {
            Ok(()) => accepted += 1,
            Err(err) => break err,
        }
        assert!(accepted < 10_000, "the spool never filled");
    };
    assert!(
        matches!(&err, SendError::Spool { why: SpoolWhy::Spooling, source } if source.is_full()),
        "{err:?}"
    );
    assert!(err.is_droppable());
    // Everything accepted is still there: one in the queue, the rest spooled.
    let spooled = read_spool(&mut reader(dir.path(), &queue), false).len() as u64;
    assert_eq!(queue.bodies().len() as u64 + spooled, accepted);
}

#[test]
fn an_envelope_above_max_event_bytes_is_refused_naming_both_limits() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    let options = SpoolOptions {
        max_record: 64 * 1024,
        ..spool_options(dir.path(), &queue)
    };
    let emitter = SysvEmitter::new(queue.key(), 0o600).with_spool(options);
    let err = emitter
        .send_frame(&mut frame(&emitter, 0, 70 * 1024))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::EventTooLarge {
                max_event_bytes: 65536,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_droppable());
    let text = err.to_string();
    assert!(
        text.contains("max_event_bytes (65536") && text.contains("kernel.msgmax ("),
        "{text}"
    );
    assert_eq!(queue.depth(), 0);
}

#[test]
fn a_forked_child_spools_into_files_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let queue = TestQueue::new();
    queue.set_capacity(1024).unwrap();
    let emitter =
        SysvEmitter::new(queue.key(), 0o600).with_spool(spool_options(dir.path(), &queue));
    emitter.send_frame(&mut frame(&emitter, 0, 900)).unwrap(); // queue
    emitter.send_frame(&mut frame(&emitter, 1, 900)).unwrap(); // spool
    assert_eq!(emitter.spooling(), Some(true));
    let parent = format!("-{:016x}-", process::producer_id());
    // SAFETY: the child sends, checks and leaves with _exit; glibc keeps
    // malloc usable after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The child's spool is its own and empty, so drained: its first
        // send finds the queue full and starts an episode of its own.
        let ok = emitter.send_frame(&mut frame(&emitter, 100, 900)).is_ok()
            && emitter.spooling() == Some(true)
            && emitter
                .spool_writer()
                .is_some_and(|w| w.stats().appended == 1);
        let own = format!("-{:016x}-", process::producer_id());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let ok = ok && own != parent && names.iter().any(|n| n.contains(&own));
        // SAFETY: ends the child without running the harness's code.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );
    emitter.send_frame(&mut frame(&emitter, 2, 900)).unwrap();
    let mut seqs: Vec<u64> = read_spool(&mut reader(dir.path(), &queue), false)
        .iter()
        .map(|e| seq_of(e))
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 100]);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2, "one segment each");
}
