//! The chaos soak (issue 9): Ruby processes emit through the sysv and the
//! socket transports while a scheduler, at random (seeded), `kill -9`s and
//! restarts the drain and the proxy, freezes the broker, removes the queue
//! and fills the state directory's filesystem. At the end every event id
//! is accounted for:
//!
//! emitted = delivered (read back from Kafka) + dead-lettered + destroyed by
//! the queue's removal (the soak takes them out itself, so it knows which)
//! + counted drops (`emit` returned nil: no id, counted by the emitter)
//!
//! and the soak fails unless no id is unaccounted for, every record read
//! back is one that was emitted with the payload it was emitted with, and
//! no process panicked.
//!
//! `SHOPIFY_EVENTS_CHAOS_SECS` sets the duration (default 120, what CI
//! runs), `SHOPIFY_EVENTS_CHAOS_SEED` the seed (printed), and
//! `SHOPIFY_EVENTS_CHAOS_REPORT` a file for the JSON report;
//! `bench/chaos.sh` runs a long one. Needs root (SysV limits, a tmpfs),
//! `ruby`, the compiled extension and Tansu.
//!
//! The spool is on, as it is in production: a spool directory on the same
//! tmpfs, given to the proxy and the drain (`--spool-dir`) and to the
//! emitters (`SHOPIFY_EVENTS_SPOOL_DIR`), so a full queue and the disk
//! filling up hit it too. `SHOPIFY_EVENTS_CHAOS_SPOOL=0` turns it off: the
//! drain then reads its own (empty) spool directory, as `DrainSpec` gives
//! every drain one, the proxy runs `--no-spool` and the emitters
//! `spool_dir: off` (never the host's default directory).

mod accounting;
mod emitters;
mod faults;

use std::time::{Duration, Instant};

use testkit::drain::{DrainProcess, DrainSpec};
use testkit::proxy::{ProxyProcess, ProxySpec};
use testkit::queue::TestQueue;
use testkit::rng::XorShift;
use testkit::tansu::Tansu;
use testkit::wait::serial;

use emitters::Emitter;
use faults::{Counts, DiskFill, Fault, Pending, Tmpfs};

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");
const TOPIC: &str = "chaos.events";
/// Events per second per emitter.
const RATE: u32 = 150;
const QUEUE_CAPACITY: u64 = 256 << 10;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The running pieces the scheduler restarts.
struct Rig {
    drain_spec: DrainSpec,
    drain: Option<DrainProcess>,
    drains: usize,
    proxy_spec: ProxySpec,
    proxy: Option<ProxyProcess>,
    proxies: usize,
    logs: Vec<String>,
}

impl Rig {
    fn start_drain(&mut self) {
        self.drains += 1;
        self.drain = Some(self.drain_spec.spawn(self.drains));
    }

    fn kill_drain(&mut self) {
        if let Some(mut drain) = self.drain.take() {
            drain.kill9();
            self.logs.push(drain.log_text());
        }
    }

    fn start_proxy(&mut self) {
        self.proxies += 1;
        self.proxy = Some(self.proxy_spec.spawn(self.proxies));
    }

    fn kill_proxy(&mut self) {
        if let Some(mut proxy) = self.proxy.take() {
            proxy.kill9();
            self.logs.push(proxy.log_text());
        }
    }
}

