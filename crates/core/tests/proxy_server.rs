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
use shopify_events_core::spool::{Discovery, ReaderOptions, SpoolOptions, SpoolReader};
use shopify_events_core::transport::FrameSink;
use testkit::events::unstamped;
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
        s.write_all(&hello()).unwrap();
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

fn hello() -> Vec<u8> {
    let mut hello = Vec::new();
    Hello {
        version: 1,
        token: Vec::new(),
    }
    .encode(&mut hello)
    .unwrap();
    hello
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
    assert_eq!(unstamped(queue.bodies()), vec![event(1), event(4)]);
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
    assert_eq!(unstamped(queue.bodies()).len(), 1);
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
    assert!(unstamped(queue.bodies()).is_empty());
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
    c.write_all(&hello()).unwrap();
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

/// An event of exactly `len` envelope bytes at most (the payload pads it),
/// numbered `i` like [`event`].
fn sized_event(i: usize, len: usize) -> Vec<u8> {
    let small = event(i);
    let pad = len.saturating_sub(small.len() + 1);
    let mut out = Vec::new();
    let id = EventId::generate(1_700_000_000_000_000 + i as i64);
    let payload = format!(
        "{{\"i\":{i},\"pad\":\"{}\"}}",
        "p".repeat(pad.saturating_sub(10))
    );
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
    out
}

/// A spool directory and options with small segments.
fn spool_options(dir: &std::path::Path, key: i32) -> SpoolOptions {
    SpoolOptions {
        segment_min: 64 * 1024,
        segment_max: 4 * 1024 * 1024,
        ..SpoolOptions::new(dir, key)
    }
}

/// Every record in the spool now, acknowledged when `ack`.
fn spooled(reader: &mut SpoolReader, ack: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..3 {
        reader.refresh().unwrap();
        while let Some(record) = reader.next_record() {
            out.push(reader.body(&record).to_vec());
            if ack {
                assert!(reader.ack(record.segment(), record.end()));
            }
        }
    }
    out
}

fn reader(dir: &std::path::Path, key: i32) -> SpoolReader {
    let options = ReaderOptions {
        discovery: Discovery::Poll,
        poll_interval: Duration::ZERO,
        liveness_interval: Duration::ZERO,
        ..ReaderOptions::default()
    };
    SpoolReader::open(dir, key, options).unwrap()
}

#[test]
fn connections_in_their_handshake_hold_no_served_slot() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.max_connections = 2;
    config.handshake_timeout = Duration::from_secs(30);
    let proxy = Proxy::start(config);
    let _silent: Vec<TcpStream> = (0..20).map(|_| proxy.tcp()).collect();
    wait_for(|| proxy.metrics.connections_accepted.get() == 20);
    let client = client(&proxy.address);
    send(&client, &event(1));
    assert!(
        client.flush(Duration::from_secs(3), &never()),
        "{:?}",
        client.snapshot().last_error
    );
    assert_eq!(unstamped(queue.bodies()), vec![event(1)]);
    assert_eq!(proxy.metrics.connections_refused.get(), 0);
}

#[test]
fn past_the_handshake_limit_the_oldest_silent_connection_makes_room() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.max_pending_handshakes = 4;
    config.handshake_timeout = Duration::from_secs(30);
    let proxy = Proxy::start(config);
    let mut silent: Vec<TcpStream> = (0..10).map(|_| proxy.tcp()).collect();
    wait_for(|| proxy.metrics.handshake_failures.get() == 6);
    // The six oldest were closed; the newest four wait.
    for s in &mut silent[..6] {
        let mut byte = [0u8; 1];
        assert_eq!(s.read(&mut byte).unwrap_or(0), 0);
    }
    let client = client(&proxy.address);
    send(&client, &event(1));
    assert!(client.flush(Duration::from_secs(3), &never()));
    assert_eq!(unstamped(queue.bodies()), vec![event(1)]);
}

