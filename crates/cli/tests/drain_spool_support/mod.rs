//! What the spool tests of the drain share: scratch directories, the drain
//! spec, and checking what arrived against what the emitters reported.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use testkit::consume::{consume_until, Consumed};
use testkit::drain::DrainSpec;
use testkit::emitter::{self, Emitted, EmitterSpec};
use testkit::queue::TestQueue;

pub use testkit::dirs::Dirs;

pub fn spec(queue: &TestQueue, dirs: &Dirs) -> DrainSpec {
    let bin = env!("CARGO_BIN_EXE_shopify-events");
    DrainSpec::new(bin, queue.key(), &dirs.state(), dirs.root()).spool_dir(&dirs.spool())
}

/// `(proc, i)` of a record, from its headers.
pub fn numbers(record: &Consumed) -> (u32, u64) {
    let field = |name: &str| {
        let bytes = record
            .header(name)
            .unwrap_or_else(|| panic!("record without {name} header: {record:?}"));
        std::str::from_utf8(bytes)
            .expect("ascii")
            .parse()
            .expect("a number")
    };
    (field("proc") as u32, field("seq"))
}

/// Payload size of event `i` of an emitter spec.
pub fn size_of(spec: &EmitterSpec, i: u64) -> usize {
    spec.payload_sizes[i as usize % spec.payload_sizes.len()]
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Checked {
    pub distinct: usize,
    pub duplicates: usize,
}

/// Every event the emitters report as queued or spooled arrived, each
/// record is exactly what its emitter wrote (key, payload, event id: none
/// torn), and nothing else arrived. With `in_order`, each (process, key)'s
/// first copies are in emit order.
pub fn check(records: &[Consumed], specs: &[EmitterSpec], in_order: bool) -> Checked {
    let by_proc: HashMap<u32, &EmitterSpec> = specs.iter().map(|s| (s.proc, s)).collect();
    let mut emitted: HashMap<(u32, u64), Emitted> = HashMap::new();
    for spec in specs {
        for e in emitter::read_emitted(&spec.ids_file(), spec.proc) {
            if e.via != 'd' {
                emitted.insert((e.proc, e.i), e);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    // (partition, key) -> last first-copy seq, in offset order.
    let mut last: HashMap<(i32, Vec<u8>), u64> = HashMap::new();
    let mut sorted: Vec<&Consumed> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for record in sorted {
        let (proc, i) = numbers(record);
        let spec = by_proc
            .get(&proc)
            .unwrap_or_else(|| panic!("record of unknown process {proc}"));
        assert_eq!(
            record.payload,
            emitter::payload(proc, i, size_of(spec, i)),
            "payload of event {i} of process {proc} is not what it emitted"
        );
        let key = emitter::key(proc, i, spec.keys);
        assert_eq!(
            record.key.as_deref(),
            Some(key.as_bytes()),
            "key of {proc}/{i}"
        );
        let id = String::from_utf8(record.header("event_id").expect("event_id").to_vec()).unwrap();
        if let Some(e) = emitted.get(&(proc, i)) {
            assert_eq!(id, e.id, "event id of {proc}/{i}");
        }
        if !seen.insert((proc, i)) {
            duplicates += 1;
            continue;
        }
        if in_order {
            let slot = (record.partition, key.into_bytes());
            if let Some(&before) = last.get(&slot) {
                assert!(
                    i > before,
                    "process {proc}: event {i} arrived after event {before} of the same key \
                     (partition {})",
                    record.partition
                );
            }
            last.insert(slot, i);
        }
    }
    let mut missing: Vec<&(u32, u64)> = emitted.keys().filter(|k| !seen.contains(k)).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} of {} reported events never arrived (first: {:?})",
        missing.len(),
        emitted.len(),
        &missing[..missing.len().min(10)]
    );
    Checked {
        distinct: seen.len(),
        duplicates,
    }
}

/// Whether the spool directory holds nothing but drains' locks
/// (`drain-<key>.lock`, kept while a drain reads it and after).
pub fn spool_emptied(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).all(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("drain-") && name.ends_with(".lock")
        })
    })
}

/// Events the emitters report as queued or spooled.
pub fn reported(specs: &[EmitterSpec]) -> usize {
    specs
        .iter()
        .map(|s| {
            emitter::read_emitted(&s.ids_file(), s.proc)
                .iter()
                .filter(|e| e.via != 'd')
                .count()
        })
        .sum()
}

/// Reads `topic` until `expected` distinct events arrived and then nothing
/// new for 2 s (duplicates are read too), or `timeout`: events as the test
/// numbers them (the `proc` and `i` headers).
pub fn consume_distinct(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    consume_distinct_by(bootstrap, topic, expected, timeout, |record| {
        record.header("proc").is_some().then(|| numbers(record))
    })
}

/// [`consume_distinct`], with the event's `(proc, i)` read by `event`
/// (`None`: a record that is not one of the test's events).
pub fn consume_distinct_by(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
    mut event: impl FnMut(&Consumed) -> Option<(u32, u64)>,
) -> Vec<Consumed> {
    let mut seen = HashSet::with_capacity(expected);
    let mut checked = 0;
    consume_until(
        bootstrap,
        topic,
        timeout,
        Duration::from_secs(2),
        |records| {
            seen.extend(records[checked..].iter().filter_map(&mut event));
            checked = records.len();
            seen.len() >= expected
        },
    )
}
