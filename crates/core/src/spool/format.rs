//! The segment's layout: names, header fields, record framing. Pure
//! functions of bytes and numbers; see the [module docs](super) for the
//! format they implement.

use std::fmt;

use crate::envelope;

/// First 8 bytes of a segment file, whatever its format version.
pub const MAGIC: [u8; 8] = *b"SESPOOL1";
/// The segment format version this module writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the header page; the data area starts here.
pub const HEADER_SIZE: u64 = 4096;

pub(super) const OFF_VERSION: usize = 8;
pub(super) const OFF_HEADER_SIZE: usize = 12;
pub(super) const OFF_CAPACITY: usize = 16;
pub(super) const OFF_PRODUCER: usize = 24;
pub(super) const OFF_INDEX: usize = 32;
pub(super) const OFF_KEY: usize = 40;
pub(super) const OFF_FLAGS: usize = 44;
pub(super) const OFF_CREATED: usize = 48;
pub(super) const OFF_PID: usize = 56;
pub(super) const OFF_HEADER_CRC: usize = 60;
pub(super) const OFF_PUBLISHED: usize = 128;
pub(super) const OFF_SEALED: usize = 192;
pub(super) const OFF_ACKED: usize = 256;

/// The `sealed` word of a sealed segment (`SESEALED`); 0 before. Any other
/// value is damage: one flipped bit cannot turn 0 into it.
pub(super) const SEALED: u64 = u64::from_le_bytes(*b"SESEALED");
/// Largest data capacity: offsets in the header words are 32-bit.
pub(super) const MAX_CAPACITY: u64 = 1 << 31;
/// Largest envelope a segment takes, so that a record's segment stays
/// within the 2 GiB a segment can have (offsets are 32-bit).
pub const MAX_RECORD_LIMIT: usize = 1 << 30;
/// Bytes before a record's envelope: `len` and `check`.
pub(super) const RECORD_HEADER: u64 = 8;
/// Segment indices are written with 10 digits.
pub(super) const MAX_INDEX: u64 = 9_999_999_999;
/// File name suffix of a segment.
pub(super) const SUFFIX: &str = ".seg";
/// Suffix a given-up segment is renamed to, appended to its name.
pub(super) const DAMAGED_SUFFIX: &str = ".damaged";

/// One segment: its producer and its index among that producer's segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId {
    /// The writing process generation's producer id.
    pub producer: u64,
    /// The segment's index, from 0, in the order its writer created them.
    pub index: u64,
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}/{}", self.producer, self.index)
    }
}

/// The file name of segment `id` of queue `key`:
/// `<key: 8 hex>-<producer: 16 hex>-<index: 10 digits>.seg`.
pub fn segment_name(key: libc::key_t, id: SegmentId) -> String {
    format!(
        "{:08x}-{:016x}-{:010}{SUFFIX}",
        key as u32, id.producer, id.index
    )
}

/// The temporary name a segment is built under before its rename.
pub(super) fn temp_name(key: libc::key_t, id: SegmentId) -> String {
    format!(".{}.tmp", segment_name(key, id))
}

/// What a directory entry's name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name {
    /// A segment of queue `key`.
    Segment(u32, SegmentId),
    /// A writer's temporary file for a segment of queue `key`.
    Temp(u32, SegmentId),
    /// A segment given up after damage.
    Damaged,
    /// A reader's lock file (`drain-<key>.lock`, [`ReaderLock`](super::ReaderLock)).
    Lock,
    /// Not a spool file.
    Other,
}

/// Parses a directory entry's name.
pub(super) fn parse_name(name: &str) -> Name {
    if let Some(key) = name
        .strip_prefix("drain-")
        .and_then(|n| n.strip_suffix(".lock"))
    {
        if key.len() == 8 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Name::Lock;
        }
    }
    if let Some(inner) = name.strip_suffix(DAMAGED_SUFFIX) {
        if parse_segment(inner).is_some() {
            return Name::Damaged;
        }
    }
    if let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) {
        return match parse_segment(inner) {
            Some((key, id)) => Name::Temp(key, id),
            None => Name::Other,
        };
    }
    match parse_segment(name) {
        Some((key, id)) => Name::Segment(key, id),
        None => Name::Other,
    }
}

fn parse_segment(name: &str) -> Option<(u32, SegmentId)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let bytes = stem.as_bytes();
    // 8 + 1 + 16 + 1 + 10
    if bytes.len() != 36 || bytes[8] != b'-' || bytes[25] != b'-' {
        return None;
    }
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let (key, producer, index) = (&stem[..8], &stem[9..25], &stem[26..]);
    if !lower_hex(key) || !lower_hex(producer) || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = SegmentId {
        producer: u64::from_str_radix(producer, 16).ok()?,
        index: index.parse().ok()?,
    };
    Some((u32::from_str_radix(key, 16).ok()?, id))
}

/// The fixed header fields, bytes 0..64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub capacity: u64,
    pub id: SegmentId,
    pub key: u32,
    pub created_us: i64,
    pub pid: u32,
}

