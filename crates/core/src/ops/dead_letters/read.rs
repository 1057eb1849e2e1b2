//! Reading a dead-letter file line by line, keeping what can be kept.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// Longest line read: a 1 MiB envelope is 1.4 MiB of base64; this leaves
/// room for several times the largest event the project accepts.
pub const MAX_LINE: usize = 16 << 20;

/// Why a dead-letter file cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The file cannot be opened or read.
    #[error("cannot read dead-letter file {path}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its line in the file, from 1.
    pub line: u64,
    /// Byte offset of that line.
    pub offset: u64,
    /// When the drain gave up on it (as written, UTC).
    pub time: Option<String>,
    /// Why Kafka would not take it.
    pub reason: Option<String>,
    /// Its event id, if its envelope decoded when it was written.
    pub event_id: Option<String>,
    /// Its topic, likewise.
    pub topic: Option<String>,
    /// The whole envelope.
    pub envelope: Vec<u8>,
}

/// A stretch of the file that is not a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Its line, from 1.
    pub line: u64,
    /// Byte offset where it starts.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// One line's worth of a dead-letter file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A dead letter.
    Letter(DeadLetter),
    /// Bytes skipped.
    Damaged(Damage),
}

#[derive(Deserialize)]
struct Line {
    time: Option<String>,
    reason: Option<String>,
    event_id: Option<String>,
    topic: Option<String>,
    envelope_base64: String,
}

/// Reads `path` into records, in file order; see the module docs for what
/// counts as damage.
pub fn read_dead_letters(path: &Path) -> Result<Vec<Record>, DeadLetterError> {
    let read_error = |source| DeadLetterError::Read {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(read_error)?);
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let (mut line, mut offset) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = read_line(&mut reader, &mut buf).map_err(read_error)?;
        if n == 0 {
            return Ok(records);
        }
        line += 1;
        let complete = buf.last() == Some(&b'\n');
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let damage = |at: u64, len: usize, reason: String| {
            Record::Damaged(Damage {
                line,
                offset: at,
                len: len as u64,
                reason,
            })
        };
        if n > MAX_LINE {
            records.push(damage(offset, n, format!("longer than {MAX_LINE} bytes")));
        } else if !text.iter().all(u8::is_ascii_whitespace) {
            match parse(text, line, offset) {
                Ok(letter) => records.push(Record::Letter(letter)),
                Err(_) if !complete => records.push(damage(
                    offset,
                    n,
                    "torn last line (no newline): the writer stopped mid-line".into(),
                )),
                Err(reason) => match salvage(text, line, offset) {
                    Some((skipped, letter)) => {
                        records.push(damage(
                            offset,
                            skipped,
                            format!("garbage before a dead letter on the same line ({reason})"),
                        ));
                        records.push(Record::Letter(letter));
                    }
                    None => records.push(damage(offset, n, reason)),
                },
            }
        }
        offset += n as u64;
    }
}

/// Reads up to and including the next newline, but keeps at most
/// [`MAX_LINE`] + 1 bytes of it in `buf`; returns the line's whole length.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(total);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

fn parse(text: &[u8], line: u64, offset: u64) -> Result<DeadLetter, String> {
    let parsed: Line =
        serde_json::from_slice(text).map_err(|e| format!("not a dead letter: {e}"))?;
    let envelope = base64::engine::general_purpose::STANDARD
        .decode(parsed.envelope_base64.as_bytes())
        .map_err(|e| format!("envelope_base64 is not base64: {e}"))?;
    Ok(DeadLetter {
        line,
        offset,
        time: parsed.time,
        reason: parsed.reason,
        event_id: parsed.event_id,
        topic: parsed.topic,
        envelope,
    })
}

