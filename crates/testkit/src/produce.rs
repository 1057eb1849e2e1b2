//! librdkafka's own producer, configured as the drain's defaults: the
//! baseline the drain's throughput is compared with, and a way to feed a
//! broker directly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::rng::XorShift;

/// A producer context that counts delivery reports and keeps the errors.
#[derive(Default)]
pub struct Deliveries {
    /// Delivery reports that said delivered.
    pub delivered: AtomicUsize,
    /// Delivery reports that said failed.
    pub failed: AtomicUsize,
    /// Every failed delivery's error, with the time its report was served.
    pub errors: Mutex<Vec<(Instant, KafkaError)>>,
}

impl Deliveries {
    /// Records delivered so far.
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::SeqCst)
    }

    /// Records failed so far.
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
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
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
        rng.fill_hex(&mut payload);
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
