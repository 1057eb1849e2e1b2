//! Errors of encoding and decoding envelopes.

use crate::topic::TopicError;

/// Why an envelope could not be written. The output buffer is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The topic breaks Kafka's naming rules.
    #[error(transparent)]
    InvalidTopic(#[from] TopicError),
    /// More headers than the u16 header count can hold.
    #[error("too many headers: {count}, an envelope holds at most 65535")]
    TooManyHeaders {
        /// Headers the caller tried to add.
        count: usize,
    },
    /// A header name longer than its u16 length field.
    #[error(
        "header name {:?}... is {len} bytes long, the limit is 65535",
        preview(name)
    )]
    HeaderNameTooLong {
        /// The rejected name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A key, header value, payload or the whole envelope exceeds its u32 length field.
    #[error("{field} is {len} bytes long, the envelope allows at most {limit}")]
    FieldTooLarge {
        /// Which field: "key", "header value", "payload" or "envelope".
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The largest length the field can hold.
        limit: usize,
    },
    /// The payload callback of [`payload_with`](super::EnvelopeWriter::payload_with)
    /// removed bytes from the buffer instead of only appending.
    #[error(
        "the payload writer shrank the buffer from {expected_at_least} to {len} bytes; \
         it may only append"
    )]
    BufferShrunk {
        /// Buffer length before the callback ran.
        expected_at_least: usize,
        /// Buffer length after it.
        len: usize,
    },
}

fn preview(name: &str) -> &str {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).unwrap_or_default()
}

/// Why [`EnvelopeWriter::payload_with`](super::EnvelopeWriter::payload_with) failed.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError<E> {
    /// The envelope could not be completed.
    #[error(transparent)]
    Encode(EncodeError),
    /// The caller's payload writer failed.
    #[error("writing the payload failed: {0}")]
    Write(E),
}

/// Why bytes are not a valid envelope. Readers treat every variant as a
/// corrupt or foreign record: skip or quarantine it, never guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before a field does.
    #[error("truncated envelope: {field} needs {needed} bytes, only {available} available")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The input does not start with `SE`.
    #[error("not an envelope: magic is {found:02x?}, expected [53, 45] (\"SE\")")]
    BadMagic {
        /// The first two bytes.
        found: [u8; 2],
    },
    /// Written by a newer (or unknown) version of the format.
    #[error(
        "unsupported envelope version {version}; this reader knows versions 1 and 2, upgrade it"
    )]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// A reserved flag bit is set: written by a newer writer or corrupt.
    #[error(
        "reserved envelope flags set: {flags:#010b}; versions 1 and 2 define only bits 0 and 1"
    )]
    ReservedFlags {
        /// The flags byte.
        flags: u8,
    },
    /// The declared total length disagrees with the fields inside it.
    #[error("envelope declares {declared} bytes but its fields take {actual}")]
    LengthMismatch {
        /// The total length field.
        declared: usize,
        /// Length the fields add up to.
        actual: usize,
    },
    /// The declared total length is below the smallest possible envelope.
    #[error("envelope declares {declared} bytes, the smallest envelope is {minimum}")]
    LengthTooSmall {
        /// The total length field.
        declared: usize,
        /// [`MIN_LEN`](super::MIN_LEN).
        minimum: usize,
    },
    /// The topic breaks Kafka's naming rules.
    #[error("envelope topic: {0}")]
    InvalidTopic(TopicError),
    /// A header name is not UTF-8.
    #[error("header {index} has a name that is not UTF-8")]
    HeaderNameNotUtf8 {
        /// Position of the header, from 0.
        index: usize,
    },
    /// The CRC32C does not match: the bytes were corrupted.
    #[error("envelope checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// CRC in the envelope.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A version 2 stamp with producer id 0 ("unstamped") but a sequence
    /// number: no writer produces that.
    #[error("envelope stamp has producer id 0 (unstamped) but sequence number {seq}; an unstamped envelope carries 0")]
    UnstampedSequence {
        /// The sequence number found.
        seq: u64,
    },
    /// Bytes follow the envelope's declared end.
    #[error(
        "{count} bytes follow the envelope; decode takes exactly one (frame with envelope_len)"
    )]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// Why [`stamp`](super::stamp) refused to number an envelope. Nothing was
/// written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// The bytes do not start with the envelope magic `SE`.
    #[error("cannot stamp {len} bytes that are not an envelope (no \"SE\" magic)")]
    NotAnEnvelope {
        /// Length of the bytes.
        len: usize,
    },
    /// Only version 2 envelopes have room for a stamp.
    #[error("cannot stamp an envelope of version {version}: only version 2 carries a stamp; encode it again with this version")]
    Version {
        /// The envelope's version byte.
        version: u8,
    },
    /// The bytes are not exactly one whole version 2 envelope.
    #[error("cannot stamp: the envelope declares {declared} bytes but {len} were given (a version 2 envelope is at least 60)")]
    Length {
        /// The envelope's total length field.
        declared: usize,
        /// Bytes given.
        len: usize,
    },
    /// Producer id 0 means "unstamped" and cannot be written as a stamp.
    #[error("cannot stamp with producer id 0, which means \"unstamped\"")]
    ZeroProducer,
}
