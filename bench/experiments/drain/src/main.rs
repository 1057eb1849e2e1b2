//! Per-event producer CPU of the drain's Kafka path, split into the produce
//! call, the delivery reports and librdkafka's own threads, next to raw
//! librdkafka calls that could replace it (issue 13, point 4). Benchmark
//! only: `bench/experiments/drain.sh [--events N] [--rounds R]`.
//!
//! One process, one fresh Tansu broker, one 3-partition topic. Each round
//! runs every variant once (order rotated per round) on a fresh, warmed
//! producer with the drain's librdkafka settings (`client_config`: acks=all,
//! idempotence, lz4, linger.ms=5) and sends N prebuilt envelopes (200-byte
//! payloads) the way the drain does: batches of 512 sends, then a poll(0)
//! that serves delivery reports, never more than 10,000 unacknowledged (the
//! drain's default window); then polls until every report is in. Measured:
//!
//! - send: CPU of the calling thread inside the produce calls, per event;
//! - reports: CPU of the calling thread inside poll, per event;
//! - process: CPU of the whole process (librdkafka's threads included)
//!   from the first send to the last report, per event.
//!
//! Variants:
//! - `sink`: the drain's `KafkaSink` (rust-rdkafka `BaseRecord` with the
//!   `event_id` header, the emit timestamp and the token as opaque);
//! - `record+hdr` / `record`: the same through rust-rdkafka directly, with
//!   and without the header (the header's cost); `record+hdr16` carries the
//!   id as its 16 bytes instead of 36 hex characters (how much is size);
//! - `produceva+hdr` / `produceva`: `rd_kafka_produceva` with a topic handle
//!   (no per-call topic name copy and lookup), with and without the header;
//! - `batch`: `rd_kafka_produce_batch` of 512 with a topic handle and the
//!   partitioner per message. It cannot carry headers or timestamps, so it
//!   would drop the `event_id` header and the emit time: measured to size
//!   the saving, not a candidate as it stands.

use std::collections::BTreeMap;
use std::ffi::{c_void, CString};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use rdkafka_sys as sys;
use shopify_events_core::drain::sink::KafkaSink;
use shopify_events_core::drain::sink::{Delivery, Outcome, Sink};
use shopify_events_core::envelope::{self, Envelope};
use shopify_events_core::event_id::EventId;

const BATCH: usize = 512;
const WINDOW: usize = 10_000;
const VARIANTS: &[&str] = &[
    "sink",
    "record+hdr",
    "record+hdr16",
    "record",
    "produceva+hdr",
    "produceva",
    "batch",
];

/// Collects delivery reports as the drain's sink does (a Mutex'd Vec).
#[derive(Default)]
struct Reports(Mutex<Vec<(usize, bool)>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        if let Ok(mut reports) = self.0.lock() {
            reports.push((token, result.is_ok()));
        }
    }
}

