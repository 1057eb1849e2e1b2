//! The envelope: one versioned binary record carrying an event, the same bytes
//! in the SysV queue, in proxy frames and in spool files.
//!
//! Layout (little-endian, byte by byte in `docs/PROTOCOL.md`): magic `SE`,
//! version, flags, total length, event id, emit time, (version 2) the
//! producer's stamp, topic, optional key, headers, payload, and a CRC32C of
//! everything before it.
//!
//! [`EnvelopeWriter`] appends a version 2 envelope to a caller's buffer in
//! one pass (the payload can be serialized straight into it) and patches the
//! length fields at the end; [`encode_bytes`] writes the commonest event (no
//! headers, payload bytes) with nothing to patch. Both leave the stamp zero ("unstamped"): the
//! transport that accepts the event numbers it with [`stamp`], which writes
//! the producer id and sequence number at their fixed offset
//! ([`STAMP_OFFSET`]) and seals the CRC again, so an envelope encoded long
//! before it is sent (a deferred or outbox event) is numbered when it is
//! sent. [`Envelope::decode`] reads versions 1 and 2, checks the frame and
//! checksum before reading any field, borrows everything from the input,
//! and returns a [`DecodeError`] — never panics — on malformed bytes.

mod cursor;
mod decode;
mod error;
mod flags;
mod headers;
mod stamp;
mod writer;

pub use decode::{envelope_len, Envelope};
pub use error::{DecodeError, EncodeError, PayloadError, StampError};
pub use flags::Flags;
pub use headers::{Headers, HeadersIter};
pub use stamp::{stamp, stampable, Stamp};
pub use writer::{encode, encode_bytes, EnvelopeWriter, Seal};

/// First two bytes of every envelope.
pub const MAGIC: [u8; 2] = *b"SE";
/// The envelope version this crate writes: version 1 plus the stamp.
pub const VERSION: u8 = 2;
/// The first version, still read (it has no stamp).
pub const VERSION_1: u8 = 1;
/// Bytes before the topic in a version 2 envelope: magic, version, flags,
/// total length, id, time, stamp, topic length.
pub const FIXED_LEN: usize = 49;
/// Bytes before the topic in a version 1 envelope (no stamp).
pub const FIXED_LEN_V1: usize = 33;
/// Where the stamp (producer id, then sequence number, u64 each) starts in
/// a version 2 envelope: right after the emit time.
pub const STAMP_OFFSET: usize = 32;
/// Bytes of the stamp.
pub const STAMP_LEN: usize = 16;
/// Bytes of the trailing CRC32C.
pub const CRC_LEN: usize = 4;
/// Bytes a reader needs to learn an envelope's length: see [`envelope_len`].
pub const PREFIX_LEN: usize = 8;
/// Smallest envelope of any version a reader accepts (a version 1 envelope
/// with a one-byte topic, no key, no headers and an empty payload): the
/// lower bound for framing envelopes in journals, spool records and proxy
/// frames.
pub const MIN_LEN: usize = FIXED_LEN_V1 + 1 + 2 + 4 + CRC_LEN;
/// Smallest version 2 envelope, the smallest this crate writes.
pub const MIN_LEN_V2: usize = FIXED_LEN + 1 + 2 + 4 + CRC_LEN;

// Offsets of the fields the writer patches and the reader checks first.
const OFF_VERSION: usize = 2;
const OFF_FLAGS: usize = 3;
const OFF_TOTAL_LEN: usize = 4;
const OFF_ID: usize = 8;
const OFF_TIME: usize = 24;
