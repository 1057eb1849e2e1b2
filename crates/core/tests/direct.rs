//! The direct producer against a real Kafka-protocol broker (Tansu, from
//! `script/tansu install`) and against an unreachable one.
#![cfg(feature = "kafka")]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::thread::sleep;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use shopify_events_core::direct::{DirectConfig, DirectError, DirectProducer};
use shopify_events_core::envelope::encode;
use shopify_events_core::event_id::EventId;
use shopify_events_core::transport::SendError;

/// A memory-backed Tansu broker on a free loopback port, killed on drop.
struct Tansu {
    child: Child,
    bootstrap: String,
    bin: PathBuf,
}

impl Tansu {
    fn start() -> Option<Tansu> {
        let bin = std::env::var_os("TANSU_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/tansu/bin/tansu"));
        if !bin.exists() {
            eprintln!(
                "skipped: no tansu binary at {} (script/tansu install)",
                bin.display()
            );
            return None;
        }
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            sleep(Duration::from_millis(20));
        }
        Some(Tansu {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            bin,
        })
    }

    fn create_topic(&self, name: &str) {
        let status = Command::new(&self.bin)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", self.bootstrap))
            .args(["--partitions", "1", name])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create {name}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

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
    let Some(tansu) = Tansu::start() else { return };
    tansu.create_topic("direct.mapping");
    let direct = producer(&tansu.bootstrap, &[], 100);
    // Emitted two hours ago: the record keeps the emit time.
    let time_us = shopify_events_core::clock::now_micros() - 7_200_000_000;
    let id = EventId::generate(time_us);
    let bytes = envelope("direct.mapping", id, time_us, Some(b"shop-1"), b"{\"a\":1}");
    direct.try_send(bytes).expect("send");
    assert!(direct.flush(Duration::from_secs(20), &AtomicBool::new(false)));
    assert_eq!(direct.stats().delivered, 1);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &tansu.bootstrap)
        .set("group.id", "direct-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("direct.mapping", 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(20);
    let message = loop {
        assert!(Instant::now() < deadline, "no record read back");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            break m.detach();
        }
    };
    assert_eq!(message.key(), Some(&b"shop-1"[..]));
    assert_eq!(message.payload(), Some(&b"{\"a\":1}"[..]));
    assert_eq!(message.timestamp(), Timestamp::CreateTime(time_us / 1000));
    let headers = message.headers().expect("headers");
    let pairs: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
        .collect();
    assert_eq!(
        pairs,
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
