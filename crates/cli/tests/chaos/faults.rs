//! The faults the soak injects, each undone by the scheduler after a while:
//! `kill -9` of the drain or the proxy (restarted after a pause), the broker
//! frozen (SIGSTOP: the memory-backed test broker would lose its records if
//! killed, so an outage is a broker that stops answering), the queue
//! removed (`ipcrm`), and the state directory's filesystem filled.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shopify_events_core::envelope::Envelope;
use sysvmq::{Key, Message, Queue};
use testkit::rng::XorShift;

/// What the scheduler did, for the report.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub drain_kills: u32,
    pub proxy_kills: u32,
    pub broker_outages: u32,
    pub broker_outage_secs: f64,
    pub queue_removals: u32,
    pub disk_fills: u32,
    pub disk_full_secs: f64,
}

/// The kinds of fault, in the order the scheduler draws them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    KillDrain,
    KillProxy,
    BrokerOutage,
    RemoveQueue,
    FillDisk,
}

impl Fault {
    pub fn draw(rng: &mut XorShift, disk: bool) -> Fault {
        loop {
            let fault = match rng.range(0, 9) {
                0..=2 => Fault::KillDrain,
                3..=4 => Fault::KillProxy,
                5..=6 => Fault::BrokerOutage,
                7 => Fault::RemoveQueue,
                _ => Fault::FillDisk,
            };
            if fault != Fault::FillDisk || disk {
                return fault;
            }
        }
    }
}

/// Removes the queue the way an operator's `ipcrm` would, but first takes
/// out, and returns the ids of, every event it still held: those are lost
/// by the removal, and the accounting must find exactly them missing.
/// Senders are shut out first (capacity 0: `msgsnd` finds the queue full,
/// whatever the sender's privileges), so nothing is sent into the queue
/// between the last receive and the removal. The queue is then created
/// again with `capacity` (whoever opens it first, the soak keeps it small).
pub fn remove_queue(key: Key, capacity: u64) -> HashSet<String> {
    let mut destroyed = HashSet::new();
    let Ok(queue) = Queue::open(key) else {
        return destroyed;
    };
    if queue.set_capacity(0).is_err() {
        return destroyed;
    }
    let mut msg = Message::with_capacity(1, sysvmq::message_size_limit() as usize);
    while let Ok(true) = queue.try_receive(&mut msg, 0) {
        if let Ok(envelope) = Envelope::decode(msg.body()) {
            destroyed.insert(envelope.id.to_string());
        }
    }
    let _ = queue.remove();
    if let Ok(queue) = Queue::open_or_create(key, 0o600) {
        let _ = queue.set_capacity(capacity);
    }
    destroyed
}

/// A file filling the state directory's filesystem, removed on `release`.
pub struct DiskFill {
    path: PathBuf,
}

impl DiskFill {
    /// Writes zeros into `dir` until the filesystem is full.
    pub fn fill(dir: &Path) -> DiskFill {
        let path = dir.join("chaos-filler");
        if let Ok(mut file) = std::fs::File::create(&path) {
            let block = vec![0u8; 1 << 20];
            while file.write_all(&block).is_ok() {}
            let _ = file.write_all(&block[..4096]);
            let _ = file.sync_all();
        }
        DiskFill { path }
    }

    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop; `None` where
/// mounting is not allowed (the disk-full fault is then skipped).
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0750"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs {
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// A condition the scheduler undoes at `until`.
pub struct Pending<T> {
    pub until: Instant,
    pub started: Instant,
    pub what: T,
}

impl<T> Pending<T> {
    pub fn new(what: T, hold: Duration) -> Pending<T> {
        let now = Instant::now();
        Pending {
            until: now + hold,
            started: now,
            what,
        }
    }
}
