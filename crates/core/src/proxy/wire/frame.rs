//! The proxy wire codec (docs/PROTOCOL.md, "Proxy frames").
//!
//! Four messages, all integers little-endian:
//!
//! - client → proxy [`Hello`]: `"SEPX"`, version, flags, token length, token;
//! - proxy → client [`Welcome`]: `"SEPY"`, version, status, the largest
//!   envelope the host queue takes, a reason text when refused;
//! - client → proxy data frame: `u32` length (of what follows), `u64`
//!   sequence number, one envelope;
//! - proxy → client [`Reply`]: `0x01` + `u64` cumulative ack, or `0x02` +
//!   `u64` sequence + reason code + `u16` text length + text (a nack).
//!
//! Decoders take byte slices and report "need more" as `Ok(None)`, so the
//! same code serves blocking readers and the client's non-blocking buffer.
//! They never panic: every length is checked before it is used.

/// Magic of the client's handshake.
pub const HELLO_MAGIC: [u8; 4] = *b"SEPX";
/// Magic of the proxy's handshake reply.
pub const WELCOME_MAGIC: [u8; 4] = *b"SEPY";
/// The protocol version this code speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Longest shared-secret token a handshake may carry.
pub const MAX_TOKEN_LEN: usize = 1024;
/// Longest reason text in a welcome or nack (longer texts are cut).
pub const MAX_TEXT_LEN: usize = 1024;
/// Bytes before the envelope in a data frame: `u32` length + `u64` sequence.
pub const DATA_HEADER_LEN: usize = 12;
/// Fixed part of a [`Hello`]: magic, version, flags, token length.
pub const HELLO_FIXED_LEN: usize = 8;
/// Fixed part of a [`Welcome`]: magic, version, status, max envelope, text length.
pub const WELCOME_FIXED_LEN: usize = 12;
/// Reply type byte of an ack.
pub const REPLY_ACK: u8 = 0x01;
/// Reply type byte of a nack.
pub const REPLY_NACK: u8 = 0x02;
/// Length of an ack on the wire.
pub const ACK_LEN: usize = 9;
/// Fixed part of a nack: type, sequence, reason, text length.
pub const NACK_FIXED_LEN: usize = 12;

/// A malformed proxy message. Receiving one ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The handshake does not start with the expected magic.
    #[error("not a shopify-events proxy {what}: magic is {found:02x?}, expected {expected:02x?}; is the peer a shopify-events proxy client/server?")]
    BadMagic {
        /// "handshake" or "handshake reply".
        what: &'static str,
        /// The first four bytes.
        found: [u8; 4],
        /// The magic expected.
        expected: [u8; 4],
    },
    /// A token longer than [`MAX_TOKEN_LEN`].
    #[error("handshake token is {len} bytes, at most {MAX_TOKEN_LEN} are allowed; use a shorter SHOPIFY_EVENTS_PROXY_TOKEN")]
    TokenTooLong {
        /// Declared length.
        len: usize,
    },
    /// Reserved handshake flag bits are set.
    #[error("handshake flags {flags:#04x} set reserved bits; this proxy speaks version {PROTOCOL_VERSION}")]
    ReservedFlags {
        /// The flags byte.
        flags: u8,
    },
    /// A reply type byte other than ack or nack.
    #[error("unknown proxy reply type {kind:#04x}; expected 0x01 (ack) or 0x02 (nack)")]
    UnknownReply {
        /// The type byte.
        kind: u8,
    },
    /// A welcome status byte this client does not know.
    #[error("unknown handshake status {status}")]
    UnknownStatus {
        /// The status byte.
        status: u8,
    },
}

/// The client's handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the client speaks.
    pub version: u8,
    /// Shared secret, empty when none is configured.
    pub token: Vec<u8>,
}

