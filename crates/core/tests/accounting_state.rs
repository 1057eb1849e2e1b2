//! The accounting state file: restarts continue where the saved state
//! left off, damage is reported and kept as data, never a crash.

use proptest::prelude::*;
use shopify_events_core::accounting::{
    Admission, StateFile, Totals, Tracker, TrackerConfig, FORMAT_VERSION, MAGIC,
};
use shopify_events_core::envelope::Stamp;
use shopify_events_core::state_dir::StateDir;

const T0: u64 = 1_700_000_000_000;
const SECOND: u64 = 1000;
const AFTER_WINDOW: u64 = 62 * SECOND;

fn stamp(producer: u64, seq: u64) -> Option<Stamp> {
    Some(Stamp { producer, seq })
}

fn state(dir: &tempfile::TempDir) -> (StateDir, StateFile) {
    let state = StateDir::new(dir.path(), 0x5345_5600);
    let file = StateFile::new(&state);
    (state, file)
}

/// A tracker in the middle of things: producers in order, one waiting
/// for a number, one with a counted gap, a duplicate.
fn busy(now: u64) -> Tracker {
    let mut t = Tracker::new(&TrackerConfig::default(), T0);
    for seq in 0..1000 {
        t.admit(stamp(1, seq), now);
    }
    for seq in [0, 1, 2, 4, 5] {
        t.admit(stamp(2, seq), now);
    }
    for seq in [0, 2, 2] {
        t.admit(stamp(3, seq), now);
    }
    t.tick(now + AFTER_WINDOW);
    for seq in [1000, 1002] {
        t.admit(stamp(1, seq), now + AFTER_WINDOW);
    }
    t.admit(None, now);
    t
}

#[test]
fn a_restart_from_the_saved_state_goes_on_as_if_there_was_none() {
    let dir = tempfile::tempdir().unwrap();
    let (state, mut file) = state(&dir);
    let mut kept = busy(T0);
    file.save(&mut kept, T0 + AFTER_WINDOW, true).unwrap();
    assert!(!kept.is_dirty());
    assert!(state.accounting().exists());
    let (mut loaded, report) = file.load(&TrackerConfig::default(), T0 + 100 * SECOND);
    assert!(report.found && !report.is_damaged(), "{report}");
    assert_eq!(report.producers, 3);
    assert_eq!(loaded.totals(), kept.totals());
    assert_eq!(loaded.since(), kept.since());
    // The same continuation on both: the late 1001 fills the pending
    // hole, 3 and 1 arrive late.
    for t in [&mut kept, &mut loaded] {
        assert_eq!(t.admit(stamp(1, 1001), T0 + 70 * SECOND), Admission::Filled);
        assert_eq!(t.admit(stamp(2, 3), T0 + 70 * SECOND), Admission::Late);
        assert_eq!(t.admit(stamp(3, 1), T0 + 70 * SECOND), Admission::Late);
        assert_eq!(t.admit(stamp(1, 5), T0 + 70 * SECOND), Admission::Duplicate);
        t.tick(T0 + 200 * SECOND);
    }
    assert_eq!(loaded.totals(), kept.totals());
    let sorted = |t: &Tracker| {
        let mut s = t.snapshot(10);
        s.worst.sort_by(|a, b| a.producer.cmp(&b.producer));
        s
    };
    assert_eq!(sorted(&loaded), sorted(&kept));
}

#[test]
fn a_drain_killed_after_a_save_re_admits_without_gaps_and_counts_duplicates() {
    // The drain's rule: its checkpoint never passes an event the saved
    // state has not admitted. So a kill re-sends everything past the last
    // save, some of it admitted before the save too.
    let dir = tempfile::tempdir().unwrap();
    let (_, mut file) = state(&dir);
    let config = TrackerConfig::default();
    let mut t = Tracker::new(&config, T0);
    let (mut now, mut base, mut resent) = (T0, 0, 0);
    for _ in 0..20 {
        for seq in base..base + 500 {
            t.admit(stamp(77, seq), now);
        }
        // The save covers up to base + 500; the checkpoint lags behind it.
        file.save(&mut t, now, false).unwrap();
        for seq in base + 500..base + 550 {
            t.admit(stamp(77, seq), now); // admitted, then the kill
        }
        now += SECOND;
        let (loaded, report) = file.load(&config, now);
        assert!(!report.is_damaged(), "{report}");
        t = loaded;
        // Recovery re-sends from the checkpoint: 100 admitted before the
        // save, 50 after it.
        for seq in base + 400..base + 550 {
            t.admit(stamp(77, seq), now);
        }
        resent += 100;
        base += 550;
    }
    t.tick(now + AFTER_WINDOW);
    let totals = t.totals();
    assert_eq!(totals.gaps, 0, "{totals:?}");
    assert_eq!(totals.duplicates, resent);
}

