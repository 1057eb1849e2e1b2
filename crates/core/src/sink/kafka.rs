//! The Kafka sink: one librdkafka `BaseProducer` polled by the drain's own
//! thread (no background delivery thread of ours: delivery callbacks run
//! inside [`Sink::poll`], so outcomes arrive in the drain loop's order of
//! work and need no cross-thread hand-off).
//!
//! Defaults favour not losing or reordering events: `acks=all` and the
//! idempotent producer; lz4 compression and a 5 ms linger for throughput.
//! Every `kafka.*` setting of the configuration is passed to librdkafka
//! unchanged afterwards, so TLS and SASL are configured the librdkafka way.
//!
//! Failures are classified here: an unknown topic, a record too large or a
//! missing authorization is permanent (the drain dead-letters the event);
//! anything else (brokers down, timeouts, leader moves) is retried. If the
//! idempotent producer hits a fatal error, the sink rebuilds the producer;
//! the events it failed come back as retries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::record::{timestamp_ms, EVENT_ID_HEADER};
use super::{Delivery, Outcome, Rejected, Sink};
use crate::envelope::Envelope;

/// How long the sink sleeps between polls while waiting for acks.
const POLL_NAP: Duration = Duration::from_millis(1);

/// librdkafka settings the drain applies before the user's `kafka.*` keys.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    // After two minutes without an ack librdkafka gives the event back to
    // us and we send it again: retried without end, visibly.
    ("message.timeout.ms", "120000"),
];

/// Whether a producer error means the event can never be delivered.
pub fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        UnknownTopicOrPartition
            | UnknownTopic
            | UnknownPartition
            | MessageSizeTooLarge
            | InvalidMessageSize
            | InvalidTopic
            | TopicAuthorizationFailed
            | ClusterAuthorizationFailed
            | InvalidRecord
            | InvalidTimestamp
            | PolicyViolation
            | UnsupportedForMessageFormat
    )
}

fn classify(error: &KafkaError) -> Outcome {
    match error.rdkafka_error_code() {
        Some(code) if is_permanent(code) => Outcome::Permanent(error.to_string()),
        _ => Outcome::Retry(error.to_string()),
    }
}

/// How bad a logged condition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// librdkafka's debug lines (only with the `debug` setting).
    Debug,
    /// librdkafka's notices (a connection closed after idling, ...).
    Info,
    /// Something the sink recovers from by itself (a rebuilt producer,
    /// librdkafka's warnings).
    Warn,
    /// An error librdkafka reported (brokers down, authentication, ...).
    Error,
}

/// Where a sink's librdkafka errors and its own notices go: stderr for the
/// drain, the app's logger for the direct transport. Called from
/// librdkafka's threads and from the one polling the sink.
pub trait KafkaLog: Send + Sync {
    /// Records one line (without a trailing newline).
    fn log(&self, level: LogLevel, message: String);
}

/// Writes each line to stderr after a prefix naming the component.
#[derive(Debug, Clone, Copy)]
pub struct StderrLog(pub &'static str);

impl KafkaLog for StderrLog {
    fn log(&self, _level: LogLevel, message: String) {
        eprintln!("{}: {message}", self.0);
    }
}

/// Collects delivery outcomes while librdkafka serves callbacks in `poll`.
struct Context {
    outcomes: Mutex<Vec<Delivery>>,
    all_brokers_down: AtomicBool,
    log: Arc<dyn KafkaLog>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.all_brokers_down.store(true, Ordering::Relaxed);
        }
        self.log
            .log(LogLevel::Error, format!("kafka: {error}: {reason}"));
    }

    /// librdkafka's log lines (warnings and notices, and debug lines when
    /// the `debug` setting asks for them). Errors come through `error`
    /// above: librdkafka reports them to both, so they are logged once.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let level = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => return,
            RDKafkaLogLevel::Warning => LogLevel::Warn,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => LogLevel::Info,
            RDKafkaLogLevel::Debug => LogLevel::Debug,
        };
        self.log.log(level, format!("kafka {facility}: {message}"));
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        let outcome = match result {
            Ok(_) => {
                self.all_brokers_down.store(false, Ordering::Relaxed);
                Outcome::Delivered
            }
            Err((error, _)) => classify(error),
        };
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.push(Delivery {
                token: token as u64,
                outcome,
            });
        }
    }
}

/// Delivers events to Kafka.
pub struct KafkaSink {
    config: ClientConfig,
    producer: BaseProducer<Context>,
    brokers: String,
}

fn new_context(log: Arc<dyn KafkaLog>) -> Context {
    Context {
        outcomes: Mutex::new(Vec::new()),
        all_brokers_down: AtomicBool::new(false),
        log,
    }
}

/// Builds a producer's configuration: defaults, then `settings` unchanged.
pub fn client_config(settings: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in DEFAULTS {
        config.set(*key, *value);
    }
    for (key, value) in settings {
        config.set(key, value);
    }
    config.set_log_level(log_level(settings));
    config
}