impl Hello {
    /// Appends the encoded handshake to `out`. A token longer than
    /// [`MAX_TOKEN_LEN`] is an error, not cut.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        if self.token.len() > MAX_TOKEN_LEN {
            return Err(FrameError::TokenTooLong {
                len: self.token.len(),
            });
        }
        out.extend_from_slice(&HELLO_MAGIC);
        out.push(self.version);
        out.push(0);
        out.extend_from_slice(&(self.token.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.token);
        Ok(())
    }

    /// Decodes a handshake from the start of `bytes`: `Ok(None)` if more
    /// bytes are needed, else the handshake and how many bytes it took.
    pub fn decode(bytes: &[u8]) -> Result<Option<(Hello, usize)>, FrameError> {
        if let Some(found) = bytes.get(..4) {
            let found: [u8; 4] = [found[0], found[1], found[2], found[3]];
            if found != HELLO_MAGIC {
                return Err(FrameError::BadMagic {
                    what: "handshake",
                    found,
                    expected: HELLO_MAGIC,
                });
            }
        }
        let Some(fixed) = bytes.get(..HELLO_FIXED_LEN) else {
            return Ok(None);
        };
        if fixed[5] != 0 {
            return Err(FrameError::ReservedFlags { flags: fixed[5] });
        }
        let len = u16::from_le_bytes([fixed[6], fixed[7]]) as usize;
        if len > MAX_TOKEN_LEN {
            return Err(FrameError::TokenTooLong { len });
        }
        let Some(token) = bytes.get(HELLO_FIXED_LEN..HELLO_FIXED_LEN + len) else {
            return Ok(None);
        };
        let hello = Hello {
            version: fixed[4],
            token: token.to_vec(),
        };
        Ok(Some((hello, HELLO_FIXED_LEN + len)))
    }
}

/// The outcome of a handshake, as the proxy reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Accepted: data frames may follow.
    Ok = 0,
    /// The client's protocol version is not one the proxy speaks.
    UnsupportedVersion = 1,
    /// The token is missing or wrong.
    BadToken = 2,
    /// The proxy is at its connection limit; retry later.
    Busy = 3,
}

impl Status {
    fn from_byte(status: u8) -> Result<Status, FrameError> {
        Ok(match status {
            0 => Status::Ok,
            1 => Status::UnsupportedVersion,
            2 => Status::BadToken,
            3 => Status::Busy,
            _ => return Err(FrameError::UnknownStatus { status }),
        })
    }
}

/// The proxy's handshake reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version the proxy speaks.
    pub version: u8,
    /// Whether the connection was accepted, and if not why.
    pub status: Status,
    /// Largest envelope the host queue accepts (`kernel.msgmax`, or the
    /// queue's capacity if smaller); larger frames are refused.
    pub max_envelope: u32,
    /// Why the connection was refused (empty when accepted).
    pub text: String,
}

impl Welcome {
    /// Appends the encoded reply to `out` (the text is cut at [`MAX_TEXT_LEN`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let text = cut(&self.text);
        out.extend_from_slice(&WELCOME_MAGIC);
        out.push(self.version);
        out.push(self.status as u8);
        out.extend_from_slice(&self.max_envelope.to_le_bytes());
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text);
    }

    /// Decodes a reply from the start of `bytes`, as [`Hello::decode`] does.
    pub fn decode(bytes: &[u8]) -> Result<Option<(Welcome, usize)>, FrameError> {
        if let Some(found) = bytes.get(..4) {
            let found: [u8; 4] = [found[0], found[1], found[2], found[3]];
            if found != WELCOME_MAGIC {
                return Err(FrameError::BadMagic {
                    what: "handshake reply",
                    found,
                    expected: WELCOME_MAGIC,
                });
            }
        }
        let Some(fixed) = bytes.get(..WELCOME_FIXED_LEN) else {
            return Ok(None);
        };
        let status = Status::from_byte(fixed[5])?;
        let max_envelope = u32::from_le_bytes([fixed[6], fixed[7], fixed[8], fixed[9]]);
        let len = u16::from_le_bytes([fixed[10], fixed[11]]) as usize;
        let Some(text) = bytes.get(WELCOME_FIXED_LEN..WELCOME_FIXED_LEN + len) else {
            return Ok(None);
        };
        let welcome = Welcome {
            version: fixed[4],
            status,
            max_envelope,
            text: String::from_utf8_lossy(text).into_owned(),
        };
        Ok(Some((welcome, WELCOME_FIXED_LEN + len)))
    }
}

/// Why the proxy refused one data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NackReason {
    /// The frame is larger than the host queue's message limit. The proxy
    /// closes the connection after this nack.
    TooLarge = 1,
    /// The envelope is not a valid envelope (bad magic, version, lengths,
    /// topic), or the frame length is below the smallest envelope.
    Malformed = 2,
    /// The envelope's CRC32C does not match its bytes.
    CrcMismatch = 3,
    /// The sequence number is not greater than the previous frame's (gaps
    /// are fine: a client skips frames that were nacked). The proxy closes
    /// the connection after this nack.
    OutOfOrder = 4,
    /// A reason code this side does not know (newer peer).
    Other = 255,
}

