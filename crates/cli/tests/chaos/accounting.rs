//! The end of the soak: wait until the drain has delivered everything, read
//! the topic back, and account for every event id.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use testkit::consume::consume_until;
use testkit::drain::{DrainProcess, DrainSpec};
use testkit::wait::now_ms;

use crate::emitters::{payload, Report};

/// Waits until the queue is empty and the drain reports nothing in flight
/// and no journal bytes pending, in a snapshot written after the queue was
/// seen empty.
pub fn wait_drained(spec: &DrainSpec, drain: &mut DrainProcess, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut empty_since: Option<f64> = None;
    loop {
        drain.assert_running();
        let stats = spec.stats_json();
        let depth = stats["depth"].as_u64().unwrap_or(u64::MAX);
        let snap = &stats["drain"];
        let now_s = now_ms() as f64 / 1000.0;
        if depth > 0 {
            empty_since = None;
        } else if empty_since.is_none() {
            empty_since = Some(now_s);
        }
        let idle = snap["pid"].as_u64() == Some(u64::from(drain.pid()))
            && snap["in_flight"].as_u64() == Some(0)
            && snap["journal_pending_bytes"].as_u64() == Some(0)
            && matches!((snap["updated_at"].as_f64(), empty_since), (Some(u), Some(e)) if u > e);
        if depth == 0 && idle {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not drained after {timeout:?}: {stats:#}\n{}",
            drain.log_text()
        );
        sleep(Duration::from_millis(250));
    }
}

/// Every id's fate.
pub struct Outcome {
    pub per_emitter: Vec<(String, &'static str, serde_json::Value)>,
    pub emitted: u64,
    pub counted_drops: u64,
    pub rejected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub destroyed: u64,
    pub unaccounted: Vec<String>,
    pub unknown_records: u64,
    pub wrong_payloads: Vec<String>,
    pub torn_dead_letter_lines: u64,
}

/// Reads the topic back until every emitted id that was neither
/// dead-lettered nor destroyed arrived (or `timeout`), and accounts.
pub fn account(
    bootstrap: &str,
    topic: &str,
    state: &Path,
    reports: &[(String, &'static str, Report)],
    destroyed: &HashSet<String>,
    timeout: Duration,
) -> Outcome {
    let mut emitted: HashMap<&str, (&str, u64)> = HashMap::new();
    let mut counted_drops = 0;
    let mut rejected = 0;
    for (name, _, report) in reports {
        for (id, &i) in &report.ids {
            emitted.insert(id, (name, i));
        }
        counted_drops += report.counter("nil_returns");
        rejected += report.counter("rejected");
    }
    let (dead, torn) = dead_letters(state);
    let expected: HashSet<&str> = emitted
        .keys()
        .copied()
        .filter(|id| !dead.contains(*id) && !destroyed.contains(*id))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut scanned = 0;
    let mut found = 0;
    let records = consume_until(
        bootstrap,
        topic,
        timeout,
        Duration::from_secs(3),
        |records| {
            for r in &records[scanned..] {
                if let Some(id) = event_id(r) {
                    if expected.contains(id.as_str()) && seen.insert(id) {
                        found += 1;
                    }
                }
            }
            scanned = records.len();
            found == expected.len()
        },
    );
    let mut delivered: HashSet<&str> = HashSet::new();
    let mut duplicates = 0;
    let mut unknown_records = 0;
    let mut wrong_payloads = Vec::new();
    for r in &records {
        let Some(id) = event_id(r) else {
            unknown_records += 1;
            continue;
        };
        let Some((&key, &(name, i))) = emitted.get_key_value(id.as_str()) else {
            unknown_records += 1;
            continue;
        };
        if !delivered.insert(key) {
            duplicates += 1;
        }
        let got: serde_json::Value = serde_json::from_slice(&r.payload).unwrap_or_default();
        if got != payload(name, i) && wrong_payloads.len() < 20 {
            wrong_payloads.push(format!("{id} ({name} #{i}): {got}"));
        }
    }
    // Each id once, in this order: a copy may be destroyed with the queue
    // and another delivered (a frame resent after the proxy died between
    // its msgsnd and its ack).
    let (mut dead_lettered, mut destroyed_only) = (0, 0);
    let mut unaccounted: Vec<String> = Vec::new();
    for id in emitted.keys() {
        if delivered.contains(id) {
            continue;
        }
        if dead.contains(*id) {
            dead_lettered += 1;
        } else if destroyed.contains(*id) {
            destroyed_only += 1;
        } else {
            unaccounted.push(id.to_string());
        }
    }
    unaccounted.sort();
    Outcome {
        per_emitter: reports
            .iter()
            .map(|(n, t, r)| (n.clone(), *t, r.stats.clone()))
            .collect(),
        emitted: emitted.len() as u64,
        counted_drops,
        rejected,
        delivered: delivered.len() as u64,
        duplicates,
        dead_lettered,
        destroyed: destroyed_only,
        unaccounted,
        unknown_records,
        wrong_payloads,
        torn_dead_letter_lines: torn,
    }
}

fn event_id(record: &testkit::consume::Consumed) -> Option<String> {
    record
        .header("event_id")
        .and_then(|v| String::from_utf8(v.to_vec()).ok())
}

/// Event ids in every dead-letter file of the state directory, and the
/// number of lines that did not parse (torn by a full disk or a kill).
fn dead_letters(state: &Path) -> (HashSet<String>, u64) {
    let mut ids = HashSet::new();
    let mut torn = 0;
    let Ok(entries) = std::fs::read_dir(state) else {
        return (ids, torn);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("dead-letters") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => {
                    if let Some(id) = v["event_id"].as_str() {
                        ids.insert(id.to_owned());
                    }
                }
                Err(_) => torn += 1,
            }
        }
    }
    (ids, torn)
}

impl Outcome {
    /// The report: what ran, what the scheduler did, and the accounting.
    pub fn report(
        &self,
        secs: u64,
        seed: u64,
        faults: &crate::faults::Counts,
        drains: usize,
        proxies: usize,
        panics: usize,
    ) -> serde_json::Value {
        serde_json::json!({
            "duration_secs": secs,
            "seed": seed,
            "faults": {
                "drain_kill9": faults.drain_kills,
                "proxy_kill9": faults.proxy_kills,
                "broker_outages": faults.broker_outages,
                "broker_outage_secs": (faults.broker_outage_secs * 10.0).round() / 10.0,
                "queue_removals": faults.queue_removals,
                "disk_fills": faults.disk_fills,
                "disk_full_secs": (faults.disk_full_secs * 10.0).round() / 10.0,
            },
            "processes": { "drains_started": drains, "proxies_started": proxies, "panics": panics },
            "accounting": {
                "attempted": self.emitted + self.counted_drops,
                "emitted_with_id": self.emitted,
                "counted_drops": self.counted_drops,
                "delivered": self.delivered,
                "dead_lettered": self.dead_lettered,
                "destroyed_by_queue_removal": self.destroyed,
                "unaccounted": self.unaccounted.len(),
                "duplicates_delivered": self.duplicates,
                "rejected_by_proxy": self.rejected,
                "records_not_emitted": self.unknown_records,
                "wrong_payloads": self.wrong_payloads.len(),
                "torn_dead_letter_lines": self.torn_dead_letter_lines,
            },
            "emitters": self.per_emitter.iter().map(|(n, t, s)| serde_json::json!({
                "name": n, "transport": t, "stats": s,
            })).collect::<Vec<_>>(),
        })
    }

    /// Panics unless every id is accounted for and every record is right.
    pub fn assert_complete(&self) {
        assert!(
            self.unaccounted.is_empty(),
            "{} event ids unaccounted for (first: {:?})",
            self.unaccounted.len(),
            &self.unaccounted[..self.unaccounted.len().min(10)]
        );
        assert_eq!(self.unknown_records, 0, "records that were never emitted");
        assert!(self.wrong_payloads.is_empty(), "{:?}", self.wrong_payloads);
        assert_eq!(self.rejected, 0, "the proxy refused valid events");
        assert_eq!(
            self.emitted,
            self.delivered + self.dead_lettered + self.destroyed,
            "emitted = delivered + dead-lettered + destroyed"
        );
    }
}
