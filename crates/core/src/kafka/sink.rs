//! The Kafka sink: one librdkafka `BaseProducer` polled by its owner's own
//! thread (no background delivery thread of ours: delivery callbacks run
//! inside [`Sink::poll`], so outcomes arrive in the owner's order of work
//! and need no cross-thread hand-off).
//!
//! The producer is configured by [`client_config`]:
//! our defaults, then every setting of the user unchanged. Failures are
//! classified by [`super::is_permanent`]. If the idempotent producer hits a
//! fatal error, the sink rebuilds the producer; the events it failed come
//! back as retries.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};

use super::classify::rejection;
use super::config::client_config;
use super::context::Context;
use super::log::{KafkaLog, LogLevel, StderrLog};
use super::record::record;
use crate::envelope::Envelope;
use crate::sink::{Delivery, Rejected, Sink};

/// How long the sink sleeps between polls while waiting for acks.
const POLL_NAP: Duration = Duration::from_millis(1);

/// Delivers events to Kafka.
pub struct KafkaSink {
    config: ClientConfig,
    producer: BaseProducer<Context>,
    brokers: String,
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
        let producer = config.create_with_context(Context::new(log))?;
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
        self.producer.context().take_outcomes(out);
        match self
            .config
            .create_with_context(Context::new(Arc::clone(&log)))
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
        match self.producer.send(record(event, &id, token)) {
            Ok(()) => Ok(()),
            Err((error, _)) => Err(rejection(&error)),
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
            self.producer.context().take_outcomes(out);
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
