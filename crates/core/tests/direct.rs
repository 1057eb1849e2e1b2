//! The direct producer against a real Kafka-protocol broker (Tansu, from
//! `script/tansu install`) and against an unreachable one.
#![cfg(feature = "kafka")]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::direct::{DirectConfig, DirectError, DirectProducer};
use shopify_events_core::envelope::encode;
use shopify_events_core::event_id::EventId;
use shopify_events_core::transport::SendError;
use testkit::consume::{consume_all, unique_topic};
use testkit::net::free_port;
use testkit::tansu::Tansu;

fn producer(bootstrap: &str, extra: &[(&str, &str)], buffer: usize) -> DirectProducer {
    let mut settings = BTreeMap::from([("bootstrap.servers".to_string(), bootstrap.to_string())]);
    for (k, v) in extra {
        settings.insert((*k).to_string(), (*v).to_string());
    }
    let mut config = DirectConfig::new(settings);
    config.buffer = buffer;
    config.shutdown_grace = Duration::from_millis(200);
    DirectProducer::new(config).expect("direct producer")
}

fn envelope(topic: &str, id: EventId, time_us: i64, key: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(
        &mut out,
        id,
        time_us,
        topic,
        key,
        &[("trace", b"t-1")],
        payload,
    )
    .expect("encode");
    out
}

#[test]
fn direct_records_carry_key_payload_headers_event_id_and_emit_time() {
    let tansu = Tansu::start();
    let topic = unique_topic("direct-mapping");
    tansu.create_topic(&topic, 1);
    let direct = producer(&tansu.bootstrap, &[], 100);
    // Emitted two hours ago: the record keeps the emit time.
    let time_us = shopify_events_core::clock::now_micros() - 7_200_000_000;
    let id = EventId::generate(time_us);
    let bytes = envelope(&topic, id, time_us, Some(b"shop-1"), b"{\"a\":1}");
    direct.try_send(bytes).expect("send");
    assert!(direct.flush(Duration::from_secs(20), &AtomicBool::new(false)));
    assert_eq!(direct.stats().delivered, 1);

    let records = consume_all(&tansu.bootstrap, &topic, 1, Duration::from_secs(20));
    let [record] = &records[..] else {
        panic!("expected one record, read back {records:?}");
    };
    assert_eq!(record.key.as_deref(), Some(&b"shop-1"[..]));
    assert_eq!(record.payload, b"{\"a\":1}");
    assert_eq!(record.timestamp_ms, Some(time_us / 1000));
    assert_eq!(
        record.headers,
        vec![
            ("trace".to_string(), b"t-1".to_vec()),
            ("event_id".to_string(), id.hyphenated().to_vec()),
        ]
    );
}

#[test]
fn full_buffer_is_reported_at_once_while_kafka_is_unreachable() {
    let unreachable = format!("127.0.0.1:{}", free_port());
    let direct = producer(&unreachable, &[("queue.buffering.max.messages", "1")], 2);
    let id = || EventId::generate(0);
    let mut results = Vec::new();
    for _ in 0..3 {
        for _ in 0..10 {
            results.push(direct.try_send(envelope("t", id(), 0, None, b"x")));
        }
        sleep(Duration::from_millis(200));
    }
    // librdkafka holds 1, the worker the 1 it refused, the buffer 2.
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    assert!(matches!(
        results.last(),
        Some(Err(SendError::DirectBufferFull { capacity: 2 }))
    ));
    assert_eq!(direct.stats().dropped, 26);
    let started = Instant::now();
    assert!(!direct.flush(Duration::from_millis(300), &AtomicBool::new(false)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn flush_returns_early_when_interrupted() {
    let unreachable = format!("127.0.0.1:{}", free_port());
    let direct = producer(&unreachable, &[], 10);
    direct
        .try_send(envelope("t", EventId::generate(0), 0, None, b"x"))
        .expect("send");
    let started = Instant::now();
    assert!(!direct.flush(Duration::from_secs(30), &AtomicBool::new(true)));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn envelope_above_message_max_bytes_is_too_large() {
    let unreachable = format!("127.0.0.1:{}", free_port());
    let direct = producer(&unreachable, &[("message.max.bytes", "1000")], 10);
    let big = envelope("t", EventId::generate(0), 0, None, &[b'x'; 2000]);
    assert!(matches!(
        direct.try_send(big),
        Err(SendError::TooLarge { limit: 1000, .. })
    ));
}

#[test]
fn missing_brokers_is_a_typed_error() {
    let result = DirectProducer::new(DirectConfig::new(BTreeMap::new()));
    assert!(matches!(result, Err(DirectError::NoBrokers)));
}
