//! Dead-letter replay against real SysV queues: files written by the
//! drain's own writer, read back and put into a fresh queue (removed on
//! drop), then taken out and compared byte by byte.

use std::time::Duration;

use shopify_events_core::clock::now_micros;
use shopify_events_core::defaults;
use shopify_events_core::drain::DeadLetters;
use shopify_events_core::envelope::{Envelope, EnvelopeWriter, Flags};
use shopify_events_core::event_id::EventId;
use shopify_events_core::ops::dead_letters::{
    read_dead_letters, replay, DeadLetter, Record, ReplayError, ReplayPlan,
};
use shopify_events_core::state_dir::StateDir;
use sysvmq::Message;
use testkit::queue::{KeyGuard, TestQueue};

/// An envelope emitted `ago_us` microseconds ago, with a key, two headers
/// and a JSON payload of `payload_len` bytes.
fn envelope(topic: &str, ago_us: i64, payload_len: usize) -> Vec<u8> {
    let time = now_micros() - ago_us;
    let mut out = Vec::new();
    let mut w = EnvelopeWriter::begin(&mut out, EventId::generate(time), time, topic, Some(b"k1"))
        .expect("begin");
    w.header("trace", b"abc").expect("header");
    w.header("bin", &[0, 1, 2]).expect("header");
    let payload = format!("\"{}\"", "x".repeat(payload_len.saturating_sub(2)));
    w.payload_with(true, |buf| {
        buf.extend_from_slice(payload.as_bytes());
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("payload");
    out
}

/// Writes `envelopes` as dead letters with the drain's writer; returns the
/// letters read back.
fn dead_letters(dir: &std::path::Path, envelopes: &[Vec<u8>]) -> Vec<DeadLetter> {
    let state = StateDir::new(dir, 1);
    let (mut writer, error) = DeadLetters::open(
        &state,
        defaults::DEAD_LETTER_MAX_BYTES,
        defaults::DEAD_LETTER_FILES,
    );
    assert!(error.is_none(), "open dead letters: {error:?}");
    for bytes in envelopes {
        let event = Envelope::decode(bytes).ok();
        writer
            .write("Broker: Unknown topic or partition", bytes, event.as_ref())
            .map_err(|e| e.source)
            .expect("write dead letter");
    }
    read_dead_letters(&state.dead_letters())
        .expect("read")
        .into_iter()
        .map(|r| match r {
            Record::Letter(letter) => letter,
            Record::Damaged(d) => panic!("damage in a file the drain wrote: {d:?}"),
        })
        .collect()
}

fn plan(queue: &TestQueue) -> ReplayPlan {
    ReplayPlan {
        key: queue.key(),
        topic: None,
        wait: Duration::from_millis(200),
        skip_unsendable: false,
    }
}

fn take_all(queue: &TestQueue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut msg = Message::new(0);
    while queue.try_receive(&mut msg, 0).expect("receive") {
        out.push(msg.body().to_vec());
    }
    out
}

#[test]
fn replay_puts_each_envelope_back_unchanged_with_its_event_id_and_emit_time() {
    let dir = tempfile::tempdir().expect("dir");
    let sent: Vec<Vec<u8>> = (0..3)
        .map(|i| envelope("orders", 60_000_000 * i, 100))
        .collect();
    let letters = dead_letters(dir.path(), &sent);
    let queue = TestQueue::new();
    let report = replay(&letters, &plan(&queue)).expect("replay");
    assert_eq!(report.replayed.len(), 3);
    assert!(report.skipped.is_empty());
    assert_eq!(
        take_all(&queue),
        sent,
        "the queue holds the original envelopes, in order"
    );
    let first = Envelope::decode(&sent[0]).expect("decode");
    assert_eq!(
        report.replayed[0],
        (1, first.id.to_string(), "orders".to_owned())
    );
}

#[test]
fn replay_to_another_topic_keeps_id_time_key_headers_payload_and_json_flag() {
    let dir = tempfile::tempdir().expect("dir");
    let original = envelope("orders.typo", 3_600_000_000, 50);
    let letters = dead_letters(dir.path(), std::slice::from_ref(&original));
    let queue = TestQueue::new();
    let report = replay(
        &letters,
        &ReplayPlan {
            topic: Some("orders.created".into()),
            ..plan(&queue)
        },
    )
    .expect("replay");
    assert_eq!(report.replayed[0].2, "orders.created");
    let got = take_all(&queue);
    let (before, after) = (
        Envelope::decode(&original).expect("original"),
        Envelope::decode(&got[0]).expect("replayed envelope decodes (CRC included)"),
    );
    assert_eq!(after.topic, "orders.created");
    assert_eq!((after.id, after.time_us), (before.id, before.time_us));
    assert_eq!((after.key, after.payload), (before.key, before.payload));
    let headers = |e: &Envelope<'_>| {
        e.headers
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(headers(&after), headers(&before));
    assert!(after.flags.contains(Flags::PAYLOAD_JSON));
}

#[test]
fn an_event_larger_than_msgmax_is_refused_before_anything_is_sent_unless_skipped() {
    let dir = tempfile::tempdir().expect("dir");
    let msgmax = sysvmq::message_size_limit() as usize;
    let small = envelope("orders", 0, 10);
    let big = envelope("orders", 0, msgmax + 1);
    let letters = dead_letters(dir.path(), &[small.clone(), big]);
    let queue = TestQueue::new();
    let err = replay(&letters, &plan(&queue)).expect_err("too large");
    let text = err.to_string();
    assert!(
        matches!(err, ReplayError::Unsendable { ref unsendable } if unsendable[0].line == 2),
        "{text}"
    );
    for needle in [
        "nothing replayed",
        "line 2",
        "kernel.msgmax",
        "spool",
        "--skip-unsendable",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    assert!(
        take_all(&queue).is_empty(),
        "a refused replay sent something"
    );

    let report = replay(
        &letters,
        &ReplayPlan {
            skip_unsendable: true,
            ..plan(&queue)
        },
    )
    .expect("replay with skip");
    assert_eq!((report.replayed.len(), report.skipped.len()), (1, 1));
    assert_eq!(take_all(&queue), [small]);
}

#[test]
fn an_envelope_that_does_not_decode_cannot_be_replayed() {
    let dir = tempfile::tempdir().expect("dir");
    let mut broken = envelope("orders", 0, 10);
    let last = broken.len() - 1;
    broken[last] ^= 0xff;
    let letters = dead_letters(dir.path(), &[broken]);
    assert_eq!(letters[0].event_id, None, "the drain wrote no id for it");
    let queue = TestQueue::new();
    let err = replay(&letters, &plan(&queue)).expect_err("undecodable");
    assert!(err.to_string().contains("does not decode"), "{err}");
}

#[test]
fn a_full_queue_stops_the_replay_after_the_wait_saying_how_many_went_in() {
    let dir = tempfile::tempdir().expect("dir");
    let sent: Vec<Vec<u8>> = (0..5).map(|_| envelope("orders", 0, 300)).collect();
    let size = sent[0].len() as u64;
    let letters = dead_letters(dir.path(), &sent);
    // Room for exactly three.
    let queue = TestQueue::with_capacity(size * 3 + size / 2);
    let err = replay(&letters, &plan(&queue)).expect_err("full");
    let text = err.to_string();
    let ReplayError::Full {
        replayed, total, ..
    } = err
    else {
        panic!("{text}")
    };
    assert_eq!((replayed, total), (3, 5));
    for needle in [
        "stayed full",
        "3 of 5 events replayed",
        "is the drain running",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    assert_eq!(take_all(&queue), sent[..3]);
}

#[test]
fn replay_into_a_missing_queue_or_to_an_invalid_topic_says_what_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let letters = dead_letters(dir.path(), &[envelope("orders", 0, 10)]);
    let key = KeyGuard::new();
    let missing = ReplayPlan {
        key: key.key(),
        topic: None,
        wait: Duration::ZERO,
        skip_unsendable: false,
    };
    let err = replay(&letters, &missing).expect_err("missing queue");
    assert!(err.to_string().contains("shopify-events setup"), "{err}");
    let queue = TestQueue::new();
    let err = replay(
        &letters,
        &ReplayPlan {
            topic: Some("bad topic!".into()),
            ..plan(&queue)
        },
    )
    .expect_err("bad topic");
    assert!(
        err.to_string().starts_with("--topic \"bad topic!\""),
        "{err}"
    );
}
