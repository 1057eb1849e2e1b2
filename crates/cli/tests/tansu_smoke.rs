//! Smoke tests against a real Tansu broker: what librdkafka (as the drain
//! will configure it) can and cannot do with it. See `testkit::tansu` for
//! the quirks these tests found.

use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};

use testkit::consume::{consume_all, unique_topic};
use testkit::produce::{produce_baseline, producer, send_blocking};
use testkit::tansu::Tansu;
use testkit::wait::now_ms;

struct Sent {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp_ms: i64,
}

fn record(i: usize, base_ms: i64) -> Sent {
    // Every 10th record has no key; record 0 has an empty payload.
    let key = (i % 10 != 0).then(|| format!("key-{}", i % 37).into_bytes());
    let payload = if i == 0 {
        Vec::new()
    } else {
        format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 300)).into_bytes()
    };
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    id[8..].copy_from_slice(&(!(i as u64)).to_be_bytes());
    let mut headers = vec![
        ("event-id".to_owned(), id.to_vec()),
        ("n".to_owned(), i.to_string().into_bytes()),
    ];
    if i % 3 == 0 {
        headers.push(("empty".to_owned(), Vec::new()));
        headers.push(("n".to_owned(), b"duplicate name".to_vec()));
    }
    Sent {
        key,
        payload,
        headers,
        // An event that waited two hours in the queue keeps its emit time.
        timestamp_ms: base_ms + i as i64,
    }
}

#[test]
fn round_trip_keys_headers_timestamps() {
    let started = Instant::now();
    let tansu = Tansu::start();
    eprintln!("tansu ready in {:?}", started.elapsed());
    let topic = unique_topic("smoke");
    tansu.create_topic(&topic, 3);

    const N: usize = 1_000;
    let base_ms = now_ms() - 2 * 3600 * 1000;
    let sent: Vec<Sent> = (0..N).map(|i| record(i, base_ms)).collect();

    let producer = producer(&tansu.bootstrap, &[]);
    let t = Instant::now();
    for s in &sent {
        let mut headers = OwnedHeaders::new_with_capacity(s.headers.len());
        for (k, v) in &s.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut r = BaseRecord::<[u8], [u8]>::to(&topic)
            .payload(&s.payload)
            .headers(headers)
            .timestamp(s.timestamp_ms);
        if let Some(k) = &s.key {
            r = r.key(k);
        }
        send_blocking(&producer, r);
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let ctx = producer.context();
    assert_eq!(ctx.failed(), 0, "delivery errors: {:?}", ctx.error_codes());
    assert_eq!(ctx.delivered(), N);
    eprintln!("produced {N} in {:?}", t.elapsed());

    let t = Instant::now();
    let got = consume_all(&tansu.bootstrap, &topic, N, Duration::from_secs(30));
    eprintln!("consumed {} in {:?}", got.len(), t.elapsed());
    assert_eq!(got.len(), N, "records read back");

    let mut seen = vec![false; N];
    let mut last_n_per_partition = [None::<usize>; 3];
    let mut partitions_of_key = std::collections::HashMap::new();
    for c in &got {
        assert_eq!(c.topic, topic);
        let n: usize = std::str::from_utf8(c.header("n").expect("header n"))
            .unwrap()
            .parse()
            .unwrap();
        assert!(!seen[n], "record {n} read twice");
        seen[n] = true;
        let s = &sent[n];
        assert_eq!(c.payload, s.payload, "payload of {n}");
        assert_eq!(c.key, s.key, "key of {n}");
        assert_eq!(
            c.headers, s.headers,
            "headers of {n} (order and duplicates)"
        );
        assert_eq!(c.timestamp_ms, Some(s.timestamp_ms), "timestamp of {n}");
        // Idempotent producer: each partition holds its records in send order.
        let p = c.partition as usize;
        if let Some(prev) = last_n_per_partition[p] {
            assert!(n > prev, "partition {p}: record {n} after {prev}");
        }
        last_n_per_partition[p] = Some(n);
        if let Some(k) = &c.key {
            let first = *partitions_of_key.entry(k.clone()).or_insert(c.partition);
            assert_eq!(first, c.partition, "key {k:?} in two partitions");
        }
    }
    // Offsets are dense from 0 in every partition.
    for p in 0..3 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|c| c.partition == p)
            .map(|c| c.offset)
            .collect();
        assert!(!offsets.is_empty(), "partition {p} got nothing");
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }
}

#[test]
fn unknown_topic_is_a_delivery_error() {
    let tansu = Tansu::start();
    let topic = unique_topic("missing");
    // Without these librdkafka holds the record for
    // topic.metadata.propagation.max.ms (30 s) and message.timeout.ms (300 s).
    let producer = producer(
        &tansu.bootstrap,
        &[
            ("message.timeout.ms", "5000"),
            ("topic.metadata.propagation.max.ms", "1000"),
        ],
    );
    let t = Instant::now();
    producer
        .send(BaseRecord::<str, str>::to(&topic).key("k").payload("v"))
        .map_err(|(e, _)| e)
        .expect("enqueue");
    let deadline = t + Duration::from_secs(20);
    while producer.context().failed() + producer.context().delivered() == 0
        && Instant::now() < deadline
    {
        producer.poll(Duration::from_millis(20));
    }
    let ctx = producer.context();
    assert_eq!(
        ctx.delivered(),
        0,
        "a record to a missing topic was acknowledged"
    );
    let errors = ctx.errors.lock().unwrap();
    let (at, err) = errors.first().expect("no delivery report within 20 s");
    let code = err.rdkafka_error_code();
    eprintln!(
        "unknown topic: delivery error {code:?} ({err}) after {:?}",
        at.duration_since(t)
    );
    assert!(
        matches!(
            code,
            Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition)
        ),
        "unexpected code {code:?}"
    );
}

#[test]
fn baseline_throughput() {
    let tansu = Tansu::start();
    let topic = unique_topic("baseline");
    tansu.create_topic(&topic, 3);
    const N: usize = 100_000;
    let (elapsed, delivered) = produce_baseline(&tansu.bootstrap, &topic, N, 200);
    eprintln!(
        "baseline: {delivered} x 200 B in {elapsed:?} = {:.0} events/s (acks=all, idempotent, lz4, linger.ms=5)",
        delivered as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(delivered, N);
}

#[test]
fn every_compression_codec_round_trips() {
    let tansu = Tansu::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(codec);
        tansu.create_topic(&topic, 1);
        let p = producer(&tansu.bootstrap, &[("compression.type", codec)]);
        let payloads: Vec<String> = (0..50)
            .map(|i| format!("{codec} {i} {}", "abc".repeat(i)))
            .collect();
        for payload in &payloads {
            send_blocking(&p, BaseRecord::<str, str>::to(&topic).payload(payload));
        }
        p.flush(Duration::from_secs(10)).expect("flush");
        assert_eq!(
            p.context().delivered(),
            50,
            "{codec}: {:?}",
            p.context().error_codes()
        );
        let got = consume_all(&tansu.bootstrap, &topic, 50, Duration::from_secs(10));
        let got: Vec<&[u8]> = got.iter().map(|c| c.payload.as_slice()).collect();
        let want: Vec<&[u8]> = payloads.iter().map(|p| p.as_bytes()).collect();
        assert_eq!(got, want, "{codec}");
    }
}
