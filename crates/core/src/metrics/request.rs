//! Reading an HTTP/1.1 request head, and closing a connection cleanly.
//!
//! Only the request line matters to the server (method and path); headers
//! are read to find where the head ends and otherwise ignored.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Largest request head accepted; a scrape needs a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long unread request bytes are drained after a response (see [`linger`]).
const LINGER: Duration = Duration::from_millis(250);

/// How reading a request head ended.
pub(super) enum Head {
    /// Method and path (without query) of a complete head.
    Request { method: String, path: String },
    /// The request line is not `METHOD PATH VERSION`.
    Malformed,
    /// No blank line within [`MAX_HEAD`] bytes.
    TooLarge,
    /// The client went quiet or closed before finishing its head.
    Incomplete,
}

/// Reads up to the blank line ending the head, within `timeout` in all: the
/// limit is not per read, so a client sending a byte at a time gains nothing.
pub(super) fn read_head(stream: &mut TcpStream, timeout: Duration) -> io::Result<Head> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; MAX_HEAD];
    let mut filled = 0;
    let end = loop {
        if let Some(end) = head_end(&buf[..filled]) {
            break end;
        }
        if filled == buf.len() {
            return Ok(Head::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Head::Incomplete);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(Head::Incomplete),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Head::Incomplete)
            }
            Err(e) => return Err(e),
        }
    };
    let line = buf[..end].split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Ok(Head::Malformed);
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None) if version.starts_with("HTTP/1.") => {
            let path = target.split('?').next().unwrap_or_default();
            Ok(Head::Request {
                method: method.into(),
                path: path.into(),
            })
        }
        _ => Ok(Head::Malformed),
    }
}

/// Closes our side, then reads and discards what the client still sends,
/// for at most [`LINGER`]. Closing a socket with unread input (a body, an
/// oversized head) makes the kernel send a reset, which can destroy the
/// response before the client reads it; a client that reads the response and
/// closes ends this at once.
pub(super) fn linger(stream: &mut TcpStream) {
    let deadline = Instant::now() + LINGER;
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Where the head ends (`\r\n\r\n`, or a lenient `\n\n`), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
