//! The accepting thread: one `poll(2)` over the listeners and every
//! connection in its handshake, which it reads without a thread of its own
//! ([`super::handshake`]); a complete, accepted handshake gets a served
//! connection's thread ([`super::connection`]).

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::budget;
use super::connection;
use super::context::{write_welcome, Context};
use super::handshake::{Pending, Step};
use super::ServerError;
use crate::proxy::wire::frame::{Hello, Status, PROTOCOL_VERSION};
use crate::proxy::wire::{Listener, Stream};

/// Longest the accepting thread sleeps in `poll` (it checks shutdown).
const TICK: Duration = Duration::from_millis(100);
/// Connections taken from one listener per wake-up, so one busy listener
/// does not starve the handshakes in progress.
const ACCEPT_BATCH: usize = 64;

/// The accepting thread's state: listeners and handshakes in progress.
pub(super) struct Acceptor {
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
    pub(super) fn new(ctx: Arc<Context>, listeners: Vec<Listener>, max_pending: usize) -> Acceptor {
        Acceptor {
            ctx,
            listeners,
            pending: VecDeque::new(),
            max_pending,
            spare: budget::Spare::open(),
            next_id: 0,
            fds: Vec::new(),
        }
    }

    /// One `poll` and what it found.
    pub(super) fn turn(&mut self) -> Result<(), ServerError> {
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
