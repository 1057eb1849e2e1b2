//! The drain's journal: records survive reopening, recovery starts at the
//! checkpoint, crashes between msgrcv and commit and during a rewind lose
//! nothing, and damaged files are reported, never trusted or clobbered.

use std::fs;
use std::path::{Path, PathBuf};

use shopify_events_core::drain::journal::{
    Journal, JournalError, RecordRef, HEADER_SIZE, MAGIC, RECORD_MAGIC,
};
use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use sysvmq::{Queue, HEADER_LEN};
use tempfile::TempDir;

const CAPACITY: u64 = 64 * 1024;
const MAX_RECORD: u64 = 1024;

fn envelope(i: u64) -> Vec<u8> {
    let t = 1_700_000_000_000_000 + i as i64;
    let mut out = Vec::new();
    let payload = format!("{{\"i\":{i}}}");
    let headers: &[(&str, &[u8])] = &[("source", b"journal-test")];
    encode(
        &mut out,
        EventId::generate(t),
        t,
        "events.test",
        Some(b"k"),
        headers,
        payload.as_bytes(),
    )
    .expect("encode");
    out
}

fn setup() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("drain.journal");
    (dir, path)
}

fn open(path: &Path) -> Journal {
    Journal::open(path, CAPACITY, MAX_RECORD).expect("open journal")
}

