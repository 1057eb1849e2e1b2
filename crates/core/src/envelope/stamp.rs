//! The stamp: which producer sent an envelope, and its number in that
//! producer's sequence.
//!
//! A version 2 envelope carries 16 bytes right after the emit time
//! ([`STAMP_OFFSET`]): the producer id (u64) and the sequence number (u64).
//! They sit at a fixed offset so that a transport can number an envelope
//! that was encoded earlier — when it accepts the event, not when the event
//! was written — by overwriting the 16 bytes and sealing the CRC again.
//! Producer id 0 means "unstamped" (encoded but never numbered by a
//! transport: the `test` transport, a tool); its sequence number is then 0.

use super::error::StampError;
use super::{
    CRC_LEN, MAGIC, MIN_LEN_V2, OFF_TOTAL_LEN, OFF_VERSION, STAMP_LEN, STAMP_OFFSET, VERSION,
};

/// A producer id and a sequence number, at a fixed offset of a version 2
/// envelope; [`stamp()`] writes it (docs/PROTOCOL.md, "The stamp").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stamp {
    /// The producer: a process generation's transport; never 0.
    pub producer: u64,
    /// Its number in the producer's sequence, from 0, one per accepted event.
    pub seq: u64,
}

impl Stamp {
    /// The stamp's 16 bytes as they sit in the envelope.
    pub fn to_bytes(self) -> [u8; STAMP_LEN] {
        let mut out = [0u8; STAMP_LEN];
        out[..8].copy_from_slice(&self.producer.to_le_bytes());
        out[8..].copy_from_slice(&self.seq.to_le_bytes());
        out
    }
}

/// Whether `envelope` starts like a version 2 envelope, the only version
/// with room for a stamp. A transport sends anything else (a version 1
/// envelope handed to `send_envelope`) unnumbered: the drain counts it as
/// unaccounted.
#[inline]
pub fn stampable(envelope: &[u8]) -> bool {
    envelope.get(..2) == Some(&MAGIC[..]) && envelope.get(OFF_VERSION) == Some(&VERSION)
}

/// Writes `stamp` into `envelope`, one whole version 2 envelope, and seals
/// its CRC again. The caller vouches that the bytes are intact (it just
/// encoded them, or decoded them): the old CRC is not checked, so damage
/// would be sealed in. On error nothing is written.
///
/// Costs one CRC32C over the envelope (hardware-accelerated: tens of
/// nanoseconds for a few hundred bytes).
pub fn stamp(envelope: &mut [u8], stamp: Stamp) -> Result<(), StampError> {
    if envelope.get(..2) != Some(&MAGIC[..]) {
        return Err(StampError::NotAnEnvelope {
            len: envelope.len(),
        });
    }
    let version = envelope.get(OFF_VERSION).copied().unwrap_or_default();
    if version != VERSION {
        return Err(StampError::Version { version });
    }
    let declared = envelope
        .get(OFF_TOTAL_LEN..OFF_TOTAL_LEN + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .unwrap_or_default();
    if declared != envelope.len() || declared < MIN_LEN_V2 {
        return Err(StampError::Length {
            declared,
            len: envelope.len(),
        });
    }
    if stamp.producer == 0 {
        return Err(StampError::ZeroProducer);
    }
    let body_len = declared - CRC_LEN;
    let (body, crc) = envelope.split_at_mut(body_len);
    body[STAMP_OFFSET..STAMP_OFFSET + STAMP_LEN].copy_from_slice(&stamp.to_bytes());
    crc.copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    Ok(())
}