impl NackReason {
    /// The reason for a code byte; unknown codes map to [`NackReason::Other`].
    pub fn from_byte(code: u8) -> NackReason {
        match code {
            1 => NackReason::TooLarge,
            2 => NackReason::Malformed,
            3 => NackReason::CrcMismatch,
            4 => NackReason::OutOfOrder,
            _ => NackReason::Other,
        }
    }

    /// A short name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            NackReason::TooLarge => "too_large",
            NackReason::Malformed => "malformed",
            NackReason::CrcMismatch => "crc_mismatch",
            NackReason::OutOfOrder => "out_of_order",
            NackReason::Other => "other",
        }
    }
}

/// A message from the proxy after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Every frame with a sequence number up to and including this one is
    /// in the host queue (or was nacked).
    Ack(u64),
    /// The frame with this sequence number was refused and will never be
    /// accepted: the client drops it.
    Nack {
        /// Sequence number of the refused frame.
        seq: u64,
        /// Why.
        reason: NackReason,
        /// A human explanation (the decode error, the limit).
        text: String,
    },
}

impl Reply {
    /// Appends the encoded reply to `out` (a nack's text cut at [`MAX_TEXT_LEN`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Ack(seq) => {
                out.push(REPLY_ACK);
                out.extend_from_slice(&seq.to_le_bytes());
            }
            Reply::Nack { seq, reason, text } => {
                let text = cut(text);
                out.push(REPLY_NACK);
                out.extend_from_slice(&seq.to_le_bytes());
                out.push(*reason as u8);
                out.extend_from_slice(&(text.len() as u16).to_le_bytes());
                out.extend_from_slice(text);
            }
        }
    }

    /// Decodes one reply from the start of `bytes`, as [`Hello::decode`] does.
    pub fn decode(bytes: &[u8]) -> Result<Option<(Reply, usize)>, FrameError> {
        let Some(&kind) = bytes.first() else {
            return Ok(None);
        };
        match kind {
            REPLY_ACK => Ok(bytes
                .get(1..ACK_LEN)
                .map(|seq| (Reply::Ack(u64_at(seq)), ACK_LEN))),
            REPLY_NACK => {
                let Some(fixed) = bytes.get(..NACK_FIXED_LEN) else {
                    return Ok(None);
                };
                let len = u16::from_le_bytes([fixed[10], fixed[11]]) as usize;
                let Some(text) = bytes.get(NACK_FIXED_LEN..NACK_FIXED_LEN + len) else {
                    return Ok(None);
                };
                let reply = Reply::Nack {
                    seq: u64_at(&fixed[1..9]),
                    reason: NackReason::from_byte(fixed[9]),
                    text: String::from_utf8_lossy(text).into_owned(),
                };
                Ok(Some((reply, NACK_FIXED_LEN + len)))
            }
            kind => Err(FrameError::UnknownReply { kind }),
        }
    }
}

/// The header of a data frame: the length of what follows it (sequence
/// number + envelope) and the sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// Bytes after the `u32` length: 8 (sequence) + the envelope's length.
    pub len: u32,
    /// The frame's sequence number.
    pub seq: u64,
}

impl DataHeader {
    /// Reads the 12-byte header.
    pub fn decode(bytes: &[u8; DATA_HEADER_LEN]) -> DataHeader {
        DataHeader {
            len: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            seq: u64_at(&bytes[4..12]),
        }
    }

    /// Length of the envelope the frame carries (0 if `len` is below 8).
    pub fn envelope_len(&self) -> usize {
        (self.len as usize).saturating_sub(8)
    }

    /// Writes the header for an envelope of `envelope_len` bytes into the
    /// first [`DATA_HEADER_LEN`] bytes of `frame`.
    pub fn write(frame: &mut [u8], envelope_len: usize, seq: u64) {
        let len = (envelope_len + 8) as u32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        frame[4..DATA_HEADER_LEN].copy_from_slice(&seq.to_le_bytes());
    }
}

fn u64_at(bytes: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(le)
}

/// `text` as bytes, cut at [`MAX_TEXT_LEN`] on a character boundary.
fn cut(text: &str) -> &[u8] {
    let mut end = text.len().min(MAX_TEXT_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text.as_bytes()[..end]
}
