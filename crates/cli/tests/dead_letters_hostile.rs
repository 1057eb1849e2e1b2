//! `shopify-events dead-letters` on a dead-letter file far larger than the
//! drain ever writes (it rotates at 64 MiB): `list` and `show` read it line
//! by line, in memory bounded by the longest line, not by the file.

use std::io::{BufWriter, Write as _};
use std::process::{Command, Stdio};

use base64::Engine as _;
use shopify_events_core::envelope::encode;
use shopify_events_core::event_id::EventId;

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");
/// Lines of 1 MiB envelopes (1.4 MiB of base64 each): 280 MiB of file.
const LINES: usize = 200;
/// Peak memory allowed to a command reading that file: a few lines' worth.
const MAX_RSS_KIB: i64 = 64 << 10;

/// Runs `shopify-events dead-letters ARGS` and returns (exit code, stdout
/// bytes, peak resident memory in KiB).
#[expect(
    clippy::zombie_processes,
    reason = "reaped with wait4, which gives its rusage; std's Child::wait does not"
)]
fn run(args: &[&str]) -> (i32, usize, i64) {
    let child = Command::new(BIN)
        .arg("dead-letters")
        .args(args)
        .env_remove("SHOPIFY_EVENTS_STATE_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    let reader = std::thread::spawn(move || {
        std::io::copy(&mut stdout, &mut std::io::sink()).expect("read stdout") as usize
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child, valid pointers; std's Child is not waited on.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let out = reader.join().expect("reader");
    (libc::WEXITSTATUS(status), out, usage.ru_maxrss)
}

#[test]
fn list_and_show_of_a_huge_file_run_in_memory_bounded_by_a_line() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("dead-letters.jsonl");
    let mut envelope = Vec::new();
    encode(
        &mut envelope,
        EventId::generate(1_000),
        1_000,
        "orders.created",
        None,
        &[],
        &[0xa5; 1 << 20],
    )
    .expect("encode");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&envelope);
    let mut file = BufWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..LINES {
        writeln!(
            file,
            "{{\"envelope_base64\":\"{b64}\",\"event_id\":\"id-{i}\",\"reason\":\"r\"}}"
        )
        .expect("write");
    }
    file.flush().expect("flush");
    drop(file);
    let file = path.to_str().expect("utf-8 path");

    let (code, out, rss) = run(&["list", file]);
    assert_eq!(code, 0);
    assert!(out > LINES * 20, "a line per dead letter: {out} bytes");
    assert!(
        rss < MAX_RSS_KIB,
        "list of a {} MiB file peaked at {} MiB",
        std::fs::metadata(&path).expect("meta").len() >> 20,
        rss >> 10
    );

    let last = LINES.to_string();
    let (code, out, rss) = run(&["show", file, "--line", &last]);
    assert_eq!(code, 0);
    assert!(out > 1 << 20, "the payload is shown: {out} bytes");
    assert!(rss < MAX_RSS_KIB, "show peaked at {} MiB", rss >> 10);
}

/// `show --id ID` on a file whose line claims one id while its envelope
/// carries another: `list` shows the envelope's, so that is the one `--id`
/// must find, and the line's claim must not pick a different event.
#[test]
fn id_selection_goes_by_the_envelope_not_the_lines_claim() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("dead-letters.jsonl");
    let real = EventId::generate(1_000);
    let claimed = EventId::generate(2_000);
    let mut envelope = Vec::new();
    encode(&mut envelope, real, 1_000, "t", None, &[], b"{}").expect("encode");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&envelope);
    std::fs::write(
        &path,
        format!("{{\"envelope_base64\":\"{b64}\",\"event_id\":\"{claimed}\"}}\n"),
    )
    .expect("write");
    let file = path.to_str().expect("utf-8 path");
    let show = |id: &str| {
        Command::new(BIN)
            .args(["dead-letters", "show", file, "--id", id])
            .env_remove("SHOPIFY_EVENTS_STATE_DIR")
            .output()
            .expect("run")
    };
    let found = show(&real.to_string());
    assert!(
        found.status.success(),
        "the id list shows is not found: {}",
        String::from_utf8_lossy(&found.stderr)
    );
    assert!(String::from_utf8_lossy(&found.stdout).contains(&real.to_string()));
    let claim = show(&claimed.to_string());
    assert!(
        !claim.status.success(),
        "the line's claimed id picked an event whose id is {real}"
    );
}
