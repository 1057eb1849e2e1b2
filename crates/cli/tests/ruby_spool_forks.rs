//! The `spool` transport (`SHOPIFY_EVENTS_TRANSPORT=spool`: every event
//! appended to the emitting process's own mapped log) end to end under
//! forks: 16 Ruby processes (4 started by the test, 11 children they fork,
//! 1 grandchild) emit 1,000,000 events through the gem while the real
//! `shopify-events drain` tails the spool directory into a real
//! Kafka-protocol broker (Tansu), read back with librdkafka. Every event is
//! accepted and arrives, whole, exactly once apart from at-least-once
//! repeats, in emit order per process; the drain reclaims every segment
//! and its loss accounting counts no gap. Needs `ruby`, `rake compile` and
//! a tansu binary (`testkit::tansu`).
//!
//! Each process emits half its events, forks its children, then emits the
//! other half while they emit theirs: a child's first emit must open a log
//! of its own and leave the parent's, which the parent goes on writing, to
//! the parent (`crates/core/src/spool/mod.rs`, "Fork"). A child that wrote
//! into its parent's segment would tear or interleave records, which the
//! byte-for-byte, per-process order checks see. Children leave with a
//! normal `exit` at the end of their `fork` block, so the gem's `at_exit`
//! hooks run as in a Puma worker.
//!
//! The events and the checks: `ruby_spool_support` (key `p<label>`, payload
//! `"<label>:<i>:"` and filler).

mod drain_spool_support;
#[allow(dead_code)] // this file uses a subset
mod ruby_spool_support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use drain_spool_support::{spec, Dirs};
use ruby_spool_support::fork_tree::{self, Tree, TreeProcess};
use ruby_spool_support::{check_ids, consume_events, no_segments, stat};
use testkit::consume::unique_topic;
use testkit::queue::TestQueue;
use testkit::tansu::Tansu;
use testkit::wait::{serial, wait_until};

/// Events of each of the 16 processes.
const PER_PROCESS: u64 = 62_500;
/// Payload sizes, cycled by event number.
const SIZES: [usize; 4] = [40, 120, 200, 80];
/// Events per second of each process: 16 of them together stay within what
/// the drain (a debug build under `cargo test`) delivers to Tansu on two
/// shared cores, so it keeps up while they emit instead of draining a
/// backlog afterwards.
const RATE: u64 = 5_000;

/// The four trees the test starts: each root forks three children; in the
/// last tree one child forks a grandchild instead of a third sibling.
fn trees() -> Vec<Tree> {
    let leaf = Tree::leaf;
    vec![
        Tree::new(0, vec![leaf(4), leaf(5), leaf(6)]),
        Tree::new(1, vec![leaf(7), leaf(8), leaf(9)]),
        Tree::new(2, vec![leaf(10), leaf(11), leaf(12)]),
        Tree::new(3, vec![leaf(13), Tree::new(14, vec![leaf(15)])]),
    ]
}

