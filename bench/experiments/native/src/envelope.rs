//! Prototype: the envelope in one pass. For a String payload every length
//! is known up front, so the fixed fields go out as one `FIXED_LEN`-byte
//! block (the stamp left zero, as the product's writer leaves it), the
//! buffer is reserved once, and nothing is patched afterwards; a JSON
//! payload patches its two lengths. The bytes are those of the core's
//! `EnvelopeWriter` (checked by bench/experiments/check.rb, which decodes
//! every prototype's output with the product's decoder).

use shopify_events_core::envelope::{Flags, CRC_LEN, FIXED_LEN, MAGIC, VERSION};
use shopify_events_core::event_id::EventId;

use crate::cuts::{has, NO_CRC};

/// What follows the header: raw bytes, or JSON written by `write`.
pub(crate) enum Payload<'a, F> {
    Bytes(&'a [u8]),
    Json(F),
}

/// Why the one-pass writer could not finish.
pub(crate) enum WriteError<E> {
    TooLarge,
    Payload(E),
}

/// Appends one envelope to `out`; on error `out` is truncated back.
#[inline(always)]
pub(crate) fn write<const CUTS: u32, E, F: FnOnce(&mut Vec<u8>) -> Result<(), E>>(
    out: &mut Vec<u8>,
    id: &EventId,
    time_us: i64,
    topic: &[u8],
    key: Option<&[u8]>,
    payload: Payload<'_, F>,
) -> Result<(), WriteError<E>> {
    let start = out.len();
    let key_len = key.map_or(0, |k| 4 + k.len());
    let mut flags = if key.is_some() {
        Flags::KEY_PRESENT
    } else {
        Flags::empty()
    }
    .bits();
    let known = match &payload {
        Payload::Bytes(b) => b.len(),
        Payload::Json(_) => 0,
    };
    let total = FIXED_LEN + topic.len() + key_len + 2 + 4 + known + CRC_LEN;
    if key.is_some_and(|k| k.len() > u32::MAX as usize) || total > u32::MAX as usize {
        return Err(WriteError::TooLarge);
    }
    if let Payload::Json(_) = payload {
        flags |= Flags::PAYLOAD_JSON.bits();
    }
    out.reserve(total + if known == 0 { 256 } else { 0 });
    let mut head = [0u8; FIXED_LEN];
    head[..2].copy_from_slice(&MAGIC);
    head[2] = VERSION;
    head[3] = flags;
    head[4..8].copy_from_slice(&(total as u32).to_le_bytes());
    head[8..24].copy_from_slice(id.as_bytes());
    head[24..32].copy_from_slice(&time_us.to_le_bytes());
    // The caller checked the topic (at most 249 bytes) unless an ablation
    // skipped that.
    head[FIXED_LEN - 1] = topic.len() as u8;
    out.extend_from_slice(&head);
    out.extend_from_slice(topic);
    if let Some(k) = key {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
    }
    match payload {
        Payload::Bytes(bytes) => {
            let mut counts = [0u8; 6];
            counts[2..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&counts);
            out.extend_from_slice(bytes);
        }
        Payload::Json(write) => {
            out.extend_from_slice(&[0u8; 6]);
            let payload_at = out.len();
            if let Err(e) = write(out) {
                out.truncate(start);
                return Err(WriteError::Payload(e));
            }
            let written = out.len() - payload_at;
            let total = out.len() - start + CRC_LEN;
            if total > u32::MAX as usize {
                out.truncate(start);
                return Err(WriteError::TooLarge);
            }
            out[payload_at - 4..payload_at].copy_from_slice(&(written as u32).to_le_bytes());
            out[start + 4..start + 8].copy_from_slice(&(total as u32).to_le_bytes());
        }
    }
    let crc = if has(CUTS, NO_CRC) {
        0
    } else {
        crc32c::crc32c(&out[start..])
    };
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}
