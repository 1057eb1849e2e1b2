//! Hostile clients and a hostile host against the real proxy binary (issue
//! 9, items 3, 4 and 7): a flood of silent connections, a descriptor limit
//! of 256, frames announced and never sent, the socket's mode under a zero
//! umask, and the token kept out of `/proc`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use shopify_events_core::proxy::wire::frame::{DataHeader, Hello, Status, Welcome};
use shopify_events_core::proxy::{ClientConfig, ProxyAddress, SocketClient};
use shopify_events_core::transport::FrameSink;
use std::sync::atomic::AtomicBool;
use testkit::events::unstamped;
use testkit::procfs::{mib, Mem};
use testkit::proxy::{ProxyProcess, ProxySpec};
use testkit::queue::TestQueue;
use testkit::wait::{serial, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");

fn event(i: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let time = 1_700_000_000_000_000 + i as i64;
    let payload = format!("{{\"i\":{i}}}");
    envelope::encode(
        &mut out,
        EventId::generate(time),
        time,
        "proxy.hostile",
        None,
        &[],
        payload.as_bytes(),
    )
    .unwrap();
    // Deterministic: the id's random bits become `i`, so a test can rebuild
    // the bytes it expects.
    out[16..24].copy_from_slice(&(0x8000_0000_0000_0000u64 | i as u64).to_be_bytes());
    let end = out.len() - 4;
    let crc = crc32c::crc32c(&out[..end]);
    out[end..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn tcp(proxy: &ProxyProcess) -> TcpStream {
    let ProxyAddress::Tcp(addr) = proxy.address() else {
        panic!("not tcp")
    };
    let s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn hello(token: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Hello {
        version: 1,
        token: token.to_vec(),
    }
    .encode(&mut out)
    .unwrap();
    out
}

/// Sends a Hello and reads the reply; `None` if the connection ended first.
fn handshake(s: &mut TcpStream) -> Option<Welcome> {
    s.write_all(&hello(b"")).ok()?;
    let mut buf = Vec::new();
    loop {
        if let Some((w, _)) = Welcome::decode(&buf).unwrap() {
            return Some(w);
        }
        let mut chunk = [0u8; 256];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Delivers one event through the socket transport's own client.
fn deliver(address: &ProxyAddress, token: &[u8], i: usize) -> Result<(), String> {
    deliver_within(address, token, i, Duration::from_secs(10))
}

fn deliver_within(
    address: &ProxyAddress,
    token: &[u8],
    i: usize,
    timeout: Duration,
) -> Result<(), String> {
    let mut config = ClientConfig::new(address.clone());
    config.token = token.to_vec();
    let client = SocketClient::new(config).unwrap();
    let mut frame = Vec::new();
    client.begin_frame(&mut frame);
    frame.extend_from_slice(&event(i));
    client.send_frame(&mut frame).map_err(|e| e.to_string())?;
    if client.flush(timeout, &AtomicBool::new(false)) {
        Ok(())
    } else {
        Err(format!("{:?}", client.snapshot().last_error))
    }
}

/// Raises this test process's descriptor limit to `n` if the hard limit
/// allows; false if it does not.
fn allow_descriptors(n: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_max < n {
            return false;
        }
        if lim.rlim_cur < n {
            lim.rlim_cur = n;
            return libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0;
        }
    }
    true
}

#[test]
fn a_thousand_silent_connections_do_not_keep_a_real_client_out() {
    let _serial = serial();
    if !allow_descriptors(2048) {
        eprintln!(
            "skipped: the hard descriptor limit is below 2048, too few for 1,000 connections"
        );
        return;
    }
    let queue = TestQueue::new();
    let dir = tempfile::tempdir().unwrap();
    // The limit a systemd unit gets unless it says otherwise.
    let spec = ProxySpec::new(BIN, queue.key(), dir.path())
        .nofile(1024)
        .args(["--no-spool"]);
    let mut proxy = spec.spawn(0);
    let silent: Vec<TcpStream> = (0..1000).map(|_| tcp(&proxy)).collect();
    sleep(Duration::from_millis(500));
    let started = Instant::now();
    deliver(proxy.address(), b"", 1).expect("the real client delivers");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(unstamped(queue.bodies()), vec![event(1)]);
    proxy.assert_running();
    let log = proxy.log_text();
    assert!(!log.contains("Too many open files"), "{log}");
    drop(silent);
}

#[test]
fn under_a_descriptor_limit_of_256_clients_past_the_budget_get_busy() {
    let _serial = serial();
    let queue = TestQueue::new();
    let dir = tempfile::tempdir().unwrap();
    let spec = ProxySpec::new(BIN, queue.key(), dir.path())
        .nofile(256)
        .args(["--no-spool"]);
    let mut proxy = spec.spawn(0);
    let log = proxy.log_text();
    assert!(log.contains("descriptor limit is 256"), "{log}");
    let mut held = Vec::new();
    let (mut ok, mut busy) = (0, 0);
    for _ in 0..300 {
        let mut s = tcp(&proxy);
        match handshake(&mut s) {
            Some(w) if w.status == Status::Ok => ok += 1,
            Some(w) if w.status == Status::Busy => busy += 1,
            other => panic!(
                "after {ok} served and {busy} busy: {other:?}\n{}",
                proxy.log_text()
            ),
        }
        held.push(s);
    }
    assert!(ok > 100 && busy > 0, "{ok} served, {busy} busy");
    proxy.assert_running();
    let log = proxy.log_text();
    assert!(!log.contains("Too many open files"), "{log}");
    drop(held);
    assert!(
        wait_until(Duration::from_secs(10), || deliver(proxy.address(), b"", 7)
            .is_ok()),
        "{}",
        proxy.log_text()
    );
    assert!(unstamped(queue.bodies()).contains(&event(7)));
}

#[test]
fn frames_announced_and_never_sent_cost_no_memory() {
    let _serial = serial();
    if !allow_descriptors(1024) {
        eprintln!("skipped: the hard descriptor limit is below 1024");
        return;
    }
    let queue = TestQueue::new();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    // With a spool the proxy takes envelopes of up to 1 MiB.
    let spec =
        ProxySpec::new(BIN, queue.key(), dir.path()).args(["--spool-dir", spool.to_str().unwrap()]);
    let mut proxy = spec.spawn(0);
    let mut warm = tcp(&proxy);
    assert_eq!(handshake(&mut warm).unwrap().status, Status::Ok);
    sleep(Duration::from_millis(200));
    let before = Mem::read(proxy.pid()).unwrap();
    let mut held = Vec::new();
    for seq in 0..400u64 {
        let mut s = tcp(&proxy);
        let w = handshake(&mut s).unwrap();
        assert_eq!(w.status, Status::Ok);
        assert!(w.max_envelope >= 1_000_000, "{w:?}");
        let mut header = [0u8; 12];
        DataHeader::write(&mut header, 1_000_000, seq + 1);
        s.write_all(&header).unwrap();
        // A few bytes of the body, then nothing.
        s.write_all(&event(0)[..16]).unwrap();
        held.push(s);
    }
    sleep(Duration::from_millis(500));
    let after = Mem::read(proxy.pid()).unwrap();
    let grown = after.rss_anon.saturating_sub(before.rss_anon);
    assert!(
        grown < 100 * 1024,
        "400 frames announcing 1 MB each grew the proxy by {:.1} MiB",
        mib(grown)
    );
    proxy.assert_running();
    drop(held);
}

#[test]
fn the_unix_socket_gets_its_mode_whatever_the_umask() {
    let _serial = serial();
    let queue = TestQueue::new();
    let dir = tempfile::tempdir().unwrap();
    for (flags, expected) in [(vec![], 0o660), (vec!["--socket-mode", "600"], 0o600)] {
        let path = dir.path().join("proxy.sock");
        let mut args = vec!["--no-spool"];
        args.extend(flags);
        let spec = ProxySpec::new(BIN, queue.key(), dir.path())
            .listen(ProxyAddress::Unix(path.clone()))
            .umask(0)
            .args(args);
        let mut proxy = spec.spawn(0);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected, "{:o}", mode);
        deliver(proxy.address(), b"", 3).unwrap();
        proxy.kill9();
        let _ = std::fs::remove_file(&path);
    }
    assert_eq!(unstamped(queue.bodies()), vec![event(3), event(3)]);
}

#[test]
fn a_token_file_keeps_the_token_out_of_the_process_list() {
    let _serial = serial();
    let queue = TestQueue::new();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token-value\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let spec = ProxySpec::new(BIN, queue.key(), dir.path()).args([
        "--no-spool",
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    let mut proxy = spec.spawn(0);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", proxy.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("s3cret"));
    assert!(proxy.log_text().contains("token required"));
    deliver(proxy.address(), b"s3cret-token-value", 1).unwrap();
    let wrong = deliver_within(proxy.address(), b"wrong", 2, Duration::from_secs(1)).unwrap_err();
    assert!(wrong.contains("token"), "{wrong}");
    assert_eq!(unstamped(queue.bodies()), vec![event(1)]);
    proxy.assert_running();
}
