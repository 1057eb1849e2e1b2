//! A writer process killed with SIGKILL at random moments, mid-record more
//! often than not (every other record is 256 KiB, so most of its time goes
//! into copies): the reader yields exactly the published records of every
//! run, in order, each a whole envelope, reports no damage, and deletes the
//! dead writers' segments once they are acknowledged.
//!
//! The writer is this test binary run again with `WRITER_ENV` set, so that
//! only `writer_process` does anything in it.

mod spool_support;

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shopify_events_core::spool::{
    ReaderOptions, SpoolEvent, SpoolOptions, SpoolReader, SpoolWriter,
};
use spool_support::{assert_in_order, envelope, files, read_all, reader_options, KEY};

const KILLS: u64 = 24;
/// The number of the large records that fill the time between numbered ones.
const FILLER: u64 = u64::MAX;
const FILLER_LEN: usize = 256 * 1024;
const WRITER_ENV: &str = "SHOPIFY_EVENTS_SPOOL_KILL_WRITER";

/// In the re-executed binary: append numbered records until killed.
#[test]
fn writer_process() {
    let Ok(spec) = env::var(WRITER_ENV) else {
        return; // A normal test run: nothing to do.
    };
    let mut fields = spec.splitn(3, ':');
    let mut number = || fields.next().and_then(|f| f.parse().ok()).expect("number");
    let (stream, segment): (u64, u64) = (number(), number());
    let dir = fields.next().expect("stream:segment size:dir");
    let writer = SpoolWriter::new(SpoolOptions {
        segment_min: segment,
        segment_max: segment,
        ..SpoolOptions::new(dir, KEY)
    });
    // Encoded once: the loop's time goes into copying it, where most kills
    // land. It is numbered FILLER; the small records carry the sequence.
    let filler = envelope(stream, FILLER, FILLER_LEN);
    writer.append(&envelope(stream, 0, 100)).expect("append");
    println!("ready");
    for seq in 1.. {
        writer.append(&filler).expect("append");
        writer.append(&envelope(stream, seq, 100)).expect("append");
    }
}

/// The published records of every segment file in `dir`, per stream, read
/// with a parser of the documented format written for this test: the
/// count the reader must match.
fn published_records(dir: &Path) -> (BTreeMap<u64, u64>, u64) {
    let mut counts = BTreeMap::new();
    let mut torn_tails = 0;
    for path in files(dir, ".seg") {
        let bytes = fs::read(&path).unwrap();
        // The offset is the low half of the word (the high half its complement).
        let published = u32::from_le_bytes(bytes[128..132].try_into().unwrap()) as usize;
        let data = &bytes[4096..];
        let mut at = 0;
        while at < published {
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let body = &data[at + 8..at + 8 + len];
            let (stream, _) = spool_support::numbers(body);
            *counts.entry(stream).or_insert(0) += 1;
            at += 8 + len.div_ceil(8) * 8;
        }
        if data[published..].iter().any(|&b| b != 0) {
            torn_tails += 1; // bytes of a record it never published
        }
    }
    (counts, torn_tails)
}

/// Waits for the writer's "ready" (libtest may print its own words before
/// it on the same line).
fn wait_ready(child: &mut Child) {
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        if line.expect("writer output").ends_with("ready") {
            return;
        }
    }
    let status = child.wait();
    panic!("writer exited before it was ready: {status:?}");
}

#[test]
fn writers_killed_mid_record_leave_every_published_record_and_nothing_torn() {
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("seed {seed}");
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let options = ReaderOptions {
        temp_grace: Duration::ZERO,
        ..reader_options()
    };
    let mut reader = SpoolReader::open(dir.path(), KEY, options).unwrap();
    let mut torn_runs = 0;
    for stream in 0..KILLS {
        // Even runs: one 32 MiB segment, created before "ready", so kills
        // land in appends. Odd runs: 1 MiB segments, so kills also land in
        // rotations (leaving temporary files).
        let (segment, run_for) = if stream % 2 == 0 {
            (32 << 20, Duration::from_micros(next() % 3000))
        } else {
            (1 << 20, Duration::from_micros(next() % 40_000))
        };
        let spec = format!("{stream}:{segment}:{}", dir.path().display());
        let mut child = Command::new(env::current_exe().unwrap())
            .args([
                "--exact",
                "writer_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, spec)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&mut child);
        sleep(run_for);
        child.kill().unwrap();
        child.wait().unwrap();

        let (published, torn) = published_records(dir.path());
        torn_runs += torn;
        let expected = published.get(&stream).copied().unwrap_or(0);
        assert!(expected > 0, "run {stream} appended nothing");
        let (seen, events) = read_all(&mut reader, true);
        let damage = events
            .iter()
            .any(|e| !matches!(e, SpoolEvent::RemovedTemp { .. }));
        assert!(!damage, "no damage in what was published: {events:?}");
        assert_eq!(
            seen.len() as u64,
            expected,
            "run {stream}: every published record"
        );
        assert!(
            seen.iter().all(|&(s, _)| s == stream),
            "only this run's records"
        );
        let numbered: Vec<_> = seen.into_iter().filter(|&(_, seq)| seq != FILLER).collect();
        let counts = assert_in_order(&numbered);
        let numbered = counts.get(&stream).copied().unwrap_or(0);
        let fillers = expected - numbered;
        assert!(
            numbered == fillers || numbered == fillers + 1,
            "records alternate: {numbered} numbered, {fillers} fillers"
        );
        reader.refresh().unwrap();
        assert!(
            files(dir.path(), ".seg").is_empty(),
            "a killed writer's acknowledged segments are deleted"
        );
    }
    eprintln!("{torn_runs} of {KILLS} runs were killed mid-record");
    assert!(
        torn_runs > 0,
        "no kill landed mid-record; the test proves little"
    );
    assert!(
        files(dir.path(), ".tmp").is_empty(),
        "a killed writer's unfinished segment is removed"
    );
}
