//! A dead letter decoded for people (`Display`, `list_line`) and tools
//! (`Serialize`). What people see goes through [`printable`]: the file and
//! the envelope may hold terminal escape sequences.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use base64::Engine as _;
use serde::Serialize;

use super::read::DeadLetter;
use crate::envelope::{Envelope, Flags};
use crate::ops::format_size;

/// Everything about one dead letter, its envelope decoded where it decodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterView {
    /// Its line in the file, from 1.
    pub line: u64,
    /// When the drain gave up on it.
    pub time: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The event id (from the envelope, else from the line).
    pub event_id: Option<String>,
    /// The topic (likewise).
    pub topic: Option<String>,
    /// Envelope bytes.
    pub size: usize,
    /// Why the envelope does not decode; `None` when it does.
    pub decode_error: Option<String>,
    /// Emit time (UTC), from the envelope.
    pub emitted_at: Option<String>,
    /// The partition key.
    pub key: Option<Payload>,
    /// Headers, in order.
    pub headers: Vec<(String, Payload)>,
    /// Whether the emitter encoded the payload as JSON.
    pub json: bool,
    /// The payload.
    pub payload: Option<Payload>,
}

/// Bytes, as text when they are printable UTF-8, else base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// Printable UTF-8 (newlines and tabs allowed).
    Text(String),
    /// Anything else, in standard base64.
    Base64(String),
}

impl Payload {
    fn of(bytes: &[u8]) -> Payload {
        match std::str::from_utf8(bytes) {
            Ok(text)
                if text
                    .chars()
                    .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')) =>
            {
                Payload::Text(text.to_owned())
            }
            _ => Payload::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Text(text) => write!(f, "{text:?}"),
            Payload::Base64(b64) => write!(f, "base64:{b64}"),
        }
    }
}

impl DeadLetter {
    /// Its event id as `list` and `show` show it: the envelope's when it
    /// decodes (the line's `event_id` is only what the writer said, and a
    /// damaged or hostile line may say anything), else the line's.
    pub fn id(&self) -> Option<String> {
        match Envelope::decode(&self.envelope) {
            Ok(e) => Some(e.id.to_string()),
            Err(_) => self.event_id.clone(),
        }
    }

    /// Decodes the envelope for display.
    pub fn view(&self) -> DeadLetterView {
        let mut view = DeadLetterView {
            line: self.line,
            time: self.time.clone(),
            reason: self.reason.clone(),
            event_id: self.event_id.clone(),
            topic: self.topic.clone(),
            size: self.envelope.len(),
            decode_error: None,
            emitted_at: None,
            key: None,
            headers: Vec::new(),
            json: false,
            payload: None,
        };
        match Envelope::decode(&self.envelope) {
            Ok(e) => {
                let mut time = Vec::new();
                crate::json::write_utc_time(
                    &mut time,
                    e.time_us.div_euclid(1_000_000),
                    e.time_us.rem_euclid(1_000_000),
                );
                view.event_id = Some(e.id.to_string());
                view.topic = Some(e.topic.to_owned());
                view.emitted_at = Some(String::from_utf8_lossy(&time).trim_matches('"').to_owned());
                view.key = e.key.map(Payload::of);
                view.headers = e
                    .headers
                    .iter()
                    .map(|(name, value)| (name.to_owned(), Payload::of(value)))
                    .collect();
                view.json = e.flags.contains(Flags::PAYLOAD_JSON);
                view.payload = Some(Payload::of(e.payload));
            }
            Err(e) => view.decode_error = Some(e.to_string()),
        }
        view
    }
}

fn or_dash(value: &Option<String>) -> Cow<'_, str> {
    printable(value.as_deref().unwrap_or("-"))
}

/// `text` safe to print on a terminal: control characters (escape
/// sequences, carriage returns, newlines) spelled out as `\u{1b}`, `\r`,
/// tabs kept. The fields of a dead-letter line and an envelope's header
/// names are whatever the file or the app put there; printed raw, an
/// escape sequence would drive the operator's terminal.
pub fn printable(text: &str) -> Cow<'_, str> {
    let control = |c: char| c.is_control() && c != '\t';
    if !text.chars().any(control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl DeadLetterView {
    /// One line for `list`: line, time, event id, topic, size, reason.
    pub fn list_line(&self) -> String {
        format!(
            "{:>6}  {:<27}  {:<36}  {:<24}  {:>9}  {}",
            self.line,
            or_dash(&self.time),
            or_dash(&self.event_id),
            or_dash(&self.topic),
            format_size(self.size as u64),
            or_dash(&self.reason)
        )
    }

    /// The header line of `list`, matching [`DeadLetterView::list_line`].
    pub fn list_header() -> String {
        format!(
            "{:>6}  {:<27}  {:<36}  {:<24}  {:>9}  {}",
            "LINE", "TIME", "EVENT ID", "TOPIC", "SIZE", "REASON"
        )
    }
}

impl fmt::Display for DeadLetterView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<12}{}", "line", self.line)?;
        writeln!(f, "{:<12}{}", "dead since", or_dash(&self.time))?;
        writeln!(f, "{:<12}{}", "reason", or_dash(&self.reason))?;
        writeln!(f, "{:<12}{}", "event id", or_dash(&self.event_id))?;
        writeln!(f, "{:<12}{}", "topic", or_dash(&self.topic))?;
        writeln!(f, "{:<12}{} bytes (envelope)", "size", self.size)?;
        if let Some(error) = &self.decode_error {
            return writeln!(f, "{:<12}does not decode: {error}", "envelope");
        }
        writeln!(f, "{:<12}{}", "emitted at", or_dash(&self.emitted_at))?;
        match &self.key {
            Some(key) => writeln!(f, "{:<12}{key}", "key")?,
            None => writeln!(f, "{:<12}(none)", "key")?,
        }
        if self.headers.is_empty() {
            writeln!(f, "{:<12}(none)", "headers")?;
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let label = if i == 0 { "headers" } else { "" };
            writeln!(f, "{label:<12}{}: {value}", printable(name))?;
        }
        let kind = if self.json { " (JSON)" } else { "" };
        match &self.payload {
            Some(Payload::Text(text)) => {
                writeln!(f, "payload{kind}:")?;
                let mut body = String::new();
                for line in text.lines() {
                    let _ = writeln!(body, "  {}", printable(line));
                }
                f.write_str(&body)
            }
            Some(Payload::Base64(b64)) => {
                writeln!(f, "payload{kind} (not printable, base64):\n  {b64}")
            }
            None => Ok(()),
        }
    }
}
