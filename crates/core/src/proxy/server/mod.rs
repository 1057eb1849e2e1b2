//! The proxy server: accepts connections on already bound listeners and
//! puts every data frame's envelope into the host SysV queue.
//!
//! # Run-time behaviour
//!
//! - One thread accepts on every listener (`poll(2)`, 100 ms ticks so it
//!   notices shutdown); each connection gets its own thread, at most
//!   `max_connections` of them. A connection over the limit gets a `Busy`
//!   handshake reply and is closed, so a flood of clients costs threads only
//!   up to the cap.
//! - A connection first has `handshake_timeout` to send its handshake. After
//!   it, the socket's read timeout is `idle_timeout`: a client silent that
//!   long at a frame boundary is closed (it reconnects when it has events),
//!   and one that stalls inside a frame is closed as truncated. A slow or
//!   silent client only ever holds its own thread.
//! - Each envelope is checked with [`Envelope::decode`](crate::envelope::Envelope::decode) (CRC included) and
//!   sent with one non-blocking `msgsnd`. It is acknowledged only after the
//!   kernel took it. Acks are cumulative and batched: one is written when
//!   the frames already read are all handled, so a pipelining client gets
//!   one ack per read of its burst.
//! - Queue full: the connection retries `msgsnd` with short sleeps (1 → 50
//!   ms) and reads nothing more meanwhile, so the client's socket and then
//!   its buffer fill: backpressure instead of loss. Acks for earlier frames
//!   go out before the wait.
//! - A malformed envelope (bad CRC, bad fields) gets a nack and the
//!   connection goes on (the frame boundaries are intact). An oversized,
//!   too short or out-of-order frame gets a nack and the connection is closed
//!   (its length or numbering cannot be trusted); so does anything
//!   unreadable. Every close for cause is logged to stderr with the peer and
//!   the reason, and counted in [`ProxyMetrics`].
//! - Shutdown (the flag): stop accepting, shut down the read side of every
//!   connection so its thread finishes the frame in hand and exits, and wait
//!   for them up to [`ServerConfig::shutdown_timeout`]. A frame that was not
//!   acked is resent by its client after it reconnects.

mod config;
mod connection;
mod context;

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use config::ServerConfig;
use context::{write_welcome, Context};

use super::metrics::ProxyMetrics;
use super::wire::frame::Status;
use super::wire::{Listener, Stream};
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
    let max_envelope = config
        .max_envelope
        .map_or(queue_limit, |m| u64::from(m).min(queue_limit))
        .min(u64::from(u32::MAX)) as usize;
    let ctx = Arc::new(Context {
        config,
        emitter,
        max_envelope,
        metrics,
        shutdown,
        open: Mutex::new(HashMap::new()),
    });
    for l in &listeners {
        l.set_nonblocking(true).map_err(ServerError::Poll)?;
    }
    let ids = AtomicU64::new(0);
    let mut fds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !ctx.shutdown.load(Relaxed) {
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(ServerError::Poll(err));
        }
        for (i, pfd) in fds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            loop {
                match listeners[i].accept() {
                    Ok((stream, peer)) => accept(&ctx, stream, peer, ids.fetch_add(1, Relaxed)),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        // EMFILE and friends: log, and let the next tick retry
                        // rather than spin.
                        eprintln!("shopify-events proxy: accept failed: {e}");
                        thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }
    drop(listeners);
    if let Ok(open) = ctx.open.lock() {
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }
    let deadline = Instant::now() + ctx.config.shutdown_timeout;
    while ctx.metrics.connections_open.get() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn accept(ctx: &Arc<Context>, stream: Stream, peer: String, id: u64) {
    let m = &ctx.metrics;
    m.connections_accepted.inc();
    if m.connections_open.get() >= ctx.config.max_connections as i64 {
        m.connections_refused.inc();
        let text = format!(
            "the proxy serves at most {} connections (--max-connections); retry later",
            ctx.config.max_connections
        );
        let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
        let _ = write_welcome(&stream, Status::Busy, 0, &text);
        return;
    }
    m.connections_open.add(1);
    if let (Ok(clone), Ok(mut open)) = (stream.try_clone(), ctx.open.lock()) {
        open.insert(id, clone);
    }
    let worker = Arc::clone(ctx);
    let spawned = thread::Builder::new()
        .name("proxy-conn".into())
        .spawn(move || {
            let end = connection::serve(&worker, stream);
            end.record(&worker.metrics, &peer);
            if let Ok(mut open) = worker.open.lock() {
                open.remove(&id);
            }
            worker.metrics.connections_open.sub(1);
        });
    if let Err(e) = spawned {
        eprintln!("shopify-events proxy: cannot start a thread for a connection: {e}");
        if let Ok(mut open) = ctx.open.lock() {
            open.remove(&id);
        }
        m.connections_open.sub(1);
    }
}