#[test]
fn chaos_soak_accounts_for_every_event() {
    let _serial = serial();
    let secs = env_u64("SHOPIFY_EVENTS_CHAOS_SECS").unwrap_or(120);
    let seed =
        env_u64("SHOPIFY_EVENTS_CHAOS_SEED").unwrap_or_else(|| testkit::wait::now_ms() as u64 | 1);
    eprintln!("chaos: {secs} s, seed {seed}");
    let mut rng = XorShift(seed);
    let dir = tempfile::Builder::new().prefix("chaos-").tempdir().unwrap();
    let state = dir.path().join("state");
    let tmpfs = Tmpfs::mount(&state, "48m");
    if tmpfs.is_none() {
        eprintln!("chaos: cannot mount a tmpfs on the state directory: the disk-full fault is off");
    }

    let spool = (std::env::var_os("SHOPIFY_EVENTS_CHAOS_SPOOL").as_deref()
        != Some(std::ffi::OsStr::new("0")))
    .then(|| state.join("spool"));
    if let Some(dir) = &spool {
        std::fs::create_dir_all(dir).unwrap();
    }
    let tansu = Tansu::start();
    tansu.create_topic(TOPIC, 4);
    // Small: outages fill it, so drops and the proxy's backpressure happen.
    let queue = TestQueue::with_capacity(QUEUE_CAPACITY);
    let spool_args: Vec<String> = match &spool {
        Some(dir) => vec!["--spool-dir".into(), dir.display().to_string()],
        None => vec!["--no-spool".into()],
    };
    let mut drain_spec = DrainSpec::new(BIN, queue.key(), &state, dir.path())
        .brokers(&tansu.bootstrap)
        .args(["--journal-size", "8MiB"]);
    if let Some(dir) = &spool {
        drain_spec = drain_spec.spool_dir(dir);
    }
    let socket = dir.path().join("proxy.sock");
    let proxy_spec = ProxySpec::new(BIN, queue.key(), dir.path())
        .listen(shopify_events_core::proxy::ProxyAddress::Unix(
            socket.clone(),
        ))
        .args(spool_args);
    let mut rig = Rig {
        drain_spec,
        drain: None,
        drains: 0,
        proxy_spec,
        proxy: None,
        proxies: 0,
        logs: Vec::new(),
    };
    rig.start_drain();
    rig.start_proxy();

    let mut emitters = Vec::new();
    for n in 0..3 {
        let mut env = vec![("SHOPIFY_EVENTS_QUEUE_KEY", queue.hex())];
        let spool_dir = spool
            .as_ref()
            .map_or("off".into(), |d| d.display().to_string());
        env.push(("SHOPIFY_EVENTS_SPOOL_DIR", spool_dir));
        emitters.push(Emitter::spawn(
            dir.path(),
            &format!("sysv{n}"),
            "sysv",
            TOPIC,
            RATE,
            &env,
        ));
    }
    for n in 0..3 {
        let env = [(
            "SHOPIFY_EVENTS_PROXY",
            format!("unix://{}", socket.display()),
        )];
        emitters.push(Emitter::spawn(
            dir.path(),
            &format!("socket{n}"),
            "socket",
            TOPIC,
            RATE,
            &env,
        ));
    }

    // The scheduler.
    let mut counts = Counts::default();
    let mut destroyed = std::collections::HashSet::new();
    let mut broker_out: Option<Pending<()>> = None;
    let mut disk_full: Option<Pending<DiskFill>> = None;
    let mut drain_back: Option<Instant> = None;
    let mut proxy_back: Option<Instant> = None;
    let end = Instant::now() + Duration::from_secs(secs);
    let mut next = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        let now = Instant::now();
        if drain_back.is_some_and(|t| now >= t) {
            drain_back = None;
            rig.start_drain();
        }
        if proxy_back.is_some_and(|t| now >= t) {
            proxy_back = None;
            rig.start_proxy();
        }
        if broker_out.as_ref().is_some_and(|p| now >= p.until) {
            let p = broker_out.take().unwrap();
            counts.broker_outage_secs += p.started.elapsed().as_secs_f64();
            tansu.resume();
        }
        if disk_full.as_ref().is_some_and(|p| now >= p.until) {
            let p = disk_full.take().unwrap();
            counts.disk_full_secs += p.started.elapsed().as_secs_f64();
            p.what.release();
        }
        if let Some(drain) = rig.drain.as_mut() {
            drain.assert_running();
        }
        if let Some(proxy) = rig.proxy.as_mut() {
            proxy.assert_running();
        }
        if now >= next {
            next = now + Duration::from_millis(rng.range(500, 6000));
            match Fault::draw(&mut rng, tmpfs.is_some()) {
                Fault::KillDrain if drain_back.is_none() => {
                    counts.drain_kills += 1;
                    rig.kill_drain();
                    drain_back = Some(now + Duration::from_millis(rng.range(0, 3000)));
                }
                Fault::KillProxy if proxy_back.is_none() => {
                    counts.proxy_kills += 1;
                    rig.kill_proxy();
                    proxy_back = Some(now + Duration::from_millis(rng.range(0, 3000)));
                }
                Fault::BrokerOutage if broker_out.is_none() => {
                    counts.broker_outages += 1;
                    tansu.pause();
                    let hold = Duration::from_millis(rng.range(1000, 30_000));
                    broker_out = Some(Pending::new((), hold));
                }
                Fault::RemoveQueue => {
                    counts.queue_removals += 1;
                    destroyed.extend(faults::remove_queue(queue.key(), QUEUE_CAPACITY));
                }
                Fault::FillDisk if disk_full.is_none() => {
                    counts.disk_fills += 1;
                    let hold = Duration::from_millis(rng.range(1000, 10_000));
                    disk_full = Some(Pending::new(DiskFill::fill(&state), hold));
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Calm: everything back up, emitters stop and flush, the drain empties
    // the queue and its journal.
    if let Some(p) = broker_out.take() {
        counts.broker_outage_secs += p.started.elapsed().as_secs_f64();
        tansu.resume();
    }
    if let Some(p) = disk_full.take() {
        counts.disk_full_secs += p.started.elapsed().as_secs_f64();
        p.what.release();
    }
    if rig.drain.is_none() {
        rig.start_drain();
    }
    if rig.proxy.is_none() {
        rig.start_proxy();
    }
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    let reports: Vec<_> = emitters
        .iter_mut()
        .map(|e| {
            (
                e.name.clone(),
                e.transport,
                e.finish(Duration::from_secs(180)),
            )
        })
        .collect();
    let drain = rig.drain.as_mut().unwrap();
    accounting::wait_drained(&rig.drain_spec, drain, Duration::from_secs(300));

    let outcome = accounting::account(
        &tansu.bootstrap,
        TOPIC,
        &state,
        &reports,
        &destroyed,
        Duration::from_secs(300),
    );
    rig.kill_drain();
    rig.kill_proxy();
    let panics = rig.logs.iter().filter(|l| l.contains("panicked")).count();
    let report = outcome.report(secs, seed, &counts, rig.drains, rig.proxies, panics);
    eprintln!("{report:#}");
    if let Ok(path) = std::env::var("SHOPIFY_EVENTS_CHAOS_REPORT") {
        std::fs::write(&path, format!("{report:#}\n")).unwrap();
    }
    assert_eq!(panics, 0, "a drain or proxy panicked: {:?}", rig.logs);
    outcome.assert_complete();
    drop(tmpfs);
}