/// Why a header is not one this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// Not a spool segment at all (another magic).
    Magic,
    /// A spool segment of another format version.
    Version(u32),
    /// Fields that break the format's rules.
    Damaged(&'static str),
}

impl Header {
    /// The header page's first 64 bytes, CRC included.
    pub fn encode(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..8].copy_from_slice(&MAGIC);
        put(&mut out, OFF_VERSION, &FORMAT_VERSION.to_le_bytes());
        put(
            &mut out,
            OFF_HEADER_SIZE,
            &(HEADER_SIZE as u32).to_le_bytes(),
        );
        put(&mut out, OFF_CAPACITY, &self.capacity.to_le_bytes());
        put(&mut out, OFF_PRODUCER, &self.id.producer.to_le_bytes());
        put(&mut out, OFF_INDEX, &self.id.index.to_le_bytes());
        put(&mut out, OFF_KEY, &self.key.to_le_bytes());
        put(&mut out, OFF_FLAGS, &0u32.to_le_bytes());
        put(&mut out, OFF_CREATED, &self.created_us.to_le_bytes());
        put(&mut out, OFF_PID, &self.pid.to_le_bytes());
        let crc = crc32c::crc32c(&out[..OFF_HEADER_CRC]);
        put(&mut out, OFF_HEADER_CRC, &crc.to_le_bytes());
        out
    }

    /// Reads and checks the first 64 bytes of a header page.
    pub fn decode(bytes: &[u8; 64]) -> Result<Header, HeaderError> {
        if bytes[..8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let version = u32_at(bytes, OFF_VERSION);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        if crc32c::crc32c(&bytes[..OFF_HEADER_CRC]) != u32_at(bytes, OFF_HEADER_CRC) {
            return Err(HeaderError::Damaged("header CRC mismatch"));
        }
        if u64::from(u32_at(bytes, OFF_HEADER_SIZE)) != HEADER_SIZE {
            return Err(HeaderError::Damaged("header size is not 4096"));
        }
        if u32_at(bytes, OFF_FLAGS) != 0 {
            return Err(HeaderError::Damaged("reserved flags set"));
        }
        let capacity = u64_at(bytes, OFF_CAPACITY);
        if capacity == 0 || capacity % HEADER_SIZE != 0 || capacity > MAX_CAPACITY {
            return Err(HeaderError::Damaged(
                "capacity is not a multiple of 4096 up to 2 GiB",
            ));
        }
        let id = SegmentId {
            producer: u64_at(bytes, OFF_PRODUCER),
            index: u64_at(bytes, OFF_INDEX),
        };
        if id.producer == 0 || id.index > MAX_INDEX {
            return Err(HeaderError::Damaged("producer id or index out of range"));
        }
        Ok(Header {
            capacity,
            id,
            key: u32_at(bytes, OFF_KEY),
            created_us: u64_at(bytes, OFF_CREATED) as i64,
            pid: u32_at(bytes, OFF_PID),
        })
    }
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

/// The `published` or `acked` word for data offset `offset`: the offset in
/// the low half, its complement in the high half, so that a flipped bit (or
/// a zeroed page) is seen rather than read as another offset.
#[inline]
pub(super) fn offset_word(offset: u64) -> u64 {
    let low = offset as u32;
    u64::from(low) | u64::from(!low) << 32
}

/// The offset an offset word holds, if it is intact.
pub(super) fn word_offset(word: u64) -> Option<u64> {
    let low = word as u32;
    ((word >> 32) as u32 == !low).then_some(u64::from(low))
}

/// `len` rounded up to a multiple of 8.
pub(super) fn pad8(len: u64) -> u64 {
    len.saturating_add(7) & !7
}

/// Data bytes a record with a `len`-byte envelope takes.
pub(super) fn record_span(len: u64) -> u64 {
    RECORD_HEADER.saturating_add(pad8(len))
}

/// The CRC32C of a segment's producer id and index: the first 16 of the 28
/// bytes every record's `check` covers, computed once per segment.
pub(super) fn check_seed(id: SegmentId) -> u32 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&id.producer.to_le_bytes());
    bytes[8..].copy_from_slice(&id.index.to_le_bytes());
    crc32c::crc32c(&bytes)
}

/// The record header word (`len` low, `check` high, as stored
/// little-endian) of a `len`-byte envelope at data offset `offset`.
#[inline]
pub(super) fn record_word(seed: u32, offset: u64, len: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&offset.to_le_bytes());
    bytes[8..].copy_from_slice(&len.to_le_bytes());
    let check = crc32c::crc32c_append(seed, &bytes);
    u64::from(len) | u64::from(check) << 32
}

/// Whether `body` is one whole envelope by its framing and CRC32C; field
/// decoding is left to the consumer (see the module docs' Recovery).
pub(super) fn envelope_intact(body: &[u8]) -> Result<(), &'static str> {
    match envelope::envelope_len(body) {
        Ok(Some(len)) if len == body.len() => {}
        Ok(_) => return Err("envelope length differs from the record's"),
        Err(_) => return Err("not an envelope (magic, version or length)"),
    }
    let (head, crc) = body.split_at(body.len() - envelope::CRC_LEN);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(crc);
    if crc32c::crc32c(head) != u32::from_le_bytes(stored) {
        return Err("envelope CRC32C mismatch");
    }
    Ok(())
}

