//! Streaming encoder: appends one version 2 envelope, unstamped, to a
//! caller's buffer.
//!
//! The writer writes every field in order with `extend_from_slice`, leaving
//! the total length and header count as placeholders that it patches when the
//! payload is in; then it appends the CRC. The buffer is reserved once for
//! everything but the payload. Any error — or dropping an unfinished writer —
//! truncates the buffer back to where the envelope began, so a caller reusing
//! one buffer never ships half an envelope.

use super::error::{EncodeError, PayloadError};
use super::flags::Flags;
use super::{CRC_LEN, FIXED_LEN, MAGIC, OFF_FLAGS, OFF_TOTAL_LEN, STAMP_LEN, VERSION};
use crate::event_id::EventId;
use crate::topic::validate_topic;

const U32_LIMIT: usize = u32::MAX as usize;
/// Room reserved up front for the payload; the Ruby payloads are mostly this small.
const PAYLOAD_GUESS: usize = 256;

/// Appends one envelope to `out`. `out` may already hold bytes (e.g. an 8-byte
/// SysV mtype prefix): offsets are relative to where the envelope starts, and
/// bytes before it are never touched.
#[derive(Debug)]
pub struct EnvelopeWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Where this envelope starts in `out`.
    start: usize,
    /// Absolute offset of the u16 header count.
    header_count_at: usize,
    header_count: u16,
    /// Set once the envelope is complete, so `Drop` leaves it in place.
    finished: bool,
}

impl<'a> EnvelopeWriter<'a> {
    /// Starts an envelope: checks the topic and key, writes every field up to
    /// the (empty, for now) header list. On error `out` is unchanged.
    pub fn begin(
        out: &'a mut Vec<u8>,
        id: EventId,
        time_us: i64,
        topic: &str,
        key: Option<&[u8]>,
    ) -> Result<Self, EncodeError> {
        validate_topic(topic)?;
        let key_len = match key {
            Some(k) => 4 + checked_u32("key", k.len())? as usize,
            None => 0,
        };
        out.reserve(FIXED_LEN + topic.len() + key_len + 2 + 4 + PAYLOAD_GUESS + CRC_LEN);

        let start = out.len();
        let flags = if key.is_some() {
            Flags::KEY_PRESENT
        } else {
            Flags::empty()
        };
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(flags.bits());
        out.extend_from_slice(&[0; 4]); // total_len, patched in finish
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&time_us.to_le_bytes());
        // Unstamped: the transport that accepts the event stamps it.
        out.extend_from_slice(&[0; STAMP_LEN]);
        // validate_topic bounds the length to MAX_TOPIC_LEN (249), so it fits a byte.
        out.push(topic.len() as u8);
        out.extend_from_slice(topic.as_bytes());
        if let Some(k) = key {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
        }
        let header_count_at = out.len();
        out.extend_from_slice(&[0; 2]); // header count, patched in finish
        Ok(EnvelopeWriter {
            out,
            start,
            header_count_at,
            header_count: 0,
            finished: false,
        })
    }

    /// Appends a header. On error nothing is written and the writer stays usable.
    pub fn header(&mut self, name: &str, value: &[u8]) -> Result<(), EncodeError> {
        let count = self
            .header_count
            .checked_add(1)
            .ok_or(EncodeError::TooManyHeaders {
                count: usize::from(u16::MAX) + 1,
            })?;
        let name_len = u16::try_from(name.len()).map_err(|_| EncodeError::HeaderNameTooLong {
            name: name.to_owned(),
            len: name.len(),
        })?;
        let value_len = checked_u32("header value", value.len())?;
        self.out.reserve(2 + name.len() + 4 + value.len());
        self.out.extend_from_slice(&name_len.to_le_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(&value_len.to_le_bytes());
        self.out.extend_from_slice(value);
        self.header_count = count;
        Ok(())
    }

    /// Headers written so far.
    pub fn header_count(&self) -> usize {
        usize::from(self.header_count)
    }

    /// Appends the payload, length and CRC; returns the envelope's length.
    pub fn payload(self, payload: &[u8]) -> Result<usize, EncodeError> {
        let payload_len = checked_u32("payload", payload.len())?;
        self.out.reserve(4 + payload.len() + CRC_LEN);
        self.out.extend_from_slice(&payload_len.to_le_bytes());
        self.out.extend_from_slice(payload);
        self.finish(Flags::empty())
    }

    /// Lets `write` append the payload straight into the buffer (no
    /// intermediate copy); sets [`Flags::PAYLOAD_JSON`] if `json`. On any error
    /// the buffer is truncated back to where the envelope began.
    pub fn payload_with<E>(
        mut self,
        json: bool,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, PayloadError<E>> {
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        let payload_start = self.out.len();
        // On error `self` drops here and truncates.
        write(&mut *self.out).map_err(PayloadError::Write)?;
        let written = self
            .out
            .len()
            .checked_sub(payload_start)
            .ok_or(PayloadError::Encode(EncodeError::BufferShrunk {
                expected_at_least: payload_start,
                len: self.out.len(),
            }))?;
        let payload_len = checked_u32("payload", written).map_err(PayloadError::Encode)?;
        self.patch(len_at, &payload_len.to_le_bytes());
        let flags = if json {
            Flags::PAYLOAD_JSON
        } else {
            Flags::empty()
        };
        self.finish(flags).map_err(PayloadError::Encode)
    }

    /// Abandons the envelope, truncating the buffer back to where it began.
    pub fn abort(self) {
        // Drop does the truncation.
    }

    /// Patches the header count, flags and total length, then appends the CRC.
    fn finish(mut self, extra: Flags) -> Result<usize, EncodeError> {
        let total = self.out.len() - self.start + CRC_LEN;
        let total_u32 = checked_u32("envelope", total)?;
        self.patch(self.header_count_at, &self.header_count.to_le_bytes());
        self.patch(self.start + OFF_TOTAL_LEN, &total_u32.to_le_bytes());
        if let Some(flags) = self.out.get_mut(self.start + OFF_FLAGS) {
            *flags |= extra.bits();
        }
        let crc = crc32c::crc32c(self.out.get(self.start..).unwrap_or_default());
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.finished = true;
        Ok(total)
    }

    fn patch(&mut self, at: usize, bytes: &[u8]) {
        // The offsets were recorded when the placeholders were written, so the
        // range is always in bounds; `get_mut` keeps that from being a panic site.
        if let Some(dst) = self.out.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
}

impl Drop for EnvelopeWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

fn checked_u32(field: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::FieldTooLarge {
        field,
        len,
        limit: U32_LIMIT,
    })
}

/// Encodes one envelope in a single call; returns its length. On error `out`
/// is unchanged.
pub fn encode(
    out: &mut Vec<u8>,
    id: EventId,
    time_us: i64,
    topic: &str,
    key: Option<&[u8]>,
    headers: &[(&str, &[u8])],
    payload: &[u8],
) -> Result<usize, EncodeError> {
    let mut w = EnvelopeWriter::begin(out, id, time_us, topic, key)?;
    for (name, value) in headers {
        w.header(name, value)?;
    }
    w.payload(payload)
}
