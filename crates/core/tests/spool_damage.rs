//! Damage: bit flips and truncations at random places of segment files.
//! The reader never panics or loops, yields of each segment a prefix of its
//! records (every record before the damage), all records of undamaged
//! segments, and reports every loss against the damaged file. A flipped bit
//! in a header word costs no record at all.

mod spool_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use shopify_events_core::spool::{SegmentId, SpoolEvent, SpoolReader, SpoolWriter};
use spool_support::{envelope, files, numbers, options, reader_options, KEY};

const CASES: usize = 400;
const RECORDS: u64 = 300;

type Records = BTreeMap<SegmentId, Vec<(u64, u64)>>;

/// What a reader takes from `dir` (acknowledging all), per segment, with
/// the events. Bounded: a reader that kept yielding would fail here.
fn take(dir: &Path) -> (Records, Vec<SpoolEvent>) {
    let mut reader = SpoolReader::open(dir, KEY, reader_options()).expect("open reader");
    let mut seen = Records::new();
    let mut events = Vec::new();
    let mut yielded = 0;
    for _ in 0..20 {
        reader.refresh().expect("refresh");
        while let Some(record) = reader.next_record() {
            let numbers = numbers(reader.body(&record));
            seen.entry(record.segment()).or_default().push(numbers);
            assert!(reader.ack(record.segment(), record.end()));
            yielded += 1;
            assert!(yielded <= 2 * RECORDS, "the reader keeps yielding");
        }
        events.extend(reader.take_events());
    }
    (seen, events)
}

/// The pristine spool: one sealed writer's segments, their bytes, and what
/// each holds.
fn pristine() -> (Vec<(String, Vec<u8>)>, Records) {
    let dir = tempfile::tempdir().unwrap();
    let writer = SpoolWriter::new(options(dir.path()));
    for seq in 0..RECORDS {
        writer
            .append(&envelope(1, seq, 16 + (seq as usize * 53) % 1500))
            .unwrap();
    }
    drop(writer); // seals
    let bytes: Vec<(String, Vec<u8>)> = files(dir.path(), ".seg")
        .iter()
        .map(|p| (file_name(p), fs::read(p).unwrap()))
        .collect();
    let copy = tempfile::tempdir().unwrap();
    for (name, data) in &bytes {
        fs::write(copy.path().join(name), data).unwrap();
    }
    let (records, events) = take(copy.path());
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        records.values().map(Vec::len).sum::<usize>(),
        RECORDS as usize
    );
    assert!(records.len() >= 4, "several segments");
    (bytes, records)
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn event_path(event: &SpoolEvent) -> Option<&PathBuf> {
    match event {
        SpoolEvent::Damaged { path, .. }
        | SpoolEvent::GivenUp { path, .. }
        | SpoolEvent::Ignored { path, .. } => Some(path),
        _ => None,
    }
}

#[test]
fn damaged_segments_keep_every_record_before_the_damage_and_report_the_rest() {
    let (bytes, records) = pristine();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = seed;
    let mut next = move |below: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % below as u64) as usize
    };
    let mut losses = 0;
    for case in 0..CASES {
        let dir = tempfile::tempdir().unwrap();
        let target = next(bytes.len());
        let mut header_word_flip = false;
        for (i, (name, data)) in bytes.iter().enumerate() {
            let mut data = data.clone();
            if i == target {
                match next(4) {
                    0 => {
                        let at = 128 + 64 * next(3) + next(8);
                        header_word_flip = true;
                        data[at] ^= 1 << next(8);
                    }
                    1 => data[next(320)] ^= 1 << next(8),
                    2 => {
                        let at = 4096 + next(data.len() - 4096);
                        data[at] ^= 1 << next(8);
                    }
                    _ => data.truncate(next(data.len())),
                }
            }
            fs::write(dir.path().join(name), &data).unwrap();
        }
        let context = format!("case {case} (seed {seed}), file {}", bytes[target].0);
        let (seen, events) = take(dir.path());
        let damaged_file = dir.path().join(&bytes[target].0);
        for (id, expected) in &records {
            let got = seen.get(id).map_or(&[][..], Vec::as_slice);
            assert!(
                expected.starts_with(got),
                "{context}: segment {id} yields a prefix of its records"
            );
            if got.len() == expected.len() {
                continue;
            }
            losses += 1;
            let name = bytes
                .iter()
                .position(|(n, _)| n.contains(&format!("{:016x}-{:010}", id.producer, id.index)))
                .map(|i| &bytes[i].0);
            assert_eq!(
                name,
                Some(&bytes[target].0),
                "{context}: only the damaged file loses records"
            );
            assert!(
                events.iter().any(|e| event_path(e) == Some(&damaged_file)),
                "{context}: a loss is reported against the file: {events:?}"
            );
            assert!(
                !header_word_flip,
                "{context}: a flipped header word costs no record: {events:?}"
            );
        }
    }
    eprintln!("seed {seed}: {losses} of {CASES} cases lost records, each reported");
    assert!(
        losses > 0,
        "no case damaged a record: the test proves little"
    );
}