#[test]
fn a_checkpoint_past_the_saved_state_would_make_gaps() {
    // Why the drain holds its checkpoint back to the last save: events
    // admitted after it and not re-sent after a kill look lost.
    let dir = tempfile::tempdir().unwrap();
    let (_, mut file) = state(&dir);
    let config = TrackerConfig::default();
    let mut t = Tracker::new(&config, T0);
    for seq in 0..500 {
        t.admit(stamp(77, seq), T0);
    }
    file.save(&mut t, T0, false).unwrap();
    for seq in 500..550 {
        t.admit(stamp(77, seq), T0);
    }
    let (mut t, _) = file.load(&config, T0 + SECOND);
    for seq in 550..600 {
        t.admit(stamp(77, seq), T0 + SECOND);
    }
    t.tick(T0 + SECOND + AFTER_WINDOW);
    assert_eq!(t.totals().gaps, 50);
}

#[derive(Debug, Clone)]
enum Op {
    Admit { producer: u64, seq: u64 },
    Wait { seconds: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u64..4, 0u64..300).prop_map(|(producer, seq)| Op::Admit { producer, seq }),
        1 => (0u64..90).prop_map(|seconds| Op::Wait { seconds }),
    ]
}

fn apply(t: &mut Tracker, op: &Op, now: &mut u64) {
    match *op {
        Op::Admit { producer, seq } => {
            t.admit(stamp(producer, seq), *now);
        }
        Op::Wait { seconds } => {
            *now += seconds * SECOND;
            t.tick(*now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_restart_at_any_point_changes_nothing(
        ops in proptest::collection::vec(op(), 1..400),
        at in any::<usize>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut file) = state(&dir);
        let config = TrackerConfig::default();
        let at = at % ops.len();
        let (mut straight, mut restarted) = (Tracker::new(&config, T0), Tracker::new(&config, T0));
        let (mut now_a, mut now_b) = (T0, T0);
        for (i, op) in ops.iter().enumerate() {
            apply(&mut straight, op, &mut now_a);
            apply(&mut restarted, op, &mut now_b);
            if i == at {
                file.save(&mut restarted, now_b, false).unwrap();
                let (loaded, report) = file.load(&config, now_b);
                prop_assert!(!report.is_damaged(), "{}", report);
                restarted = loaded;
            }
        }
        straight.tick(now_a + 10 * AFTER_WINDOW);
        restarted.tick(now_b + 10 * AFTER_WINDOW);
        prop_assert_eq!(straight.totals(), restarted.totals());
        for id in 1..4 {
            prop_assert_eq!(straight.producer(id), restarted.producer(id));
        }
    }
}

#[test]
fn no_state_file_is_a_fresh_start_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = state(&dir);
    let (t, report) = file.load(&TrackerConfig::default(), T0);
    assert!(!report.found && !report.is_damaged());
    assert_eq!(t.totals(), Totals::default());
    assert_eq!(t.since(), T0);
    assert!(report.to_string().contains("none yet"), "{report}");
}

fn saved_bytes(dir: &tempfile::TempDir) -> (StateDir, StateFile, Vec<u8>, Tracker) {
    let (state, mut file) = state(dir);
    let mut t = busy(T0);
    file.save(&mut t, T0, false).unwrap();
    let bytes = std::fs::read(state.accounting()).unwrap();
    (state, file, bytes, t)
}

/// Where each record starts: after the 128-byte header, by their lengths.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 128;
    let mut out = Vec::new();
    while at < bytes.len() {
        out.push(at);
        at += u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    out
}

#[test]
fn the_file_starts_as_the_module_docs_say() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bytes, t) = saved_bytes(&dir);
    assert_eq!(bytes[..8], MAGIC);
    assert_eq!(bytes[8..12], FORMAT_VERSION.to_le_bytes());
    assert_eq!(bytes[12..16], 128u32.to_le_bytes());
    assert_eq!(bytes[16..24], T0.to_le_bytes());
    assert_eq!(bytes[24..32], t.since().to_le_bytes());
    assert_eq!(bytes[32..40], 3u64.to_le_bytes());
    assert_eq!(bytes[40..48], t.totals().admitted.to_le_bytes());
    assert_eq!(bytes[56..64], t.totals().gaps.to_le_bytes());
    assert_eq!(bytes[124..128], crc32c::crc32c(&bytes[..124]).to_le_bytes());
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 3);
    for &at in &offsets {
        assert_eq!(&bytes[at..at + 4], b"SEPR");
        let id = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        assert!((1..=3).contains(&id));
    }
    assert_eq!(
        *offsets.last().unwrap() + record_len(&bytes, offsets[2]),
        bytes.len()
    );
}

fn record_len(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize
}

