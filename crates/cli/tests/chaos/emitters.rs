//! The emitting side of the soak: Ruby processes using the gem, each
//! through one transport (sysv or socket), emitting with `emit` (a full
//! queue or buffer drops and counts) until a stop file appears, then
//! flushing and writing their counters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::ruby::gem_lib;
use testkit::wait::wait_until;

/// Arguments: ids file, stats file, stop file, emitter name, topic, events
/// per second. Each event `i` has key `NAME-(i % 97)`, headers `emitter`
/// and `seq`, and the payload [`payload`]`(name, i)`; each id `emit`
/// returned is written as `id<TAB>i`.
const SCRIPT: &str = r##"
require "json"
require "shopify_events"
ids_path, stats_path, stop_path, name, topic, rate = ARGV
rate = Float(rate)
out = File.open(ids_path, "w")
i = 0
nils = 0
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
until File.exist?(stop_path)
  payload = { "emitter" => name, "i" => i, "pad" => "x" * (i % 64) }
  id = ShopifyEvents.emit(topic, payload, key: "#{name}-#{i % 97}", headers: { "emitter" => name, "seq" => i.to_s })
  if id
    out.write("#{id}\t#{i}\n")
  else
    nils += 1
  end
  i += 1
  out.flush if (i % 500).zero?
  ahead = i / rate - (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
  sleep ahead if ahead > 0
end
out.close
flushed = ShopifyEvents.flush(120)
stats = ShopifyEvents.stats.transform_keys(&:to_s)
File.write(stats_path, JSON.generate(stats.merge("attempted" => i, "nil_returns" => nils, "flushed" => flushed)))
"##;

/// The payload the script sends for event `i` of emitter `name`, as JSON.
pub fn payload(name: &str, i: u64) -> serde_json::Value {
    serde_json::json!({ "emitter": name, "i": i, "pad": "x".repeat((i % 64) as usize) })
}

/// One Ruby emitter.
pub struct Emitter {
    pub name: String,
    pub transport: &'static str,
    child: Child,
    ids: PathBuf,
    stats: PathBuf,
    log: PathBuf,
}

impl Emitter {
    /// Starts an emitter; `env` selects its transport and queue or proxy.
    pub fn spawn(
        dir: &Path,
        name: &str,
        transport: &'static str,
        topic: &str,
        rate: u32,
        env: &[(&str, String)],
    ) -> Emitter {
        let ids = dir.join(format!("{name}.ids"));
        let stats = dir.join(format!("{name}.stats.json"));
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new("ruby");
        command
            .arg("-I")
            .arg(gem_lib())
            .arg("-e")
            .arg(SCRIPT)
            .arg(&ids)
            .arg(&stats)
            .arg(dir.join("stop"))
            .arg(name)
            .arg(topic)
            .arg(rate.to_string())
            .env("SHOPIFY_EVENTS_TRANSPORT", transport)
            .env_remove("SHOPIFY_EVENTS_PROXY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("emitter log"));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn ruby");
        Emitter {
            name: name.to_owned(),
            transport,
            child,
            ids,
            stats,
            log,
        }
    }

    /// Waits for the emitter to flush and exit (after the stop file).
    pub fn finish(&mut self, timeout: Duration) -> Report {
        let child = &mut self.child;
        let exited = wait_until(timeout, || child.try_wait().unwrap().is_some());
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(exited, "emitter {} did not finish\n{log}", self.name);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "emitter {}: {status}\n{log}", self.name);
        let stats: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.stats).expect("stats file"))
                .expect("stats JSON");
        let text = std::fs::read_to_string(&self.ids).unwrap_or_default();
        let ids = text
            .lines()
            .filter_map(|l| {
                let (id, i) = l.split_once('\t')?;
                Some((id.to_owned(), i.parse().ok()?))
            })
            .collect();
        Report { ids, stats }
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What one emitter did.
pub struct Report {
    /// Event id -> event number, for every id `emit` returned.
    pub ids: HashMap<String, u64>,
    /// `ShopifyEvents.stats` after the final flush, plus `attempted`,
    /// `nil_returns` and `flushed`.
    pub stats: serde_json::Value,
}

impl Report {
    pub fn counter(&self, name: &str) -> u64 {
        self.stats[name].as_u64().unwrap_or(0)
    }
}
