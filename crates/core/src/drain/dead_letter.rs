//! The dead-letter files: events Kafka will never take (unknown topic, too
//! large, not authorized, malformed) as JSON lines, so one bad event never
//! blocks the queue and an operator can inspect and replay it.
//!
//! Each line: `{"time", "reason", "event_id", "topic", "envelope_base64"}`.
//! The line is written (to the page cache, which survives the drain's
//! death) before the event's journal record or spool record is released.
//!
//! Bounded: once `dead-letters.jsonl` holds `max_bytes`, it is renamed to
//! `dead-letters.jsonl.1` (the older ones move up by one) and a new file
//! starts; of `files` files in all the oldest is deleted, with a log line
//! and a count (`dead_letter_files_dropped`).
//!
//! Whole lines: a line torn by `kill -9` or a full disk is ended with a
//! newline at open (or before the next line, after a failed write), so the
//! next line never glues onto it; readers skip the torn one.
//!
//! When no file can be written (the directory is gone, the disk is full),
//! [`DeadLetters::write`] hands the line back in [`NotWritten`]: the drain
//! logs it in full (the log then holds the event, envelope included),
//! counts it and moves on, so valid events keep flowing and no event is
//! dropped in silence. The file is opened again at the next dead letter.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use crate::envelope::Envelope;
use crate::state_dir::{create_file, Access, StateDir};

/// A dead letter that could not be written to a file.
#[derive(Debug)]
pub struct NotWritten {
    /// The JSON line, without its newline.
    pub line: String,
    /// Why it could not be written.
    pub source: io::Error,
}

/// What a write did besides writing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Files deleted by a rotation to keep within the bound.
    pub dropped: Vec<PathBuf>,
}

/// Appends dead letters to the state's dead-letter files
/// ([`StateDir::dead_letters`]).
#[derive(Debug)]
pub struct DeadLetters {
    state: StateDir,
    path: PathBuf,
    file: Option<File>,
    len: u64,
    /// The last write failed: the file may end in a torn line.
    torn: bool,
    max_bytes: u64,
    files: usize,
}

impl DeadLetters {
    /// The dead-letter files of `state`, rotated at `max_bytes` and bounded
    /// to `files` files. Creates the directory and the file if needed and
    /// ends a torn last line; if that fails the drain still starts (lines
    /// come back in [`NotWritten`] until a file can be written again), and
    /// the error is returned beside it to log.
    pub fn open(
        state: &StateDir,
        max_bytes: u64,
        files: usize,
    ) -> (DeadLetters, Option<io::Error>) {
        let mut dead = DeadLetters {
            state: state.clone(),
            path: state.dead_letters(),
            file: None,
            len: 0,
            torn: false,
            max_bytes: max_bytes.max(1),
            files: files.max(1),
        };
        let error = dead.reopen().err();
        (dead, error)
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the current file, ending a torn last line; returns the offset
    /// of a repaired line's end, if one was.
    fn reopen(&mut self) -> io::Result<Option<u64>> {
        self.file = None;
        fs::create_dir_all(self.state.dead_letter_dir())?;
        let mut file = create_file(&self.path, Access::Append)?;
        let len = file.metadata()?.len();
        let mut repaired = None;
        if len > 0 {
            let mut reader = File::open(&self.path)?;
            reader.seek(SeekFrom::Start(len - 1))?;
            let mut last = [0u8; 1];
            reader.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                repaired = Some(len);
            }
        }
        self.len = file.metadata()?.len();
        self.file = Some(file);
        self.torn = false;
        if let Some(at) = repaired {
            eprintln!(
                "shopify-events drain: dead-letter file {} ended in a torn line (at byte {at}); \
                 ended it with a newline so the next line stands alone",
                self.path.display()
            );
        }
        Ok(repaired)
    }

    /// Records one event that cannot be delivered: `bytes` is its whole
    /// envelope, `event` its decoded form when it decodes.
    pub fn write(
        &mut self,
        reason: &str,
        bytes: &[u8],
        event: Option<&Envelope<'_>>,
    ) -> Result<Written, NotWritten> {
        let line = line(reason, bytes, event);
        self.append(&line)
            .map_err(|source| NotWritten { line, source })
    }

