//! A real Kafka-protocol broker (Tansu 0.6.0, memory storage) started per
//! test on a free loopback port.
//!
//! The broker binary comes from `TANSU_BIN`, `/opt/tansu/bin/tansu` or
//! `tansu` on `PATH`; `script/tansu install` builds it (15-25 min, once).
//!
//! # Tansu 0.6.0 quirks (measured with librdkafka 2.12 / rdkafka 0.39)
//!
//! - Startup: the broker listens within ~5 ms of exec and answers metadata at
//!   once; [`Tansu::start`] returns in ~0.1-0.2 s (mostly librdkafka's first
//!   connection). `tansu topic list` against a port nobody listens on retries
//!   for ~24 s before failing, so readiness checks probe the TCP port first.
//! - Topics are never auto-created (create them with [`Tansu::create_topic`]
//!   or `script/tansu topic`); creating an existing topic exits 1
//!   ("Topic with this name already exists"). New topics are visible in
//!   metadata immediately. Node id is 111, one broker, replicas = ISR = `[111]`.
//! - Producing to a missing topic: librdkafka holds the record for
//!   `topic.metadata.propagation.max.ms` (default 30 s) and then fails it
//!   with `RDKafkaErrorCode::UnknownTopicOrPartition` (broker code 3) - seen
//!   after 1.0 s with `topic.metadata.propagation.max.ms=1000`, after 30.06 s
//!   with defaults. A topic created inside that window is used (delivered).
//!   The delivery report is final: the drain must treat it as permanent
//!   (dead letter) even though Kafka lists code 3 as retriable; treat the
//!   local `UnknownTopic` (-188) the same.
//! - Idempotent producer (`enable.idempotence=true`, acks=all) works: no
//!   fatal errors, per-partition order kept, dense offsets from 0.
//! - Headers (order, duplicate names, empty values), keys (incl. none), empty
//!   payloads and explicit CreateTime timestamps (2 h in the past) survive
//!   byte for byte; Tansu does not rewrite timestamps (no LogAppendTime).
//! - Compression: none, gzip, snappy, lz4, zstd all round-trip.
//! - Consumer groups work (subscribe: first record after ~0.4 s; commit and
//!   `committed()` work), but [`consume_all`](crate::consume::consume_all) uses `assign` from the
//!   beginning: no group join, faster and deterministic.
//! - No broker-side size limit: a 5 MB record is accepted (with the
//!   producer's `message.max.bytes` raised). Only librdkafka's local check
//!   (`message.max.bytes`, default 1 MB) rejects large records, synchronously
//!   in `send()` with `MessageSizeTooLarge`; the broker's "too large" path
//!   cannot be tested against Tansu.
//! - Storage is in memory only (this build has `memory://` and `s3://`; no
//!   file storage): a restart loses topics, records and producer state. After
//!   [`Tansu::restart`] an *idempotent* producer created before it never
//!   recovers: Tansu answers every batch with UNKNOWN_PRODUCER_ID, librdkafka
//!   keeps retrying and every record (old and new) ends in `MessageTimedOut`;
//!   no fatal error is raised. With idempotence off the same producer
//!   delivers again ~7 s after the restart (once the topic is recreated).
//!   So: simulate an outage with [`Tansu::pause`]/[`Tansu::resume`]
//!   (SIGSTOP/SIGCONT, state kept; an idempotent producer delivered
//!   everything ~0.1 s after resume), or after `restart` use a new producer.
//! - The broker logs to stdout/stderr ([`Tansu::log_text`]); ERROR lines such
//!   as `Api(UnknownProducerId)` show up there.
//! - Throughput: librdkafka's `BaseProducer` (acks=all, idempotent, lz4,
//!   linger.ms=5, 200-byte records) delivered 100,000 records in ~0.66 s
//!   (~150k records/s) on 2 shared cores, debug build of the test.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::command::{run_ok, signal};
use crate::consume::{consumer, partition_count};
use crate::net::free_port;

