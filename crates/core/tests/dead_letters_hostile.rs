//! Dead-letter files written by someone hostile (or by an app that puts
//! anything into a header name): what `list` and `show` print must not
//! drive the operator's terminal, and what the reader keeps must be every
//! whole dead letter in the file.

use base64::Engine as _;
use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use shopify_events_core::ops::dead_letters::{read_dead_letters, DeadLetter, Record};

fn envelope_with_header(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    envelope::encode(
        &mut out,
        EventId::generate(1_000),
        1_000,
        "orders.created",
        Some(b"k"),
        &[(name, b"v")],
        b"{}",
    )
    .expect("encode");
    out
}

fn line(envelope: &[u8], extra: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(envelope);
    format!("{{\"envelope_base64\":\"{b64}\"{extra}}}")
}

fn letters(text: &str) -> (Vec<DeadLetter>, usize) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("dead-letters.jsonl");
    std::fs::write(&path, text).expect("write");
    let mut letters = Vec::new();
    let mut damaged = 0;
    for record in read_dead_letters(&path).expect("read") {
        match record {
            Record::Letter(l) => letters.push(l),
            Record::Damaged(_) => damaged += 1,
        }
    }
    (letters, damaged)
}

/// No byte that a terminal takes as a command: no C0 control but the
/// newline and the tab, no DEL, no C1 control.
fn assert_inert(what: &str, text: &str) {
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        panic!("{what} prints control character {c:?} to the terminal: {text:?}");
    }
}

#[test]
fn list_and_show_print_no_terminal_escapes_from_the_file_or_the_envelope() {
    let escape = "\u{1b}]2;owned\u{7}\u{1b}[2J\u{9b}31m";
    // Fields of the line itself (shown as written when the envelope does
    // not decode) ...
    let garbled = line(
        b"not an envelope",
        &format!(
            ",\"time\":{t},\"reason\":{t},\"event_id\":{t},\"topic\":{t}",
            t = serde_json::to_string(escape).expect("json")
        ),
    );
    // ... and a header name, which an app may set to anything UTF-8.
    let header = line(&envelope_with_header(escape), ",\"reason\":\"r\"");
    let (letters, damaged) = letters(&format!("{garbled}\n{header}\n"));
    assert_eq!((letters.len(), damaged), (2, 0));
    for letter in &letters {
        let view = letter.view();
        assert_inert("list", &view.list_line());
        assert_inert("show", &view.to_string());
    }
    let shown = letters[0].view().to_string();
    assert!(
        shown.contains(r"\u{1b}]2;owned"),
        "the bytes are shown escaped, not dropped: {shown}"
    );
}

#[test]
fn whole_dead_letters_glued_on_one_line_are_all_kept() {
    let (a, b, c) = (
        envelope_with_header("a"),
        envelope_with_header("b"),
        envelope_with_header("c"),
    );
    let (la, lb, lc) = (line(&a, ""), line(&b, ""), line(&c, ""));
    // A line that lost its newline (a file written by another tool, or
    // files concatenated with `cat`) and the next one appended to it.
    let (glued, damaged) = letters(&format!("{la}{lb}\n{lc}\n"));
    assert_eq!(damaged, 0, "nothing is garbage here");
    let got: Vec<&[u8]> = glued.iter().map(|l| l.envelope.as_slice()).collect();
    assert_eq!(
        got,
        [&a[..], &b[..], &c[..]],
        "every whole dead letter kept"
    );
    assert_eq!(glued[1].offset, la.len() as u64, "b starts where a ends");
    // A torn one between two whole ones: the torn bytes are the damage.
    let torn = &lb[..lb.len() / 2];
    let (between, damaged) = letters(&format!("{la}{torn}{lc}\n"));
    let got: Vec<&[u8]> = between.iter().map(|l| l.envelope.as_slice()).collect();
    assert_eq!(got, [&a[..], &c[..]]);
    assert_eq!(damaged, 1);
    // And at the end of the file, a whole one before a torn tail is kept.
    let (tail, damaged) = letters(&format!("{la}{torn}"));
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].envelope, a);
    assert_eq!(damaged, 1);
}