#[test]
fn a_frame_trickled_in_byte_by_byte_is_closed_at_the_frame_timeout() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.frame_timeout = Duration::from_millis(600);
    let proxy = Proxy::start(config);
    let mut s = proxy.handshaken();
    let frame = data_frame(1, &event(1));
    let started = Instant::now();
    let mut closed_after = None;
    // One byte every 100 ms: each read is far inside the 60 s idle timeout.
    for byte in &frame {
        if s.write_all(std::slice::from_ref(byte)).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        if proxy.metrics.protocol_errors.get() == 1 {
            closed_after = Some(started.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let closed_after = closed_after.expect("the trickling client was never closed");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
    wait_for(|| proxy.metrics.protocol_errors.get() == 1);
    assert!(unstamped(queue.bodies()).is_empty());
}

#[test]
fn acks_arrive_while_a_client_pipelines_without_a_pause() {
    let queue = TestQueue::with_capacity(16 << 20);
    let proxy = Proxy::start(ServerConfig::new(queue.key()));
    let mut s = proxy.handshaken();
    // Same-sized frames, written so that every write ends in the middle of
    // a frame: the proxy's reads never end at a frame boundary.
    let frames: Vec<Vec<u8>> = (1..=3000u64)
        .map(|seq| data_frame(seq, &sized_event(seq as usize, 200)))
        .collect();
    let len = frames[0].len();
    assert!(frames.iter().all(|f| f.len() == len));
    let stream: Vec<u8> = frames.concat();
    let mut reads = s.try_clone().unwrap();
    let acks = thread::spawn(move || read_replies(&mut reads, |r| r.contains(&Reply::Ack(3000))).0);
    s.write_all(&stream[..len / 2]).unwrap();
    let mut at = len / 2;
    let last_half = stream.len() - (len - len / 2);
    while at < last_half {
        s.write_all(&stream[at..at + len]).unwrap();
        at += len;
        thread::sleep(Duration::from_micros(200));
    }
    // Everything but the last half frame is written: acks must have come.
    thread::sleep(Duration::from_millis(200));
    let during = proxy.metrics.events_enqueued.get();
    s.write_all(&stream[at..]).unwrap();
    let replies = acks.join().unwrap();
    let acked_before_end = replies
        .iter()
        .filter(|r| matches!(r, Reply::Ack(seq) if *seq < 3000))
        .count();
    assert!(
        acked_before_end >= 10,
        "{acked_before_end} acks before the stream paused at a boundary ({during} enqueued)"
    );
    assert_eq!(unstamped(queue.bodies()).len(), 3000);
}

#[test]
fn an_envelope_larger_than_the_queue_takes_is_spooled_and_acked() {
    let queue = TestQueue::new();
    let msgmax = sysvmq::message_size_limit() as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(queue.key());
    config.spool = Some(spool_options(dir.path(), queue.key()));
    let proxy = Proxy::start(config);
    let client = client(&proxy.address);
    let big = sized_event(1, msgmax + 10_000);
    let small = event(2);
    send(&client, &small);
    send(&client, &big);
    assert!(
        client.flush(Duration::from_secs(5), &never()),
        "{:?}",
        client.snapshot().last_error
    );
    assert_eq!(unstamped(queue.bodies()), vec![small]);
    // The queue is 0600: its spooled payloads are no wider.
    use std::os::unix::fs::PermissionsExt as _;
    let modes: Vec<u32> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().permissions().mode() & 0o777)
        .collect();
    assert!(
        !modes.is_empty() && modes.iter().all(|&m| m == 0o600),
        "modes {modes:?} (decimal)"
    );
    let mut reader = reader(dir.path(), queue.key());
    assert_eq!(unstamped(spooled(&mut reader, true)), vec![big]);
    assert_eq!(proxy.metrics.events_spooled.get(), 1);
    assert_eq!(client.snapshot().rejected, 0);
}

#[test]
fn a_full_queue_spools_and_acks_and_later_frames_follow_the_spool_until_it_is_drained() {
    let queue = TestQueue::new();
    queue.set_capacity(2048).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(queue.key());
    config.spool = Some(spool_options(dir.path(), queue.key()));
    let proxy = Proxy::start(config);
    let client = client(&proxy.address);
    for i in 0..200 {
        send(&client, &event(i));
    }
    // Acked without anyone reading the queue: the spool took the rest.
    assert!(client.flush(Duration::from_secs(5), &never()));
    let in_queue = unstamped(queue.bodies());
    let mut reader = reader(dir.path(), queue.key());
    let in_spool = unstamped(spooled(&mut reader, false));
    assert!(!in_queue.is_empty() && !in_spool.is_empty());
    let mut all = in_queue.clone();
    all.extend(in_spool.iter().cloned());
    assert_eq!(all, (0..200).map(event).collect::<Vec<_>>());

    // The queue has room again, but the spool is not drained: the next
    // event must not overtake the spooled ones through the queue.
    send(&client, &event(200));
    assert!(client.flush(Duration::from_secs(5), &never()));
    assert!(unstamped(queue.bodies()).is_empty());
    // The drain acknowledges everything spooled; the proxy seals its
    // segment and goes back to the queue.
    let rest = unstamped(spooled(&mut reader, true));
    assert_eq!(rest.last(), Some(&event(200)));
    send(&client, &event(201));
    assert!(client.flush(Duration::from_secs(5), &never()));
    assert_eq!(unstamped(queue.bodies()), vec![event(201)]);
}

#[test]
fn a_large_envelope_the_spool_cannot_take_is_refused_not_held() {
    let queue = TestQueue::new();
    let msgmax = sysvmq::message_size_limit() as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(queue.key());
    // The directory is gone by the time the event comes.
    config.spool = Some(spool_options(&dir.path().join("missing"), queue.key()));
    let proxy = Proxy::start(config);
    let client = client(&proxy.address);
    send(&client, &sized_event(1, msgmax + 10));
    send(&client, &event(2));
    assert!(client.flush(Duration::from_secs(5), &never()));
    let snapshot = client.snapshot();
    assert_eq!(snapshot.rejected, 1);
    assert!(
        snapshot
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("missing"),
        "{:?}",
        snapshot.last_error
    );
    assert_eq!(unstamped(queue.bodies()), vec![event(2)]);
}

#[test]
fn an_oversized_first_frame_is_dropped_at_the_handshake_without_reconnects_or_resends() {
    let queue = TestQueue::new();
    let mut config = ServerConfig::new(queue.key());
    config.max_envelope = Some(1000);
    let proxy = Proxy::start(config);
    // Buffered before the first connection: the limit is not known yet.
    let client = client(&proxy.address);
    send(&client, &sized_event(0, 5000));
    for i in 1..=10 {
        send(&client, &event(i));
    }
    assert!(client.flush(Duration::from_secs(10), &never()));
    let stats = client.snapshot();
    assert_eq!(
        (stats.connects, stats.resent, stats.rejected, stats.acked),
        (1, 0, 1, 10),
        "{stats:?}"
    );
    assert!(stats.last_error.unwrap().contains("1000 bytes"));
    assert_eq!(
        unstamped(queue.bodies()),
        (1..=10).map(event).collect::<Vec<_>>()
    );
}

#[test]
fn replies_that_arrive_with_the_proxys_close_are_applied_before_reconnecting() {
    // A proxy that acks four frames, nacks the fifth and hangs up at once,
    // all in one write; then acks whatever a second connection brings.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = ProxyAddress::Tcp(listener.local_addr().unwrap().to_string());
    let server = thread::spawn(move || {
        let mut connections = 0;
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            connections += 1;
            s.set_nonblocking(false).unwrap();
            let mut hello = [0u8; 8];
            s.read_exact(&mut hello).unwrap();
            let mut out = Vec::new();
            Welcome {
                version: 1,
                status: Status::Ok,
                max_envelope: 1 << 20,
                text: String::new(),
            }
            .encode(&mut out);
            s.write_all(&out).unwrap();
            let mut last = 0;
            for _ in 0..5 {
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_err() {
                    break;
                }
                let header = DataHeader::decode(&head);
                let mut body = vec![0u8; header.envelope_len()];
                s.read_exact(&mut body).unwrap();
                last = header.seq;
            }
            out.clear();
            if connections == 1 {
                Reply::Ack(last - 1).encode(&mut out);
                Reply::Nack {
                    seq: last,
                    reason: NackReason::Malformed,
                    text: "refused".into(),
                }
                .encode(&mut out);
            } else {
                Reply::Ack(last).encode(&mut out);
            }
            s.write_all(&out).unwrap();
            drop(s);
        }
        connections
    });
    let client = client(&address);
    for i in 1..=5 {
        send(&client, &event(i));
    }
    assert!(client.flush(Duration::from_secs(3), &never()));
    let stats = client.snapshot();
    assert_eq!(
        (stats.acked, stats.rejected, stats.resent),
        (4, 1, 0),
        "{stats:?}"
    );
    assert_eq!(
        server.join().unwrap(),
        1,
        "the client reconnected and resent"
    );
}
