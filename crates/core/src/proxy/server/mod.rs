//! The proxy server: accepts connections on already bound listeners and
//! puts every data frame's envelope into the host SysV queue, or into the
//! proxy's own spool when the queue cannot take it.
//!
//! # Run-time behaviour
//!
//! - One thread accepts on every listener and holds every connection in
//!   its handshake (`poll(2)` over both, at least every 100 ms so it
//!   notices shutdown). A connection in its handshake has no thread and
//!   no served slot: at most `max_pending_handshakes` of them, each with
//!   `handshake_timeout` to send its `Hello`; one more closes the oldest,
//!   so a flood of silent connections cannot keep real clients out.
//! - A complete `Hello` is checked (version, token) by that thread. Accepted,
//!   the connection gets its own thread, at most `max_connections` of
//!   them; past that it is answered `Busy` and closed.
//! - Descriptors: each connection costs one. The soft `RLIMIT_NOFILE` is
//!   raised to the hard limit at start and both limits above are lowered
//!   to fit it ([`budget`]); should the table fill anyway, a spare
//!   descriptor lets `accept` take the connection and answer `Busy`
//!   rather than fail with `EMFILE`.
//! - After the handshake a client silent for `idle_timeout` at a frame
//!   boundary is closed (it reconnects when it has events). A frame is
//!   timed as a whole: from its first byte it has `frame_timeout` to
//!   arrive complete, however its bytes trickle in, or the connection is
//!   closed as too slow. A frame's buffer grows as its bytes arrive: an
//!   announced size costs no memory before the bytes are there.
//! - Each envelope is checked with [`Envelope::decode`](crate::envelope::Envelope::decode) (CRC included) and
//!   put into the queue with one non-blocking `msgsnd`, or appended to the
//!   spool (rules in [`outlet`]). It is acknowledged only after one of them
//!   took it. Acks are cumulative: before every read from the socket the
//!   connection acks everything handled so far, so a client pipelining
//!   without pause gets an ack per read of its stream (64 KiB at most).
//! - Neither the queue nor the spool can take it (queue full and no spool,
//!   or the spool full too): the connection retries with short sleeps
//!   (1 → 50 ms) and reads nothing more meanwhile, so the client's socket
//!   and then its buffer fill: backpressure instead of loss. Acks for
//!   earlier frames go out before the wait.
//! - A malformed envelope (bad CRC, bad fields) gets a nack and the
//!   connection goes on (the frame boundaries are intact). An oversized,
//!   too short or out-of-order frame gets a nack and the connection is closed
//!   (its length or numbering cannot be trusted); so does anything
//!   unreadable. Every close for cause is logged to stderr with the peer and
//!   the reason (at most ten lines a second) and counted in [`ProxyMetrics`].
//! - Shutdown (the flag): stop accepting, close the handshakes, shut down
//!   the read side of every served connection so its thread finishes the
//!   frame in hand and exits, and wait for them up to
//!   [`ServerConfig::shutdown_timeout`]. A frame that was not acked is
//!   resent by its client after it reconnects.

mod acceptor;
mod budget;
mod config;
mod connection;
mod context;
mod handshake;
mod outlet;
mod reader;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use acceptor::Acceptor;
pub use config::ServerConfig;
use context::{Context, LogLimit};
use outlet::Outlet;

use super::metrics::ProxyMetrics;
use super::wire::Listener;
use crate::transport::{SendError, SysvEmitter};

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The host queue cannot be opened or created.
    #[error("cannot open the host queue {key:#010x}: {source}; create it with `shopify-events setup --queue-key {key:#x} --capacity SIZE`")]
    Queue {
        /// Queue key.
        key: u32,
        /// Why.
        source: SendError,
    },
    /// Other users may read the host queue ([`crate::queue_access::check_queue_access`]).
    #[error(transparent)]
    QueueAccess(#[from] crate::queue_access::QueueAccessError),
    /// No listener was given.
    #[error(
        "the proxy needs at least one listener (--listen tcp://127.0.0.1:PORT or unix:///PATH)"
    )]
    NoListeners,
    /// Waiting for connections failed.
    #[error("waiting for connections failed: {0}")]
    Poll(io::Error),
}

/// Runs the proxy on `listeners` until `shutdown` is set, then returns
/// after the connections finished (or `shutdown_timeout` passed).
pub fn run(
    listeners: Vec<Listener>,
    config: ServerConfig,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<ProxyMetrics>,
) -> Result<(), ServerError> {
    if listeners.is_empty() {
        return Err(ServerError::NoListeners);
    }
    let emitter = SysvEmitter::new(config.queue_key, config.queue_mode);
    let queue_limit = emitter
        .max_envelope_size()
        .map_err(|source| ServerError::Queue {
            key: config.queue_key as u32,
            source,
        })?;
    let queue = sysvmq::Queue::open(config.queue_key).map_err(|e| ServerError::Queue {
        key: config.queue_key as u32,
        source: SendError::Queue(e),
    })?;
    for warning in crate::queue_access::check_queue_access(&queue)? {
        eprintln!("shopify-events proxy: {warning}");
    }
    let accepted_limit = match &config.spool {
        Some(spool) => spool.max_record as u64,
        None => queue_limit,
    };
    let max_envelope = config
        .max_envelope
        .map_or(accepted_limit, |m| u64::from(m).min(accepted_limit))
        .min(u64::from(u32::MAX)) as usize;
    let plan = budget::plan(config.max_connections, config.max_pending_handshakes);
    if plan.served < config.max_connections || plan.pending < config.max_pending_handshakes {
        eprintln!(
            "shopify-events proxy: serving at most {} connections and {} handshakes (asked for {} and {}): \
             the descriptor limit is {}; raise it (LimitNOFILE=, ulimit -n) for more",
            plan.served,
            plan.pending,
            config.max_connections,
            config.max_pending_handshakes,
            plan.limit
        );
    }
    metrics.connection_limit.set(plan.served as i64);
    // Spooled payloads are no easier to read than the queue's: the
    // segments follow the queue's mode as it is now, not a default.
    let mut spool = config.spool.clone();
    if let (Some(options), Ok(stat)) = (spool.as_mut(), queue.stat()) {
        options.mode = crate::spool::segment_mode(stat.mode);
    }
    let outlet = Outlet::new(emitter, spool);
    let ctx = Arc::new(Context {
        config,
        outlet,
        max_envelope,
        max_served: plan.served,
        metrics,
        shutdown,
        open: Mutex::new(HashMap::new()),
        log: Mutex::new(LogLimit::new()),
    });
    for l in &listeners {
        l.set_nonblocking(true).map_err(ServerError::Poll)?;
    }
    let mut acceptor = Acceptor::new(Arc::clone(&ctx), listeners, plan.pending);
    while !ctx.shutdown.load(Relaxed) {
        acceptor.turn()?;
    }
    drop(acceptor);
    if let Ok(open) = ctx.open.lock() {
        for &fd in open.values() {
            // SAFETY: `fd` belongs to a live connection: its thread removes
            // it from `open` (under this lock) before closing it.
            unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        }
    }
    let deadline = Instant::now() + ctx.config.shutdown_timeout;
    while ctx.metrics.connections_open.get() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
