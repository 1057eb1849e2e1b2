//! Encoders: append one version 2 envelope, unstamped, to a caller's buffer.
//!
//! [`EnvelopeWriter`] streams: it writes the fixed fields as one block,
//! leaves the total length and header count as placeholders that it patches
//! when the payload is in (headers and a payload serialized straight into
//! the buffer have lengths known only then), and appends the CRC. Any
//! error — or dropping an unfinished writer — truncates the buffer back to
//! where the envelope began, so a caller reusing one buffer never ships half
//! an envelope.
//!
//! [`encode_bytes`] is the one-pass path for the commonest event (no
//! headers, a payload of known bytes): every length is known before the
//! first byte, so it reserves once and patches nothing. Same bytes.
//!
//! Both can leave the CRC to the transport ([`Seal::ByStamp`]): a transport
//! that numbers events rewrites the stamp and seals the CRC when it accepts
//! the event ([`stamp`](super::stamp)), so a CRC computed at encode time
//! would be computed again a moment later.

use super::error::{EncodeError, PayloadError};
use super::flags::Flags;
use super::{
    CRC_LEN, FIXED_LEN, MAGIC, OFF_FLAGS, OFF_ID, OFF_TIME, OFF_TOTAL_LEN, OFF_VERSION, VERSION,
};
use crate::event_id::EventId;
use crate::topic::{Topic, MAX_TOPIC_LEN};

const U32_LIMIT: usize = u32::MAX as usize;

/// Who computes an envelope's CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seal {
    /// The encoder, at once: the envelope is whole as soon as it is written.
    #[default]
    Now,
    /// The transport that stamps it: the encoder writes the CRC as zero and
    /// [`stamp`](super::stamp) seals it when the transport accepts the
    /// event, saving one CRC32C per event. Only for a frame handed straight
    /// to a transport that says it seals
    /// ([`FrameSink::seals`](crate::transport::FrameSink::seals)): anywhere
    /// else the envelope fails its CRC check.
    ByStamp,
}

impl Seal {
    /// The CRC to write over `body` (everything before the CRC).
    #[inline]
    fn crc(self, body: &[u8]) -> u32 {
        match self {
            Seal::Now => crc32c::crc32c(body),
            Seal::ByStamp => 0,
        }
    }
}
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
    /// Who computes the CRC.
    seal: Seal,
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
        Self::begin_topic(out, id, time_us, &Topic::new(topic)?, key)
    }

    /// [`begin`](Self::begin) with a topic checked earlier.
    pub fn begin_topic(
        out: &'a mut Vec<u8>,
        id: EventId,
        time_us: i64,
        topic: &Topic<'_>,
        key: Option<&[u8]>,
    ) -> Result<Self, EncodeError> {
        let topic = topic.as_str();
        let key_len = match key {
            Some(k) => 4 + checked_u32("key", k.len())? as usize,
            None => 0,
        };
        out.reserve(FIXED_LEN + topic.len() + key_len + 2 + 4 + PAYLOAD_GUESS + CRC_LEN);
        let start = out.len();
        // The total length is patched in `finish`.
        write_head(out, id, time_us, topic, key, 0, Flags::empty());
        let header_count_at = out.len();
        out.extend_from_slice(&[0; 2]); // header count, patched in finish
        Ok(EnvelopeWriter {
            out,
            start,
            header_count_at,
            header_count: 0,
            seal: Seal::Now,
            finished: false,
        })
    }

    /// The same writer, leaving the CRC to `seal` (see [`Seal`]).
    pub fn sealed_by(mut self, seal: Seal) -> Self {
        self.seal = seal;
        self
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
        let crc = self
            .seal
            .crc(self.out.get(self.start..).unwrap_or_default());
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

/// Writes every field before the header count as one block: magic,
/// version, flags, `total` length (0 as a placeholder), id, time, a zero
/// stamp (the transport that accepts the event stamps it), the topic (its
/// length checked by the caller: at most [`MAX_TOPIC_LEN`], so one byte)
/// and the key.
#[inline]
fn write_head(
    out: &mut Vec<u8>,
    id: EventId,
    time_us: i64,
    topic: &str,
    key: Option<&[u8]>,
    total: u32,
    extra: Flags,
) {
    let flags = if key.is_some() {
        Flags::KEY_PRESENT | extra
    } else {
        extra
    };
    let mut head = [0u8; FIXED_LEN];
    head[..2].copy_from_slice(&MAGIC);
    head[OFF_VERSION] = VERSION;
    head[OFF_FLAGS] = flags.bits();
    head[OFF_TOTAL_LEN..OFF_TOTAL_LEN + 4].copy_from_slice(&total.to_le_bytes());
    head[OFF_ID..OFF_ID + 16].copy_from_slice(id.as_bytes());
    head[OFF_TIME..OFF_TIME + 8].copy_from_slice(&time_us.to_le_bytes());
    // head[STAMP_OFFSET..][..STAMP_LEN] stays zero: unstamped.
    head[FIXED_LEN - 1] = topic.len().min(MAX_TOPIC_LEN) as u8;
    out.extend_from_slice(&head);
    out.extend_from_slice(topic.as_bytes());
    if let Some(k) = key {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
    }
}

/// Encodes one envelope with no headers and a payload of known bytes, in
/// one pass (one reservation, nothing patched); returns its length. The
/// bytes are those of [`EnvelopeWriter`]. The topic was checked when the
/// [`Topic`] was made. On error `out` is unchanged.
#[inline]
pub fn encode_bytes(
    out: &mut Vec<u8>,
    id: EventId,
    time_us: i64,
    topic: &Topic<'_>,
    key: Option<&[u8]>,
    payload: &[u8],
    seal: Seal,
) -> Result<usize, EncodeError> {
    let topic = topic.as_str();
    let key_len = key.map_or(0, |k| 4 + k.len());
    let total = FIXED_LEN + topic.len() + key_len + 2 + 4 + payload.len() + CRC_LEN;
    if let Some(k) = key {
        checked_u32("key", k.len())?;
    }
    checked_u32("payload", payload.len())?;
    let total_u32 = checked_u32("envelope", total)?;
    out.reserve(total);
    let start = out.len();
    write_head(out, id, time_us, topic, key, total_u32, Flags::empty());
    let mut lengths = [0u8; 6]; // no headers, then the payload's length
    lengths[2..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&lengths);
    out.extend_from_slice(payload);
    let crc = seal.crc(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(total)
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
    if headers.is_empty() {
        return encode_bytes(
            out,
            id,
            time_us,
            &Topic::new(topic)?,
            key,
            payload,
            Seal::Now,
        );
    }
    let mut w = EnvelopeWriter::begin(out, id, time_us, topic, key)?;
    for (name, value) in headers {
        w.header(name, value)?;
    }
    w.payload(payload)
}
