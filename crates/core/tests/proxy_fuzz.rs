//! The proxy's handshake and frame reading against random, truncated and
//! bit-flipped input, over real connections to one in-process server
//! (issue 9, "the harness"). Properties:
//!
//! - every reply the proxy writes is well formed (a welcome, acks, nacks);
//! - a connection sent garbage ends (or is answered) within the timeouts,
//!   never hangs the server;
//! - after every case a real client still gets its event acknowledged;
//! - nothing but valid envelopes ever reaches the queue.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use shopify_events_core::proxy::wire::frame::{DataHeader, Hello, Reply, Status, Welcome};
use shopify_events_core::proxy::{self, ProxyAddress, ProxyMetrics, ServerConfig};
use testkit::queue::TestQueue;

struct Server {
    addr: String,
    queue: TestQueue,
    shutdown: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let queue = TestQueue::with_capacity(8 << 20);
        let mut config = ServerConfig::new(queue.key());
        config.handshake_timeout = Duration::from_millis(300);
        config.idle_timeout = Duration::from_millis(500);
        config.frame_timeout = Duration::from_millis(300);
        let listener = ProxyAddress::Tcp("127.0.0.1:0".into()).bind(false).unwrap();
        let ProxyAddress::Tcp(addr) = listener.local_address().unwrap() else {
            unreachable!()
        };
        let shutdown = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(ProxyMetrics::for_queue(queue.key()));
        let stop = shutdown.clone();
        let thread =
            thread::spawn(move || proxy::run(vec![listener], config, stop, metrics).unwrap());
        Server {
            addr,
            queue,
            shutdown,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s
    }

    /// A real client's handshake and one frame, acknowledged.
    fn still_serves(&self, seq: u64) -> bool {
        let mut s = self.connect();
        s.write_all(&hello()).unwrap();
        let (bytes, _) = read_all(&mut s, Duration::from_secs(2), |b| {
            matches!(Welcome::decode(b), Ok(Some(_)))
        });
        let Ok(Some((w, _))) = Welcome::decode(&bytes) else {
            return false;
        };
        if w.status != Status::Ok {
            return false;
        }
        s.write_all(&frame(seq, &envelope(seq))).unwrap();
        let (bytes, _) = read_all(&mut s, Duration::from_secs(2), |b| b.len() >= 9);
        matches!(Reply::decode(&bytes), Ok(Some((Reply::Ack(n), _))) if n == seq)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hello() -> Vec<u8> {
    let mut out = Vec::new();
    Hello {
        version: 1,
        token: Vec::new(),
    }
    .encode(&mut out)
    .unwrap();
    out
}

fn envelope(n: u64) -> Vec<u8> {
    let time = 1_700_000_000_000_000 + n as i64;
    let mut out = Vec::new();
    encode(
        &mut out,
        EventId::generate(time),
        time,
        "fuzz.proxy",
        None,
        &[],
        b"{}",
    )
    .unwrap();
    out
}

fn frame(seq: u64, envelope: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    DataHeader::write(&mut out, envelope.len(), seq);
    out.extend_from_slice(envelope);
    out
}

/// Reads until `done`, the peer closes, or `timeout`; returns the bytes
/// and whether the peer closed.
fn read_all(s: &mut TcpStream, timeout: Duration, done: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !done(&out) {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Bytes a handshake might be: random, or a valid Hello cut, flipped or
/// followed by junk.
fn handshake_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = hello();
    let cut = valid.clone();
    let flipped = valid.clone();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1100),
        (0..valid.len()).prop_map(move |n| cut[..n].to_vec()),
        (0..valid.len() * 8).prop_map(move |bit| {
            let mut v = flipped.clone();
            v[bit / 8] ^= 1 << (bit % 8);
            v
        }),
        (proptest::collection::vec(any::<u8>(), 0..4), 0u16..2000).prop_map(|(tail, len)| {
            let mut v = b"SEPX\x01\x00".to_vec();
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&tail);
            v
        }),
    ]
}

/// After a valid handshake: valid frames and garbage, in any order.
#[derive(Debug, Clone)]
enum Piece {
    Frame,
    Garbage(Vec<u8>),
    Flipped(usize),
    Cut(usize),
}

fn stream() -> impl Strategy<Value = Vec<Piece>> {
    proptest::collection::vec(
        prop_oneof![
            4 => Just(Piece::Frame),
            1 => proptest::collection::vec(any::<u8>(), 1..200).prop_map(Piece::Garbage),
            1 => (0usize..1000).prop_map(Piece::Flipped),
            1 => (0usize..100).prop_map(Piece::Cut),
        ],
        1..20,
    )
}

#[test]
fn handshakes_and_frame_streams_of_garbage_never_break_the_proxy() {
    let server = Server::start();
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let checks = std::cell::Cell::new(1_000_000u64);
    let check = || {
        checks.set(checks.get() + 1);
        server.still_serves(checks.get())
    };

    runner
        .run(&handshake_bytes(), |bytes| {
            let mut s = server.connect();
            let _ = s.write_all(&bytes);
            let (reply, _closed) = read_all(&mut s, Duration::from_secs(2), |_| false);
            if !reply.is_empty() {
                prop_assert!(
                    matches!(Welcome::decode(&reply), Ok(Some(_))),
                    "not a welcome: {reply:?}"
                );
            }
            prop_assert!(check(), "the proxy stopped serving after {bytes:?}");
            Ok(())
        })
        .unwrap();

    let seq = std::cell::Cell::new(0u64);
    runner
        .run(&stream(), |pieces| {
            let mut s = server.connect();
            s.write_all(&hello()).unwrap();
            let (w, _) = read_all(&mut s, Duration::from_secs(2), |b| {
                matches!(Welcome::decode(b), Ok(Some(_)))
            });
            prop_assert!(matches!(Welcome::decode(&w), Ok(Some(_))));
            let mut bytes = Vec::new();
            for piece in &pieces {
                seq.set(seq.get() + 1);
                let valid = frame(seq.get(), &envelope(seq.get()));
                match piece {
                    Piece::Frame => bytes.extend_from_slice(&valid),
                    Piece::Garbage(g) => bytes.extend_from_slice(g),
                    Piece::Flipped(bit) => {
                        let mut v = valid;
                        let bit = bit % (v.len() * 8);
                        v[bit / 8] ^= 1 << (bit % 8);
                        bytes.extend_from_slice(&v);
                    }
                    Piece::Cut(n) => bytes.extend_from_slice(&valid[..n % valid.len()]),
                }
            }
            let _ = s.write_all(&bytes);
            let (replies, _) = read_all(&mut s, Duration::from_secs(2), |_| false);
            let mut at = 0;
            while at < replies.len() {
                match Reply::decode(&replies[at..]) {
                    Ok(Some((_, n))) => at += n,
                    Ok(None) => prop_assert!(false, "a reply cut short: {replies:?}"),
                    Err(e) => prop_assert!(false, "a malformed reply: {e}"),
                }
            }
            prop_assert!(check(), "the proxy stopped serving after {pieces:?}");
            Ok(())
        })
        .unwrap();

    let bodies = server.queue.bodies();
    assert!(!bodies.is_empty());
    for body in &bodies {
        assert!(
            Envelope::decode(body).is_ok(),
            "an invalid envelope reached the queue"
        );
    }
}
