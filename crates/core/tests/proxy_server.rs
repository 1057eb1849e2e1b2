//! The proxy server run in-process on port 0 (or a Unix socket in a temp
//! dir), against real SysV queues that each test removes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use shopify_events_core::envelope::{self, Envelope};
use shopify_events_core::event_id::EventId;
use shopify_events_core::proxy::wire::frame::{
    DataHeader, Hello, NackReason, Reply, Status, Welcome,
};
use shopify_events_core::proxy::{
    self, ClientConfig, ProxyAddress, ProxyMetrics, ServerConfig, SocketClient,
};
use shopify_events_core::transport::FrameSink;
use testkit::queue::TestQueue;

struct Proxy {
    address: ProxyAddress,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<ProxyMetrics>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(config: ServerConfig) -> Proxy {
        Proxy::start_on(ProxyAddress::Tcp("127.0.0.1:0".into()), config)
    }

    fn start_on(address: ProxyAddress, config: ServerConfig) -> Proxy {
        let listener = address.bind(false).unwrap();
        let address = listener.local_address().unwrap();
        let shutdown = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(ProxyMetrics::for_queue(config.queue_key));
        let (s, m) = (shutdown.clone(), metrics.clone());
        let thread = thread::spawn(move || proxy::run(vec![listener], config, s, m).unwrap());
        Proxy {
            address,
            shutdown,
            metrics,
            thread: Some(thread),
        }
    }

