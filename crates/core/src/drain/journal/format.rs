//! The journal file's layout: header fields, slot words, ring geometry. Pure
//! functions of bytes and numbers, no I/O (reading the file is
//! [`super::file`]'s); see the [module docs](super) for the format they
//! implement.

use sysvmq::HEADER_LEN;

/// First 8 bytes of a journal file, whatever its format version.
pub const MAGIC: [u8; 8] = *b"SEJOURN1";
/// The file format version this module writes and reads: the ring.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes of the header page; the data area starts here.
pub const HEADER_SIZE: u64 = 4096;
/// Set in the high half of every committed or wrap slot, so that the slot,
/// read as an `i64`, is negative and never a message type (which is > 0).
pub const TAG_BIT: u32 = 0x8000_0000;
/// The body length of a wrap slot: "continue at the start of the next lap".
pub const WRAP_LEN: u32 = u32::MAX;
/// The largest `max_record` the format takes: record lengths are `u32` and
/// [`WRAP_LEN`] is no length.
pub const MAX_RECORD_LIMIT: u64 = WRAP_LEN as u64 - 1;

/// The high half of a committed or wrap slot written during lap `lap`.
pub fn lap_tag(lap: u64) -> u32 {
    TAG_BIT | (lap as u32 & !TAG_BIT)
}

/// Bytes of a slot, where msgrcv writes the message type.
pub(super) const SLOT: u64 = HEADER_LEN as u64;
pub(super) const OFF_VERSION: usize = 8;
pub(super) const OFF_CAPACITY: usize = 16;
pub(super) const OFF_MAX_RECORD: usize = 24;
pub(super) const OFF_CHECKPOINT: usize = 32;
/// The version 1 generation, reserved (zero) since.
const OFF_RESERVED: usize = 40;
pub(super) const FIELDS_LEN: usize = 48;
/// Checkpoints beyond this are refused as corrupt, so that position
/// arithmetic (checkpoint + capacity + a frame) cannot overflow. At 1 GB/s
/// a drain reaches it after 290 years.
const MAX_CHECKPOINT: u64 = u64::MAX / 4;

/// Data bytes a frame for a body of up to `max_record` bytes takes: its
/// slot and the body padded to 8.
pub(super) fn frame_span(max_record: u64) -> u64 {
    SLOT.saturating_add(pad8(max_record))
}

/// The smallest capacity for records of up to `max_record` bytes: one frame
/// and the slot after it, which commit zeroes.
pub(super) fn min_capacity(max_record: u64) -> u64 {
    frame_span(max_record).saturating_add(SLOT)
}

pub(super) fn pad8(len: u64) -> u64 {
    len.saturating_add(7) & !7
}

/// The slot word of a committed record of `len` body bytes in lap `lap`.
pub(super) fn record_word(lap: u64, len: u64) -> u64 {
    u64::from(lap_tag(lap)) << 32 | (len & u64::from(u32::MAX))
}

/// The slot word of a wrap marker in lap `lap`.
pub(super) fn wrap_word(lap: u64) -> u64 {
    record_word(lap, u64::from(WRAP_LEN))
}

/// What a slot word says, read at a position in lap `lap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Zero: the write position, nothing from here on.
    Empty,
    /// A committed record of this lap with this body length (unchecked).
    Record(u64),
    /// A wrap marker of this lap.
    Wrap,
    /// A positive message type: msgrcv wrote here and commit never ran.
    Uncommitted,
    /// Anything else: another lap's slot, or no slot at all.
    Foreign,
}

impl Slot {
    pub(super) fn decode(bytes: [u8; 8], lap: u64) -> Slot {
        let word = u64::from_le_bytes(bytes);
        if word == 0 {
            Slot::Empty
        } else if (word >> 32) as u32 == lap_tag(lap) {
            match word as u32 {
                WRAP_LEN => Slot::Wrap,
                len => Slot::Record(u64::from(len)),
            }
        } else if i64::from_ne_bytes(bytes) > 0 {
            Slot::Uncommitted
        } else {
            Slot::Foreign
        }
    }
}

/// The fields of a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) capacity: u64,
    pub(super) max_record: u64,
    pub(super) checkpoint: u64,
}

/// What the first [`FIELDS_LEN`] bytes of a file of `len` bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed {
    /// Nothing: an empty file, or one whose magic was never written (a
    /// crash while creating it).
    Absent,
    /// A version 1 (linear) journal. Whether it still holds events depends
    /// on the slot at its checkpoint (see [`version1_slot`]).
    Version1 {
        /// Its data capacity.
        capacity: u64,
        /// Its checkpoint.
        checkpoint: u64,
    },
    /// A journal of this format version.
    Current(Header),
    /// Anything this version cannot read, and why.
    Unreadable(String),
}