/// How much librdkafka logs: its own `log_level` setting (syslog levels,
/// 0-7) if given, debug when a `debug` setting names contexts, else
/// librdkafka's default, info. rdkafka would otherwise derive it from the
/// `log` crate's (absent) logger and keep only errors.
fn log_level(settings: &BTreeMap<String, String>) -> RDKafkaLogLevel {
    use RDKafkaLogLevel::*;
    match settings.get("log_level").map(|v| v.trim().parse::<u8>()) {
        Some(Ok(0)) => Emerg,
        Some(Ok(1)) => Alert,
        Some(Ok(2)) => Critical,
        Some(Ok(3)) => Error,
        Some(Ok(4)) => Warning,
        Some(Ok(5)) => Notice,
        Some(Ok(6)) => Info,
        Some(Ok(_)) => Debug,
        _ if settings.get("debug").is_some_and(|d| !d.trim().is_empty()) => Debug,
        _ => Info,
    }
}

impl KafkaSink {
    /// A sink for the librdkafka `settings` (which must name
    /// `bootstrap.servers`). Fails if librdkafka rejects a setting.
    /// librdkafka's errors go to stderr, prefixed "shopify-events drain".
    pub fn new(settings: &BTreeMap<String, String>) -> Result<KafkaSink, KafkaError> {
        KafkaSink::with_log(settings, Arc::new(StderrLog("shopify-events drain")))
    }

    /// Like [`KafkaSink::new`], logging to `log` (the direct transport
    /// hands librdkafka's errors to the app's logger).
    pub fn with_log(
        settings: &BTreeMap<String, String>,
        log: Arc<dyn KafkaLog>,
    ) -> Result<KafkaSink, KafkaError> {
        let config = client_config(settings);
        let producer = config.create_with_context(new_context(log))?;
        let brokers = settings
            .get("bootstrap.servers")
            .cloned()
            .unwrap_or_default();
        Ok(KafkaSink {
            config,
            producer,
            brokers,
        })
    }

    fn take_outcomes(&self, out: &mut Vec<Delivery>) {
        if let Ok(mut outcomes) = self.producer.context().outcomes.lock() {
            out.append(&mut outcomes);
        }
    }

    /// Replaces a producer that hit a fatal error: librdkafka fails every
    /// event it still held (they come back as retries) and a fresh producer
    /// takes over with a new idempotence epoch.
    fn rebuild_after_fatal(&mut self, reason: &str, out: &mut Vec<Delivery>) {
        let log = Arc::clone(&self.producer.context().log);
        log.log(
            LogLevel::Warn,
            format!("kafka producer failed fatally ({reason}); starting a new one"),
        );
        self.producer
            .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        self.producer.poll(Duration::from_millis(100));
        self.take_outcomes(out);
        match self
            .config
            .create_with_context(new_context(Arc::clone(&log)))
        {
            Ok(producer) => self.producer = producer,
            Err(e) => log.log(
                LogLevel::Error,
                format!("could not start a new kafka producer: {e}"),
            ),
        }
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, event: &Envelope<'_>, token: u64) -> Result<(), Rejected> {
        let id = event.id.hyphenated();
        let mut headers = OwnedHeaders::new_with_capacity(event.headers.len() + 1);
        for (name, value) in event.headers.iter() {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        headers = headers.insert(Header {
            key: EVENT_ID_HEADER,
            value: Some(&id[..]),
        });
        let mut record =
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(event.topic, token as usize)
                .payload(event.payload)
                .timestamp(timestamp_ms(event.time_us))
                .headers(headers);
        if let Some(key) = event.key {
            record = record.key(key);
        }
        match self.producer.send(record) {
            Ok(()) => Ok(()),
            Err((error, _)) => match error.rdkafka_error_code() {
                Some(code) if is_permanent(code) => Err(Rejected::Permanent(error.to_string())),
                // QueueFull and other local refusals: try again after a poll.
                _ => Err(Rejected::Full),
            },
        }
    }

    fn poll(&mut self, timeout: Duration, out: &mut Vec<Delivery>) {
        // rdkafka's `BaseProducer::poll(t)` waits out all of `t` even after
        // serving reports, and spins through its last millisecond. So serve
        // without waiting, and wait here instead: in 1 ms naps while events
        // are in flight (their acks return promptly), in one sleep when
        // nothing is (no ack can come; an idle drain then costs ~0 CPU).
        let deadline = Instant::now() + timeout;
        let before = out.len();
        loop {
            self.producer.poll(Duration::ZERO);
            self.take_outcomes(out);
            let now = Instant::now();
            if out.len() > before || now >= deadline {
                break;
            }
            let nap = if self.producer.in_flight_count() > 0 {
                POLL_NAP
            } else {
                deadline - now
            };
            std::thread::sleep(nap.min(deadline - now));
        }
        if let Some((_, reason)) = self.producer.client().fatal_error() {
            self.rebuild_after_fatal(&reason, out);
        }
    }

    fn describe(&self) -> String {
        format!("kafka {}", self.brokers)
    }

    fn healthy(&self) -> Result<(), String> {
        if self
            .producer
            .context()
            .all_brokers_down
            .load(Ordering::Relaxed)
        {
            Err(format!("all kafka brokers are down ({})", self.brokers))
        } else {
            Ok(())
        }
    }
}