/// The first whole dead letter that starts at a `{"` after the beginning of
/// a garbled line, and how many bytes come before it.
fn salvage(text: &[u8], line: u64, offset: u64) -> Option<(usize, DeadLetter)> {
    (1..text.len().saturating_sub(1))
        .filter(|&i| text[i] == b'{' && text[i + 1] == b'"')
        .find_map(|i| {
            let letter = parse(&text[i..], line, offset + i as u64).ok()?;
            Some((i, letter))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, envelope: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(envelope);
        format!(
            "{{\"envelope_base64\":\"{b64}\",\"event_id\":\"{id}\",\"reason\":\"r\",\
             \"time\":\"2026-01-01T00:00:00.000000Z\",\"topic\":\"t\"}}"
        )
    }

    fn read(text: &str) -> Vec<Record> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("dead-letters.jsonl.3");
        std::fs::write(&path, text).expect("write");
        read_dead_letters(&path).expect("read")
    }

    fn letters(records: &[Record]) -> Vec<(u64, &str)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Letter(l) => Some((l.line, l.event_id.as_deref().unwrap_or("?"))),
                Record::Damaged(_) => None,
            })
            .collect()
    }

    fn damage(records: &[Record]) -> Vec<&Damage> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Damaged(d) => Some(d),
                Record::Letter(_) => None,
            })
            .collect()
    }

    #[test]
    fn whole_lines_are_read_with_their_line_numbers_and_offsets() {
        let (a, b) = (line("a", b"one"), line("b", b"two"));
        let records = read(&format!("{a}\n\n{b}\n"));
        assert_eq!(letters(&records), [(1, "a"), (3, "b")]);
        let Record::Letter(second) = &records[1] else {
            panic!("{records:?}")
        };
        assert_eq!(second.offset, a.len() as u64 + 2);
        assert_eq!(second.envelope, b"two");
        assert_eq!(second.reason.as_deref(), Some("r"));
    }

    #[test]
    fn a_torn_last_line_is_reported_and_a_whole_one_without_newline_kept() {
        let (a, b) = (line("a", b"one"), line("b", b"two"));
        let torn = read(&format!("{a}\n{}", &b[..b.len() / 2]));
        assert_eq!(letters(&torn), [(1, "a")]);
        let d = damage(&torn);
        assert_eq!(
            (d.len(), d[0].line, d[0].offset),
            (1, 2, a.len() as u64 + 1)
        );
        assert!(d[0].reason.contains("torn last line"), "{}", d[0].reason);
        let unterminated = read(&format!("{a}\n{b}"));
        assert_eq!(letters(&unterminated), [(1, "a"), (2, "b")]);
        assert!(damage(&unterminated).is_empty());
    }

    #[test]
    fn a_garbled_line_is_skipped_and_a_letter_glued_after_garbage_kept() {
        let (a, b, c) = (line("a", b"1"), line("b", b"2"), line("c", b"3"));
        let glued = format!("{}{b}", &a[..20]);
        let text = format!("{a}\nnot json at all\n{glued}\n{{\"time\":\"x\"}}\n{c}\n");
        let records = read(&text);
        assert_eq!(letters(&records), [(1, "a"), (3, "b"), (5, "c")]);
        let d = damage(&records);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!((d[0].line, d[0].len), (2, 16));
        assert!(
            d[0].reason.starts_with("not a dead letter"),
            "{}",
            d[0].reason
        );
        assert_eq!((d[1].line, d[1].len), (3, 20));
        assert!(
            d[1].reason.starts_with("garbage before a dead letter"),
            "{}",
            d[1].reason
        );
        assert!(d[2].reason.contains("envelope_base64"), "{}", d[2].reason);
    }

    #[test]
    fn bad_base64_and_binary_garbage_are_damage_not_errors() {
        let bad = "{\"envelope_base64\":\"!!!\"}";
        let records = read(&format!("{bad}\n\u{0}\u{ff}garbage\n"));
        let d = damage(&records);
        assert_eq!(d.len(), 2);
        assert!(d[0].reason.contains("not base64"), "{}", d[0].reason);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err =
            read_dead_letters(Path::new("/nonexistent/dead-letters.jsonl")).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/dead-letters.jsonl"),
            "{err}"
        );
    }
}
