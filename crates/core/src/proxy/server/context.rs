//! What every connection of one server shares, the handshake reply both
//! the accepting thread (refusals) and a connection (its welcome) write,
//! and the rate limit of the proxy's log lines.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::ServerConfig;
use super::outlet::Outlet;
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::wire::frame::{Status, Welcome, PROTOCOL_VERSION};
use crate::proxy::wire::Stream;

/// What every connection of one server shares.
pub(super) struct Context {
    pub(super) config: ServerConfig,
    pub(super) outlet: Outlet,
    /// The largest envelope announced in the welcome and accepted.
    pub(super) max_envelope: usize,
    /// Connections served at once (the configured limit, or fewer if the
    /// descriptor limit says so).
    pub(super) max_served: usize,
    pub(super) metrics: Arc<ProxyMetrics>,
    pub(super) shutdown: Arc<AtomicBool>,
    /// Descriptors of served connections, to shut their reads down at
    /// exit. A connection's thread removes its entry before it closes the
    /// descriptor, so a number here is never one reused for another file.
    pub(super) open: Mutex<HashMap<u64, RawFd>>,
    pub(super) log: Mutex<LogLimit>,
}

impl Context {
    /// Writes `line` to stderr unless too many were written this second.
    pub(super) fn log(&self, line: &str) {
        let mut limit = self.log.lock().unwrap_or_else(|p| p.into_inner());
        limit.write(line);
    }
}

/// At most [`LogLimit::PER_SECOND`] lines a second; the rest are counted
/// and the count is reported with the next line written. A flood of bad
/// connections costs a few lines, not a full disk.
#[derive(Debug)]
pub(super) struct LogLimit {
    window: Instant,
    written: u32,
    suppressed: u64,
}

impl LogLimit {
    const PER_SECOND: u32 = 10;

    pub(super) fn new() -> LogLimit {
        LogLimit {
            window: Instant::now(),
            written: 0,
            suppressed: 0,
        }
    }

    pub(super) fn write(&mut self, line: &str) {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.written = 0;
        }
        if self.written >= Self::PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.written += 1;
        if self.suppressed > 0 {
            eprintln!(
                "shopify-events proxy: {line} ({} similar lines suppressed)",
                std::mem::take(&mut self.suppressed)
            );
        } else {
            eprintln!("shopify-events proxy: {line}");
        }
    }
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
        max_envelope: u32::try_from(max).unwrap_or(u32::MAX),
        text: text.into(),
    }
    .encode(&mut out);
    stream.write_all(&out)
}
