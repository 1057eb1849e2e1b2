//! The loss-accounting tracker: events removed, duplicated and reordered on
//! purpose, and what it reports for each; its memory bounds.

use proptest::prelude::*;
use shopify_events_core::accounting::{Admission, Totals, Tracker, TrackerConfig, MAX_GAP_RANGES};
use shopify_events_core::envelope::Stamp;

const T0: u64 = 1_700_000_000_000;
const SECOND: u64 = 1000;
/// Past the default 60 s window and its one-second granularity.
const AFTER_WINDOW: u64 = 62 * SECOND;

fn stamp(producer: u64, seq: u64) -> Option<Stamp> {
    Some(Stamp { producer, seq })
}

fn tracker() -> Tracker {
    Tracker::new(&TrackerConfig::default(), T0)
}

/// Admits `seqs` of `producer` at `now`, then settles what a window's wait
/// settles.
fn run(t: &mut Tracker, producer: u64, seqs: &[u64], now: u64) -> Totals {
    for &seq in seqs {
        t.admit(stamp(producer, seq), now);
    }
    t.tick(now + AFTER_WINDOW);
    t.totals()
}

#[test]
fn a_producer_in_order_has_no_gap_and_no_duplicate() {
    let mut t = tracker();
    let seqs: Vec<u64> = (0..100_000).collect();
    let totals = run(&mut t, 7, &seqs, T0);
    assert_eq!(totals.admitted, 100_000);
    assert_eq!(
        (totals.gaps, totals.duplicates, totals.unclassified),
        (0, 0, 0)
    );
    assert_eq!(t.window_bytes(), 0, "in order, no bitmap");
    assert_eq!(t.producer(7), Some((0, 0, 100_000)));
}

#[test]
fn one_removed_event_is_exactly_one_gap_once_the_window_has_passed() {
    let mut t = tracker();
    for seq in (0..1000).filter(|&s| s != 500) {
        t.admit(stamp(1, seq), T0);
    }
    t.tick(T0 + 59 * SECOND);
    assert_eq!(t.totals().gaps, 0, "still within the window: it may come");
    t.tick(T0 + AFTER_WINDOW);
    let totals = t.totals();
    assert_eq!((totals.gaps, totals.missing()), (1, 1));
    assert_eq!(totals.forced, 0);
    assert_eq!(t.producer(1), Some((1, 0, 1000)));
    let snapshot = t.snapshot(5);
    assert_eq!(snapshot.worst.len(), 1);
    assert_eq!(snapshot.worst[0].producer, "0000000000000001");
    assert_eq!(snapshot.worst[0].missing, 1);
}

#[test]
fn a_gap_that_arrives_late_is_taken_back_not_hidden() {
    let mut t = tracker();
    run(&mut t, 1, &[0, 1, 3, 4], T0);
    assert_eq!(t.totals().missing(), 1);
    assert_eq!(t.admit(stamp(1, 2), T0 + 70 * SECOND), Admission::Late);
    let totals = t.totals();
    assert_eq!((totals.gaps, totals.late, totals.missing()), (1, 1, 0));
    assert_eq!(
        t.admit(stamp(1, 2), T0 + 71 * SECOND),
        Admission::Duplicate,
        "a second copy of the late one is a duplicate"
    );
}

