//! The envelope: one versioned binary record carrying an event, the same bytes
//! in the SysV queue, in proxy frames and in spool files.
//!
//! Layout (little-endian, byte by byte in `docs/PROTOCOL.md`): magic `SE`,
//! version, flags, total length, event id, emit time, topic, optional key,
//! headers, payload, and a CRC32C of everything before it.
//!
//! [`EnvelopeWriter`] appends an envelope to a caller's buffer in one pass
//! (the payload can be serialized straight into it) and patches the length
//! fields at the end. [`Envelope::decode`] checks the frame and checksum
//! before reading any field, borrows everything from the input, and returns a
//! [`DecodeError`] — never panics — on malformed bytes.

mod cursor;
mod decode;
mod error;
mod flags;
mod headers;
mod writer;

pub use decode::{envelope_len, Envelope};
pub use error::{DecodeError, EncodeError, PayloadError};
pub use flags::Flags;
pub use headers::{Headers, HeadersIter};
pub use writer::{encode, EnvelopeWriter};

/// First two bytes of every envelope.
pub const MAGIC: [u8; 2] = *b"SE";
/// The envelope version this crate writes and the only one it reads.
pub const VERSION: u8 = 1;
/// Bytes before the topic: magic, version, flags, total length, id, time, topic length.
pub const FIXED_LEN: usize = 33;
/// Bytes of the trailing CRC32C.
pub const CRC_LEN: usize = 4;
/// Bytes a reader needs to learn an envelope's length: see [`envelope_len`].
pub const PREFIX_LEN: usize = 8;
/// Smallest possible envelope: one-byte topic, no key, no headers, empty payload.
pub const MIN_LEN: usize = FIXED_LEN + 1 + 2 + 4 + CRC_LEN;

// Offsets of the fields the writer patches and the reader checks first.
const OFF_FLAGS: usize = 3;
const OFF_TOTAL_LEN: usize = 4;
