//! Journal recovery against files damaged at random offsets (issue 9, "the
//! harness"): bit flips, random bytes, zeroed runs, truncation and garbage
//! appended, anywhere in the file, after laps of writing and acknowledging.
//!
//! What recovery does about damage (how loudly, whether it refuses to
//! start) is the drain's to decide; these properties hold whatever it
//! decides:
//!
//! - reopening never panics and never hangs (10 s);
//! - it never hands back an event that was not written: every recovered
//!   body is one of the pending ones, in order, or bytes the damage changed,
//!   which fail the envelope's CRC (the drain dead-letters them);
//! - damage that touches neither the header's fields nor the pending
//!   records (nor the zero slot after them) loses none of them;
//! - a refusal (`Err`) leaves the damaged file's bytes as they were
//!   (at most allocated further): nothing is wiped on the way out.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use shopify_events_core::drain::journal::{Journal, HEADER_SIZE};
use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;

const CAPACITY: u64 = 64 * 1024;
const MAX_RECORD: u64 = 2048;
/// Header bytes recovery reads (magic .. checkpoint and the reserved word).
const FIELDS: u64 = 48;

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: u64, bit: u8 },
    Bytes { at: u64, bytes: Vec<u8> },
    Zero { at: u64, len: u64 },
    Truncate { at: u64 },
    Append { bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    let file = HEADER_SIZE + CAPACITY;
    prop_oneof![
        4 => (0..file, 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        2 => (0..file, proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Damage::Bytes { at, bytes }),
        2 => (0..file, 1u64..512).prop_map(|(at, len)| Damage::Zero { at, len }),
        1 => (0..file).prop_map(|at| Damage::Truncate { at }),
        1 => proptest::collection::vec(any::<u8>(), 1..256).prop_map(|bytes| Damage::Append { bytes }),
    ]
}

fn envelope(n: u64, pad: usize) -> Vec<u8> {
    let time = 1_700_000_000_000_000 + n as i64;
    let mut out = Vec::new();
    let payload = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "p".repeat(pad));
    encode(
        &mut out,
        EventId::generate(time),
        time,
        "fuzz.journal",
        None,
        &[],
        payload.as_bytes(),
    )
    .unwrap();
    out
}

/// Writes `sizes.len()` records and acknowledges all but the last
/// `pending`; returns the pending bodies and the file offsets their bytes
/// (and the zero slot after them) occupy.
fn build(path: &Path, sizes: &[usize], pending: usize) -> (Vec<Vec<u8>>, HashSet<u64>) {
    let mut journal = Journal::open(path, CAPACITY, MAX_RECORD).unwrap();
    let mut records = Vec::new();
    for (n, &pad) in sizes.iter().enumerate() {
        let body = envelope(n as u64, pad);
        loop {
            if let Some(frame) = journal.reserve() {
                frame[..8].copy_from_slice(&1i64.to_ne_bytes());
                frame[8..8 + body.len()].copy_from_slice(&body);
                break;
            }
            // Full ring: acknowledge the oldest to make room.
            let oldest: (u64, Vec<u8>) = records.remove(0);
            journal.checkpoint(oldest.0);
        }
        let record = journal.commit(body.len());
        records.push((record.end, body));
    }
    let acked = records.len().saturating_sub(pending);
    if acked > 0 {
        journal.checkpoint(records[acked - 1].0);
    }
    let (from, to) = (journal.checkpoint_offset(), journal.write_offset() + 8);
    let occupied = (from..to)
        .map(|pos| HEADER_SIZE + pos % journal.capacity())
        .collect();
    let bodies = records[acked..].iter().map(|(_, b)| b.clone()).collect();
    drop(journal);
    (bodies, occupied)
}

fn apply(path: &Path, damage: &[Damage]) -> HashSet<u64> {
    let mut bytes = std::fs::read(path).unwrap();
    let mut touched = HashSet::new();
    for d in damage {
        match d {
            Damage::Flip { at, bit } => {
                if let Some(b) = bytes.get_mut(*at as usize) {
                    *b ^= 1 << bit;
                    touched.insert(*at);
                }
            }
            Damage::Bytes { at, bytes: new } => {
                for (i, &x) in new.iter().enumerate() {
                    let at = *at + i as u64;
                    if let Some(b) = bytes.get_mut(at as usize) {
                        *b = x;
                        touched.insert(at);
                    }
                }
            }
            Damage::Zero { at, len } => {
                for at in *at..at + len {
                    if let Some(b) = bytes.get_mut(at as usize) {
                        *b = 0;
                        touched.insert(at);
                    }
                }
            }
            Damage::Truncate { at } => {
                touched.extend(*at..bytes.len() as u64);
                bytes.truncate(*at as usize);
            }
            Damage::Append { bytes: new } => bytes.extend_from_slice(new),
        }
    }
    std::fs::write(path, &bytes).unwrap();
    touched
}

/// Opens in a thread: `None` if it did not finish in 10 s.
fn reopen(path: &Path) -> Option<Result<Vec<Vec<u8>>, String>> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let result = Journal::open(&path, CAPACITY, MAX_RECORD)
            .map(|j| j.recovered().iter().map(|r| j.body(r).to_vec()).collect())
            .map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_journal_reopens_without_panic_or_hang_and_loses_only_what_was_hit(
        sizes in proptest::collection::vec(0usize..1500, 1..120),
        pending in 0usize..40,
        damage in proptest::collection::vec(damage(), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let (bodies, occupied) = build(&path, &sizes, pending);
        let touched = apply(&path, &damage);
        let damaged = std::fs::read(&path).unwrap();
        let outcome = reopen(&path);
        prop_assert!(outcome.is_some(), "reopening hung on {damage:?}");
        match outcome.unwrap() {
            Ok(recovered) => {
                // In order; a body the damage changed never passes for an
                // event (its CRC fails, and the drain dead-letters it).
                let mut next = 0;
                for body in &recovered {
                    match bodies[next..].iter().position(|b| b == body) {
                        Some(i) => next += i + 1,
                        None => prop_assert!(
                            Envelope::decode(body).is_err(),
                            "recovered a valid event that was not pending (or out of order)"
                        ),
                    }
                }
                let hit = touched.iter().any(|&at| at < FIELDS || occupied.contains(&at));
                if !hit {
                    prop_assert_eq!(recovered.len(), bodies.len(), "damage elsewhere lost records");
                }
            }
            Err(_) => {
                // Extended with zeros (allocated) at most: no byte lost.
                let now = std::fs::read(&path).unwrap();
                prop_assert!(
                    now.len() >= damaged.len() && now[..damaged.len()] == damaged[..],
                    "a refusal changed the file"
                );
            }
        }
    }
}
