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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rdkafka::mocking::MockCluster;

    use super::*;
    use crate::envelope::encode;
    use crate::event_id::EventId;
    use crate::sink::Outcome;

    /// Issue 9, item 8: "the sink waits only 100 ms for delivery reports
    /// before replacing a failed producer, so a late report would leave the
    /// checkpoint stuck". Refuted: `rd_kafka_purge` (queued and in-flight)
    /// returns only once every broker thread has failed its messages, so
    /// their reports are already queued when the sink polls, and
    /// `BaseProducer::poll` serves every queued event for its whole
    /// timeout. Here 200 events are in flight to a broker that answers
    /// after 2 s when the producer fails fatally: each comes back once (as
    /// a retry) before the new producer takes over.
    #[test]
    fn events_in_flight_at_a_fatal_error_each_get_exactly_one_outcome() {
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic("fatal.test", 1, 1).unwrap();
        let settings = [
            ("bootstrap.servers".to_owned(), mock.bootstrap_servers()),
            ("linger.ms".to_owned(), "0".to_owned()),
        ];
        let log = Arc::new(StderrLog("fatal test"));
        let mut sink = KafkaSink::with_log(&settings.into_iter().collect(), log).unwrap();
        let mut out = Vec::new();
        let mut bytes = Vec::new();
        let mut send = |sink: &mut KafkaSink, token: u64| {
            bytes.clear();
            let time = 1_700_000_000_000_000 + token as i64;
            encode(
                &mut bytes,
                EventId::generate(time),
                time,
                "fatal.test",
                None,
                &[],
                b"{}",
            )
            .unwrap();
            sink.send(&Envelope::decode(&bytes).unwrap(), token)
                .unwrap();
        };
        // A connected producer with its producer id: one delivery first.
        send(&mut sink, 1000);
        let deadline = Instant::now() + Duration::from_secs(20);
        while out.is_empty() && Instant::now() < deadline {
            sink.poll(Duration::from_millis(50), &mut out);
        }
        assert!(
            matches!(out.as_slice(), [d] if d.outcome == Outcome::Delivered),
            "{out:?}"
        );
        out.clear();
        // Now the broker answers after 2 s: what is sent stays in flight.
        mock.broker_round_trip_time(1, Duration::from_secs(2))
            .unwrap();
        for token in 0..200u64 {
            send(&mut sink, token);
        }
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_millis(500) {
            sink.poll(Duration::from_millis(20), &mut out);
        }
        assert!(out.is_empty(), "answered early: {out:?}");
        assert!(sink.producer.in_flight_count() > 0);
        let ptr = sink.producer.client().native_ptr();
        let reason = std::ffi::CString::new("injected by the test").unwrap();
        // SAFETY: a live producer handle and a NUL-terminated reason.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                ptr,
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen: HashMap<u64, usize> = HashMap::new();
        while Instant::now() < deadline && seen.len() < 200 {
            sink.poll(Duration::from_millis(50), &mut out);
            for d in out.drain(..) {
                *seen.entry(d.token).or_default() += 1;
            }
        }
        let missing: Vec<u64> = (0..200).filter(|t| !seen.contains_key(t)).collect();
        assert!(missing.is_empty(), "no outcome for tokens {missing:?}");
        assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    }
}
