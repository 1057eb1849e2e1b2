//! The drain's journal: records survive reopening, recovery starts at the
//! checkpoint, the ring wraps over acknowledged records and never over
//! pending ones, crashes between msgrcv and commit lose nothing, stale data
//! of earlier laps is never recovered, and damaged or foreign files are
//! reported, never trusted.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use shopify_events_core::drain::journal::{
    lap_tag, Journal, JournalError, OnDamage, RecordRef, HEADER_SIZE, MAGIC, WRAP_LEN,
};
use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use sysvmq::HEADER_LEN;
use tempfile::TempDir;
use testkit::queue::TestQueue;

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

/// The slot word at a data offset.
fn slot_at(path: &Path, data_offset: u64) -> u64 {
    let file = fs::read(path).expect("read journal");
    let at = (HEADER_SIZE + data_offset) as usize;
    u64::from_le_bytes(file[at..at + 8].try_into().expect("slot"))
}

fn record_word(lap: u64, len: u64) -> u64 {
    u64::from(lap_tag(lap)) << 32 | len
}

/// The checkpoint field of the header, as a crash would leave it.
fn set_header_checkpoint(path: &Path, checkpoint: u64) {
    let mut file = fs::read(path).expect("read journal");
    file[32..40].copy_from_slice(&checkpoint.to_le_bytes());
    fs::write(path, file).expect("write journal");
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
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
    assert_eq!(file[8..12], 2u32.to_le_bytes(), "format version");
    assert_eq!(slot_at(&path, 0), record_word(0, sent[0].len() as u64));
    assert_eq!(slot_at(&path, journal.write_offset()), 0);
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
    let cases: [(&str, Vec<u8>); 5] = [
        ("negative slot", (-5i64).to_ne_bytes().to_vec()),
        (
            "mtype over junk",
            [1i64.to_ne_bytes().to_vec(), b"not an envelope".to_vec()].concat(),
        ),
        (
            "oversized record",
            record_word(0, 5000).to_le_bytes().to_vec(),
        ),
        (
            "record of another lap",
            record_word(1, 16).to_le_bytes().to_vec(),
        ),
        (
            "wrap marker of another lap",
            record_word(3, u64::from(WRAP_LEN)).to_le_bytes().to_vec(),
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
        assert_eq!(slot_at(&path, end), 0, "{what}: write slot zeroed");
        // Only the slot was zeroed; commits zero the slot after each new
        // record, so what lies further is never read.
        append(&mut journal, b"x");
        drop(journal);
        let journal = open(&path);
        assert_eq!(journal.recovered().len(), 3, "{what}");
        assert_eq!(journal.recovery_report().stopped_at_garbage, None, "{what}");
    }
}

/// 4096 data bytes, bodies of up to 1000: a frame takes 1008 bytes and
/// needs 1016 (with the slot after it) contiguous before the area's end.
fn small(path: &Path) -> Journal {
    Journal::open(path, 4096, 1000).expect("open")
}

#[test]
fn reserve_returns_none_exactly_when_the_ring_is_full() {
    let (_dir, path) = setup();
    let mut journal = small(&path);
    assert_eq!(journal.reserve().map(|f| f.len()), Some(HEADER_LEN + 1000));
    let full = [7u8; 1000];
    let records: Vec<RecordRef> = (0..4).map(|_| append(&mut journal, &full)).collect();
    assert_eq!(journal.write_offset(), 4 * 1008);
    // 64 bytes left: it must wrap, and offset 0 holds the checkpoint.
    assert!(
        journal.reserve().is_none(),
        "overwrote the checkpoint's record"
    );
    assert_eq!(journal.write_offset(), 4032, "wrapped without room");
    // One record acknowledged: the wrap happens (offset 0 is free), but
    // a frame at 0..1016 would reach the pending record at 1008.
    journal.checkpoint(records[0].end);
    assert!(journal.reserve().is_none(), "overwrote a pending record");
    assert_eq!(journal.write_offset(), 4096, "lap 1 starts at 4096");
    assert_eq!(slot_at(&path, 4032), record_word(0, u64::from(WRAP_LEN)));
    assert_eq!(journal.pending_bytes(), 4096 - 1008);
    // Two acknowledged: 0..1016 is free up to the record at 2016.
    journal.checkpoint(records[1].end);
    assert!(journal.reserve().is_some());
    let wrapped = append(&mut journal, &full);
    assert_eq!((wrapped.offset, wrapped.end), (4096, 5104));
    assert!(journal.reserve().is_none(), "reached the record at 2016");
    drop(journal);

    let journal = small(&path);
    assert_eq!(
        journal.recovered(),
        vec![records[2].clone(), records[3].clone(), wrapped],
        "records before and after the wrap, in order"
    );
    assert_eq!(bodies(&journal), vec![full.to_vec(); 3]);
    assert_eq!(journal.write_offset(), 5104);
    assert_eq!(journal.recovery_report().stopped_at_garbage, None);
}

#[test]
fn a_drained_ring_always_takes_a_frame_and_its_checkpoint_skips_the_wrap() {
    let (_dir, path) = setup();
    let mut journal = small(&path);
    let full = [1u8; 1000];
    let mut last = None;
    for _ in 0..4 {
        last = Some(append(&mut journal, &full));
    }
    let last = last.expect("records");
    journal.checkpoint(last.end);
    assert_eq!(journal.pending_bytes(), 0);
    // Empty at 4032: the wrap moves the checkpoint along.
    assert!(journal.reserve().is_some());
    assert_eq!(
        (journal.checkpoint_offset(), journal.write_offset()),
        (4096, 4096)
    );
    let record = append(&mut journal, b"after the wrap");
    drop(journal);
    let journal = small(&path);
    assert_eq!(bodies(&journal), vec![b"after the wrap".to_vec()]);
    assert_eq!(journal.recovered()[0], record);
}

#[test]
fn a_checkpoint_acknowledging_the_last_record_of_a_lap_moves_past_its_wrap() {
    let (_dir, path) = setup();
    let mut journal = small(&path);
    let full = [1u8; 1000];
    let records: Vec<RecordRef> = (0..4).map(|_| append(&mut journal, &full)).collect();
    journal.checkpoint(records[1].end);
    // Wraps (the frame at 4096 fits: the checkpoint is at 2016).
    assert!(journal.reserve().is_some());
    assert_eq!(journal.write_offset(), 4096);
    // The window acknowledges up to the end of the last record, which is
    // where the wrap marker is: the ring is empty, so nothing is pending.
    journal.checkpoint(records[3].end);
    assert_eq!(journal.checkpoint_offset(), 4096);
    assert_eq!(journal.pending_bytes(), 0);
}

#[test]
fn crash_between_wrap_marker_and_checkpoint_move_recovers_nothing_and_moves_on() {
    let (_dir, path) = setup();
    {
        let mut journal = small(&path);
        let full = [1u8; 1000];
        let last = (0..4).map(|_| append(&mut journal, &full)).last();
        journal.checkpoint(last.expect("records").end);
        assert!(journal.reserve().is_some());
    }
    // The wrap wrote its marker, the process died before the checkpoint moved.
    set_header_checkpoint(&path, 4032);
    let mut journal = small(&path);
    assert!(journal.recovered().is_empty());
    assert_eq!(journal.recovery_report().stopped_at_garbage, None);
    assert_eq!(
        (journal.checkpoint_offset(), journal.write_offset()),
        (4096, 4096)
    );
    assert_eq!(journal.pending_bytes(), 0);
    // A full frame fits: the checkpoint no longer holds the old lap's tail.
    append(&mut journal, &[2u8; 1000]);
}

#[test]
fn a_pending_record_at_the_start_of_the_lap_blocks_the_next_wrap() {
    let (_dir, path) = setup();
    let mut journal = small(&path);
    let full = [1u8; 1000];
    let first = (0..4).map(|_| append(&mut journal, &full)).last();
    journal.checkpoint(first.expect("records").end);
    // Lap 1: the checkpoint sits exactly at its offset 0.
    let lap1: Vec<RecordRef> = (0..4).map(|_| append(&mut journal, &full)).collect();
    assert_eq!(lap1[0].offset, 4096);
    assert_eq!(journal.checkpoint_offset(), 4096);
    // The wrap would zero the slot at offset 0 of lap 2: the pending record.
    assert!(journal.reserve().is_none());
    assert_eq!(
        journal.write_offset(),
        lap1[3].end,
        "no wrap marker written"
    );
    assert_eq!(slot_at(&path, 0), record_word(1, 1000));
    journal.checkpoint(lap1[1].end);
    assert!(journal.reserve().is_some());
    assert_eq!(journal.write_offset(), 8192);
}

#[test]
fn capacity_barely_above_one_frame_takes_one_record_at_a_time() {
    let (_dir, path) = setup();
    // 4096 data bytes: one frame of 8 + 4080 and the slot after it.
    let mut journal = Journal::open(&path, 4096, 4080).expect("open");
    for i in 0..50 {
        let body = envelope(i);
        let record = append(&mut journal, &body);
        assert!(journal.reserve().is_none(), "second record {i} fitted");
        drop(journal);
        journal = Journal::open(&path, 4096, 4080).expect("reopen");
        assert_eq!(bodies(&journal), vec![body], "record {i}");
        journal.checkpoint(record.end);
        assert_eq!(journal.pending_bytes(), 0);
    }
    assert!(
        journal.write_offset() > 49 * 4096,
        "wrapped for every record"
    );
    let err = Journal::open(&path.with_extension("2"), 4096, 4088).expect_err("too small");
    assert!(err.to_string().contains("at least 4104 bytes"), "{err}");
}

#[test]
fn stale_data_of_earlier_laps_is_never_recovered() {
    let (_dir, path) = setup();
    let lap0: Vec<Vec<u8>> = (0..400).map(envelope).collect();
    let mut journal = Journal::open(&path, 8192, 1000).expect("open");
    let mut written = Vec::new();
    for body in &lap0 {
        if journal.reserve().is_none() {
            break;
        }
        written.push(append(&mut journal, body));
    }
    assert!(written.len() > 40, "a lap's worth");
    // Acknowledge everything, then write a little into lap 1: the rest of
    // lap 0's records lie past the write position, slots intact.
    journal.checkpoint(journal.write_offset());
    let fresh: Vec<Vec<u8>> = (1000..1003).map(envelope).collect();
    let mut lap1 = Vec::new();
    for body in &fresh {
        lap1.push(append(&mut journal, body));
    }
    assert!(lap1[0].offset >= 8192, "wrapped");
    let after = lap1[2].end % 8192;
    drop(journal);
    assert_eq!(slot_at(&path, after), 0, "the write slot");
    let stale = written
        .iter()
        .find(|r| r.offset > after)
        .expect("a stale record past the write position");
    assert_eq!(slot_at(&path, stale.offset) >> 32, u64::from(lap_tag(0)));

    let journal = Journal::open(&path, 8192, 1000).expect("reopen");
    assert_eq!(bodies(&journal), fresh);
    assert_eq!(journal.recovery_report().stopped_at_garbage, None);
    drop(journal);

    // Pointing the checkpoint into lap 0's stale records recovers none of them.
    set_header_checkpoint(&path, stale.offset + 8192);
    let journal = Journal::open(&path, 8192, 1000).expect("reopen");
    assert!(journal.recovered().is_empty());
    assert_eq!(
        journal.recovery_report().stopped_at_garbage,
        Some(stale.offset + 8192)
    );
}

#[test]
fn uncommitted_message_after_a_wrap_is_recovered_over_stale_data() {
    let (_dir, path) = setup();
    let mut journal = Journal::open(&path, 8192, 1000).expect("open");
    // Acknowledged fillers without padding fill lap 0 with nonzero words,
    // then one starts lap 1.
    while journal.write_offset() < 8192 {
        let filler = append(&mut journal, &[9u8; 24]);
        journal.checkpoint(filler.end);
    }
    let first = envelope(1);
    let committed = append(&mut journal, &first);
    assert!(committed.offset > 8192, "wrapped");
    let body = envelope(2);
    receive(&mut journal, 3, &body); // killed between msgrcv and commit
    let at = journal.write_offset();
    drop(journal);
    let end = at + 8 + (body.len() as u64).div_ceil(8) * 8;
    assert_ne!(slot_at(&path, end % 8192), 0, "stale bytes after the body");

    let mut journal = Journal::open(&path, 8192, 1000).expect("reopen");
    assert_eq!(bodies(&journal), vec![first, body.clone()]);
    assert_eq!(journal.recovery_report().stopped_at_garbage, None);
    assert_eq!(journal.write_offset(), end);
    assert_eq!(slot_at(&path, end % 8192), 0, "zeroed by recovery");
    assert_eq!(slot_at(&path, at % 8192), record_word(1, body.len() as u64));
    append(&mut journal, b"next");
    drop(journal);
    let journal = Journal::open(&path, 8192, 1000).expect("reopen");
    assert_eq!(journal.recovered().len(), 3);
    assert_eq!(journal.recovery_report().stopped_at_garbage, None);
}

/// Whether `reserve` should hand out a frame, by the format's rules: a frame
/// and the next slot contiguous before the area's end, wrapping first if
/// not, and before the checkpoint's position one lap on.
fn ring_takes_a_frame(journal: &Journal, max_record: u64) -> bool {
    let (c, k, w) = (
        journal.capacity(),
        journal.checkpoint_offset(),
        journal.write_offset(),
    );
    let need = 8 + max_record.div_ceil(8) * 8 + 8;
    if w % c + need <= c {
        return w + need <= k + c;
    }
    let next = (w / c + 1) * c;
    let k = if k == w { next } else { k };
    next + 8 <= k + c && next + need <= k + c
}

/// 10k records of random sizes through a 16 KiB ring with a lagging
/// checkpoint, reopened at random moments, some of them right after a
/// msgrcv that was never committed: every reopen recovers exactly the
/// pending records, in order, at their positions.
#[test]
fn many_laps_with_a_lagging_checkpoint_recover_exactly_what_is_pending() {
    for seed in [0x9E37_79B9_7F4A_7C15u64, 0xD1B5_4A32_D192_ED03, 7] {
        let (_dir, path) = setup();
        let (capacity, max_record) = (16 * 1024, 1024);
        let reopen = |path: &Path| Journal::open(path, capacity, max_record).expect("open");
        let mut rng = Rng(seed);
        let mut journal = reopen(&path);
        let mut pending: VecDeque<(RecordRef, Vec<u8>)> = VecDeque::new();
        let (mut reopens, mut uncommitted, mut full) = (0, 0, 0);
        for i in 0..10_000u64 {
            loop {
                let fits = ring_takes_a_frame(&journal, 1024);
                assert_eq!(
                    journal.reserve().is_some(),
                    fits,
                    "seed {seed:#x}, record {i}"
                );
                if fits {
                    break;
                }
                full += 1;
                // A frame and the slot after it take up to 1040 bytes.
                assert!(
                    journal.pending_bytes() + 1040 > capacity,
                    "refused with {} bytes pending",
                    journal.pending_bytes()
                );
                let n = 1 + rng.below(pending.len() as u64) as usize;
                let (record, _) = pending.drain(..n).next_back().expect("full when empty");
                journal.checkpoint(record.end);
            }
            assert!(journal.pending_bytes() <= capacity - 8);
            let crash_uncommitted = rng.below(100) == 0;
            let body = if crash_uncommitted {
                envelope(i)
            } else {
                let len = match rng.below(4) {
                    0 => rng.below(16),
                    1 => 1024 - rng.below(8),
                    _ => rng.below(1025),
                } as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            };
            receive(&mut journal, 1 + rng.below(1000) as i64, &body);
            let record = if crash_uncommitted {
                let offset = journal.write_offset();
                RecordRef {
                    offset,
                    end: offset + 8 + (body.len() as u64).div_ceil(8) * 8,
                    len: body.len(),
                }
            } else {
                journal.commit(body.len())
            };
            assert_eq!(journal.body(&record), &body[..]);
            pending.push_back((record, body));
            // (Not the uncommitted one: the journal does not know it yet.)
            if !crash_uncommitted && rng.below(8) == 0 && pending.len() > 2 {
                let keep = rng.below(pending.len() as u64) as usize;
                let n = pending.len() - keep;
                let (record, _) = pending.drain(..n).next_back().expect("pending");
                journal.checkpoint(record.end);
            }
            if crash_uncommitted || rng.below(300) == 0 {
                drop(journal);
                journal = reopen(&path);
                reopens += 1;
                uncommitted += usize::from(crash_uncommitted);
                let want: Vec<RecordRef> = pending.iter().map(|(r, _)| r.clone()).collect();
                assert_eq!(journal.recovered(), want, "seed {seed:#x}, record {i}");
                let want: Vec<&[u8]> = pending.iter().map(|(_, b)| &b[..]).collect();
                let recovered = journal.recovered();
                let got: Vec<&[u8]> = recovered.iter().map(|r| journal.body(r)).collect();
                assert_eq!(got, want, "seed {seed:#x}, record {i}");
                assert_eq!(journal.recovery_report().stopped_at_garbage, None);
                assert_eq!(
                    journal.write_offset(),
                    pending
                        .back()
                        .map_or(journal.checkpoint_offset(), |(r, _)| r.end)
                );
            }
        }
        let laps = journal.write_offset() / capacity;
        eprintln!(
            "seed {seed:#x}: {laps} laps, {reopens} reopens ({uncommitted} uncommitted), {full} times full"
        );
        assert!(laps > 100, "only {laps} laps");
        assert!(uncommitted > 10 && full > 50);
    }
}

#[test]
fn corrupt_data_areas_and_checkpoints_never_panic() {
    let mut rng = Rng(0x5EED);
    for round in 0..200 {
        let (_dir, path) = setup();
        {
            let mut journal = Journal::open(&path, 8192, 1000).expect("open");
            for i in 0..rng.below(200) {
                if journal.reserve().is_none() {
                    journal.checkpoint(journal.write_offset());
                }
                append(&mut journal, &envelope(i));
            }
        }
        let mut file = fs::read(&path).expect("read");
        for _ in 0..1 + rng.below(20) {
            let at = (HEADER_SIZE + rng.below(8192 - 8)) as usize & !7;
            let word = match rng.below(5) {
                0 => 0,
                1 => record_word(rng.below(3), rng.below(2000)),
                2 => record_word(rng.below(3), u64::from(WRAP_LEN)),
                3 => rng.below(1 << 20),
                _ => rng.next(),
            };
            file[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
        if rng.below(3) == 0 {
            let checkpoint = match rng.below(3) {
                0 => rng.below(4 * 8192) & !7,
                1 => (u64::MAX / 8) & !7,
                _ => rng.next() & !7,
            };
            file[32..40].copy_from_slice(&checkpoint.to_le_bytes());
        }
        fs::write(&path, &file).expect("write");
        // Damage that may hide pending records is refused, the file left
        // as it is; the operator's override opens it.
        let opened = match Journal::open(&path, 8192, 1000) {
            Err(JournalError::Damaged { .. }) => {
                assert_eq!(
                    fs::read(&path).expect("read"),
                    file,
                    "round {round}: refused untouched"
                );
                Journal::open_with(&path, 8192, 1000, OnDamage::Discard)
            }
            other => other,
        };
        match opened {
            Ok(mut journal) => {
                for record in journal.recovered() {
                    assert_eq!(journal.body(&record).len(), record.len, "round {round}");
                }
                // Whatever was found, the journal takes new records that
                // survive the next open.
                if journal.reserve().is_none() {
                    journal.checkpoint(journal.write_offset());
                }
                let record = append(&mut journal, b"after the damage");
                drop(journal);
                let journal = Journal::open(&path, 8192, 1000).expect("reopen");
                assert_eq!(journal.recovered().last(), Some(&record), "round {round}");
            }
            Err(err) => assert!(matches!(err, JournalError::Format { .. }), "{err}"),
        }
    }
}

/// A version 1 (linear) journal file with an empty data area and its
/// checkpoint at `checkpoint`.
fn version_1_file(checkpoint: u64) -> Vec<u8> {
    let mut file = vec![0u8; (HEADER_SIZE + CAPACITY) as usize];
    file[..8].copy_from_slice(b"SEJOURN1");
    file[8..16].copy_from_slice(&(1u64 | HEADER_SIZE << 32).to_le_bytes());
    file[16..24].copy_from_slice(&CAPACITY.to_le_bytes());
    file[24..32].copy_from_slice(&MAX_RECORD.to_le_bytes());
    file[32..40].copy_from_slice(&checkpoint.to_le_bytes());
    file
}

#[test]
fn a_delivered_version_1_journal_is_replaced_by_a_ring() {
    let (_dir, path) = setup();
    let mut file = version_1_file(64);
    // An acknowledged record before the checkpoint; nothing from it on.
    let data = HEADER_SIZE as usize;
    file[data..data + 8].copy_from_slice(&(0xD345_4A52u64 << 32 | 40).to_le_bytes());
    fs::write(&path, &file).expect("write");
    let mut journal = Journal::open(&path, CAPACITY, MAX_RECORD).expect("open");
    assert!(journal.recovered().is_empty());
    assert_eq!(journal.checkpoint_offset(), 0);
    let record = append(&mut journal, &envelope(1));
    drop(journal);
    let journal = Journal::open(&path, CAPACITY, MAX_RECORD).expect("reopen");
    assert_eq!(journal.recovered(), vec![record]);
}

#[test]
fn a_version_1_journal_is_refused_not_reinterpreted() {
    let (_dir, path) = setup();
    let mut file = version_1_file(0);
    // One committed version 1 record: "SEJR" with the top bit set.
    let body = envelope(0);
    let data = HEADER_SIZE as usize;
    let slot = 0xD345_4A52u64 << 32 | body.len() as u64;
    file[data..data + 8].copy_from_slice(&slot.to_le_bytes());
    file[data + 8..data + 8 + body.len()].copy_from_slice(&body);
    fs::write(&path, &file).expect("write");
    let err = Journal::open(&path, CAPACITY, MAX_RECORD).expect_err("version 1");
    assert!(matches!(err, JournalError::Format { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("format version 1"), "{message}");
    assert!(message.contains("move it aside"), "{message}");
    assert_eq!(fs::read(&path).expect("read"), file, "file touched");
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
    // A larger max_record whose frame still fits: raised in place.
    let mut journal = Journal::open(&path, 65536, 4000).expect("reopen larger");
    assert_eq!((journal.capacity(), journal.max_record()), (8192, 4000));
    assert_eq!(bodies(&journal), sent);
    assert_eq!(journal.reserve().map(|f| f.len()), Some(HEADER_LEN + 4000));
    drop(journal);
    // One whose frame would not fit: positions depend on the capacity, so
    // the file keeps both until it is empty.
    let journal = Journal::open(&path, 65536, 8192).expect("reopen larger still");
    assert_eq!((journal.capacity(), journal.max_record()), (8192, 4000));
    assert_eq!(bodies(&journal), sent);
    drop(journal);
    assert_eq!(bodies(&open(&path)), sent);
}

#[test]
fn drained_journal_is_recreated_with_the_geometry_asked_for() {
    let (_dir, path) = setup();
    {
        let mut journal = Journal::open(&path, 8192, 1000).expect("open");
        // Wrap a few times first: the recreated file starts over at 0.
        for i in 0..300 {
            let record = append(&mut journal, &envelope(i));
            journal.checkpoint(record.end);
        }
        assert!(journal.write_offset() > 2 * 8192);
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
    let file = fs::read(&path).expect("read");
    assert!(file[HEADER_SIZE as usize..].iter().all(|&b| b == 0));
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
    assert!(err.to_string().contains("at least 8208 bytes"), "{err}");
}

#[test]
fn messages_are_received_from_a_sysv_queue_straight_into_the_journal() {
    let queue = TestQueue::private();
    let (_dir, path) = setup();
    let sent: Vec<Vec<u8>> = (0..50).map(envelope).collect();
    let mut journal = open(&path);
    let mut got = Vec::new();
    for body in &sent {
        let frame = [1i64.to_ne_bytes().as_slice(), body].concat();
        queue.try_send_frame(&frame).expect("send");
        let frame = journal.reserve().expect("room");
        let len = queue
            .try_receive_into(frame, 0)
            .expect("receive")
            .expect("a message");
        got.push(journal.commit(len));
    }
    let received: Vec<Vec<u8>> = got.iter().map(|r| journal.body(r).to_vec()).collect();
    assert_eq!(received, sent);
    assert!(queue
        .try_receive_into(journal.reserve().expect("room"), 0)
        .expect("rx")
        .is_none());
    drop(journal);
    assert_eq!(bodies(&open(&path)), sent);
}

#[test]
fn messages_from_a_sysv_queue_wrap_around_a_small_ring() {
    let queue = TestQueue::private();
    let (_dir, path) = setup();
    let mut journal = Journal::open(&path, 4096, 1000).expect("open");
    let mut pending = VecDeque::new();
    for i in 0..500 {
        let body = envelope(i);
        let frame = [1i64.to_ne_bytes().as_slice(), &body].concat();
        queue.try_send_frame(&frame).expect("send");
        while journal.reserve().is_none() {
            let (record, _): (RecordRef, Vec<u8>) = pending.pop_front().expect("pending");
            journal.checkpoint(record.end);
        }
        let len = queue
            .try_receive_into(journal.reserve().expect("room"), 0)
            .expect("receive")
            .expect("a message");
        let record = journal.commit(len);
        assert_eq!(journal.body(&record), &body[..]);
        pending.push_back((record, body));
    }
    assert!(journal.write_offset() > 10 * 4096, "wrapped");
    drop(journal);
    let journal = Journal::open(&path, 4096, 1000).expect("reopen");
    let want: Vec<Vec<u8>> = pending.into_iter().map(|(_, b)| b).collect();
    assert_eq!(bodies(&journal), want);
}
