//! Helpers shared by the spool tests: numbered envelopes, a reader that
//! takes everything, the files in a spool directory.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use shopify_events_core::spool::{
    Discovery, ReaderOptions, RecordRef, SpoolEvent, SpoolOptions, SpoolReader,
};

pub const KEY: i32 = 0x5e5e_0001;

/// An envelope of stream `stream`, number `seq`, whose payload is padded to
/// `payload_len` bytes (at least 16): the key is the stream, the payload
/// starts with the number.
pub fn envelope(stream: u64, seq: u64, payload_len: usize) -> Vec<u8> {
    let time = 1_700_000_000_000_000 + seq as i64;
    let mut payload = vec![b'x'; payload_len.max(16)];
    payload[..8].copy_from_slice(&seq.to_le_bytes());
    payload[8..16].copy_from_slice(&stream.to_le_bytes());
    let mut out = Vec::new();
    encode(
        &mut out,
        EventId::generate(time),
        time,
        "spool.test",
        Some(&stream.to_le_bytes()),
        &[],
        &payload,
    )
    .expect("encode");
    out
}

/// `(stream, seq)` of an envelope made by [`envelope`]; panics on anything
/// else, which no test may receive.
pub fn numbers(body: &[u8]) -> (u64, u64) {
    let envelope = Envelope::decode(body).expect("a whole, valid envelope");
    let seq = u64::from_le_bytes(envelope.payload[..8].try_into().unwrap());
    let stream = u64::from_le_bytes(envelope.payload[8..16].try_into().unwrap());
    (stream, seq)
}

/// Writer options with small segments, so tests rotate.
pub fn options(dir: &Path) -> SpoolOptions {
    SpoolOptions {
        segment_min: 4096,
        segment_max: 16 * 4096,
        ..SpoolOptions::new(dir, KEY)
    }
}

/// Reader options that test liveness on every refresh and scan the
/// directory every time.
pub fn reader_options() -> ReaderOptions {
    ReaderOptions {
        discovery: Discovery::Poll,
        poll_interval: Duration::ZERO,
        liveness_interval: Duration::ZERO,
        ..ReaderOptions::default()
    }
}

/// Reads everything readable now (refreshing until nothing changes),
/// acknowledging each record if `ack`; returns the records' numbers and
/// the events.
pub fn read_all(reader: &mut SpoolReader, ack: bool) -> (Vec<(u64, u64)>, Vec<SpoolEvent>) {
    let mut seen = Vec::new();
    let mut events = Vec::new();
    let mut idle_rounds = 0;
    while idle_rounds < 3 {
        reader.refresh().expect("refresh");
        let mut got: Vec<RecordRef> = Vec::new();
        while let Some(record) = reader.next_record() {
            seen.push(numbers(reader.body(&record)));
            got.push(record);
        }
        if ack {
            for record in &got {
                assert!(reader.ack(record.segment(), record.end()), "ack {record:?}");
            }
        }
        events.extend(reader.take_events());
        idle_rounds = if got.is_empty() { idle_rounds + 1 } else { 0 };
    }
    (seen, events)
}

/// Spool files in `dir` whose name ends with `suffix`, sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read spool dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Checks that `seen` holds, per stream, 0..n in order, each once, and
/// returns n per stream.
pub fn assert_in_order(seen: &[(u64, u64)]) -> std::collections::BTreeMap<u64, u64> {
    let mut next = std::collections::BTreeMap::new();
    for &(stream, seq) in seen {
        let expected = next.entry(stream).or_insert(0);
        assert_eq!(
            seq, *expected,
            "stream {stream}: got {seq}, expected {expected}"
        );
        *expected += 1;
    }
    next
}