#[test]
fn a_damaged_record_is_reported_skipped_and_the_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (state, file, mut bytes, t) = saved_bytes(&dir);
    let offsets = record_offsets(&bytes);
    let victim = offsets[1];
    let victim_id = u64::from_le_bytes(bytes[victim + 8..victim + 16].try_into().unwrap());
    bytes[victim + 30] ^= 0x40;
    std::fs::write(state.accounting(), &bytes).unwrap();
    let (mut loaded, report) = file.load(&TrackerConfig::default(), T0 + SECOND);
    assert!(report.is_damaged());
    assert_eq!(report.producers, 2);
    assert_eq!(report.expected, Some(3));
    assert_eq!(report.damage.len(), 1, "{report}");
    assert_eq!(report.damage[0].offset, victim as u64);
    assert_eq!(report.damage[0].len, record_len(&bytes, victim) as u64);
    assert!(report.damage[0].reason.contains("checksum"), "{report}");
    let line = report.to_string();
    assert!(line.contains(&format!("at offset {victim}")), "{line}");
    assert!(line.contains("join late"), "{line}");
    // The damaged file is kept for the operator; the counters carry on and
    // count the damage.
    assert_eq!(
        report.set_aside.as_deref(),
        Some(state.accounting_damaged().as_path())
    );
    assert_eq!(std::fs::read(state.accounting_damaged()).unwrap(), bytes);
    assert!(!state.accounting().exists());
    let mut expected = t.totals();
    expected.state_damaged = 1;
    assert_eq!(loaded.totals(), expected);
    assert_eq!(loaded.producer(victim_id), None);
    for id in (1..=3).filter(|&id| id != victim_id) {
        assert_eq!(loaded.producer(id), t.producer(id));
    }
    // The lost producer joins late when it is seen again: no invented gap.
    let gaps = loaded.totals().gaps;
    loaded.admit(stamp(victim_id, 5000), T0 + 2 * SECOND);
    loaded.tick(T0 + 2 * SECOND + AFTER_WINDOW);
    assert_eq!(loaded.totals().gaps, gaps);
    assert_eq!(loaded.totals().joined_late, t.totals().joined_late + 1);
}

#[test]
fn a_damaged_header_costs_the_counters_not_the_producers() {
    let dir = tempfile::tempdir().unwrap();
    let (state, file, mut bytes, t) = saved_bytes(&dir);
    bytes[50] ^= 1;
    std::fs::write(state.accounting(), &bytes).unwrap();
    let (loaded, report) = file.load(&TrackerConfig::default(), T0 + SECOND);
    assert!(
        report.header.as_deref().unwrap().contains("checksum"),
        "{report}"
    );
    assert!(report.to_string().contains("counters restart at 0"));
    assert_eq!(report.producers, 3);
    for id in 1..=3 {
        assert_eq!(loaded.producer(id), t.producer(id));
    }
    assert_eq!(loaded.totals().gaps, 0);
    assert_eq!(loaded.totals().state_damaged, 1);
}

#[test]
fn a_truncated_file_keeps_the_records_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (state, file, bytes, _) = saved_bytes(&dir);
    let offsets = record_offsets(&bytes);
    std::fs::write(state.accounting(), &bytes[..offsets[2] + 10]).unwrap();
    let (_, report) = file.load(&TrackerConfig::default(), T0);
    assert_eq!((report.producers, report.expected), (2, Some(3)));
    assert_eq!(report.damage.len(), 1);
    assert_eq!(report.damage[0].offset, offsets[2] as u64);
    assert_eq!(report.damage[0].len, 10);
}

#[test]
fn a_file_of_an_unknown_version_is_set_aside_and_accounting_starts_over_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let (state, file, mut bytes, _) = saved_bytes(&dir);
    bytes[8] = 9;
    std::fs::write(state.accounting(), &bytes).unwrap();
    let (t, report) = file.load(&TrackerConfig::default(), T0 + SECOND);
    assert!(report.is_damaged());
    let why = report.unreadable.as_deref().unwrap();
    assert!(why.contains("format version 9"), "{why}");
    assert!(report.to_string().contains("accounting starts over"));
    assert_eq!(t.producers(), 0);
    assert_eq!(t.totals().state_damaged, 1);
    assert_eq!(t.since(), T0 + SECOND);
    assert!(state.accounting_damaged().exists());
}

#[test]
fn a_save_over_a_missing_directory_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("gone"), 1);
    let mut file = StateFile::new(&state);
    let mut t = Tracker::new(&TrackerConfig::default(), T0);
    let err = file.save(&mut t, T0, false).unwrap_err().to_string();
    assert!(err.contains("gone/.accounting-00000001.bin."), "{err}");
    assert!(err.contains("writable"), "{err}");
    assert!(t.is_dirty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_damage_is_survived_and_invents_nothing(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (state, file, mut bytes, t) = saved_bytes(&dir);
        for (at, mask) in flips {
            let at = at % bytes.len();
            bytes[at] ^= mask;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        std::fs::write(state.accounting(), &bytes).unwrap();
        let (loaded, report) = file.load(&TrackerConfig::default(), T0);
        // Every producer kept is exactly as saved.
        prop_assert!(report.producers <= 3);
        for id in 1..=3 {
            let got = loaded.producer(id);
            prop_assert!(got.is_none() || got == t.producer(id), "producer {} changed", id);
        }
        prop_assert!(loaded.totals().gaps <= t.totals().gaps);
        prop_assert_eq!(report.is_damaged(), loaded.totals().state_damaged == 1);
    }

    #[test]
    fn random_bytes_as_a_state_file_start_over_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (state, file) = state(&dir);
        std::fs::write(state.accounting(), &bytes).unwrap();
        let (t, report) = file.load(&TrackerConfig::default(), T0);
        prop_assert!(report.is_damaged(), "{}", report);
        prop_assert_eq!(t.producers(), 0);
    }
}
