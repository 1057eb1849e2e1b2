//! How the proxy server runs: its queue, spool, token, limits and timeouts.

use std::time::Duration;

use sysvmq::Key;

use crate::defaults;
use crate::spool::SpoolOptions;

/// Settings of a running proxy.
#[derive(Clone)]
pub struct ServerConfig {
    /// The host queue frames go to (created with `queue_mode` if missing).
    pub queue_key: Key,
    /// Permissions of a queue the proxy has to create.
    pub queue_mode: u32,
    /// The proxy's own spool for envelopes the queue cannot take (larger
    /// than `kernel.msgmax`, or the queue full); `None`: such frames are
    /// refused (too large) or wait for room (full). Its `max_record` is the
    /// largest envelope the proxy accepts.
    pub spool: Option<SpoolOptions>,
    /// Shared secret clients must present; `None` accepts any client.
    pub token: Option<Vec<u8>>,
    /// Connections served at once; more are refused with `Busy`. The
    /// descriptor limit (`RLIMIT_NOFILE`) may lower it.
    pub max_connections: usize,
    /// Connections in their handshake at once; a new one past it closes
    /// the oldest.
    pub max_pending_handshakes: usize,
    /// Time a new connection has to complete its handshake.
    pub handshake_timeout: Duration,
    /// Silence at a frame boundary after which a connection is closed.
    pub idle_timeout: Duration,
    /// Time one frame may take from its first byte to its last.
    pub frame_timeout: Duration,
    /// Time a write of acks may block before the connection is dropped.
    pub write_timeout: Duration,
    /// Time shutdown waits for connection threads.
    pub shutdown_timeout: Duration,
    /// Largest envelope accepted; `None` uses the queue's limit
    /// (`kernel.msgmax` or its capacity, whichever is smaller), or the
    /// spool's `max_record` with a spool. A smaller value only.
    pub max_envelope: Option<u32>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: say whether there is one, never what it is.
        f.debug_struct("ServerConfig")
            .field(
                "queue_key",
                &format_args!("{:#010x}", self.queue_key as u32),
            )
            .field("spool", &self.spool.as_ref().map(|s| &s.dir))
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("max_connections", &self.max_connections)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("frame_timeout", &self.frame_timeout)
            .field("max_envelope", &self.max_envelope)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// The queue at `queue_key`, no spool, no token, and the `PROXY_*`
    /// values of [`crate::defaults`] (1024 connections, 256 handshakes, 5 s
    /// handshake, 60 s idle, 10 s frame, write and shutdown timeouts).
    pub fn new(queue_key: Key) -> ServerConfig {
        ServerConfig {
            queue_key,
            queue_mode: defaults::QUEUE_MODE,
            spool: None,
            token: None,
            max_connections: defaults::PROXY_MAX_CONNECTIONS,
            max_pending_handshakes: defaults::PROXY_MAX_PENDING_HANDSHAKES,
            handshake_timeout: defaults::PROXY_HANDSHAKE_TIMEOUT,
            idle_timeout: defaults::PROXY_IDLE_TIMEOUT,
            frame_timeout: defaults::PROXY_FRAME_TIMEOUT,
            write_timeout: defaults::PROXY_WRITE_TIMEOUT,
            shutdown_timeout: defaults::PROXY_SHUTDOWN_TIMEOUT,
            max_envelope: None,
        }
    }
}
