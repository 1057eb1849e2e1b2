//! How a [`SocketClient`](super::SocketClient) is set up, and why it may
//! refuse to be.

use std::time::Duration;

use crate::defaults;
use crate::proxy::wire::frame::MAX_TOKEN_LEN;
use crate::proxy::wire::ProxyAddress;

/// Settings of a [`SocketClient`](super::SocketClient).
#[derive(Clone)]
pub struct ClientConfig {
    /// The proxy.
    pub address: ProxyAddress,
    /// Shared secret for the handshake (empty: none).
    pub token: Vec<u8>,
    /// Most frames kept unacknowledged.
    pub max_buffered_events: usize,
    /// Most frame bytes kept unacknowledged.
    pub max_buffered_bytes: usize,
    /// Time to connect and complete the handshake.
    pub connect_timeout: Duration,
    /// First pause after a failed connect; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest pause between connection attempts.
    pub backoff_max: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("address", &self.address)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<hidden>"
                },
            )
            .field("max_buffered_events", &self.max_buffered_events)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// No token, and the `SOCKET_*` values of [`crate::defaults`] (100,000
    /// events / 32 MiB buffered, 2 s connect timeout, backoff 10 ms to 1 s).
    pub fn new(address: ProxyAddress) -> ClientConfig {
        ClientConfig {
            address,
            token: Vec::new(),
            max_buffered_events: defaults::SOCKET_MAX_BUFFERED_EVENTS,
            max_buffered_bytes: defaults::SOCKET_MAX_BUFFERED_BYTES,
            connect_timeout: defaults::SOCKET_CONNECT_TIMEOUT,
            backoff_min: defaults::SOCKET_BACKOFF_MIN,
            backoff_max: defaults::SOCKET_BACKOFF_MAX,
        }
    }
}

/// Why a [`SocketClient`](super::SocketClient) could not be built. (Why a frame was not taken is
/// a [`SendError`](crate::transport::SendError), as for every transport.)
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The token does not fit in a handshake.
    #[error("proxy token is {len} bytes, at most {MAX_TOKEN_LEN} are allowed (SHOPIFY_EVENTS_PROXY_TOKEN)")]
    TokenTooLong {
        /// Its length.
        len: usize,
    },
}