#[test]
fn a_number_that_runs_a_window_ahead_makes_the_gap_count_at_once() {
    let config = TrackerConfig {
        window_events: 1024,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(&config, T0);
    t.admit(stamp(9, 0), T0);
    for seq in 2..=1024 {
        t.admit(stamp(9, seq), T0);
    }
    assert_eq!(t.totals().gaps, 0);
    t.admit(stamp(9, 1025), T0);
    let totals = t.totals();
    assert_eq!(
        (totals.gaps, totals.forced),
        (1, 1),
        "1 waited past 1024 others"
    );
    assert_eq!(t.admit(stamp(9, 1), T0), Admission::Late);
    assert_eq!(t.totals().missing(), 0);
}

#[test]
fn a_jump_far_ahead_counts_every_number_skipped() {
    let mut t = tracker();
    run(&mut t, 3, &[0, 1, 1_000_001], T0);
    assert_eq!(t.totals().gaps, 999_999);
    assert!(t.window_bytes() <= 8 * 1024 + 64, "{}", t.window_bytes());
}

#[test]
fn events_without_a_stamp_are_unaccounted_never_gaps() {
    let mut t = tracker();
    for _ in 0..10 {
        assert_eq!(t.admit(None, T0), Admission::Unaccounted);
    }
    t.tick(T0 + AFTER_WINDOW);
    let totals = t.totals();
    assert_eq!(
        (totals.unaccounted, totals.admitted, totals.gaps),
        (10, 0, 0)
    );
}

#[test]
fn producers_are_accounted_apart() {
    let mut t = tracker();
    for seq in 0..100 {
        t.admit(stamp(1, seq), T0);
        if seq != 50 {
            t.admit(stamp(2, seq), T0);
        }
        t.admit(stamp(3, seq / 2), T0); // every number twice
    }
    t.tick(T0 + AFTER_WINDOW);
    assert_eq!(t.producer(1), Some((0, 0, 100)));
    assert_eq!(t.producer(2), Some((1, 0, 100)));
    assert_eq!(t.producer(3), Some((0, 50, 50)));
    assert_eq!(t.totals().gaps, 1);
    assert_eq!(t.totals().duplicates, 50);
}

#[test]
fn a_producer_first_seen_late_joins_late_without_false_gaps() {
    let mut t = tracker();
    // Its first 5,000 events went to a drain before this accounting began.
    assert_eq!(t.admit(stamp(4, 5000), T0), Admission::New);
    for seq in 5001..6000 {
        t.admit(stamp(4, seq), T0);
    }
    t.tick(T0 + AFTER_WINDOW);
    let totals = t.totals();
    assert_eq!((totals.gaps, totals.joined_late), (0, 1));
    // One from before its start is neither late nor a duplicate to it.
    assert_eq!(
        t.admit(stamp(4, 10), T0 + AFTER_WINDOW),
        Admission::Unclassified
    );
    // Later losses are gaps as usual.
    run(&mut t, 4, &[6001, 6002], T0 + AFTER_WINDOW);
    assert_eq!(t.totals().gaps, 1);
}

#[test]
fn reordering_at_a_new_producers_head_is_not_joining_late() {
    let mut t = tracker();
    let totals = run(&mut t, 5, &[3, 1, 2, 0, 4, 5], T0);
    assert_eq!(
        (totals.gaps, totals.joined_late, totals.unclassified),
        (0, 0, 0)
    );
    // Its first event lost, the second first seen: it joins late at 1,
    // and the loss between two seen numbers is a gap.
    let totals = run(&mut t, 6, &[2, 1, 4], T0);
    assert_eq!((totals.gaps, totals.joined_late), (1, 1));
}

#[test]
fn an_idle_producer_is_retired_then_forgotten_and_returns_as_new() {
    let config = TrackerConfig::default();
    let mut t = Tracker::new(&config, T0);
    run(&mut t, 8, &[0, 1, 3], T0);
    assert_eq!(t.snapshot(0).active_producers, 1);
    t.tick(T0 + config.retire_after.as_millis() as u64 + SECOND);
    let s = t.snapshot(0);
    assert_eq!((s.producers, s.active_producers), (1, 0));
    assert_eq!(t.window_bytes(), 0);
    // Retired, it still knows its numbers: a loss across the silence counts.
    let later = T0 + 700 * SECOND;
    assert_eq!(t.admit(stamp(8, 5), later), Admission::Ahead);
    t.tick(later + AFTER_WINDOW);
    assert_eq!(t.totals().gaps, 2, "2 before the silence, 4 across it");
    let forget = later + config.forget_after.as_millis() as u64 + SECOND;
    t.tick(forget);
    assert_eq!((t.producers(), t.totals().forgotten), (0, 1));
    assert_eq!(t.admit(stamp(8, 100), forget), Admission::New);
    t.tick(forget + AFTER_WINDOW);
    assert_eq!(
        t.totals().gaps,
        2,
        "a forgotten producer's return invents no gap"
    );
}

#[test]
fn memory_is_bounded_with_many_producers() {
    let config = TrackerConfig {
        max_producers: 1000,
        max_window_bytes: 64 << 10,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(&config, T0);
    for producer in 1..=20_000u64 {
        // Every producer misses its number 1: each holds a bitmap.
        t.admit(stamp(producer, 0), T0 + producer);
        t.admit(stamp(producer, 2), T0 + producer);
        assert!(t.producers() <= 1000);
        assert!(t.window_bytes() <= 64 << 10, "{}", t.window_bytes());
    }
    let totals = t.totals();
    assert!(totals.evicted >= 19_000, "{totals:?}");
    // Evicted producers had their hole settled: nothing pending is lost track of.
    t.tick(T0 + 20_000 + AFTER_WINDOW);
    assert_eq!(t.totals().gaps, 20_000);
    let snapshot = t.snapshot(3);
    assert_eq!(snapshot.max_producers, 1000);
    assert_eq!(snapshot.worst.len(), 3);
}

#[test]
fn the_memory_budget_settles_holes_early_and_late_numbers_still_count_back() {
    let config = TrackerConfig {
        max_window_bytes: 8 * 4,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(&config, T0);
    t.admit(stamp(1, 0), T0);
    t.admit(stamp(1, 1000), T0); // needs 16 words, the budget has 4
    let totals = t.totals();
    assert_eq!((totals.gaps, totals.forced), (999, 1));
    assert!(t.window_bytes() <= 32);
    assert_eq!(t.admit(stamp(1, 500), T0), Admission::Late);
}

/// `0..n` with `removed` left out, `extra` numbers sent twice (the copy
/// anywhere after position 0), shuffled within `shuffle` positions.
fn stream(n: u64, removed: &[u64], extra: &[(u64, usize)], shuffle: &[(usize, usize)]) -> Vec<u64> {
    let mut seqs: Vec<u64> = (0..n).filter(|s| !removed.contains(s)).collect();
    for &(seq, at) in extra {
        if !removed.contains(&seq) {
            let at = 1 + at % seqs.len().max(1);
            seqs.insert(at.min(seqs.len()), seq);
        }
    }
    for &(a, d) in shuffle {
        // Swap within a distance: any permutation is a product of such swaps.
        let a = 1 + a % (seqs.len() - 1);
        let b = (a + d).min(seqs.len() - 1);
        seqs.swap(a, b);
    }
    seqs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_permutation_within_the_window_gives_zero_gaps(
        n in 2u64..3000,
        shuffle in proptest::collection::vec((any::<usize>(), 0usize..3000), 0..400),
    ) {
        let mut t = tracker();
        t.admit(stamp(1, 0), T0);
        let mut seqs = stream(n, &[], &[], &shuffle);
        seqs.remove(0);
        let totals = run(&mut t, 1, &seqs, T0);
        prop_assert_eq!(totals.gaps, 0);
        prop_assert_eq!(totals.duplicates, 0);
        prop_assert_eq!(totals.unclassified, 0);
        prop_assert_eq!(t.window_bytes(), 0, "everything settled, bitmap freed");
    }

    #[test]
    fn any_permutation_of_a_new_producer_gives_zero_gaps(
        n in 1u64..3000,
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<u64> = (0..3000).collect();
            for i in (1..v.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                v.swap(i, j);
            }
            v
        }),
    ) {
        let mut t = tracker();
        let seqs: Vec<u64> = order.into_iter().filter(|&s| s < n).collect();
        let totals = run(&mut t, 1, &seqs, T0);
        prop_assert_eq!(totals.gaps, 0);
        prop_assert_eq!(totals.duplicates, 0);
        // A head displaced further than the head window (1,024) makes it
        // join late (numbers below its start are unclassified), never a gap.
        prop_assert_eq!(totals.joined_late > 0, seqs[0] > 1024);
        prop_assert_eq!(totals.unclassified > 0, seqs[0] > 1024);
    }

    #[test]
    fn each_removed_number_is_one_gap_and_each_extra_copy_one_duplicate(
        n in 10u64..3000,
        removed in proptest::collection::btree_set(1u64..3000, 0..60),
        extra in proptest::collection::vec((0u64..3000, any::<usize>()), 0..50),
        shuffle in proptest::collection::vec((any::<usize>(), 0usize..200), 0..200),
    ) {
        // Losses before the last number are detectable; the last one stays.
        let removed: Vec<u64> = removed.into_iter().filter(|&s| s < n - 1).collect();
        let extra: Vec<(u64, usize)> = extra.into_iter().filter(|&(s, _)| s < n).collect();
        let seqs = stream(n, &removed, &extra, &shuffle);
        let copies = seqs.len() as u64 - (n - removed.len() as u64);
        let mut t = tracker();
        prop_assume!(seqs[0] == 0);
        let totals = run(&mut t, 42, &seqs, T0);
        prop_assert_eq!(totals.gaps, removed.len() as u64);
        prop_assert_eq!(totals.missing(), removed.len() as u64);
        prop_assert_eq!(totals.duplicates, copies);
        prop_assert_eq!(totals.unclassified, 0);
        // Every removed one, sent now, is late and takes its gap back, as
        // long as the producer remembers its gap ranges; beyond that it is
        // unclassified, still never a silent duplicate.
        let ranges = removed.windows(2).filter(|w| w[1] != w[0] + 1).count() + 1;
        for &seq in &removed {
            let admission = t.admit(stamp(42, seq), T0 + AFTER_WINDOW);
            if ranges <= MAX_GAP_RANGES {
                prop_assert_eq!(admission, Admission::Late);
            } else {
                prop_assert!(matches!(admission, Admission::Late | Admission::Unclassified));
            }
        }
        let after = t.totals();
        prop_assert_eq!(after.late + after.unclassified, removed.len() as u64);
        prop_assert_eq!(after.duplicates, copies);
    }
}
