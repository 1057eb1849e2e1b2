//! The tap's server and client in one process: the protocol's answers
//! (ready, refused, missed, end), the end of every tap when the drain's
//! handle drops, and a drain whose socket cannot be bound. The whole path
//! through a real drain is `crates/cli/tests/tap.rs`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use shopify_events_core::defaults::TAP_MAX_CLIENTS;
use shopify_events_core::envelope::{self, Envelope};
use shopify_events_core::event_id::EventId;
use shopify_events_core::sink::write_json_line;
use shopify_events_core::state_dir::StateDir;
use shopify_events_core::tap::{Tap, TapClient, TapError, TapLine, TopicFilter};

fn envelope(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    envelope::encode(
        &mut out,
        EventId::generate(1),
        1_000,
        topic,
        Some(b"k"),
        &[("h", b"v")],
        payload,
    )
    .expect("encode");
    out
}

fn serve() -> (tempfile::TempDir, StateDir, Tap) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = StateDir::new(dir.path(), 0x5345_5600);
    let tap = Tap::serve(&state);
    assert!(state.tap_socket().exists());
    (dir, state, tap)
}

/// Waits until the hub counts `n` clients (they subscribe on their own thread).
fn wait_clients(tap: &Tap, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tap.hub().clients() != n {
        assert!(
            Instant::now() < deadline,
            "{} clients, not {n}",
            tap.hub().clients()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A raw request and the drain's first answer.
fn answer(state: &StateDir, request: &[u8]) -> String {
    let stream = UnixStream::connect(state.tap_socket()).expect("connect");
    (&stream).write_all(request).expect("request");
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .expect("answer");
    line
}

#[test]
fn a_client_gets_its_topics_as_the_stdout_sink_prints_them_then_the_end() {
    let (_dir, state, tap) = serve();
    let filter = TopicFilter::parse(&["orders.*"]).expect("glob");
    let mut client = TapClient::connect(&state.tap_socket(), &filter).expect("connect");
    assert_eq!(client.queue(), "0x53455600");
    assert_eq!(client.drain_pid(), std::process::id());
    assert_eq!(client.topics(), ["orders.*"]);
    wait_clients(&tap, 1);
    let events = [
        envelope("orders.created", b"{\"id\":1}"),
        envelope("users.created", b"no"),
        envelope("orders.paid", &[0xff, 0x00]),
    ];
    for e in &events {
        tap.delivered(|| Some(e.as_slice()));
    }
    drop(tap);
    let mut expected = Vec::new();
    for e in [&events[0], &events[2]] {
        let mut line = Vec::new();
        write_json_line(&mut line, &Envelope::decode(e).expect("decode")).expect("line");
        expected.push(line);
    }
    for line in expected {
        match client.next_line().expect("line") {
            Some(TapLine::Event(got)) => assert_eq!(got, line.as_slice()),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    match client.next_line().expect("end") {
        Some(TapLine::End { reason }) => assert_eq!(reason, "the drain stopped"),
        other => panic!("expected the end, got {other:?}"),
    }
    assert!(!state.tap_socket().exists(), "the socket is removed");
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let (_dir, state, _tap) = serve();
    let version = answer(&state, b"{\"tap\":2,\"topics\":[]}\n");
    assert!(version.starts_with("{\"tap\":\"refused\""), "{version}");
    assert!(version.contains("protocol version 2"), "{version}");
    let glob = answer(&state, b"{\"tap\":1,\"topics\":[\"orders/*\"]}\n");
    assert!(glob.contains("not a topic glob"), "{glob}");
    let junk = answer(&state, b"GET / HTTP/1.1\n");
    assert!(junk.contains("not a tap request"), "{junk}");
}

#[test]
fn more_clients_than_the_drain_serves_are_refused() {
    let (_dir, state, tap) = serve();
    let all = TopicFilter::default();
    let clients: Vec<TapClient> = (0..TAP_MAX_CLIENTS)
        .map(|_| TapClient::connect(&state.tap_socket(), &all).expect("connect"))
        .collect();
    wait_clients(&tap, TAP_MAX_CLIENTS);
    match TapClient::connect(&state.tap_socket(), &all) {
        Err(TapError::Refused { reason }) => {
            assert!(reason.contains("clients are tapping already"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(clients);
    wait_clients(&tap, 0);
    TapClient::connect(&state.tap_socket(), &all).expect("room again once they left");
}

#[test]
fn a_slow_client_is_told_what_it_missed_and_a_stuck_one_does_not_hold_up_the_stop() {
    let (_dir, state, tap) = serve();
    let stuck = TapClient::connect(&state.tap_socket(), &TopicFilter::default()).expect("connect");
    wait_clients(&tap, 1);
    // 20 MB of envelopes: far past the client's buffer and its socket's.
    let e = envelope("load", &[b'x'; 10_000]);
    for _ in 0..2000 {
        tap.delivered(|| Some(e.as_slice()));
    }
    let start = Instant::now();
    drop(tap);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the drain's stop waited {took:?} for a client that does not read"
    );
    drop(stuck);
}

#[test]
fn missed_events_are_counted_before_the_next_line_and_at_the_end() {
    let (_dir, state, tap) = serve();
    let mut client =
        TapClient::connect(&state.tap_socket(), &TopicFilter::default()).expect("connect");
    wait_clients(&tap, 1);
    let e = envelope("load", &[b'x'; 10_000]);
    let n = 500;
    for _ in 0..n {
        tap.delivered(|| Some(e.as_slice()));
    }
    // Read everything the drain held, then one more event and the end.
    client
        .set_wait(Some(Duration::from_millis(300)))
        .expect("wait");
    let (mut shown, mut missed) = (0, 0);
    loop {
        match client.next_line().expect("line") {
            Some(TapLine::Event(_)) => shown += 1,
            Some(TapLine::Missed { events, .. }) => missed += events,
            Some(TapLine::End { .. }) => panic!("ended early"),
            None => break,
        }
    }
    tap.delivered(|| Some(e.as_slice()));
    tap.delivered(|| None);
    drop(tap);
    let last = loop {
        match client.next_line().expect("line") {
            Some(TapLine::Event(_)) => shown += 1,
            Some(TapLine::Missed { events, .. }) => missed += events,
            Some(TapLine::End { reason }) => break reason,
            None => {}
        }
    };
    assert!(missed > 0, "the client fell behind");
    assert_eq!(shown + missed, n + 1);
    assert_eq!(last, "the drain stopped");
}

#[test]
fn a_drain_whose_socket_cannot_be_bound_runs_without_a_tap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = dir.path().join("d".repeat(120));
    std::fs::create_dir(&long).expect("dir");
    let state = StateDir::new(&long, 1);
    let tap = Tap::serve(&state);
    assert!(!state.tap_socket().exists());
    let e = envelope("t", b"x");
    tap.delivered(|| Some(e.as_slice()));
    assert_eq!(tap.hub().clients(), 0);
}
