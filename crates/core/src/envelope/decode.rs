//! Decoding: checks the frame and checksum, then borrows every field.

use super::cursor::Cursor;
use super::error::DecodeError;
use super::flags::Flags;
use super::headers::Headers;
use super::stamp::Stamp;
use super::{CRC_LEN, MAGIC, MIN_LEN, OFF_TOTAL_LEN, OFF_VERSION, PREFIX_LEN, VERSION, VERSION_1};
use crate::event_id::EventId;
use crate::topic::validate_topic_bytes;

/// A decoded envelope borrowing its fields from the input bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The format version it was written in: 1 or 2.
    pub version: u8,
    /// Flag bits (only known ones: reserved bits are rejected).
    pub flags: Flags,
    /// The event id.
    pub id: EventId,
    /// Emit time, microseconds since the Unix epoch.
    pub time_us: i64,
    /// Which producer sent it, and its number there: `None` for a version 1
    /// envelope and for an unstamped version 2 one (producer id 0).
    pub stamp: Option<Stamp>,
    /// The Kafka topic, validated.
    pub topic: &'a str,
    /// The key; `Some(b"")` (empty key) differs from `None` (no key).
    pub key: Option<&'a [u8]>,
    /// The headers, in order.
    pub headers: Headers<'a>,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Emit time in milliseconds since the Unix epoch: the Kafka record's
    /// timestamp, so an event that waited in the queue keeps its real time.
    pub fn time_ms(&self) -> i64 {
        self.time_us.div_euclid(1000)
    }

    /// Decodes `bytes`, which must be exactly one envelope. Checks magic,
    /// version and length, then the CRC over the declared length, and only then
    /// parses fields, so corrupted bytes are reported as a checksum mismatch.
    pub fn decode(bytes: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        let declared = envelope_len(bytes)?.ok_or(DecodeError::Truncated {
            field: "envelope prefix",
            needed: PREFIX_LEN,
            available: bytes.len(),
        })?;
        if bytes.len() < declared {
            return Err(DecodeError::Truncated {
                field: "envelope",
                needed: declared,
                available: bytes.len(),
            });
        }
        if bytes.len() > declared {
            return Err(DecodeError::TrailingBytes {
                count: bytes.len() - declared,
            });
        }
        // declared >= MIN_LEN > CRC_LEN, checked by envelope_len.
        let body_len = declared - CRC_LEN;
        let (body, crc) = bytes.split_at(body_len);
        let mut stored = [0u8; CRC_LEN];
        stored.copy_from_slice(crc);
        let stored = u32::from_le_bytes(stored);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }

        let mut cur = Cursor::new(body, OFF_VERSION);
        let version = cur.u8("version")?;
        let flag_bits = cur.u8("flags")?;
        let flags =
            Flags::from_bits(flag_bits).ok_or(DecodeError::ReservedFlags { flags: flag_bits })?;
        cur.get(4, "total length")?;
        let id = EventId::from_bytes(cur.array("event id")?);
        let time_us = i64::from_le_bytes(cur.array("emit time")?);
        let stamp = if version == VERSION_1 {
            None
        } else {
            let producer = u64::from_le_bytes(cur.array("producer id")?);
            let seq = u64::from_le_bytes(cur.array("sequence number")?);
            match (producer, seq) {
                (0, 0) => None,
                (0, seq) => return Err(DecodeError::UnstampedSequence { seq }),
                (producer, seq) => Some(Stamp { producer, seq }),
            }
        };
        let topic_len = usize::from(cur.u8("topic length")?);
        let topic = validate_topic_bytes(cur.get(topic_len, "topic")?)
            .map_err(DecodeError::InvalidTopic)?;
        let key = if flags.contains(Flags::KEY_PRESENT) {
            Some(cur.u32_prefixed("key length", "key")?)
        } else {
            None
        };
        let headers = Headers::parse(&mut cur, body)?;
        let payload = cur.u32_prefixed("payload length", "payload")?;
        if cur.pos() != body_len {
            return Err(DecodeError::LengthMismatch {
                declared,
                actual: cur.pos() + CRC_LEN,
            });
        }
        Ok(Envelope {
            version,
            flags,
            id,
            time_us,
            stamp,
            topic,
            key,
            headers,
            payload,
        })
    }
}

/// The length of the envelope starting at `prefix`, read from its first 8
/// bytes, for framing envelopes in a journal or stream. `Ok(None)` means more
/// bytes are needed; magic and version are checked on whatever bytes are
/// there, so a reader learns it is off track as early as possible.
pub fn envelope_len(prefix: &[u8]) -> Result<Option<usize>, DecodeError> {
    if let [a, b, ..] = *prefix {
        if [a, b] != MAGIC {
            return Err(DecodeError::BadMagic { found: [a, b] });
        }
    }
    if let Some(&version) = prefix.get(OFF_VERSION) {
        if version != VERSION && version != VERSION_1 {
            return Err(DecodeError::UnsupportedVersion { version });
        }
    }
    let Some(len) = prefix.get(OFF_TOTAL_LEN..PREFIX_LEN) else {
        return Ok(None);
    };
    let mut le = [0u8; 4];
    le.copy_from_slice(len);
    let declared = u32::from_le_bytes(le) as usize;
    if declared < MIN_LEN {
        // Also keeps a zero length from stalling a framing loop.
        return Err(DecodeError::LengthTooSmall {
            declared,
            minimum: MIN_LEN,
        });
    }
    Ok(Some(declared))
}