/// The emit time (µs) of an intact envelope.
pub(super) fn envelope_time(body: &[u8]) -> Option<i64> {
    let bytes = body.get(24..32)?;
    let mut le = [0u8; 8];
    le.copy_from_slice(bytes);
    Some(i64::from_le_bytes(le))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of docs/PROTOCOL.md, "Spool segments".
    #[test]
    fn worked_example_in_protocol_md_is_what_the_format_writes() {
        let id = SegmentId {
            producer: 0x5f1c_2a9e_0b7d_4c33,
            index: 0,
        };
        let header = Header {
            capacity: 65536,
            id,
            key: 0xbeef,
            created_us: 1_700_000_000_123_456,
            pid: 4242,
        };
        let hex = |bytes: &[u8]| {
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            hex(&header.encode()),
            "53 45 53 50 4f 4f 4c 31 01 00 00 00 00 10 00 00 \
             00 00 01 00 00 00 00 00 33 4c 7d 0b 9e 2a 1c 5f \
             00 00 00 00 00 00 00 00 ef be 00 00 00 00 00 00 \
             40 22 20 18 24 0a 06 00 92 10 00 00 db fc 0e da"
        );
        let record = record_word(check_seed(id), 0, 75).to_le_bytes();
        assert_eq!(hex(&record), "4b 00 00 00 28 e4 d9 17");
        assert_eq!(
            hex(&offset_word(0).to_le_bytes()),
            "00 00 00 00 ff ff ff ff"
        );
        assert_eq!(
            hex(&offset_word(88).to_le_bytes()),
            "58 00 00 00 a7 ff ff ff"
        );
        assert_eq!(hex(&SEALED.to_le_bytes()), "53 45 53 45 41 4c 45 44");
    }

    #[test]
    fn names_round_trip_and_other_names_are_not_segments() {
        let id = SegmentId {
            producer: 0x5f1c_2a9e_0b7d_4c33,
            index: 42,
        };
        let name = segment_name(0xbeef, id);
        assert_eq!(name, "0000beef-5f1c2a9e0b7d4c33-0000000042.seg");
        assert_eq!(parse_name(&name), Name::Segment(0xbeef, id));
        assert_eq!(parse_name(&temp_name(-1, id)), Name::Temp(u32::MAX, id));
        assert_eq!(parse_name(&format!("{name}.damaged")), Name::Damaged);
        assert_eq!(parse_name("drain-0000beef.lock"), Name::Lock);
        for other in [
            "drain-beef.lock",
            "drain-0000BEEF.lock",
            "notes.txt",
            "0000BEEF-5f1c2a9e0b7d4c33-0000000042.seg",
            "0000beef-5f1c2a9e0b7d4c33-000000042.seg",
            "0000beef-5f1c2a9e0b7d4c33-0000000042.seg.bak",
            ".0000beef.tmp",
        ] {
            assert_eq!(parse_name(other), Name::Other, "{other}");
        }
    }

    #[test]
    fn header_round_trips_and_every_damage_is_caught() {
        let header = Header {
            capacity: 65536,
            id: SegmentId {
                producer: 7,
                index: 3,
            },
            key: 0xbeef,
            created_us: 1_700_000_000_000_000,
            pid: 1234,
        };
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes), Ok(header));
        for bit in 0..60 * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Header::decode(&bad).is_err(),
                "bit {bit} flipped went unseen"
            );
        }
    }

    #[test]
    fn offset_words_round_trip_and_no_single_bit_flip_passes() {
        for offset in [0, 8, 4096, 123_456, MAX_CAPACITY] {
            let word = offset_word(offset);
            assert_eq!(word_offset(word), Some(offset));
            for bit in 0..64 {
                assert_eq!(word_offset(word ^ 1 << bit), None, "{offset} bit {bit}");
            }
        }
        assert_eq!(word_offset(0), None, "a zeroed header page is no offset");
        assert!((0..64).all(|bit| SEALED ^ 1 << bit != 0));
    }

    #[test]
    fn check_depends_on_place_segment_and_length() {
        let id = SegmentId {
            producer: 9,
            index: 0,
        };
        let seed = check_seed(id);
        let word = record_word(seed, 64, 100);
        assert_eq!(word as u32, 100);
        assert_ne!(word, record_word(seed, 72, 100));
        assert_ne!(word, record_word(seed, 64, 101));
        let other = check_seed(SegmentId { index: 1, ..id });
        assert_ne!(word, record_word(other, 64, 100));
        // The incremental CRC is the CRC of the 28 documented bytes.
        let mut all = Vec::new();
        all.extend_from_slice(&9u64.to_le_bytes());
        all.extend_from_slice(&0u64.to_le_bytes());
        all.extend_from_slice(&64u64.to_le_bytes());
        all.extend_from_slice(&100u32.to_le_bytes());
        assert_eq!((word >> 32) as u32, crc32c::crc32c(&all));
    }
}
