//! A connection's read side: one fixed buffer, filled by one `read` at a
//! time with a timeout chosen by the caller, so the connection knows when
//! it is about to wait (and acks first) and can time a frame as a whole.
//!
//! The socket's receive timeout takes two values only: the idle timeout at
//! a frame boundary, and a short tick inside a frame (the caller checks
//! the frame's deadline after every read). It is set with `setsockopt`
//! only when it changes.

use std::io::{self, ErrorKind, Read};
use std::time::Duration;

use crate::proxy::wire::Stream;

/// Bytes read from the socket at most at once.
const BUFFER: usize = 64 * 1024;

/// What one [`FrameReader::fill`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// Some bytes arrived (or a signal interrupted the wait).
    Data,
    /// The peer closed its side (or shutdown closed ours).
    Eof,
    /// Nothing arrived within the wait.
    TimedOut,
}

pub(super) struct FrameReader<'a> {
    stream: &'a Stream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    timeout: Option<Duration>,
}

impl<'a> FrameReader<'a> {
    pub(super) fn new(stream: &'a Stream) -> FrameReader<'a> {
        FrameReader {
            stream,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            timeout: None,
        }
    }

    /// The bytes read and not yet consumed.
    pub(super) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as used.
    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// One `read` from the socket, waiting at most about `wait`.
    pub(super) fn fill(&mut self, wait: Duration) -> io::Result<Fill> {
        if self.end == self.buf.len() {
            // Keep the partial frame's bytes, at the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.timeout != Some(wait) {
            self.stream.set_read_timeout(Some(wait))?;
            self.timeout = Some(wait);
        }
        let mut stream = self.stream;
        match stream.read(&mut self.buf[self.end..]) {
            Ok(0) => Ok(Fill::Eof),
            Ok(n) => {
                self.end += n;
                Ok(Fill::Data)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(Fill::TimedOut)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Fill::Data),
            Err(e) => Err(e),
        }
    }
}
