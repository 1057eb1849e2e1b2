//! Ruby processes that emit through the gem (the compiled extension in
//! `lib/`, from `rake compile`) into a test's queue.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::queue::TestQueue;
use crate::wait::wait_until;

/// The gem's lib directory (with the compiled extension in it).
pub fn gem_lib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lib")
}

/// The Ruby emitter script. Arguments: output file, pace (sleep 1 ms after
/// every `pace` events; 0: never), then `topic,from,count` specs and the
/// optional word `pause:<file>` between specs (wait until `<file>` exists,
/// after writing `<file>.ready`). For each event `i` it emits
/// [`payload`]`(i)` with key `k{i % 97}` and header `seq` = i using
/// `emit!`, retrying after 1 ms on QueueFull, and appends
/// `id<TAB>i<TAB>topic` to the output file.
const RUBY_EMITTER: &str = r##"
require "shopify_events"
out = File.open(ARGV.shift, "w")
pace = Integer(ARGV.shift)
sent = 0
full = 0
ARGV.each do |spec|
  if spec.start_with?("pause:")
    go = spec.delete_prefix("pause:")
    out.flush
    File.write("#{go}.ready", "")
    sleep 0.005 until File.exist?(go)
    next
  end
  topic, from, count = spec.split(",")
  from = Integer(from)
  Integer(count).times do |n|
    i = from + n
    payload = i.even? ? "payload #{i} " + ("x" * (i % 40)) : { "i" => i, "name" => "ev#{i}" }
    begin
      id = ShopifyEvents.emit!(topic, payload, key: "k#{i % 97}", headers: { "seq" => i.to_s })
    rescue ShopifyEvents::QueueFull
      full += 1
      sleep 0.001
      retry
    end
    out.write("#{id}\t#{i}\t#{topic}\n")
    sent += 1
    sleep 0.001 if pace > 0 && (sent % pace).zero?
  end
end
out.close
warn "ruby emitter: #{sent} events, #{full} QueueFull retries"
"##;

/// The payload bytes the Ruby emitter sends for event `i`: a String for
/// even `i`, a Hash (JSON) for odd `i`.
pub fn payload(i: usize) -> Vec<u8> {
    if i % 2 == 0 {
        format!("payload {i} {}", "x".repeat(i % 40)).into_bytes()
    } else {
        format!("{{\"i\":{i},\"name\":\"ev{i}\"}}").into_bytes()
    }
}

/// The key the Ruby emitter uses for event `i`.
pub fn key(i: usize) -> Vec<u8> {
    format!("k{}", i % 97).into_bytes()
}

/// A Ruby child running the emitter script (see [`RubyEmitter::spawn`]); killed
/// on drop.
pub struct RubyEmitter {
    child: Child,
    /// Where it writes `id<TAB>i<TAB>topic` per event emitted.
    pub ids_file: PathBuf,
    log: PathBuf,
}

/// One emitted event as the Ruby child reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// The id `emit!` returned.
    pub id: String,
    /// The event's number: its payload is [`payload`]`(i)`, its key [`key`]`(i)`.
    pub i: usize,
    /// Its topic.
    pub topic: String,
}

impl RubyEmitter {
    /// Starts `ruby` with the emitter script; `specs` as described there.
    pub fn spawn(queue: &TestQueue, dir: &Path, name: &str, pace: usize, specs: &[String]) -> Self {
        let ids_file = dir.join(format!("{name}.ids"));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new("ruby")
            .arg("-I")
            .arg(gem_lib())
            .arg("-e")
            .arg(RUBY_EMITTER)
            .arg(&ids_file)
            .arg(pace.to_string())
            .args(specs)
            .env("SHOPIFY_EVENTS_QUEUE_KEY", queue.hex())
            // The queue alone, as these tests mean: never the host's
            // default spool directory, which no test drain reads.
            .env("SHOPIFY_EVENTS_SPOOL_DIR", "off")
            .env_remove("SHOPIFY_EVENTS_TRANSPORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create ruby log"))
            .spawn()
            .expect("spawn ruby");
        RubyEmitter {
            child,
            ids_file,
            log,
        }
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the child has exited (panics if it failed).
    pub fn finished(&mut self) -> bool {
        match self.child.try_wait().expect("try_wait ruby") {
            None => false,
            Some(status) => {
                assert!(
                    status.success(),
                    "ruby emitter: {status}\n{}",
                    self.log_text()
                );
                true
            }
        }
    }

    /// Waits for the child to exit successfully, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) {
        assert!(
            wait_until(timeout, || self.finished()),
            "ruby emitter still running after {timeout:?}\n{}",
            self.log_text()
        );
    }

    /// The events written to the ids file so far.
    pub fn emitted(&self) -> Vec<Emitted> {
        read_emitted(&self.ids_file)
    }
}

impl Drop for RubyEmitter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Parses the `id<TAB>i<TAB>topic` lines of an ids file (complete lines only).
pub fn read_emitted(path: &Path) -> Vec<Emitted> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            let id = parts.next()?.to_owned();
            let i = parts.next()?.parse().ok()?;
            let topic = parts.next()?.to_owned();
            Some(Emitted { id, i, topic })
        })
        .collect()
}

/// Event id -> emitted event, panicking on a repeated id.
pub fn by_id(events: &[Emitted]) -> HashMap<String, Emitted> {
    let mut map = HashMap::with_capacity(events.len());
    for e in events {
        assert!(
            map.insert(e.id.clone(), e.clone()).is_none(),
            "ruby returned id {} twice",
            e.id
        );
    }
    map
}