/// What msgrcv does: the mtype into the slot, the body after it.
fn receive(journal: &mut Journal, mtype: i64, body: &[u8]) {
    let frame = journal.reserve().expect("room for a frame");
    frame[..HEADER_LEN].copy_from_slice(&mtype.to_ne_bytes());
    frame[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
}

fn append(journal: &mut Journal, body: &[u8]) -> RecordRef {
    receive(journal, 1, body);
    journal.commit(body.len())
}

fn bodies(journal: &Journal) -> Vec<Vec<u8>> {
    journal
        .recovered()
        .iter()
        .map(|r| journal.body(r).to_vec())
        .collect()
}

/// Overwrites file bytes at a data offset, as a crash or another writer would.
fn scribble(path: &Path, data_offset: u64, bytes: &[u8]) {
    let mut file = fs::read(path).expect("read journal");
    let at = (HEADER_SIZE + data_offset) as usize;
    file[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, file).expect("write journal");
}

#[test]
fn committed_records_survive_reopen_in_order() {
    let (_dir, path) = setup();
    let sent: Vec<Vec<u8>> = (0..20).map(envelope).collect();
    {
        let mut journal = open(&path);
        assert!(journal.recovered().is_empty());
        for (i, body) in sent.iter().enumerate() {
            let record = append(&mut journal, body);
            assert_eq!(record.offset % 8, 0);
            assert_eq!(record.len, body.len());
            assert_eq!(journal.body(&record), &body[..], "record {i}");
            assert_eq!(journal.write_offset(), record.end);
        }
    }
    let journal = open(&path);
    assert_eq!(bodies(&journal), sent);
    let report = journal.recovery_report();
    assert_eq!((report.records, report.stopped_at_garbage), (20, None));
    assert_eq!(report.bytes, journal.write_offset());
    assert_eq!(journal.pending_bytes(), journal.write_offset());

    let file = fs::read(&path).expect("read");
    assert_eq!(file.len() as u64, HEADER_SIZE + CAPACITY);
    assert_eq!(file[..8], MAGIC);
    let slot = u64::from_le_bytes(file[4096..4104].try_into().expect("slot"));
    assert_eq!(slot >> 32, u64::from(RECORD_MAGIC));
    assert_eq!(slot & 0xFFFF_FFFF, sent[0].len() as u64);
}

#[test]
fn only_records_after_the_checkpoint_are_recovered() {
    let (_dir, path) = setup();
    let sent: Vec<Vec<u8>> = (0..10).map(envelope).collect();
    {
        let mut journal = open(&path);
        let records: Vec<RecordRef> = sent.iter().map(|b| append(&mut journal, b)).collect();
        journal.checkpoint(records[5].end);
        assert_eq!(journal.checkpoint_offset(), records[5].end);
        assert_eq!(journal.pending_bytes(), records[9].end - records[5].end);
    }
    let journal = open(&path);
    assert_eq!(bodies(&journal), sent[6..].to_vec());
    assert_eq!(journal.recovered()[0].offset, journal.checkpoint_offset());
}

#[test]
fn checkpoint_ignores_backward_unaligned_and_future_offsets() {
    let (_dir, path) = setup();
    let mut journal = open(&path);
    let first = append(&mut journal, &envelope(0));
    let second = append(&mut journal, &envelope(1));
    journal.checkpoint(second.end);
    journal.checkpoint(first.end);
    assert_eq!(journal.checkpoint_offset(), second.end, "moved backwards");
    journal.checkpoint(second.end + 8);
    journal.checkpoint(second.end - 3);
    assert_eq!(journal.checkpoint_offset(), second.end);
}

#[test]
fn message_received_but_never_committed_is_recovered() {
    let (_dir, path) = setup();
    let sent: Vec<Vec<u8>> = (0..3).map(envelope).collect();
    {
        let mut journal = open(&path);
        append(&mut journal, &sent[0]);
        append(&mut journal, &sent[1]);
        // Killed right after msgrcv returned: mtype in the slot, no commit.
        receive(&mut journal, 7, &sent[2]);
    }
    let mut journal = open(&path);
    assert_eq!(bodies(&journal), sent);
    assert_eq!(journal.recovery_report().stopped_at_garbage, None);
    Envelope::decode(journal.body(&journal.recovered()[2])).expect("decodes");
    // Recovery committed it, and the next record goes after it.
    let next = append(&mut journal, &envelope(3));
    assert_eq!(next.offset, journal.recovered()[2].end);
    drop(journal);
    assert_eq!(open(&path).recovered().len(), 4);
}

#[test]
fn garbage_after_valid_records_stops_recovery_and_is_reported() {
    // A negative slot, a positive mtype over a non-envelope body, and a
    // committed header whose length exceeds max_record.
    let cases: [(&str, Vec<u8>); 3] = [
        ("negative slot", (-5i64).to_ne_bytes().to_vec()),
        (
            "mtype over junk",
            [1i64.to_ne_bytes().to_vec(), b"not an envelope".to_vec()].concat(),
        ),
        (
            "oversized header",
            (u64::from(RECORD_MAGIC) << 32 | 5000)
                .to_le_bytes()
                .to_vec(),
        ),
    ];
    for (what, junk) in cases {
        let (_dir, path) = setup();
        let end = {
            let mut journal = open(&path);
            append(&mut journal, &envelope(0));
            append(&mut journal, &envelope(1)).end
        };
        scribble(&path, end, &junk);
        scribble(&path, end + 64, b"trailing junk");
        let mut journal = open(&path);
        assert_eq!(journal.recovered().len(), 2, "{what}");
        assert_eq!(
            journal.recovery_report().stopped_at_garbage,
            Some(end),
            "{what}"
        );
        assert_eq!(journal.write_offset(), end, "{what}");
        // The junk was zeroed, so a short record over it cannot be misread.
        append(&mut journal, b"x");
        drop(journal);
        let journal = open(&path);
        assert_eq!(journal.recovered().len(), 3, "{what}");
        assert_eq!(journal.recovery_report().stopped_at_garbage, None, "{what}");
    }
}

#[test]
fn rewind_zeroes_the_used_area_and_restarts_at_offset_zero() {
    let (_dir, path) = setup();
    let mut journal = open(&path);
    let last = (0..50)
        .map(|i| append(&mut journal, &envelope(i)))
        .last()
        .expect("records");
    assert!(
        !journal.rewind_if_drained().expect("rewind"),
        "rewound with records pending"
    );
    journal.checkpoint(last.end);
    assert!(journal.rewind_if_drained().expect("rewind"));
    assert_eq!(
        (journal.write_offset(), journal.checkpoint_offset()),
        (0, 0)
    );
    assert_eq!(journal.generation(), 1);
    assert!(
        !journal.rewind_if_drained().expect("rewind"),
        "an empty journal rewinds again"
    );
    let file = fs::read(&path).expect("read");
    assert!(
        file[HEADER_SIZE as usize..].iter().all(|&b| b == 0),
        "data left after rewind"
    );

    let next = envelope(99);
    let record = append(&mut journal, &next);
    assert_eq!(record.offset, 0);
    drop(journal);
    let journal = open(&path);
    assert_eq!(bodies(&journal), vec![next]);
    assert_eq!(journal.generation(), 1);
}

#[test]
fn crash_during_rewind_before_the_checkpoint_reset_replays_nothing() {
    let (_dir, path) = setup();
    let end = {
        let mut journal = open(&path);
        let last = (0..10)
            .map(|i| append(&mut journal, &envelope(i)))
            .last()
            .expect("records");
        journal.checkpoint(last.end);
        last.end
    };
    // Killed mid-zeroing: the first half is zero, the checkpoint not reset.
    scribble(&path, 0, &vec![0; end as usize / 2]);
    let mut journal = open(&path);
    assert!(journal.recovered().is_empty());
    assert_eq!(journal.recovery_report().stopped_at_garbage, None);
    assert_eq!(
        (journal.checkpoint_offset(), journal.write_offset()),
        (end, end)
    );
    assert!(journal.rewind_if_drained().expect("rewind"));
    assert_eq!(journal.write_offset(), 0);
}

#[test]
fn reserve_returns_none_once_a_whole_frame_no_longer_fits() {
    let (_dir, path) = setup();
    let mut journal = Journal::open(&path, 4096, 1000).expect("open");
    assert_eq!(journal.reserve().map(|f| f.len()), Some(HEADER_LEN + 1000));
    // A frame may take 8 + 1000 bytes: four fit in 4096, a fifth does not.
    for _ in 0..4 {
        append(&mut journal, &[7u8; 1000]);
    }
    assert_eq!(journal.write_offset(), 4 * 1008);
    assert!(journal.reserve().is_none());
    journal.checkpoint(journal.write_offset());
    assert!(journal.rewind_if_drained().expect("rewind"));
    assert!(journal.reserve().is_some());
}

#[test]
fn reopening_with_another_geometry_keeps_pending_records() {
    let (_dir, path) = setup();
    let sent: Vec<Vec<u8>> = (0..3).map(envelope).collect();
    {
        let mut journal = Journal::open(&path, 8192, 1000).expect("open");
        for body in &sent {
            append(&mut journal, body);
        }
    }
    // Smaller capacity and max_record: the file keeps its own.
    let journal = Journal::open(&path, 4096, 500).expect("reopen smaller");
    assert_eq!((journal.capacity(), journal.max_record()), (8192, 1000));
    assert_eq!(bodies(&journal), sent);
    drop(journal);
    // A larger max_record than a frame fits in: the file grows in place.
    let mut journal = Journal::open(&path, 65536, 8192).expect("reopen larger");
    assert_eq!((journal.capacity(), journal.max_record()), (65536, 8192));
    assert_eq!(bodies(&journal), sent);
    assert_eq!(journal.reserve().map(|f| f.len()), Some(HEADER_LEN + 8192));
    drop(journal);
    assert_eq!(bodies(&open(&path)), sent);
}

#[test]
fn drained_journal_is_recreated_with_the_geometry_asked_for() {
    let (_dir, path) = setup();
    {
        let mut journal = open(&path);
        let record = append(&mut journal, &envelope(0));
        journal.checkpoint(record.end);
    }
    let journal = Journal::open(&path, 2 * CAPACITY, 2 * MAX_RECORD).expect("reopen");
    assert_eq!(
        (journal.capacity(), journal.max_record()),
        (2 * CAPACITY, 2 * MAX_RECORD)
    );
    assert_eq!(
        (journal.checkpoint_offset(), journal.write_offset()),
        (0, 0)
    );
    assert_eq!(
        fs::metadata(&path).expect("stat").len(),
        HEADER_SIZE + 2 * CAPACITY
    );
}

#[test]
fn second_open_of_the_same_journal_is_refused() {
    let (_dir, path) = setup();
    let _first = open(&path);
    let err = Journal::open(&path, CAPACITY, MAX_RECORD).expect_err("second open");
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
}

#[test]
fn foreign_or_truncated_file_is_refused_and_left_untouched() {
    let (_dir, path) = setup();
    fs::write(&path, b"these are someone else's bytes").expect("write");
    let err = Journal::open(&path, CAPACITY, MAX_RECORD).expect_err("foreign file");
    assert!(matches!(err, JournalError::Format { .. }), "{err}");
    assert_eq!(
        fs::read(&path).expect("read"),
        b"these are someone else's bytes"
    );

    fs::remove_file(&path).expect("remove");
    drop(open(&path));
    let file = fs::File::options()
        .write(true)
        .open(&path)
        .expect("open file");
    file.set_len(HEADER_SIZE + 100).expect("truncate");
    let err = Journal::open(&path, CAPACITY, MAX_RECORD).expect_err("truncated file");
    assert!(err.to_string().contains("shorter"), "{err}");
}

#[test]
fn capacity_below_one_frame_is_refused_with_the_size_needed() {
    let (_dir, path) = setup();
    let err = Journal::open(&path, 4096, 8192).expect_err("too small");
    assert!(matches!(err, JournalError::TooSmall { .. }), "{err}");
    assert!(err.to_string().contains("at least 8200 bytes"), "{err}");
}

/// Removes the queue even when an assertion fails.
struct PrivateQueue(Queue);

impl Drop for PrivateQueue {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

#[test]
fn messages_are_received_from_a_sysv_queue_straight_into_the_journal() {
    let queue = PrivateQueue(Queue::create_private(0o600).expect("create queue"));
    let (_dir, path) = setup();
    let sent: Vec<Vec<u8>> = (0..50).map(envelope).collect();
    let mut journal = open(&path);
    let mut got = Vec::new();
    for body in &sent {
        let frame = [1i64.to_ne_bytes().as_slice(), body].concat();
        queue.0.try_send_frame(&frame).expect("send");
        let frame = journal.reserve().expect("room");
        let len = queue
            .0
            .try_receive_into(frame, 0)
            .expect("receive")
            .expect("a message");
        got.push(journal.commit(len));
    }
    let received: Vec<Vec<u8>> = got.iter().map(|r| journal.body(r).to_vec()).collect();
    assert_eq!(received, sent);
    assert!(queue
        .0
        .try_receive_into(journal.reserve().expect("room"), 0)
        .expect("rx")
        .is_none());
    drop(journal);
    assert_eq!(bodies(&open(&path)), sent);
}
