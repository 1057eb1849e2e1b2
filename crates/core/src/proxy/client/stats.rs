//! A socket client's counters, and the snapshot of them (with the buffer's
//! state) that `ShopifyEvents.stats` shows.

use std::sync::atomic::AtomicU64;

/// Counters of one client (kept across fork: the child continues them).
#[derive(Debug, Default)]
pub struct ClientStats {
    pub(crate) emitted: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) buffer_full: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) resent: AtomicU64,
}

/// A copy of a client's counters and buffer state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSnapshot {
    /// Frames taken into the buffer.
    pub emitted: u64,
    /// Frames the proxy acknowledged (in the host queue).
    pub acked: u64,
    /// Events the caller dropped after [`SendError::SocketBufferFull`](crate::transport::SendError::SocketBufferFull).
    pub dropped: u64,
    /// Sends refused because the buffer was full.
    pub buffer_full: u64,
    /// Frames the proxy refused (nack) and the client discarded.
    pub rejected: u64,
    /// Successful connections (handshake done), the first included.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Frames written again after a reconnect.
    pub resent: u64,
    /// Frames buffered now.
    pub buffered: usize,
    /// Bytes buffered now.
    pub buffered_bytes: usize,
    /// Whether a connection is up.
    pub connected: bool,
    /// The last connection or proxy error.
    pub last_error: Option<String>,
}