/// The drain's librdkafka settings (a copy of `DEFAULTS` in
/// crates/core/src/drain/sink/kafka.rs, which the core does not export),
/// then `settings`.
fn client_config(settings: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("compression.type", "lz4"),
        ("linger.ms", "5"),
        ("message.timeout.ms", "120000"),
    ] {
        config.set(key, value);
    }
    for (key, value) in settings {
        config.set(key, value);
    }
    config
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer and clock id.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn process_cpu() -> Duration {
    // SAFETY: a zeroed rusage is a valid out value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Default, Clone, Copy)]
struct Measure {
    send: Duration,
    reports: Duration,
    process: Duration,
    wall: Duration,
}

/// How one variant hands events to librdkafka and gets reports back.
enum Sender {
    Sink(KafkaSink, Vec<Delivery>),
    Raw {
        producer: BaseProducer<Reports>,
        rkt: *mut sys::rd_kafka_topic_t,
    },
}

impl Sender {
    fn new(variant: &str, settings: &BTreeMap<String, String>, topic: &str) -> Sender {
        if variant == "sink" {
            return Sender::Sink(KafkaSink::new(settings).expect("sink"), Vec::new());
        }
        let producer: BaseProducer<Reports> = client_config(settings)
            .create_with_context(Reports::default())
            .expect("producer");
        let name = CString::new(topic).expect("topic");
        // SAFETY: a live client and a NUL-terminated name; destroyed in Drop.
        let rkt = unsafe {
            sys::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        Sender::Raw { producer, rkt }
    }

    /// Sends `events[from..to]` (token = index); returns how many went out
    /// before librdkafka's queue was full.
    fn send(&mut self, variant: &str, events: &[Envelope<'_>], from: usize, to: usize) -> usize {
        match self {
            Sender::Sink(sink, _) => {
                for (i, event) in events.iter().enumerate().take(to).skip(from) {
                    if sink.send(event, i as u64).is_err() {
                        return i - from;
                    }
                }
                to - from
            }
            Sender::Raw { producer, rkt } => match variant {
                "record+hdr" | "record+hdr16" | "record" => {
                    for (i, e) in events.iter().enumerate().take(to).skip(from) {
                        let mut record =
                            BaseRecord::<[u8], [u8], usize>::with_opaque_to(e.topic, i)
                                .payload(e.payload)
                                .timestamp(e.time_us.div_euclid(1000));
                        let id = e.id.hyphenated();
                        let value: &[u8] = match variant {
                            "record+hdr" => &id[..],
                            "record+hdr16" => e.id.as_bytes(),
                            _ => &[],
                        };
                        if !value.is_empty() {
                            record =
                                record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                                    key: "event_id",
                                    value: Some(value),
                                }));
                        }
                        if producer.send(record).is_err() {
                            return i - from;
                        }
                    }
                    to - from
                }
                "produceva+hdr" | "produceva" => {
                    let rk = producer.client().native_ptr();
                    for (i, e) in events.iter().enumerate().take(to).skip(from) {
                        let id = e.id.hyphenated();
                        let mut vus = vec![
                            vu(
                                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_RKT,
                                sys::rd_kafka_vu_s__bindgen_ty_1 { rkt: *rkt },
                            ),
                            vu(
                                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS,
                                sys::rd_kafka_vu_s__bindgen_ty_1 {
                                    i: sys::RD_KAFKA_MSG_F_COPY,
                                },
                            ),
                            vu(
                                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE,
                                sys::rd_kafka_vu_s__bindgen_ty_1 {
                                    mem: sys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                                        ptr: e.payload.as_ptr() as *mut c_void,
                                        size: e.payload.len(),
                                    },
                                },
                            ),
                            vu(
                                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TIMESTAMP,
                                sys::rd_kafka_vu_s__bindgen_ty_1 {
                                    i64_: e.time_us.div_euclid(1000),
                                },
                            ),
                            vu(
                                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_OPAQUE,
                                sys::rd_kafka_vu_s__bindgen_ty_1 {
                                    ptr: i as *mut c_void,
                                },
                            ),
                        ];
                        if variant == "produceva+hdr" {
                            vus.push(vu(
                                sys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADER,
                                sys::rd_kafka_vu_s__bindgen_ty_1 {
                                    header: sys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                                        name: c"event_id".as_ptr(),
                                        val: id.as_ptr().cast(),
                                        size: 36,
                                    },
                                },
                            ));
                        }
                        // SAFETY: every pointer is live for the call; librdkafka copies
                        // the payload (F_COPY) and the header value.
                        let error = unsafe { sys::rd_kafka_produceva(rk, vus.as_ptr(), vus.len()) };
                        if !error.is_null() {
                            // SAFETY: an error object librdkafka handed us.
                            unsafe { sys::rd_kafka_error_destroy(error) };
                            return i - from;
                        }
                    }
                    to - from
                }
                "batch" => {
                    // SAFETY: zeroed rd_kafka_message_t is the documented start state.
                    let mut msgs: Vec<sys::rd_kafka_message_t> = (from..to)
                        .map(|i| {
                            let mut m: sys::rd_kafka_message_t = unsafe { std::mem::zeroed() };
                            m.payload = events[i].payload.as_ptr() as *mut c_void;
                            m.len = events[i].payload.len();
                            m._private = i as *mut c_void;
                            m
                        })
                        .collect();
                    // SAFETY: `msgs` is live for the call; payloads are copied.
                    let sent = unsafe {
                        sys::rd_kafka_produce_batch(
                            *rkt,
                            -1, // RD_KAFKA_PARTITION_UA: the partitioner picks
                            sys::RD_KAFKA_MSG_F_COPY,
                            msgs.as_mut_ptr(),
                            msgs.len() as i32,
                        )
                    } as usize;
                    if sent < msgs.len() {
                        // Failed messages are not necessarily the last ones; the bench
                        // keeps it simple and stops at the first failure.
                        return msgs
                            .iter()
                            .position(|m| {
                                m.err != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                            })
                            .unwrap_or(sent);
                    }
                    sent
                }
                other => panic!("unknown variant {other}"),
            },
        }
    }

    /// Serves reports without waiting; returns how many events were delivered.
    fn poll(&mut self) -> usize {
        match self {
            Sender::Sink(sink, out) => {
                out.clear();
                sink.poll(Duration::ZERO, out);
                out.iter()
                    .filter(|d| matches!(d.outcome, Outcome::Delivered))
                    .count()
            }
            Sender::Raw { producer, .. } => {
                producer.poll(Duration::ZERO);
                let mut reports = producer.context().0.lock().expect("reports");
                let delivered = reports.iter().filter(|(_, ok)| *ok).count();
                reports.clear();
                delivered
            }
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Sender::Raw { rkt, .. } = self {
            // SAFETY: created in `new`, not used afterwards.
            unsafe { sys::rd_kafka_topic_destroy(*rkt) };
        }
    }
}