    fn tcp(&self) -> TcpStream {
        let ProxyAddress::Tcp(addr) = &self.address else {
            panic!("not tcp")
        };
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// A raw connection that completed the handshake.
    fn handshaken(&self) -> TcpStream {
        let mut s = self.tcp();
        let mut hello = Vec::new();
        Hello {
            version: 1,
            token: Vec::new(),
        }
        .encode(&mut hello)
        .unwrap();
        s.write_all(&hello).unwrap();
        let welcome = read_welcome(&mut s);
        assert_eq!(welcome.status, Status::Ok, "{}", welcome.text);
        s
    }

    fn stop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_welcome(s: &mut TcpStream) -> Welcome {
    let mut buf = Vec::new();
    loop {
        if let Some((w, _)) = Welcome::decode(&buf).unwrap() {
            return w;
        }
        let mut chunk = [0u8; 64];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the handshake reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Replies until `done` says enough, or the connection closes.
fn read_replies(s: &mut TcpStream, done: impl Fn(&[Reply]) -> bool) -> (Vec<Reply>, bool) {
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    loop {
        while let Some((r, n)) = Reply::decode(&buf).unwrap() {
            buf.drain(..n);
            replies.push(r);
        }
        if done(&replies) {
            return (replies, false);
        }
        let mut chunk = [0u8; 512];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return (replies, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn event(i: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let id = EventId::generate(1_700_000_000_000_000 + i as i64);
    let payload = format!("{{\"i\":{i}}}");
    envelope::encode(
        &mut out,
        id,
        1_700_000_000_000_000,
        "proxy.test",
        None,
        &[],
        payload.as_bytes(),
    )
    .unwrap();
    // Deterministic: the id's random bits become `i`, so tests can rebuild
    // the exact bytes they expect.
    out[16..24].copy_from_slice(&(0x8000_0000_0000_0000u64 | i as u64).to_be_bytes());
    let end = out.len() - 4;
    let crc = crc32c::crc32c(&out[..end]);
    out[end..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn data_frame(seq: u64, envelope: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(envelope);
    DataHeader::write(&mut frame, envelope.len(), seq);
    frame
}

fn client(address: &ProxyAddress) -> SocketClient {
    SocketClient::new(ClientConfig::new(address.clone())).unwrap()
}

/// Sends `envelope` through the client; returns it as the client numbered
/// it, which is what the proxy must forward byte for byte.
fn send(client: &SocketClient, envelope: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    client.begin_frame(&mut buf);
    buf.extend_from_slice(envelope);
    client.send_frame(&mut buf).unwrap();
    buf[buf.len() - envelope.len()..].to_vec()
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

#[test]
fn pipelined_events_arrive_in_the_host_queue_in_order_and_are_acked() {
    let queue = TestQueue::new();
    let proxy = Proxy::start(ServerConfig::new(queue.key()));
    let client = client(&proxy.address);
    let sent: Vec<Vec<u8>> = (0..2000).map(|i| send(&client, &event(i))).collect();
    assert!(client.flush(Duration::from_secs(10), &never()));
    assert_eq!(queue.bodies(), sent);
    // The client numbered them 0.., the proxy forwarded the stamps as they are.
    let seqs: Vec<u64> = sent
        .iter()
        .map(|e| Envelope::decode(e).unwrap().stamp.expect("stamped").seq)
        .collect();
    assert_eq!(seqs, (0..2000).collect::<Vec<_>>());
    let stats = client.snapshot();
    assert_eq!(
        (stats.emitted, stats.acked, stats.buffered),
        (2000, 2000, 0)
    );
    assert_eq!(proxy.metrics.events_enqueued.get(), 2000);
}

#[test]
fn corrupt_envelope_is_nacked_and_the_connection_goes_on() {
    let queue = TestQueue::new();
    let proxy = Proxy::start(ServerConfig::new(queue.key()));
    let mut s = proxy.handshaken();
    let mut corrupt = event(2);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let mut malformed = event(3);
    malformed[envelope::FIXED_LEN] = b'!'; // a topic character Kafka forbids, under a valid CRC
    let end = malformed.len() - 4;
    let crc = crc32c::crc32c(&malformed[..end]);
    malformed[end..].copy_from_slice(&crc.to_le_bytes());
    let mut bytes = data_frame(1, &event(1));
    bytes.extend(data_frame(2, &corrupt));
    bytes.extend(data_frame(3, &malformed));
    bytes.extend(data_frame(4, &event(4)));
    s.write_all(&bytes).unwrap();
    let (replies, closed) = read_replies(&mut s, |r| r.contains(&Reply::Ack(4)));
    assert!(!closed, "{replies:?}");
    let reasons: Vec<_> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::Nack { seq, reason, .. } => Some((*seq, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [(2, NackReason::CrcMismatch), (3, NackReason::Malformed)]
    );
    assert_eq!(queue.bodies(), vec![event(1), event(4)]);
}

#[test]
fn oversized_frame_is_nacked_and_closes_only_its_connection() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.max_envelope = Some(1000);
    let proxy = Proxy::start(config);
    let good = client(&proxy.address);
    let mut bad = proxy.handshaken();
    let mut header = vec![0u8; 12];
    DataHeader::write(&mut header, 50_000_000, 1);
    bad.write_all(&header).unwrap();
    let (replies, closed) = read_replies(&mut bad, |_| false);
    assert!(closed);
    assert!(
        matches!(
            replies.as_slice(),
            [Reply::Nack {
                seq: 1,
                reason: NackReason::TooLarge,
                ..
            }]
        ),
        "{replies:?}"
    );
    send(&good, &event(1));
    assert!(good.flush(Duration::from_secs(5), &never()));
    assert_eq!(queue.bodies().len(), 1);
    assert_eq!(proxy.metrics.protocol_errors.get(), 1);
}

#[test]
fn truncated_frame_closes_the_connection_and_enqueues_nothing() {
    let queue = TestQueue::new();
    let proxy = Proxy::start(ServerConfig::new(queue.key()));
    let mut s = proxy.handshaken();
    let frame = data_frame(1, &event(1));
    s.write_all(&frame[..frame.len() / 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (_, closed) = read_replies(&mut s, |_| false);
    assert!(closed);
    wait_for(|| proxy.metrics.protocol_errors.get() == 1);
    assert!(queue.bodies().is_empty());
}

#[test]
fn out_of_order_sequence_is_refused() {
    let queue = TestQueue::new();
    let proxy = Proxy::start(ServerConfig::new(queue.key()));
    let mut s = proxy.handshaken();
    let mut bytes = data_frame(5, &event(1));
    bytes.extend(data_frame(5, &event(2)));
    s.write_all(&bytes).unwrap();
    let (replies, closed) = read_replies(&mut s, |_| false);
    assert!(closed);
    assert!(replies.contains(&Reply::Ack(5)), "{replies:?}");
    assert!(replies.iter().any(|r| matches!(
        r,
        Reply::Nack {
            seq: 5,
            reason: NackReason::OutOfOrder,
            ..
        }
    )));
}

#[test]
fn silent_client_is_closed_at_the_handshake_timeout_and_others_are_served() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.handshake_timeout = Duration::from_millis(200);
    let proxy = Proxy::start(config);
    let mut silent = proxy.tcp();
    let good = client(&proxy.address);
    send(&good, &event(1));
    assert!(good.flush(Duration::from_secs(5), &never()));
    let started = Instant::now();
    let mut byte = [0u8; 1];
    assert_eq!(silent.read(&mut byte).unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(3));
    wait_for(|| proxy.metrics.handshake_failures.get() == 1);
}

#[test]
fn idle_connection_is_closed_and_the_client_reconnects_when_it_has_events() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.idle_timeout = Duration::from_millis(200);
    let proxy = Proxy::start(config);
    let client = client(&proxy.address);
    let first = send(&client, &event(1));
    assert!(client.flush(Duration::from_secs(5), &never()));
    wait_for(|| proxy.metrics.idle_timeouts.get() == 1);
    let second = send(&client, &event(2));
    assert!(client.flush(Duration::from_secs(5), &never()));
    assert_eq!(queue.bodies(), vec![first, second]);
    assert_eq!(client.snapshot().connects, 2);
}

#[test]
fn fifty_concurrent_clients_all_arrive() {
    let queue = TestQueue::new();
    let proxy = Proxy::start(ServerConfig::new(queue.key()));
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let address = proxy.address.clone();
            thread::spawn(move || {
                let client = client(&address);
                for i in 0..200 {
                    send(&client, &event(t * 1000 + i));
                }
                assert!(client.flush(Duration::from_secs(20), &never()));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut ids: Vec<_> = queue
        .bodies()
        .iter()
        .map(|b| Envelope::decode(b).unwrap().id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000);
}

#[test]
fn connections_over_the_limit_are_refused_busy() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.max_connections = 2;
    let proxy = Proxy::start(config);
    let _a = proxy.handshaken();
    let _b = proxy.handshaken();
    wait_for(|| proxy.metrics.connections_open.get() == 2);
    let mut c = proxy.tcp();
    assert_eq!(read_welcome(&mut c).status, Status::Busy);
    assert_eq!(proxy.metrics.connections_refused.get(), 1);
}

#[test]
fn wrong_token_is_refused_and_the_right_one_accepted() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.token = Some(b"right".to_vec());
    let proxy = Proxy::start(config);
    let mut wrong = ClientConfig::new(proxy.address.clone());
    wrong.token = b"wrong".to_vec();
    wrong.backoff_max = Duration::from_millis(50);
    let wrong = SocketClient::new(wrong).unwrap();
    send(&wrong, &event(1));
    assert!(!wrong.flush(Duration::from_millis(300), &never()));
    let error = wrong.snapshot().last_error.unwrap();
    assert!(error.contains("SHOPIFY_EVENTS_PROXY_TOKEN"), "{error}");
    let mut right = ClientConfig::new(proxy.address.clone());
    right.token = b"right".to_vec();
    let right = SocketClient::new(right).unwrap();
    let sent = send(&right, &event(2));
    assert!(right.flush(Duration::from_secs(5), &never()));
    assert_eq!(queue.bodies(), vec![sent]);
}

#[test]
fn full_queue_withholds_acks_until_the_queue_has_room() {
    let queue = TestQueue::new();
    queue.set_capacity(2048).unwrap();
    let proxy = Proxy::start(ServerConfig::new(queue.key()));
    let client = client(&proxy.address);
    let sent: Vec<_> = (0..200).map(|i| send(&client, &event(i))).collect();
    assert!(!client.flush(Duration::from_millis(300), &never()));
    assert!(proxy.metrics.queue_full_waits.get() >= 1);
    let before = client.snapshot().acked;
    assert!(before < 200);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 200 && Instant::now() < deadline {
        got.extend(queue.bodies());
        thread::sleep(Duration::from_millis(5));
    }
    assert!(client.flush(Duration::from_secs(5), &never()));
    assert_eq!(got, sent);
}

#[test]
fn events_buffered_while_the_proxy_is_down_are_delivered_after_it_restarts() {
    let queue = TestQueue::new();
    let dir = tempfile::tempdir().unwrap();
    let address = ProxyAddress::Unix(dir.path().join("proxy.sock"));
    let mut first = Proxy::start_on(address.clone(), ServerConfig::new(queue.key()));
    let client = client(&address);
    let mut sent = vec![send(&client, &event(1))];
    assert!(client.flush(Duration::from_secs(5), &never()));
    first.stop();
    sent.extend((2..=100).map(|i| send(&client, &event(i))));
    assert!(!client.flush(Duration::from_millis(200), &never()));
    let _second = Proxy::start_on(address, ServerConfig::new(queue.key()));
    assert!(client.flush(Duration::from_secs(10), &never()));
    assert_eq!(queue.bodies(), sent);
    assert!(client.snapshot().connects >= 2);
}

#[test]
fn full_buffer_refuses_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClientConfig::new(ProxyAddress::Unix(dir.path().join("nobody.sock")));
    config.max_buffered_events = 10;
    let client = SocketClient::new(config).unwrap();
    for i in 0..10 {
        send(&client, &event(i));
    }
    let mut buf = Vec::new();
    client.begin_frame(&mut buf);
    buf.extend_from_slice(&event(11));
    let err = client.send_frame(&mut buf).unwrap_err().to_string();
    assert!(
        err.contains("buffer is full") && err.contains("nobody.sock"),
        "{err}"
    );
}

fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met in 5 s");
        thread::sleep(Duration::from_millis(10));
    }
}