#[test]
fn sixteen_forked_ruby_processes_emit_a_million_events_through_the_spool_transport_all_delivered_in_order(
) {
    let _serial = serial();
    let started = Instant::now();
    let tansu = Tansu::start();
    let topic = unique_topic("ruby-forks");
    tansu.create_topic(&topic, 8);
    // The spool transport never touches the queue; the drain needs one,
    // and its key names the segments it reads.
    let queue = TestQueue::new();
    let dirs = Dirs::new("ruby-spool-forks-");
    let spec = spec(&queue, &dirs)
        .brokers(&tansu.bootstrap)
        .args(["--accounting-window", "1"]);
    let mut drain = spec.spawn(0);

    let trees = trees();
    let labels: Vec<u32> = trees.iter().flat_map(Tree::labels).collect();
    assert_eq!(labels.len(), 16);
    let expected = labels.len() * PER_PROCESS as usize;
    // Read back while they emit, as a consumer would.
    let consumer = {
        let (bootstrap, topic) = (tansu.bootstrap.clone(), topic.clone());
        std::thread::spawn(move || {
            consume_events(&bootstrap, &topic, expected, Duration::from_secs(180))
        })
    };
    let mut roots: Vec<TreeProcess> = trees
        .iter()
        .map(|tree| TreeProcess::spawn(&queue, &dirs, &topic, tree, PER_PROCESS, RATE, &SIZES))
        .collect();
    // Steady state: what the drain produced while the processes emitted.
    let mut produced_while_emitting = 0;
    for root in &mut roots {
        root.wait(Duration::from_secs(120), || {
            drain.assert_running();
            if let Some(s) = spec.snapshot() {
                produced_while_emitting = s["produced"].as_u64().unwrap_or(0);
            }
        });
    }
    let emitted_at = started.elapsed();
    // Paced as they are, the drain keeps up within a second or two (about
    // all of them produced when the last writer exits); half leaves room
    // for a busy machine and still fails a drain that reads a backlog
    // after the writers left instead of tailing live logs.
    assert!(
        produced_while_emitting as usize >= expected / 2,
        "the drain produced only {produced_while_emitting} of {expected} events while they \
         were emitted: a backlog, not a steady state\n{}",
        drain.log_text()
    );

    let mut ids: HashMap<u32, HashMap<u64, String>> = HashMap::new();
    let mut pids = HashSet::new();
    for &label in &labels {
        let result = fork_tree::result(&dirs, label);
        let stats = &result.stats;
        assert_eq!(
            stat(stats, "emitted"),
            PER_PROCESS,
            "process {label}: {stats}"
        );
        assert_eq!(stat(stats, "dropped"), 0, "process {label}: {stats}");
        assert_eq!(stat(stats, "spool_failures"), 0, "process {label}: {stats}");
        assert!(stat(stats, "segments") > 0, "process {label}: {stats}");
        ids.insert(label, result.ids(PER_PROCESS));
        pids.insert(result.pid);
    }
    assert_eq!(pids.len(), 16, "16 processes, each its own");

    let distinct: HashSet<&String> = ids.values().flat_map(HashMap::values).collect();
    assert_eq!(
        distinct.len(),
        expected,
        "event ids repeated across processes"
    );

    let records = consumer.join().expect("consumer thread");
    let delivered = check_ids(&records, &ids, &SIZES);
    for &label in &labels {
        assert_eq!(
            delivered.last.get(&label),
            Some(&(PER_PROCESS - 1)),
            "process {label}"
        );
    }
    assert_eq!(records.len() - delivered.duplicates, expected);
    let delivered_at = started.elapsed();

    let spool = dirs.spool();
    assert!(
        wait_until(Duration::from_secs(30), || no_segments(&spool)),
        "segments left after every writer exited and everything was delivered: {:?}\n{}",
        std::fs::read_dir(&spool)
            .map(|d| d
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect::<Vec<_>>())
            .unwrap_or_default(),
        drain.log_text()
    );
    let accounting = accounting_settled(&spec, &mut drain, expected as u64);
    for counter in ["gaps", "missing", "unaccounted", "unclassified"] {
        assert_eq!(accounting[counter], 0, "{counter}: {accounting}");
    }
    let log = drain.log_text();
    assert!(!log.contains("damaged"), "{log}");
    assert!(
        drain
            .terminate(Duration::from_secs(15))
            .is_some_and(|s| s.success()),
        "{log}"
    );
    eprintln!(
        "{expected} events from 16 forked Ruby processes emitted by {emitted_at:?} (the drain \
         had produced {produced_while_emitting} by then), delivered in order by \
         {delivered_at:?} ({} duplicates); accounting {accounting}; test took {:?}",
        delivered.duplicates,
        started.elapsed()
    );
}

/// The drain's loss accounting once it admitted `admitted` events and a
/// window (1 s) and a tick passed, so that anything missing counts.
fn accounting_settled(
    spec: &testkit::drain::DrainSpec,
    drain: &mut testkit::drain::DrainProcess,
    admitted: u64,
) -> serde_json::Value {
    let mut last = None;
    let settled = wait_until(Duration::from_secs(30), || {
        drain.assert_running();
        last = spec.snapshot().and_then(|s| s.get("accounting").cloned());
        last.as_ref()
            .is_some_and(|a| a["admitted"].as_u64() == Some(admitted))
    });
    assert!(
        settled,
        "the drain did not admit {admitted} events: {last:?}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    spec.snapshot()
        .and_then(|s| s.get("accounting").cloned())
        .expect("accounting")
}