/// How long [`Tansu::start`] waits for the broker to answer metadata requests.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A Tansu broker on `127.0.0.1:port`, killed (its own child process only)
/// on [`Tansu::stop`] or drop.
pub struct Tansu {
    /// The port it listens on.
    pub port: u16,
    /// `127.0.0.1:PORT`, for librdkafka's `bootstrap.servers`.
    pub bootstrap: String,
    child: Child,
    bin: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a memory-backed broker on a free loopback port and waits until
    /// it answers a metadata request (a few ms normally; at most 30 s).
    pub fn start() -> Tansu {
        let bin = tansu_bin();
        let mut last = String::new();
        // A port found free can be taken before tansu binds it: retry.
        for _ in 0..3 {
            let port = free_port();
            match Tansu::spawn(&bin, port) {
                Ok(tansu) => return tansu,
                Err(e) => last = e,
            }
        }
        panic!("tansu did not start: {last}");
    }

    fn spawn(bin: &PathBuf, port: u16) -> Result<Tansu, String> {
        let dir = tempfile::Builder::new()
            .prefix("tansu-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let log = dir.path().join("tansu.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut tansu = Tansu {
            port,
            bootstrap: format!("127.0.0.1:{port}"),
            child,
            bin: bin.clone(),
            log,
            _dir: dir,
        };
        match tansu.wait_ready() {
            Ok(()) => Ok(tansu),
            Err(e) => {
                let e = format!("{e}\n--- tansu log ---\n{}", tansu.log_text());
                tansu.stop();
                Err(e)
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        // The port first: cheap, and a metadata request against a closed port
        // only makes librdkafka log connection errors.
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("tansu exited during startup: {status}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "port {} not open after {READY_TIMEOUT:?}",
                    self.port
                ));
            }
            sleep(Duration::from_millis(20));
        }
        let consumer = consumer(&self.bootstrap);
        loop {
            match consumer.fetch_metadata(None, Duration::from_secs(2)) {
                Ok(md) if !md.brokers().is_empty() => return Ok(()),
                Ok(_) => {}
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("no metadata after {READY_TIMEOUT:?}: {e}"));
                }
                Err(_) => {}
            }
            if Instant::now() > deadline {
                return Err(format!("no brokers in metadata after {READY_TIMEOUT:?}"));
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Creates a topic (Tansu never creates topics on demand) and waits until
    /// librdkafka sees all its partitions.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        run_ok(
            Command::new(&self.bin)
                .args(["topic", "create", "--broker"])
                .arg(format!("tcp://{}", self.bootstrap))
                .arg("--partitions")
                .arg(partitions.to_string())
                .arg(name),
            &format!("tansu topic create {name}"),
        );
        let consumer = consumer(&self.bootstrap);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if partition_count(&consumer, name) == Some(partitions) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} not in metadata with {partitions} partitions"
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker and starts a fresh one on the same port, to simulate
    /// a Kafka outage. Memory storage: every topic and record is gone, so
    /// create the topics again. Panics if the port cannot be bound again.
    pub fn restart(&mut self) {
        self.stop();
        let fresh = Tansu::spawn(&self.bin, self.port)
            .unwrap_or_else(|e| panic!("tansu restart on port {}: {e}", self.port));
        // Replacing `*self` drops the old (already reaped) child handle.
        *self = fresh;
    }

    /// Kills the broker without starting it again (a Kafka outage); follow
    /// with [`Tansu::restart`] to bring it back.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// The broker's process id (for reading its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the broker (SIGSTOP to its own child): connections stay open
    /// but nothing answers, and unlike [`Tansu::restart`] its state (topics,
    /// records, idempotent producer ids) survives. Undo with [`Tansu::resume`].
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Undoes [`Tansu::pause`] (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }

    /// The broker's stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills this broker (its own child process, by handle) and reaps it.
    /// Idempotent.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tansu binary: `TANSU_BIN`, `/opt/tansu/bin/tansu`, or `tansu` on PATH.
pub fn tansu_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "TANSU_BIN={} does not exist", bin.display());
        return bin;
    }
    let default = PathBuf::from("/opt/tansu/bin/tansu");
    if default.is_file() {
        return default;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let bin = dir.join("tansu");
            if bin.is_file() {
                return bin;
            }
        }
    }
    panic!(
        "no tansu binary (TANSU_BIN, /opt/tansu/bin/tansu, PATH): run `script/tansu install` \
         (cargo install tansu --version 0.6.0 --locked --features dynostore, 15-25 min)"
    );
}
