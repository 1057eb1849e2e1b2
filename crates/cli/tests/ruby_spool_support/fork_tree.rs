//! Trees of forked Ruby processes emitting through the gem's `spool`
//! transport: the test starts each root, the roots fork the rest.
//!
//! Every process (label `l`) emits events `0..count` with key `p<l>` and
//! the payload [`payload`](super::payload)`(l, i, size)`, paced to a rate:
//! the first half, then it forks its children (each runs its own subtree
//! from its first event), then the second half while they emit. A parent
//! waits for its children and fails if any failed; a child leaves its
//! `fork` block with a normal exit (`at_exit` hooks run). Each process
//! writes `<label>.json` in the test's directory at its end: its pid, its
//! `ShopifyEvents.stats`, and the id every `emit` returned, in order.
#![allow(dead_code)] // ruby_spool_forks.rs only

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::queue::TestQueue;

use crate::drain_spool_support::Dirs;

/// The fork tree emitter. Arguments: topic, result directory, events per
/// process, events per second per process (0: unpaced), payload sizes
/// (comma-separated, cycled), the tree as JSON `[label, [subtrees]]`.
const RUBY_FORK_TREE: &str = r##"
require "json"
require "shopify_events"
topic, out, count, rate, sizes, tree = ARGV
TOPIC = topic.freeze
OUT = out.freeze
COUNT = Integer(count)
RATE = Float(rate)
SIZES = sizes.split(",").map { |s| Integer(s) }.freeze
FILLER = ((0...251).map(&:chr).join.b * ((SIZES.max / 251) + 2)).freeze

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def emit_range(label, range, ids, started)
  key = "p#{label}"
  range.each do |i|
    prefix = "#{label}:#{i}:".b
    size = SIZES[i % SIZES.size]
    ids << ShopifyEvents.emit(TOPIC, prefix + FILLER.byteslice(i % 251, size - prefix.bytesize), key: key)
    next unless RATE.positive? && (i % 50).zero?

    ahead = started + (i / RATE) - now
    sleep(ahead) if ahead.positive?
  end
end

def run(label, children)
  started = now
  ids = []
  emit_range(label, 0...(COUNT / 2), ids, started)
  pids = children.map { |child, grandchildren| fork { run(child, grandchildren) } }
  emit_range(label, (COUNT / 2)...COUNT, ids, started)
  failed = pids.filter_map { |pid| Process.wait2(pid).last }.reject(&:success?)
  raise "process #{label}: children failed: #{failed.inspect}" unless failed.empty?

  result = { pid: Process.pid, ppid: Process.ppid, stats: ShopifyEvents.stats, ids: ids }
  File.write(File.join(OUT, "#{label}.json"), JSON.generate(result))
end

run(*JSON.parse(tree))
"##;

/// A process label and the subtrees it forks.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Its label (in keys and payloads).
    pub label: u32,
    /// What it forks, in order.
    pub children: Vec<Tree>,
}

impl Tree {
    /// A process that forks `children`.
    pub fn new(label: u32, children: Vec<Tree>) -> Tree {
        Tree { label, children }
    }

    /// A process that forks nothing.
    pub fn leaf(label: u32) -> Tree {
        Tree::new(label, Vec::new())
    }

    /// Every label in the tree, its own first.
    pub fn labels(&self) -> Vec<u32> {
        let mut labels = vec![self.label];
        labels.extend(self.children.iter().flat_map(Tree::labels));
        labels
    }

    fn to_json(&self) -> Value {
        let children: Vec<Value> = self.children.iter().map(Tree::to_json).collect();
        json!([self.label, children])
    }
}

/// The root of a tree as the test's child, in a process group of its own:
/// on drop, if still running, the group (the root and whatever it forked)
/// gets SIGKILL.
pub struct TreeProcess {
    label: u32,
    child: Child,
    log: PathBuf,
}

impl TreeProcess {
    /// Starts the root of `tree`: `count` events per process of `sizes`
    /// (cycled) to `topic` at `rate` per second, through the `spool`
    /// transport into the test's spool directory.
    pub fn spawn(
        queue: &TestQueue,
        dirs: &Dirs,
        topic: &str,
        tree: &Tree,
        count: u64,
        rate: u64,
        sizes: &[usize],
    ) -> TreeProcess {
        let log = dirs.root().join(format!("ruby-tree-{}.log", tree.label));
        let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
        let child = Command::new("ruby")
            .arg("-I")
            .arg(testkit::ruby::gem_lib())
            .arg("-e")
            .arg(RUBY_FORK_TREE)
            .arg(topic)
            .arg(dirs.root())
            .args([count.to_string(), rate.to_string(), sizes.join(",")])
            .arg(tree.to_json().to_string())
            .env("SHOPIFY_EVENTS_TRANSPORT", "spool")
            .env("SHOPIFY_EVENTS_QUEUE_KEY", queue.hex())
            .env("SHOPIFY_EVENTS_SPOOL_DIR", dirs.spool())
            .env_remove("SHOPIFY_EVENTS_SPOOL_MAX_BYTES")
            .env_remove("SHOPIFY_EVENTS_SPOOL_SYNC")
            .env_remove("SHOPIFY_EVENTS_MAX_EVENT_BYTES")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create ruby log"))
            .spawn()
            .expect("spawn ruby");
        TreeProcess {
            label: tree.label,
            child,
            log,
        }
    }

    /// Waits up to `timeout` for a successful exit of the root (which waits
    /// for its tree), calling `meanwhile` every 20 ms.
    pub fn wait(&mut self, timeout: Duration, meanwhile: impl FnMut()) {
        let what = format!("ruby tree {}", self.label);
        super::wait_success(&mut self.child, &self.log, &what, timeout, meanwhile);
    }
}

impl Drop for TreeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The group the root leads (process_group(0): its pid).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.wait();
    }
}

/// What one process of a tree wrote at its end.
pub struct TreeResult {
    /// Its pid.
    pub pid: u32,
    /// Its `ShopifyEvents.stats`.
    pub stats: Value,
    ids: Vec<Value>,
}

impl TreeResult {
    /// Event number -> the id `emit` returned; asserts that there are
    /// `count` and that every `emit` returned one.
    pub fn ids(&self, count: u64) -> HashMap<u64, String> {
        assert_eq!(self.ids.len() as u64, count, "ids written down");
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let id = id
                    .as_str()
                    .unwrap_or_else(|| panic!("emit of event {i} returned {id}"));
                (i as u64, id.to_owned())
            })
            .collect()
    }
}

/// The result process `label` wrote.
pub fn result(dirs: &Dirs, label: u32) -> TreeResult {
    let path = dirs.root().join(format!("{label}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (process {label} did not finish)", path.display()));
    let mut value: Value = serde_json::from_str(&text).expect("result JSON");
    TreeResult {
        pid: value["pid"].as_u64().expect("pid") as u32,
        stats: value["stats"].take(),
        ids: match value["ids"].take() {
            Value::Array(ids) => ids,
            other => panic!("ids of {label}: {other}"),
        },
    }
}
