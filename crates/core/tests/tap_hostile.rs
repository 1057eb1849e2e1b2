//! The tap's server against clients that try to make the drain pay: a
//! request that makes every delivered event cost hundreds of glob matches
//! in the drain loop, and a request dribbled in a byte at a time to hold a
//! client slot past the request deadline.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use shopify_events_core::defaults::TAP_MAX_GLOBS;
use shopify_events_core::state_dir::StateDir;
use shopify_events_core::tap::{Tap, TapError, TopicFilter};

fn serve() -> (tempfile::TempDir, StateDir, Tap) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = StateDir::new(dir.path(), 0x5345_5601);
    let tap = Tap::serve(&state);
    assert!(state.tap_socket().exists());
    (dir, state, tap)
}

fn first_line(stream: &UnixStream) -> String {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("answer");
    line
}

#[test]
fn a_request_with_more_globs_than_the_drain_matches_per_event_is_refused() {
    let (_dir, state, tap) = serve();
    // 500 globs fit in one request line; the drain loop would try each of
    // them against every delivered event's topic, for each such client.
    let globs: Vec<String> = (0..500).map(|i| format!("\"x{i}\"")).collect();
    let request = format!("{{\"tap\":1,\"topics\":[{}]}}\n", globs.join(","));
    assert!(request.len() < 4096, "{}", request.len());
    let stream = UnixStream::connect(state.tap_socket()).expect("connect");
    (&stream).write_all(request.as_bytes()).expect("request");
    let answer = first_line(&stream);
    assert!(answer.starts_with("{\"tap\":\"refused\""), "{answer}");
    assert!(answer.contains("500"), "{answer}");
    assert!(answer.contains(&TAP_MAX_GLOBS.to_string()), "{answer}");
    assert_eq!(tap.hub().clients(), 0);
}

#[test]
fn the_client_refuses_more_globs_than_a_drain_serves_before_connecting() {
    let globs: Vec<String> = (0..=TAP_MAX_GLOBS).map(|i| format!("t{i}")).collect();
    match TopicFilter::parse(&globs) {
        Err(e @ TapError::TooManyGlobs { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&(TAP_MAX_GLOBS + 1).to_string()),
                "names the count: {text}"
            );
        }
        other => panic!("expected too many globs, got {other:?}"),
    }
    TopicFilter::parse(&globs[..TAP_MAX_GLOBS]).expect("the most a drain serves");
}
#[test]
fn a_request_dribbled_a_byte_at_a_time_is_cut_off_at_the_request_deadline() {
    let (_dir, state, _tap) = serve();
    let stream = UnixStream::connect(state.tap_socket()).expect("connect");
    let started = Instant::now();
    // A valid request, one byte every 400 ms: each read sees a byte well
    // within its own timeout, the whole line takes about 9 s.
    let writer = stream.try_clone().expect("clone");
    let dribble = std::thread::spawn(move || {
        for byte in b"{\"tap\":1,\"topics\":[]}\n" {
            if (&writer).write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let answer = first_line(&stream);
    let took = started.elapsed();
    assert!(answer.starts_with("{\"tap\":\"refused\""), "{answer}");
    assert!(
        took < Duration::from_secs(4),
        "the drain held the slot for {took:?}, past its 2 s request deadline"
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
    dribble.join().expect("dribble");
}
