//! The embedded sink: every event as one JSON line on stdout, delivered at
//! once. It lets a newcomer see events flow without a Kafka cluster.

use std::io::{self, BufWriter, Write};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{Delivery, Outcome, Rejected, Sink};
use crate::envelope::{Envelope, Flags};

/// Writes JSON lines to any writer (stdout by default).
pub struct StdoutSink<W: Write = io::Stdout> {
    out: BufWriter<W>,
    done: Vec<u64>,
}

impl StdoutSink {
    /// A sink writing to the process's stdout.
    pub fn new() -> Self {
        StdoutSink::to(io::stdout())
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::new()
    }
}

impl<W: Write> StdoutSink<W> {
    /// A sink writing to `writer`.
    pub fn to(writer: W) -> Self {
        StdoutSink {
            out: BufWriter::new(writer),
            done: Vec::new(),
        }
    }

    /// The writer, after flushing buffered lines.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Bytes as a JSON string when they are UTF-8, else base64 under a marker key.
fn bytes_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

/// One event as the JSON object the stdout sink prints.
pub fn event_json(event: &Envelope<'_>) -> Value {
    let payload = if event.flags.contains(Flags::PAYLOAD_JSON) {
        serde_json::from_slice(event.payload).unwrap_or_else(|_| bytes_value(event.payload))
    } else {
        bytes_value(event.payload)
    };
    let headers: Map<String, Value> = event
        .headers
        .iter()
        .map(|(name, value)| (name.to_owned(), bytes_value(value)))
        .collect();
    json!({
        "id": event.id.to_string(),
        "topic": event.topic,
        "key": event.key.map(bytes_value),
        "headers": headers,
        "timestamp_ms": event.time_ms(),
        "payload": payload,
    })
}

/// Writes `event` as one JSON line ([`event_json`] and a newline): what
/// the stdout sink prints, and what `shopify-events tap` shows.
pub fn write_json_line<W: Write + ?Sized>(out: &mut W, event: &Envelope<'_>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &event_json(event))?;
    out.write_all(b"\n")
}

impl<W: Write> Sink for StdoutSink<W> {
    fn send(&mut self, event: &Envelope<'_>, token: u64) -> Result<(), Rejected> {
        match write_json_line(&mut self.out, event) {
            Ok(()) => {
                self.done.push(token);
                Ok(())
            }
            // A closed stdout is not the event's fault: keep it and retry.
            Err(_) => Err(Rejected::Full),
        }
    }

    fn poll(&mut self, timeout: Duration, out: &mut Vec<Delivery>) {
        // Acknowledge only what reached the writer's destination.
        if self.out.flush().is_err() {
            out.extend(self.done.drain(..).map(|token| Delivery {
                token,
                outcome: Outcome::Retry("stdout is not writable".into()),
            }));
            return;
        }
        if self.done.is_empty() {
            if !timeout.is_zero() {
                std::thread::sleep(timeout);
            }
            return;
        }
        out.extend(self.done.drain(..).map(|token| Delivery {
            token,
            outcome: Outcome::Delivered,
        }));
    }

    fn describe(&self) -> String {
        "stdout (JSON lines)".into()
    }
}
