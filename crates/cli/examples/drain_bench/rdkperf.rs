//! The C baseline: librdkafka's own producer benchmark,
//! `examples/rdkafka_performance.c`, built by `bench/rdkafka_performance.sh`
//! from the librdkafka the drain links, run as a child process with the
//! drain's producer settings on a fresh broker and topic.
//!
//! What is timed is the tool's own clock: `cnt.t_start` (taken right after
//! `rd_kafka_topic_new`, before its first `rd_kafka_produce`) to `t_end`
//! (taken in the delivery report of the last record), over N records;
//! events/s = N / that. The link-time shim (`rdkperf_shim.c`,
//! `RDKPERF_BENCH=1`) puts a warm-up record, flushed, inside
//! `rd_kafka_topic_new`, so connection, metadata and the idempotent producer
//! id are outside the clock (`--cold` leaves them in), gives each record a
//! different slice of random hex (the tool would send one buffer N times),
//! and stops twice on stdin - once the warm-up is done and once the last
//! record is acknowledged - so the CPU counters read here bracket exactly
//! the tool's timed part.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shopify_events_core::kafka::DEFAULTS;
use testkit::consume::unique_topic;
use testkit::tansu::Tansu;

use crate::cpu::{CpuMark, CpuUse};
use crate::run::verify;
use crate::{Options, PARTITIONS};

/// The tool's arguments for `topic` at `bootstrap`: N records of the
/// payload size, the drain's librdkafka defaults (`-a` and `-z` for the two
/// the tool has flags for, so its summary names the codec), and the
/// library's defaults back for the two the tool changes (3 retries 500 ms
/// apart) and the drain does not; no statistics (the drain sets none).
pub fn args(o: &Options, bootstrap: &str, topic: &str) -> Vec<String> {
    let mut args: Vec<String> = ["-P", "-t", topic, "-b", bootstrap]
        .map(String::from)
        .into();
    args.extend(["-s".into(), o.payload.to_string()]);
    args.extend(["-c".into(), o.events.to_string()]);
    for (key, value) in DEFAULTS {
        let pair = match *key {
            "acks" => ["-a".to_owned(), (*value).to_owned()],
            "compression.type" => ["-z".to_owned(), (*value).to_owned()],
            _ => ["-X".to_owned(), format!("{key}={value}")],
        };
        args.extend(pair);
    }
    for setting in [
        "message.send.max.retries=2147483647",
        "retry.backoff.ms=100",
    ] {
        args.extend(["-X".to_owned(), setting.to_owned()]);
    }
    args.extend(["-T".into(), "0".into()]);
    args
}

/// One run of the tool on a fresh broker: its own elapsed time and the CPU
/// spent by it, the broker and the machine while it was timed.
pub fn rdkperf_run(o: &Options, bin: &Path, run: usize) -> (Duration, CpuUse) {
    let tansu = Tansu::start();
    let topic = unique_topic("bench-rdkperf");
    tansu.create_topic(&topic, PARTITIONS);
    let spawned = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(args(o, &tansu.bootstrap, &topic))
        .env("RDKPERF_BENCH", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !o.warm {
        cmd.env("RDKPERF_COLD", "1");
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("stdout");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut go = child.stdin.take().expect("stdin");
    let mut log = String::new();
    let (mut mark, mut setup, mut started) = (None, Duration::ZERO, Instant::now());
    let mut timed = None;
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let line = line.expect("read the tool's stderr");
        match line.as_str() {
            "rdkperf-shim: warm" => {
                setup = spawned.elapsed();
                mark = Some(CpuMark::take(pid, tansu.pid()));
                started = Instant::now();
                go.write_all(b"g").expect("go-ahead");
            }
            "rdkperf-shim: done" => {
                let wall = started.elapsed();
                let start = mark.take().expect("done before warm");
                timed = Some((wall, CpuMark::take(pid, tansu.pid()).since(&start)));
                go.write_all(b"g").expect("go-ahead");
            }
            _ => {
                log.push_str(&line);
                log.push('\n');
            }
        }
    }
    let status = child.wait().expect("wait for rdkafka_performance");
    let out = out.join().expect("stdout reader");
    let (wall, cpu) = timed.unwrap_or_else(|| {
        panic!("rdkafka_performance ended before its timed part ({status})\n{out}{log}")
    });
    let summary = Summary::parse(&out)
        .unwrap_or_else(|| panic!("no summary line in rdkafka_performance's output\n{out}{log}"));
    assert!(
        status.success() && summary.delivered == o.events as u64 && summary.failed == 0,
        "rdkafka_performance ({status}): {summary:?} of {}\n{out}{log}",
        o.events
    );
    let elapsed = Duration::from_secs_f64(summary.delivered as f64 / summary.rate as f64);
    eprintln!(
        "run {run}: rdkafka_performance {:.3} s = {} events/s (its own clock, {} ms; this bench's \
         clock between the shim's stops {:.3} s; set-up before, untimed: {:.3} s)",
        elapsed.as_secs_f64(),
        summary.rate,
        summary.ms,
        wall.as_secs_f64(),
        setup.as_secs_f64()
    );
    if o.verify {
        verify(
            &tansu.bootstrap,
            &topic,
            o.events + usize::from(o.warm),
            "rdkafka_performance",
        );
    }
    (elapsed, cpu)
}

/// The tool's last summary line: "% N messages produced (B bytes), D
/// delivered (offset O, F failed) in Tms: R msgs/s and ...".
#[derive(Debug)]
struct Summary {
    delivered: u64,
    failed: u64,
    ms: u64,
    rate: u64,
}

impl Summary {
    fn parse(out: &str) -> Option<Summary> {
        let line = out.lines().rev().find(|l| l.contains(" msgs/s and "))?;
        let before = |word: &str| -> Option<u64> {
            let head = &line[..line.find(word)?];
            let number = head.rsplit([' ', '(']).find(|w| !w.is_empty())?;
            number.trim_end_matches("ms").parse().ok()
        };
        Some(Summary {
            delivered: before(" delivered")?,
            failed: before(" failed)")?,
            ms: before(": ")?,
            rate: before(" msgs/s")?,
        })
    }
}