fn vu(vtype: sys::rd_kafka_vtype_t, u: sys::rd_kafka_vu_s__bindgen_ty_1) -> sys::rd_kafka_vu_t {
    sys::rd_kafka_vu_t { vtype, u }
}

fn measure(
    variant: &str,
    settings: &BTreeMap<String, String>,
    topic: &str,
    events: &[Envelope<'_>],
) -> Measure {
    let mut p = Sender::new(variant, settings, topic);
    // Warm up: connections, metadata and the idempotent producer id.
    let warm = 1.min(events.len());
    let mut done = 0;
    while p.send(variant, events, 0, warm) < warm {
        p.poll();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while done < warm {
        done += p.poll();
        assert!(
            Instant::now() < deadline,
            "{variant}: warm-up not acknowledged"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let n = events.len();
    let mut m = Measure::default();
    let (wall0, proc0) = (Instant::now(), process_cpu());
    let mut sent = 0;
    let mut acked = 0;
    while acked < n {
        if sent < n && sent - acked < WINDOW {
            let to = (sent + BATCH).min(n).min(acked + WINDOW);
            let t = thread_cpu();
            sent += p.send(variant, events, sent, to);
            m.send += thread_cpu() - t;
        }
        let t = thread_cpu();
        acked += p.poll();
        m.reports += thread_cpu() - t;
        if sent == n || sent - acked >= WINDOW {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            wall0.elapsed() < Duration::from_secs(300),
            "{variant}: not acknowledged in 300 s"
        );
    }
    m.wall = wall0.elapsed();
    m.process = process_cpu() - proc0;
    m
}

struct Tansu(Child, String);

impl Tansu {
    fn start() -> Tansu {
        let bin = std::env::var("TANSU_BIN").unwrap_or_else(|_| "/opt/tansu/bin/tansu".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not open its port");
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = Command::new(&bin)
            .args([
                "topic",
                "create",
                "--broker",
                &url,
                "--partitions",
                "3",
                "drain-cost",
            ])
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "tansu topic create failed");
        Tansu(child, format!("127.0.0.1:{port}"))
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let mut events_n = 100_000usize;
    let mut rounds = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--events" => {
                events_n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--events N")
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            other => panic!("unknown argument {other}; use --events N --rounds R"),
        }
    }
    let tansu = Tansu::start();
    let settings = BTreeMap::from([("bootstrap.servers".to_string(), tansu.1.clone())]);
    // Prebuilt envelopes with random-hex 200-byte payloads, as the drain receives them.
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut buffers = Vec::with_capacity(events_n);
    for _ in 0..events_n {
        let payload: Vec<u8> = (0..200)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                b"0123456789abcdef"[(rng & 15) as usize]
            })
            .collect();
        let time_us = shopify_events_core::clock::now_micros();
        let mut buf = Vec::new();
        envelope::encode(
            &mut buf,
            EventId::generate(time_us),
            time_us,
            "drain-cost",
            None,
            &[],
            &payload,
        )
        .expect("encode");
        buffers.push(buf);
    }
    let events: Vec<Envelope<'_>> = buffers
        .iter()
        .map(|b| Envelope::decode(b).expect("decode"))
        .collect();
    let mut results: BTreeMap<&str, Vec<Measure>> = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..VARIANTS.len() {
            let variant = VARIANTS[(k + round) % VARIANTS.len()];
            let m = measure(variant, &settings, "drain-cost", &events);
            results.entry(variant).or_default().push(m);
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    let per_event = |d: Duration| d.as_nanos() as f64 / events_n as f64 / 1000.0;
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("drain producer CPU per event: {events_n} events per measurement, {rounds} rounds, medians (µs per event)");
    println!("| variant | send (calling thread) | reports (calling thread) | process (all threads) | events/s |");
    println!("|---|---:|---:|---:|---:|");
    for variant in VARIANTS {
        let ms = &results[variant];
        println!(
            "| {variant} | {:.3} | {:.3} | {:.3} | {:.0} |",
            median(ms.iter().map(|m| per_event(m.send)).collect()),
            median(ms.iter().map(|m| per_event(m.reports)).collect()),
            median(ms.iter().map(|m| per_event(m.process)).collect()),
            median(
                ms.iter()
                    .map(|m| events_n as f64 / m.wall.as_secs_f64())
                    .collect()
            ),
        );
    }
}
