//! Connections in their handshake, held by the accepting thread without a
//! thread of their own: a non-blocking socket, the bytes of the `Hello` so
//! far and a deadline. A connection gets a thread (and counts against
//! `max_connections`) only once its handshake is complete and accepted, so
//! silent or slow connections cost one descriptor each and cannot hold a
//! served slot.

use std::io::{self, ErrorKind, Read};
use std::time::Instant;

use crate::proxy::wire::frame::{Hello, HELLO_FIXED_LEN};
use crate::proxy::wire::Stream;

/// One connection waiting for its `Hello`.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) stream: Stream,
    pub(super) peer: String,
    pub(super) deadline: Instant,
    /// Bytes of the `Hello` read so far (at most the whole `Hello`: nothing
    /// past it is read here).
    bytes: Vec<u8>,
}

/// What reading a pending connection gave.
#[derive(Debug)]
pub(super) enum Step {
    /// The `Hello` is not complete yet.
    More,
    /// A complete `Hello`.
    Done(Hello),
    /// The connection closed, or sent something that is not a `Hello`.
    Failed(String),
}

impl Pending {
    /// A freshly accepted connection (made non-blocking here).
    pub(super) fn new(stream: Stream, peer: String, deadline: Instant) -> io::Result<Pending> {
        stream.set_nonblocking(true)?;
        Ok(Pending {
            stream,
            peer,
            deadline,
            bytes: Vec::with_capacity(HELLO_FIXED_LEN),
        })
    }

    /// Reads what has arrived, never more than the `Hello` needs.
    pub(super) fn advance(&mut self) -> Step {
        loop {
            let want = match Hello::decode(&self.bytes) {
                Ok(Some((hello, _))) => return Step::Done(hello),
                Ok(None) if self.bytes.len() < HELLO_FIXED_LEN => HELLO_FIXED_LEN,
                Ok(None) => {
                    let token = u16::from_le_bytes([self.bytes[6], self.bytes[7]]);
                    HELLO_FIXED_LEN + usize::from(token)
                }
                Err(e) => return Step::Failed(e.to_string()),
            };
            let have = self.bytes.len();
            self.bytes.resize(want, 0);
            match (&self.stream).read(&mut self.bytes[have..]) {
                Ok(0) => {
                    return Step::Failed("connection closed during handshake".into());
                }
                Ok(n) => self.bytes.truncate(have + n),
                Err(e) => {
                    self.bytes.truncate(have);
                    match e.kind() {
                        ErrorKind::WouldBlock => return Step::More,
                        ErrorKind::Interrupted => {}
                        _ => return Step::Failed(e.to_string()),
                    }
                }
            }
        }
    }
}