/// Reads the header fields of a file of `len` bytes (`head` is zero past
/// the end of a shorter file).
pub(super) fn parse_header(head: &[u8; FIELDS_LEN], len: u64) -> Parsed {
    let word = |off: usize| {
        let bytes = head.get(off..off + 8).and_then(|b| b.try_into().ok());
        u64::from_le_bytes(bytes.unwrap_or_default())
    };
    let (capacity, max_record, checkpoint) = (
        word(OFF_CAPACITY),
        word(OFF_MAX_RECORD),
        word(OFF_CHECKPOINT),
    );
    let (version, header_size) = (word(OFF_VERSION) as u32, word(OFF_VERSION) >> 32);
    if word(0) == 0 {
        Parsed::Absent
    } else if head[..8] != MAGIC {
        Parsed::Unreadable(format!(
            "not a shopify_events journal (it starts {:?})",
            &head[..8]
        ))
    } else if version == 1 {
        Parsed::Version1 {
            capacity,
            checkpoint,
        }
    } else if version != FORMAT_VERSION || header_size != HEADER_SIZE {
        Parsed::Unreadable(format!("format version {version}, header {header_size} bytes; this drain reads version {FORMAT_VERSION}"))
    } else if capacity % SLOT != 0
        || max_record > MAX_RECORD_LIMIT
        || capacity < min_capacity(max_record)
        || word(OFF_RESERVED) != 0
    {
        Parsed::Unreadable(format!(
            "impossible geometry: capacity {capacity}, max_record {max_record}"
        ))
    } else if len < HEADER_SIZE.saturating_add(capacity) {
        Parsed::Unreadable(format!(
            "the file is {len} bytes, shorter than the {} its header declares",
            HEADER_SIZE.saturating_add(capacity)
        ))
    } else if checkpoint > MAX_CHECKPOINT || checkpoint % SLOT != 0 {
        Parsed::Unreadable(format!("checkpoint {checkpoint} is not a record position"))
    } else {
        Parsed::Current(Header {
            capacity,
            max_record,
            checkpoint,
        })
    }
}

/// Where a version 1 journal keeps the slot that tells whether it holds
/// anything: by its rules the records start at the checkpoint, so a zero
/// slot there means there are none. `Ok(None)`: the checkpoint is at the end
/// of the area, nothing is pending; `Err(())`: no such position.
pub(super) fn version1_slot(capacity: u64, checkpoint: u64) -> Result<Option<u64>, ()> {
    if checkpoint >= capacity {
        return Ok(None);
    }
    HEADER_SIZE.checked_add(checkpoint).map(Some).ok_or(())
}

/// Why a version 1 journal with events pending is refused.
pub(super) fn version1_refusal() -> String {
    format!(
        "format version 1, the linear journal of older drains; this drain reads only \
         version {FORMAT_VERSION} (the ring) and will not reinterpret it. Let the drain \
         version that wrote it deliver its events first, or keep the file for inspection"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_decode_by_lap() {
        let word = |w: u64| w.to_le_bytes();
        assert_eq!(Slot::decode(word(0), 3), Slot::Empty);
        assert_eq!(Slot::decode(word(record_word(3, 17)), 3), Slot::Record(17));
        assert_eq!(Slot::decode(word(record_word(2, 17)), 3), Slot::Foreign);
        assert_eq!(Slot::decode(word(wrap_word(3)), 3), Slot::Wrap);
        assert_eq!(Slot::decode(word(wrap_word(3)), 4), Slot::Foreign);
        assert_eq!(Slot::decode(1i64.to_ne_bytes(), 3), Slot::Uncommitted);
        assert_eq!(Slot::decode((-5i64).to_ne_bytes(), 3), Slot::Foreign);
        // Laps are told apart modulo 2^31, and the tag bit always stays set.
        assert_eq!(lap_tag(0), TAG_BIT);
        assert_eq!(lap_tag(1 << 31), TAG_BIT);
        assert_eq!(lap_tag(u64::MAX), u32::MAX);
        assert!((record_word(7, 0) as i64) < 0);
    }

    #[test]
    fn headers_parse_without_touching_a_file() {
        let mut head = [0u8; FIELDS_LEN];
        assert_eq!(parse_header(&head, 0), Parsed::Absent);
        head[..8].copy_from_slice(b"NOTAJRNL");
        assert!(
            matches!(parse_header(&head, 4096), Parsed::Unreadable(r) if r.contains("not a shopify_events journal"))
        );
        head[..8].copy_from_slice(&MAGIC);
        head[OFF_VERSION..OFF_VERSION + 8]
            .copy_from_slice(&(1u64 | HEADER_SIZE << 32).to_le_bytes());
        head[OFF_CAPACITY..OFF_CAPACITY + 8].copy_from_slice(&4096u64.to_le_bytes());
        assert_eq!(
            parse_header(&head, 8192),
            Parsed::Version1 {
                capacity: 4096,
                checkpoint: 0
            }
        );
        let version = u64::from(FORMAT_VERSION) | HEADER_SIZE << 32;
        head[OFF_VERSION..OFF_VERSION + 8].copy_from_slice(&version.to_le_bytes());
        head[OFF_MAX_RECORD..OFF_MAX_RECORD + 8].copy_from_slice(&1000u64.to_le_bytes());
        let header = Header {
            capacity: 4096,
            max_record: 1000,
            checkpoint: 0,
        };
        assert_eq!(parse_header(&head, 8192), Parsed::Current(header));
        assert!(
            matches!(parse_header(&head, 8191), Parsed::Unreadable(r) if r.contains("shorter"))
        );
        assert_eq!(version1_slot(4096, 4096), Ok(None));
        assert_eq!(version1_slot(4096, 8), Ok(Some(HEADER_SIZE + 8)));
    }

    #[test]
    fn geometry() {
        assert_eq!(frame_span(1000), 1008);
        assert_eq!(min_capacity(1000), 1016);
        assert_eq!(frame_span(0), 8);
        assert_eq!(pad8(u64::MAX), !7);
    }
}
