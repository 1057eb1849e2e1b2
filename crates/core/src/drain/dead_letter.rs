//! The dead-letter file: events Kafka will never take (unknown topic, too
//! large, not authorized, malformed) as JSON lines, so one bad event never
//! blocks the queue and an operator can inspect and replay it.
//!
//! Each line: `{"time", "reason", "event_id", "topic", "envelope_base64"}`.
//! The line is written (to the page cache, which survives the drain's
//! death) before the event's journal record is released.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use crate::envelope::Envelope;
use crate::state_dir::{create_file, Access, StateDir};

/// Appends dead letters to the state's dead-letter file
/// ([`StateDir::dead_letters`]).
#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    file: File,
}

impl DeadLetters {
    /// Opens (creating its directory and the file if needed) the dead-letter
    /// file of `state`.
    pub fn open(state: &StateDir) -> io::Result<DeadLetters> {
        crate::state_dir::create_dir(state.dead_letter_dir())?;
        let path = state.dead_letters();
        let file = create_file(&path, Access::Append)?;
        Ok(DeadLetters { path, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one event that cannot be delivered: `bytes` is its whole
    /// envelope, `event` its decoded form when it decodes.
    pub fn write(
        &mut self,
        reason: &str,
        bytes: &[u8],
        event: Option<&Envelope<'_>>,
    ) -> io::Result<()> {
        let mut time = Vec::with_capacity(32);
        let now = crate::clock::now_micros();
        crate::json::write_utc_time(
            &mut time,
            now.div_euclid(1_000_000),
            now.rem_euclid(1_000_000),
        );
        let time = String::from_utf8_lossy(&time).trim_matches('"').to_owned();
        let line = json!({
            "time": time,
            "reason": reason,
            "event_id": event.map(|e| e.id.to_string()),
            "topic": event.map(|e| e.topic),
            "envelope_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        });
        let mut text = line.to_string();
        text.push('\n');
        self.file.write_all(text.as_bytes())
    }
}
