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
/// counts as damage. Holds the whole file's dead letters: a caller that
/// looks at one at a time reads with [`DeadLetterReader`] instead.
pub fn read_dead_letters(path: &Path) -> Result<Vec<Record>, DeadLetterError> {
    DeadLetterReader::open(path)?.collect()
}

/// A dead-letter file read record by record, in file order, in memory
/// bounded by its longest line ([`MAX_LINE`] at most), whatever its size.
#[derive(Debug)]
pub struct DeadLetterReader {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    line: u64,
    offset: u64,
    /// Records of the current line not yet returned, last first.
    pending: Vec<Record>,
    done: bool,
}

impl DeadLetterReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<DeadLetterReader, DeadLetterError> {
        let file = File::open(path).map_err(|source| DeadLetterError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(DeadLetterReader {
            path: path.to_owned(),
            reader: BufReader::new(file),
            buf: Vec::new(),
            line: 0,
            offset: 0,
            pending: Vec::new(),
            done: false,
        })
    }

    /// Reads the next line into `pending`; false at the end of the file.
    fn next_line(&mut self) -> io::Result<bool> {
        self.buf.clear();
        let n = read_line(&mut self.reader, &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        let complete = self.buf.last() == Some(&b'\n');
        let text = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        if n > MAX_LINE {
            self.pending.push(Record::Damaged(Damage {
                line: self.line,
                offset: self.offset,
                len: n as u64,
                reason: format!("longer than {MAX_LINE} bytes"),
            }));
        } else {
            scan(text, n, complete, self.line, self.offset, &mut self.pending);
            self.pending.reverse();
        }
        self.offset += n as u64;
        Ok(true)
    }
}

impl Iterator for DeadLetterReader {
    type Item = Result<Record, DeadLetterError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.pop() {
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            match self.next_line() {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(source) => {
                    self.done = true;
                    return Some(Err(DeadLetterError::Read {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
        }
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

/// The records of one line (`text`, without its newline; `n` bytes with
/// it): every whole dead letter on it, in order, and the bytes between and
/// around them that are none. Usually that is one letter; several are glued
/// when a line lost its newline and the next was appended to it.
fn scan(text: &[u8], n: usize, complete: bool, line: u64, offset: u64, out: &mut Vec<Record>) {
    let mut pos = skip_blank(text, 0);
    while pos < text.len() {
        let reason = match parse(&text[pos..], line, offset + pos as u64) {
            Ok((letter, used)) => {
                out.push(Record::Letter(letter));
                pos = skip_blank(text, pos + used);
                continue;
            }
            Err(reason) => reason,
        };
        // Garbage from `pos`: up to the next whole dead letter, if any.
        let next = (pos + 1..text.len().saturating_sub(1)).find(|&i| {
            text[i] == b'{' && text[i + 1] == b'"' && parse(&text[i..], line, 0).is_ok()
        });
        let (len, reason) = match next {
            Some(i) => (
                i - pos,
                format!("garbage before a dead letter on the same line ({reason})"),
            ),
            None if !complete => (
                n - pos,
                "torn last line (no newline): the writer stopped mid-line".into(),
            ),
            None => (n - pos, reason),
        };
        out.push(Record::Damaged(Damage {
            line,
            offset: offset + pos as u64,
            len: len as u64,
            reason,
        }));
        pos += len;
    }
}

fn skip_blank(text: &[u8], from: usize) -> usize {
    from + text[from.min(text.len())..]
        .iter()
        .take_while(|b| b.is_ascii_whitespace())
        .count()
}

/// The dead letter at the start of `text`, and the bytes it takes.
fn parse(text: &[u8], line: u64, offset: u64) -> Result<(DeadLetter, usize), String> {
    let mut objects = serde_json::Deserializer::from_slice(text).into_iter::<Line>();
    let parsed = match objects.next() {
        Some(Ok(parsed)) => parsed,
        Some(Err(e)) => return Err(format!("not a dead letter: {e}")),
        None => return Err("not a dead letter: empty".into()),
    };
    let used = objects.byte_offset();
    let envelope = base64::engine::general_purpose::STANDARD
        .decode(parsed.envelope_base64.as_bytes())
        .map_err(|e| format!("envelope_base64 is not base64: {e}"))?;
    let letter = DeadLetter {
        line,
        offset,
        time: parsed.time,
        reason: parsed.reason,
        event_id: parsed.event_id,
        topic: parsed.topic,
        envelope,
    };
    Ok((letter, used))
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
