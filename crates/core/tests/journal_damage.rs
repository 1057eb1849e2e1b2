//! Journal damage is loud and never wipes pending records in silence: a
//! zeroed magic over data, or garbage with records after it, is refused
//! (`JournalError::Damaged`, naming the file and the positions, the file
//! untouched) unless the operator gives them up (`OnDamage::Discard`), which
//! the report then states. Damage that hides nothing (the last received
//! message malformed, a creation interrupted) is no refusal.

use std::fs;
use std::path::Path;

use shopify_events_core::drain::journal::{Journal, JournalError, OnDamage, HEADER_SIZE};
use shopify_events_core::envelope::encode;
use shopify_events_core::event_id::EventId;
use sysvmq::HEADER_LEN;

const CAPACITY: u64 = 64 * 1024;
const MAX_RECORD: u64 = 1024;

fn envelope(i: u64) -> Vec<u8> {
    let t = 1_700_000_000_000_000 + i as i64;
    let mut out = Vec::new();
    let payload = format!("{{\"i\":{i}}}");
    encode(
        &mut out,
        EventId::generate(t),
        t,
        "t",
        None,
        &[],
        payload.as_bytes(),
    )
    .unwrap();
    out
}

/// A journal at `path` holding `n` committed records, none acknowledged;
/// returns their positions.
fn with_records(path: &Path, n: u64) -> Vec<u64> {
    let mut journal = Journal::open(path, CAPACITY, MAX_RECORD).unwrap();
    (0..n)
        .map(|i| {
            let body = envelope(i);
            let frame = journal.reserve().unwrap();
            frame[..HEADER_LEN].copy_from_slice(&1i64.to_ne_bytes());
            frame[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(&body);
            journal.commit(body.len()).offset
        })
        .collect()
}

fn scribble(path: &Path, file_offset: u64, bytes: &[u8]) {
    let mut file = fs::read(path).unwrap();
    let at = file_offset as usize;
    file[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, file).unwrap();
}

#[test]
fn a_zeroed_magic_over_pending_records_is_refused_not_wiped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.bin");
    with_records(&path, 5);
    scribble(&path, 0, &[0; 8]);
    let before = fs::read(&path).unwrap();

    let err = Journal::open(&path, CAPACITY, MAX_RECORD).unwrap_err();
    assert!(matches!(err, JournalError::Damaged { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("data offset 0"), "{text}");
    assert!(text.contains("--discard-damaged-journal"), "{text}");
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "the file is left as it was"
    );

    let journal = Journal::open_with(&path, CAPACITY, MAX_RECORD, OnDamage::Discard).unwrap();
    assert!(journal.recovery_report().recreated_damaged);
    assert!(journal.recovery_report().damaged());
    assert!(journal.recovered().is_empty());
}

#[test]
fn garbage_with_records_after_it_is_refused_naming_the_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.bin");
    let positions = with_records(&path, 6);
    // The third record's slot: a negative word, no record and no mtype.
    scribble(&path, HEADER_SIZE + positions[2], &(-7i64).to_ne_bytes());
    let before = fs::read(&path).unwrap();

    let err = Journal::open(&path, CAPACITY, MAX_RECORD).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, JournalError::Damaged { .. }), "{text}");
    assert!(
        text.contains(&format!("position {}", positions[2])),
        "{text}"
    );
    assert!(text.contains("3 record headers"), "{text}");
    assert!(
        text.contains(&format!("the first at position {}", positions[3])),
        "{text}"
    );
    assert!(
        text.contains(&format!("the last at {}", positions[5])),
        "{text}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "the file is left as it was"
    );

    let journal = Journal::open_with(&path, CAPACITY, MAX_RECORD, OnDamage::Discard).unwrap();
    let report = journal.recovery_report();
    assert_eq!(journal.recovered().len(), 2);
    assert_eq!(report.stopped_at_garbage, Some(positions[2]));
    assert_eq!(report.records_after_garbage, positions[3..].to_vec());
}

#[test]
fn a_malformed_last_message_hides_nothing_and_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.bin");
    let end = {
        let mut journal = Journal::open(&path, CAPACITY, MAX_RECORD).unwrap();
        for i in 0..3 {
            let body = envelope(i);
            let frame = journal.reserve().unwrap();
            frame[..HEADER_LEN].copy_from_slice(&1i64.to_ne_bytes());
            frame[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(&body);
            journal.commit(body.len());
        }
        // Received, not committed, and no envelope: a hostile sender's
        // message, then a kill before commit.
        let at = journal.write_offset();
        let frame = journal.reserve().unwrap();
        frame[..HEADER_LEN].copy_from_slice(&1i64.to_ne_bytes());
        frame[HEADER_LEN..HEADER_LEN + 20].copy_from_slice(b"definitely not an SE");
        at
    };
    let journal = Journal::open(&path, CAPACITY, MAX_RECORD).expect("opens");
    let report = journal.recovery_report();
    assert_eq!(journal.recovered().len(), 3);
    assert_eq!(report.stopped_at_garbage, Some(end));
    assert!(report.records_after_garbage.is_empty());
}

#[test]
fn an_interrupted_creation_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.bin");
    with_records(&path, 0);
    // A creation that stopped before the magic: fields set, data zero.
    scribble(&path, 0, &[0; 8]);
    let journal = Journal::open(&path, CAPACITY, MAX_RECORD).expect("opens");
    assert!(!journal.recovery_report().damaged());
}