    fn append(&mut self, line: &str) -> io::Result<Written> {
        if self.file.is_none() || self.torn {
            self.reopen()?;
        }
        let mut written = Written::default();
        let need = line.len() as u64 + 1;
        if self.len > 0 && self.len + need > self.max_bytes {
            written.dropped = self.rotate()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("dead-letter file not open"));
        };
        let mut text = Vec::with_capacity(line.len() + 1);
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        match file.write_all(&text) {
            Ok(()) => {
                self.len += need;
                Ok(written)
            }
            Err(e) => {
                self.torn = true;
                Err(e)
            }
        }
    }

    /// Shifts `dead-letters.jsonl.N` to `.N+1` (deleting what falls beyond
    /// the bound), the current file to `.1`, and starts a new one.
    fn rotate(&mut self) -> io::Result<Vec<PathBuf>> {
        self.file = None;
        let mut dropped = Vec::new();
        let last = self.files - 1;
        if last == 0 {
            fs::remove_file(&self.path)?;
            dropped.push(self.path.clone());
        } else {
            let oldest = self.state.dead_letters_rotated(last);
            match fs::remove_file(&oldest) {
                Ok(()) => dropped.push(oldest),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            for n in (1..last).rev() {
                let from = self.state.dead_letters_rotated(n);
                match fs::rename(&from, self.state.dead_letters_rotated(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::rename(&self.path, self.state.dead_letters_rotated(1))?;
        }
        self.reopen()?;
        Ok(dropped)
    }
}

/// The JSON line of one dead letter (no newline).
fn line(reason: &str, bytes: &[u8], event: Option<&Envelope<'_>>) -> String {
    let mut time = Vec::with_capacity(32);
    let now = crate::clock::now_micros();
    crate::json::write_utc_time(
        &mut time,
        now.div_euclid(1_000_000),
        now.rem_euclid(1_000_000),
    );
    let time = String::from_utf8_lossy(&time).trim_matches('"').to_owned();
    json!({
        "time": time,
        "reason": reason,
        "event_id": event.map(|e| e.id.to_string()),
        "topic": event.map(|e| e.topic),
        "envelope_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn files_rotate_at_max_bytes_and_the_oldest_beyond_the_bound_goes() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path(), 1);
        let (mut dead, error) = DeadLetters::open(&state, 1000, 3);
        assert!(error.is_none());
        let mut dropped = Vec::new();
        for i in 0..40 {
            let written = dead
                .write(&format!("reason {i}"), &[i as u8; 100], None)
                .unwrap();
            dropped.extend(written.dropped);
        }
        let sizes: Vec<u64> = [
            state.dead_letters(),
            state.dead_letters_rotated(1),
            state.dead_letters_rotated(2),
        ]
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
        assert!(sizes.iter().all(|&s| s <= 1000), "{sizes:?}");
        assert!(!state.dead_letters_rotated(3).exists());
        assert!(!dropped.is_empty());
        assert!(dropped.iter().all(|p| *p == state.dead_letters_rotated(2)));
        // The newest line is last in the current file.
        let current = lines(&state.dead_letters());
        assert!(current.last().unwrap().contains("reason 39"));
        for path in [state.dead_letters(), state.dead_letters_rotated(1)] {
            for line in lines(&path) {
                serde_json::from_str::<serde_json::Value>(&line).expect("whole JSON lines");
            }
        }
    }

    #[test]
    fn a_torn_last_line_is_ended_so_the_next_stands_alone() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path(), 1);
        fs::write(state.dead_letters(), "{\"whole\":1}\n{\"torn\":").unwrap();
        let (mut dead, _) = DeadLetters::open(&state, 1 << 20, 2);
        dead.write("next", b"bytes", None).unwrap();
        let all = lines(&state.dead_letters());
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(all[1], "{\"torn\":");
        let next: serde_json::Value = serde_json::from_str(&all[2]).unwrap();
        assert_eq!(next["reason"], "next");
    }

    #[test]
    fn an_unwritable_file_hands_the_line_back() {
        let dir = tempfile::tempdir().unwrap();
        // The dead-letter directory is a file: nothing can be created in it.
        let blocked = dir.path().join("blocked");
        fs::write(&blocked, "").unwrap();
        let state = StateDir::new(dir.path(), 1).with_dead_letter_dir(&blocked);
        let (mut dead, error) = DeadLetters::open(&state, 1 << 20, 2);
        assert!(error.is_some());
        let not_written = dead.write("why", b"envelope", None).unwrap_err();
        let line: serde_json::Value = serde_json::from_str(&not_written.line).unwrap();
        assert_eq!(line["reason"], "why");
        assert_eq!(line["envelope_base64"], "ZW52ZWxvcGU=");
    }
}
