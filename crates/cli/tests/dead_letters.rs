//! `shopify-events dead-letters` as an operator runs it: on files written by
//! the drain's own dead-letter writer (damaged on purpose), and end to end
//! with a running drain that dead-letters an event and takes a replayed
//! one. Queues are fresh and removed on drop.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use shopify_events_core::clock::now_micros;
use shopify_events_core::defaults;
use shopify_events_core::drain::DeadLetters;
use shopify_events_core::envelope::{encode, Envelope};
use shopify_events_core::event_id::EventId;
use shopify_events_core::state_dir::StateDir;
use shopify_events_core::transport::{FrameSink, SysvEmitter};
use testkit::drain::DrainSpec;
use testkit::queue::TestQueue;
use testkit::wait::{serial, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("dead-letters")
        .args(args)
        .env_remove("SHOPIFY_EVENTS_STATE_DIR")
        .env_remove("SHOPIFY_EVENTS_QUEUE_KEY")
        .output()
        .expect("run shopify-events dead-letters")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn envelope(topic: &str, payload: &[u8], ago_us: i64) -> Vec<u8> {
    let time = now_micros() - ago_us;
    let mut out = Vec::new();
    encode(
        &mut out,
        EventId::generate(time),
        time,
        topic,
        Some(b"k"),
        &[("h", b"v")],
        payload,
    )
    .expect("encode");
    out
}

/// Dead letters of `envelopes` in `dir`'s dead-letter file, written by the
/// drain's writer; returns the file.
fn write_dead_letters(dir: &Path, envelopes: &[Vec<u8>]) -> std::path::PathBuf {
    let state = StateDir::new(dir, 1);
    let (mut writer, error) = DeadLetters::open(
        &state,
        defaults::DEAD_LETTER_MAX_BYTES,
        defaults::DEAD_LETTER_FILES,
    );
    assert!(error.is_none(), "open: {error:?}");
    for bytes in envelopes {
        let event = Envelope::decode(bytes).ok();
        writer
            .write("Broker: Unknown topic or partition", bytes, event.as_ref())
            .map_err(|e| e.source)
            .expect("write");
    }
    state.dead_letters()
}

#[test]
fn list_and_show_print_every_dead_letter_and_report_damage_without_failing() {
    let dir = tempfile::tempdir().expect("dir");
    let text_event = envelope("orders.typo", b"order 1234\nline two", 0);
    let binary_event = envelope("images", &[0, 159, 146, 150], 0);
    let file = write_dead_letters(dir.path(), &[text_event.clone(), binary_event.clone()]);
    // A torn line: the writer killed mid-append.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open");
    f.write_all(b"{\"envelope_base64\":\"U0UB").expect("append");
    drop(f);
    let file_arg = file.to_str().expect("utf-8 path");

    let out = cli(&["list", file_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].contains("EVENT ID") && lines[0].contains("REASON"),
        "{stdout}"
    );
    let first = Envelope::decode(&text_event).expect("decode");
    assert!(lines[1].contains(&first.id.to_string()), "{stdout}");
    assert!(
        lines[1].contains("orders.typo") && lines[1].contains("Unknown topic"),
        "{stdout}"
    );
    assert!(lines[2].contains("images"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{file_arg}:3 (byte ")), "{stderr}");
    assert!(stderr.contains("torn last line"), "{stderr}");

    let out = cli(&["show", file_arg, "--line", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for needle in [
        "orders.typo",
        "emitted at",
        "key         \"k\"",
        "h: \"v\"",
        "  order 1234\n  line two",
    ] {
        assert!(shown.contains(needle), "{needle:?} missing from:\n{shown}");
    }
    let second = Envelope::decode(&binary_event)
        .expect("decode")
        .id
        .to_string();
    let out = cli(&["show", file_arg, "--id", &second, "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["payload"]["base64"], "AJ+Slg==");
    assert_eq!(json["topic"], "images");

    let out = cli(&["show", file_arg]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("holds 2 dead letters: choose one with --line N"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["show", file_arg, "--line", "3"]);
    assert!(
        text(&out.stderr).contains("no dead letter on line 3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_running_drain_dead_letters_a_malformed_event_and_takes_a_replayed_one_on_its_new_topic() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("dir");
    let state_dir = dir.path().join("state");
    let queue = TestQueue::new();
    let spec = DrainSpec::new(BIN, queue.key(), &state_dir, dir.path());
    let mut drain = spec.spawn(0);

    // Not an envelope: the drain can never deliver it.
    let emitter = SysvEmitter::new(queue.key(), 0o600);
    let mut frame = Vec::new();
    emitter.begin_frame(&mut frame);
    frame.extend_from_slice(b"SE\x01 this is not an envelope at all");
    emitter.send_frame(&mut frame).expect("send");
    let dead = StateDir::new(&state_dir, queue.key()).dead_letters();
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read(&dead)
            .is_ok_and(|b| !b.is_empty())),
        "no dead letter written\n{}",
        drain.log_text()
    );
    let state_arg = state_dir.to_str().expect("utf-8");
    let out = cli(&["list", "--state-dir", state_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("malformed envelope"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(&[
        "replay",
        "--state-dir",
        state_arg,
        "--queue-key",
        &queue.hex(),
    ]);
    assert!(!out.status.success(), "a malformed envelope was replayed");
    assert!(
        text(&out.stderr).contains("does not decode"),
        "{}",
        text(&out.stderr)
    );

    // An event dead-lettered an hour ago for a topic that does not exist,
    // replayed to the right one.
    let lost = envelope("orders.typo", b"{\"id\":1}", 3_600_000_000);
    let original = Envelope::decode(&lost).expect("decode");
    let file = write_dead_letters(&dir.path().join("elsewhere"), std::slice::from_ref(&lost));
    let out = cli(&[
        "replay",
        file.to_str().expect("utf-8"),
        "--topic",
        "orders.created",
        "--queue-key",
        &queue.hex(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!(
        "replayed line 1: {} to orders.created",
        original.id
    )));
    let delivered = || {
        drain
            .stdout_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["id"] == original.id.to_string())
    };
    assert!(
        wait_until(Duration::from_secs(20), || delivered().is_some()),
        "replayed event not delivered\n{}",
        drain.log_text()
    );
    let event = delivered().expect("delivered");
    assert_eq!(event["topic"], "orders.created");
    assert_eq!(event["timestamp_ms"], original.time_ms());
    assert_eq!(event["key"], "k");
    drain.assert_running();
}
