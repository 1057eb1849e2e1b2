//! What every connection of one server shares, and the handshake reply
//! both the accepting thread (a refusal at the connection limit) and a
//! connection (its welcome) write.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::config::ServerConfig;
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::wire::frame::{Status, Welcome, PROTOCOL_VERSION};
use crate::proxy::wire::Stream;
use crate::transport::SysvEmitter;

/// What every connection of one server shares.
pub(super) struct Context {
    pub(super) config: ServerConfig,
    pub(super) emitter: SysvEmitter,
    pub(super) max_envelope: usize,
    pub(super) metrics: Arc<ProxyMetrics>,
    pub(super) shutdown: Arc<AtomicBool>,
    /// Clones of open streams, to shut their reads down at exit.
    pub(super) open: Mutex<HashMap<u64, Stream>>,
}

/// Writes one handshake reply.
pub(super) fn write_welcome(
    mut stream: &Stream,
    status: Status,
    max: usize,
    text: &str,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(64);
    Welcome {
        version: PROTOCOL_VERSION,
        status,
        max_envelope: max as u32,
        text: text.into(),
    }
    .encode(&mut out);
    stream.write_all(&out)
}
