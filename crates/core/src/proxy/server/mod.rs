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

mod budget;
mod config;
mod connection;
mod context;
mod handshake;
mod outlet;
mod reader;

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use config::ServerConfig;
use context::{write_welcome, Context, LogLimit};
use handshake::{Pending, Step};
use outlet::Outlet;

use super::metrics::ProxyMetrics;
use super::wire::frame::{Hello, Status, PROTOCOL_VERSION};
use super::wire::{Listener, Stream};
use crate::transport::{SendError, SysvEmitter};

/// Longest the accepting thread sleeps in `poll` (it checks shutdown).
const TICK: Duration = Duration::from_millis(100);
/// Connections taken from one listener per wake-up, so one busy listener
/// does not starve the handshakes in progress.
const ACCEPT_BATCH: usize = 64;

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
    /// Other users may read the host queue ([`crate::ops::check_queue_access`]).
    #[error(transparent)]
    QueueAccess(#[from] crate::ops::QueueAccessError),
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
    for warning in crate::ops::check_queue_access(&queue)? {
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
    let outlet = Outlet::new(emitter, config.spool.clone());
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
    let mut acceptor = Acceptor {
        ctx: Arc::clone(&ctx),
        listeners,
        pending: VecDeque::new(),
        max_pending: plan.pending,
        spare: budget::Spare::open(),
        next_id: 0,
        fds: Vec::new(),
    };
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

/// The accepting thread's state: listeners and handshakes in progress.
struct Acceptor {
    ctx: Arc<Context>,
    listeners: Vec<Listener>,
    /// Oldest first.
    pending: VecDeque<Pending>,
    max_pending: usize,
    spare: budget::Spare,
    next_id: u64,
    fds: Vec<libc::pollfd>,
}

impl Acceptor {
    /// One `poll` and what it found.
    fn turn(&mut self) -> Result<(), ServerError> {
        self.fds.clear();
        let poll_in = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        self.fds
            .extend(self.listeners.iter().map(|l| poll_in(l.as_raw_fd())));
        self.fds
            .extend(self.pending.iter().map(|p| poll_in(p.stream.as_raw_fd())));
        let now = Instant::now();
        let wait = self
            .pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .map_or(TICK, |d| d.min(TICK));
        let ms = wait.as_millis().max(1) as i32;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let ready =
            unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(ServerError::Poll(err));
        }
        // Handshakes first (the poll result's indices match `pending` as
        // it was), then expiries, then new connections.
        let listeners = self.listeners.len();
        let ready_pending: Vec<bool> = self.fds[listeners..]
            .iter()
            .map(|f| f.revents != 0)
            .collect();
        let ready_listeners: Vec<bool> = self.fds[..listeners]
            .iter()
            .map(|f| f.revents != 0)
            .collect();
        let mut kept = VecDeque::with_capacity(self.pending.len());
        let pending = std::mem::take(&mut self.pending);
        for (mut pending, ready) in pending.into_iter().zip(ready_pending) {
            if !ready {
                kept.push_back(pending);
                continue;
            }
            match pending.advance() {
                Step::More => kept.push_back(pending),
                Step::Done(hello) => self.admit(pending, &hello),
                Step::Failed(why) => {
                    self.ctx.metrics.handshake_failures.inc();
                    self.ctx
                        .log(&format!("closed {}: handshake failed: {why}", pending.peer));
                }
            }
        }
        self.pending = kept;
        let now = Instant::now();
        while self.pending.front().is_some_and(|p| p.deadline <= now) {
            if let Some(p) = self.pending.pop_front() {
                self.expire(p, "no handshake within the handshake timeout");
            }
        }
        for (i, ready) in ready_listeners.into_iter().enumerate() {
            if ready {
                self.accept_from(i);
            }
        }
        Ok(())
    }

    fn accept_from(&mut self, i: usize) {
        for _ in 0..ACCEPT_BATCH {
            match self.listeners[i].accept() {
                Ok((stream, peer)) => self.start_handshake(stream, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if budget::is_exhausted(&e) => {
                    self.refuse_without_descriptors(i);
                    return;
                }
                Err(e) => {
                    self.ctx.log(&format!("accept failed: {e}"));
                    return;
                }
            }
        }
    }

    fn start_handshake(&mut self, stream: Stream, peer: String) {
        self.ctx.metrics.connections_accepted.inc();
        let deadline = Instant::now() + self.ctx.config.handshake_timeout;
        let mut pending = match Pending::new(stream, peer, deadline) {
            Ok(p) => p,
            Err(e) => {
                self.ctx.log(&format!("cannot serve a new connection: {e}"));
                return;
            }
        };
        if self.pending.len() >= self.max_pending {
            if let Some(oldest) = self.pending.pop_front() {
                self.expire(
                    oldest,
                    "closed for a newer one: too many handshakes at once",
                );
            }
        }
        // A client usually sends its Hello right after connecting.
        match pending.advance() {
            Step::More => self.pending.push_back(pending),
            Step::Done(hello) => self.admit(pending, &hello),
            Step::Failed(why) => {
                self.ctx.metrics.handshake_failures.inc();
                self.ctx
                    .log(&format!("closed {}: handshake failed: {why}", pending.peer));
            }
        }
    }

    fn expire(&self, pending: Pending, why: &str) {
        self.ctx.metrics.handshake_failures.inc();
        self.ctx.metrics.idle_timeouts.inc();
        self.ctx.log(&format!("closed {}: {why}", pending.peer));
    }

    /// Checks a complete `Hello`; accepted, the connection gets a thread.
    fn admit(&mut self, pending: Pending, hello: &Hello) {
        let ctx = Arc::clone(&self.ctx);
        let m = &ctx.metrics;
        let refuse = |status, text: String| {
            let _ = write_welcome(&pending.stream, status, 0, &text);
            m.handshake_failures.inc();
            ctx.log(&format!(
                "closed {}: handshake refused: {text}",
                pending.peer
            ));
        };
        if hello.version != PROTOCOL_VERSION {
            return refuse(
                Status::UnsupportedVersion,
                format!(
                    "client speaks protocol version {}, this proxy speaks {PROTOCOL_VERSION}; upgrade the older side",
                    hello.version
                ),
            );
        }
        if let Some(token) = &ctx.config.token {
            if !constant_time_eq(token, &hello.token) {
                return refuse(
                    Status::BadToken,
                    "wrong or missing token: set SHOPIFY_EVENTS_PROXY_TOKEN to the proxy's token"
                        .into(),
                );
            }
        }
        if m.connections_open.get() >= ctx.max_served as i64 {
            m.connections_refused.inc();
            let text = format!(
                "the proxy serves at most {} connections (--max-connections, and the descriptor limit); retry later",
                ctx.max_served
            );
            let _ = write_welcome(&pending.stream, Status::Busy, 0, &text);
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        m.connections_open.add(1);
        if let Ok(mut open) = ctx.open.lock() {
            open.insert(id, pending.stream.as_raw_fd());
        }
        let worker = Arc::clone(&ctx);
        let Pending { stream, peer, .. } = pending;
        let spawned = thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || {
                let end = connection::serve(&worker, &stream);
                end.record(&worker, &peer);
                if let Ok(mut open) = worker.open.lock() {
                    open.remove(&id);
                }
                drop(stream);
                worker.metrics.connections_open.sub(1);
            });
        if let Err(e) = spawned {
            ctx.log(&format!("cannot start a thread for a connection: {e}"));
            if let Ok(mut open) = ctx.open.lock() {
                open.remove(&id);
            }
            m.connections_open.sub(1);
        }
    }

    /// The descriptor table is full: free the spare, take the connection,
    /// answer `Busy`, close it, take the spare back.
    fn refuse_without_descriptors(&mut self, i: usize) {
        let m = &self.ctx.metrics;
        if self.spare.release() {
            if let Ok((stream, peer)) = self.listeners[i].accept() {
                m.connections_accepted.inc();
                m.connections_refused.inc();
                let _ = stream.set_nonblocking(true);
                let text = "the proxy is out of file descriptors; retry later".to_owned();
                let _ = write_welcome(&stream, Status::Busy, 0, &text);
                self.ctx
                    .log(&format!("refused {peer}: out of file descriptors"));
            }
            self.spare.restore();
        } else {
            self.ctx
                .log("accept failed: out of file descriptors and no spare to answer busy");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}
