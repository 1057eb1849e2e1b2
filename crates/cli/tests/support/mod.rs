//! Test support: a real Kafka-protocol broker (Tansu 0.6.0, memory storage)
//! started per test, plus librdkafka helpers to consume a topic back and to
//! measure librdkafka's own producer throughput as a baseline.
//!
//! Each integration test file uses it with `mod support;`. The broker binary
//! comes from `TANSU_BIN`, `/opt/tansu/bin/tansu` or `tansu` on `PATH`;
//! `script/tansu install` builds it (15-25 min, once).
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
//!   metadata immediately. Node id is 111, one broker, replicas = ISR = [111].
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
//!   `committed()` work), but [`consume_all`] uses `assign` from the
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
#![allow(dead_code)]
pub mod drain;
pub mod mock;

/// Runs `command` (stdin closed) and returns its stdout; panics with its
/// status and stderr, naming it `what`, unless it succeeded.
pub fn run_ok(command: &mut Command, what: &str) -> Vec<u8> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Headers, Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;

/// How long [`Tansu::start`] waits for the broker to answer metadata requests.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A Tansu broker on `127.0.0.1:port`, killed (its own child process only)
/// on [`Tansu::stop`] or drop.
pub struct Tansu {
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
        let consumer = base_consumer(&self.bootstrap);
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
        let consumer = base_consumer(&self.bootstrap);
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
        self.signal("STOP");
    }

    /// Undoes [`Tansu::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.child.id());
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

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `prefix-<pid>-<nanos>-<n>`: unique within and across test processes.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One record read back from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// An absent (null) payload reads as empty.
    pub payload: Vec<u8>,
    /// In order; a null header value reads as empty.
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: Option<i64>,
}

impl Consumed {
    /// Copies what the tests compare out of a consumed message.
    pub fn from_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Consumed {
        Consumed {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp_ms: match m.timestamp() {
                Timestamp::NotAvailable => None,
                t => t.to_millis(),
            },
        }
    }
}

impl Consumed {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

fn base_consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("support"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create consumer")
}

/// The topic's partition count as librdkafka sees it; `None` if unknown.
fn partition_count(consumer: &BaseConsumer, topic: &str) -> Option<i32> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(t.partitions().len() as i32)
}

/// Reads `topic` from the beginning of every partition (explicit `assign`,
/// no consumer group) until `expected` records arrived or `timeout` passed,
/// and returns what arrived, ordered by (partition, offset).
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let deadline = Instant::now() + timeout;
    let consumer = base_consumer(bootstrap);
    let partitions = loop {
        if let Some(n) = partition_count(&consumer, topic) {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} has no metadata on {bootstrap}"
        );
        sleep(Duration::from_millis(50));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");

    let mut out = Vec::with_capacity(expected);
    let mut errors: HashMap<String, usize> = HashMap::new();
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push(Consumed::from_message(&m)),
            Some(Err(e)) => *errors.entry(e.to_string()).or_default() += 1,
        }
    }
    if !errors.is_empty() {
        eprintln!("consume_all({topic}): consumer errors: {errors:?}");
    }
    out.sort_by_key(|c| (c.partition, c.offset));
    out
}

/// A producer context that counts delivery reports and keeps the errors.
#[derive(Default)]
pub struct Deliveries {
    pub delivered: AtomicUsize,
    pub failed: AtomicUsize,
    /// Every failed delivery's error, with the time its report was served.
    pub errors: Mutex<Vec<(Instant, KafkaError)>>,
}

impl Deliveries {
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// The distinct error codes seen so far.
    pub fn error_codes(&self) -> Vec<Option<RDKafkaErrorCode>> {
        let mut codes: Vec<_> = self
            .errors
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.rdkafka_error_code())
            .collect();
        codes.dedup();
        codes
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                self.errors
                    .lock()
                    .unwrap()
                    .push((Instant::now(), e.clone()));
            }
        }
    }
}

/// The producer settings the baseline and the smoke test use: acks=all,
/// idempotence on, lz4, linger.ms=5.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5");
    config
}

/// A `BaseProducer` with [`producer_config`] plus `extra` settings.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseProducer<Deliveries> {
    let mut config = producer_config(bootstrap);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
        .create_with_context(Deliveries::default())
        .expect("create producer")
}

/// Sends a record, serving delivery reports while librdkafka's queue is full.
pub fn send_blocking<K, P>(producer: &BaseProducer<Deliveries>, mut record: BaseRecord<'_, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send: {e}"),
        }
    }
}

/// librdkafka's own throughput against `bootstrap` (acks=all, idempotence,
/// lz4, linger.ms=5): sends `count` unkeyed records of `payload_size` bytes
/// of random hex digits (compress about 2:1, like JSON), flushes, and returns
/// the elapsed time and how many were acknowledged.
pub fn produce_baseline(
    bootstrap: &str,
    topic: &str,
    count: usize,
    payload_size: usize,
) -> (Duration, usize) {
    produce_baseline_with(bootstrap, topic, count, payload_size, false)
}

/// [`produce_baseline`], optionally warmed first: one record sent and
/// flushed before the timer starts (connections, metadata and the
/// idempotent producer id in place), for steady-state comparisons. The
/// warm-up record is not counted in the returned deliveries.
pub fn produce_baseline_with(
    bootstrap: &str,
    topic: &str,
    count: usize,
    payload_size: usize,
    warm: bool,
) -> (Duration, usize) {
    let producer = producer(bootstrap, &[]);
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut payload = vec![0u8; payload_size];
    let mut warmed = 0;
    if warm {
        send_blocking(
            &producer,
            BaseRecord::<(), [u8]>::to(topic).payload(&payload),
        );
        let _ = producer.flush(Duration::from_secs(30));
        warmed = producer.context().delivered();
    }
    let start = Instant::now();
    for _ in 0..count {
        for b in payload.iter_mut() {
            // xorshift64
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = b"0123456789abcdef"[(rng & 15) as usize];
        }
        send_blocking(
            &producer,
            BaseRecord::<(), [u8]>::to(topic).payload(&payload),
        );
        producer.poll(Duration::ZERO);
    }
    let flushed = producer.flush(Duration::from_secs(120));
    let elapsed = start.elapsed();
    let ctx = producer.context();
    if flushed.is_err() || ctx.failed() > 0 {
        eprintln!(
            "produce_baseline: flush {flushed:?}, {} failed, codes {:?}",
            ctx.failed(),
            ctx.error_codes()
        );
    }
    (elapsed, ctx.delivered() - warmed)
}
