//! The IO thread of a [`SocketClient`](super::SocketClient): connects,
//! writes buffered frames, reads acks, reconnects. One `poll(2)` loop over
//! the (non-blocking) socket and the engine's eventfd; the buffer's lock is
//! held only to move frames in and out, never during a syscall on the socket.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::engine::{socket_id, Engine};
use super::handshake;
use crate::proxy::wire::frame::{Reply, DATA_HEADER_LEN};
use crate::proxy::wire::Stream;

/// Frames gathered into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// Longest a poll sleeps before looking at the state again.
const POLL_TICK_MS: i32 = 1000;
/// Frame buffers kept for reuse.
const SPARE_FRAMES: usize = 4096;

struct Io {
    engine: Arc<Engine>,
    conn: Option<Stream>,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    backoff: Duration,
    ever_connected: bool,
}

impl Drop for Io {
    fn drop(&mut self) {
        // The connection closes after this: unpublish its descriptor first.
        self.engine.socket_fd.store(-1, Relaxed);
    }
}

pub(super) fn run(engine: Arc<Engine>) {
    let backoff = engine.config.backoff_min;
    Io {
        engine,
        conn: None,
        wbuf: Vec::with_capacity(WRITE_BATCH + 64 * 1024),
        wpos: 0,
        rbuf: Vec::with_capacity(4096),
        backoff,
        ever_connected: false,
    }
    .run();
}

impl Io {
    fn run(&mut self) {
        loop {
            if self.conn.is_none() {
                {
                    let mut state = self.engine.lock();
                    if state.closing {
                        return;
                    }
                    if state.frames.is_empty() {
                        state.io_idle = true;
                        drop(state);
                        self.wait(None, POLL_TICK_MS);
                        continue;
                    }
                }
                if let Err(why) = self.connect() {
                    self.engine.stats.connect_failures.fetch_add(1, Relaxed);
                    self.engine.lock().last_error = Some(why);
                    self.wait(None, self.backoff.as_millis() as i32);
                    self.backoff = (self.backoff * 2).min(self.engine.config.backoff_max);
                }
                continue;
            }
            if self.wpos >= self.wbuf.len() && !self.fill() {
                return;
            }
            let fd = self.conn.as_ref().map(|c| c.as_raw_fd());
            let want_write = self.wpos < self.wbuf.len();
            let (readable, writable) = self.wait(fd.map(|fd| (fd, want_write)), POLL_TICK_MS);
            if self.engine.lock().closing {
                return;
            }
            if readable {
                if let Err(why) = self.read() {
                    self.disconnect(why);
                    continue;
                }
            }
            if writable && self.wpos < self.wbuf.len() {
                if let Err(e) = self.write() {
                    self.disconnect(format!("writing to the proxy failed: {e}"));
                }
            }
        }
    }

    /// Polls the socket (if any; with POLLOUT when `.1`) and the eventfd for
    /// up to `timeout_ms`. Returns (socket readable or hung up, writable).
    fn wait(&self, socket: Option<(i32, bool)>, timeout_ms: i32) -> (bool, bool) {
        let mut fds = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 2];
        if let Some((fd, write)) = socket {
            fds[0].fd = fd;
            fds[0].events = libc::POLLIN | if write { libc::POLLOUT } else { 0 };
        }
        let wake = self.engine.wake.as_ref().map(|w| w.as_raw_fd());
        if let Some(fd) = wake {
            fds[1].fd = fd;
            fds[1].events = libc::POLLIN;
        } else if socket.is_none() {
            std::thread::sleep(Duration::from_millis(timeout_ms.clamp(0, 50) as u64));
            return (false, false);
        }
        // SAFETY: two valid pollfd structs; negative fds are ignored by poll.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if n <= 0 {
            return (false, false);
        }
        if let Some(fd) = wake.filter(|_| fds[1].revents != 0) {
            let mut count = [0u8; 8];
            // SAFETY: reads 8 bytes into a live buffer from our eventfd.
            unsafe { libc::read(fd, count.as_mut_ptr().cast(), 8) };
        }
        let r = fds[0].revents;
        (
            r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
            r & libc::POLLOUT != 0,
        )
    }

    fn connect(&mut self) -> Result<(), String> {
        let config = &self.engine.config;
        let address = &config.address;
        let fail = |e: io::Error| format!("cannot connect to the proxy at {address}: {e}");
        let (stream, welcome) = handshake::connect(config)?;
        stream.set_nonblocking(true).map_err(fail)?;
        self.engine
            .max_envelope
            .store(welcome.max_envelope as usize, Relaxed);
        self.refuse_oversized(welcome.max_envelope as usize);
        self.engine
            .socket_id
            .store(socket_id(stream.as_raw_fd()), Relaxed);
        self.engine.socket_fd.store(stream.as_raw_fd(), Relaxed);
        self.conn = Some(stream);
        self.wbuf.clear();
        self.wpos = 0;
        self.rbuf.clear();
        self.backoff = config.backoff_min;
        let mut state = self.engine.lock();
        if self.ever_connected {
            self.engine
                .stats
                .resent
                .fetch_add(state.sent as u64, Relaxed);
        }
        state.sent = 0;
        state.connected = true;
        self.ever_connected = true;
        self.engine.stats.connects.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Moves the next unsent frames into the write buffer. Returns false
    /// when the client is closing.
    fn fill(&mut self) -> bool {
        self.wbuf.clear();
        self.wpos = 0;
        let mut state = self.engine.lock();
        if state.closing {
            return false;
        }
        let start = state.sent;
        let mut taken = 0;
        for frame in state.frames.iter().skip(start) {
            if self.wbuf.len() >= WRITE_BATCH {
                break;
            }
            self.wbuf.extend_from_slice(&frame.bytes);
            taken += 1;
        }
        state.sent += taken;
        if taken == 0 {
            state.io_idle = true;
        }
        true
    }

    fn write(&mut self) -> io::Result<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        while self.wpos < self.wbuf.len() {
            match conn.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero)),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read(&mut self) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let mut chunk = [0u8; 16 * 1024];
        // Replies that came with the close (a nack, then the proxy hangs up)
        // are applied before the connection is given up: a refused frame is
        // then dropped, not resent into the same refusal.
        let mut ended = None;
        loop {
            match conn.read(&mut chunk) {
                Ok(0) => {
                    ended = Some("the proxy closed the connection".to_owned());
                    break;
                }
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(format!("reading from the proxy failed: {e}"));
                    break;
                }
            }
        }
        let mut used = 0;
        let mut replies = Vec::new();
        loop {
            match Reply::decode(&self.rbuf[used..]) {
                Ok(Some((reply, n))) => {
                    used += n;
                    replies.push(reply);
                }
                Ok(None) => break,
                Err(e) => return Err(format!("the proxy sent garbage: {e}")),
            }
        }
        self.rbuf.drain(..used);
        if !replies.is_empty() {
            self.settle(replies);
        }
        match ended {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Drops buffered frames larger than the proxy announced it takes,
    /// before any is written: the proxy would refuse each and close the
    /// connection (a frame's size is checked before its bytes are read),
    /// costing a reconnect and a resend of everything after it. Such frames
    /// were buffered before the first handshake told the limit.
    fn refuse_oversized(&self, max: usize) {
        let mut state = self.engine.lock();
        let mut refused = 0;
        let mut i = 0;
        while i < state.frames.len() {
            if state.frames[i].bytes.len() - DATA_HEADER_LEN <= max {
                i += 1;
                continue;
            }
            if let Some(frame) = state.frames.remove(i) {
                state.bytes -= frame.bytes.len();
                if i < state.sent {
                    state.sent -= 1;
                }
                refused += 1;
            }
        }
        if refused == 0 {
            return;
        }
        state.last_error = Some(format!(
            "{refused} buffered event(s) larger than the {max} bytes the proxy at {} takes were dropped; raise kernel.msgmax on the host or give the proxy a spool",
            self.engine.config.address
        ));
        drop(state);
        self.engine
            .stats
            .rejected
            .fetch_add(refused as u64, Relaxed);
        self.engine.settled.notify_all();
    }

    fn settle(&mut self, replies: Vec<Reply>) {
        let stats = &self.engine.stats;
        let mut state = self.engine.lock();
        for reply in replies {
            match reply {
                Reply::Ack(seq) => {
                    let mut acked = 0;
                    while state.frames.front().is_some_and(|f| f.seq <= seq) {
                        let Some(frame) = state.frames.pop_front() else {
                            break;
                        };
                        state.bytes -= frame.bytes.len();
                        state.sent = state.sent.saturating_sub(1);
                        if state.spare.len() < SPARE_FRAMES && frame.bytes.capacity() <= 64 * 1024 {
                            state.spare.push(frame.bytes);
                        }
                        acked += 1;
                    }
                    stats.acked.fetch_add(acked, Relaxed);
                }
                Reply::Nack { seq, reason, text } => {
                    if let Ok(i) = state.frames.binary_search_by_key(&seq, |f| f.seq) {
                        if let Some(frame) = state.frames.remove(i) {
                            state.bytes -= frame.bytes.len();
                            if i < state.sent {
                                state.sent -= 1;
                            }
                        }
                        stats.rejected.fetch_add(1, Relaxed);
                    }
                    state.last_error = Some(format!(
                        "the proxy refused an event ({}): {text}",
                        reason.name()
                    ));
                }
            }
        }
        drop(state);
        self.engine.settled.notify_all();
    }

    fn disconnect(&mut self, why: String) {
        // Unpublish the descriptor before closing it: a child forked in
        // between must not find a number the process may reuse.
        self.engine.socket_fd.store(-1, Relaxed);
        self.conn = None;
        self.wbuf.clear();
        self.wpos = 0;
        self.rbuf.clear();
        let pending = {
            let mut state = self.engine.lock();
            state.connected = false;
            let pending = !state.frames.is_empty();
            if pending {
                state.last_error = Some(why);
            }
            pending
        };
        if pending {
            // Reconnect soon, but never in a hot loop.
            self.wait(None, self.engine.config.backoff_min.as_millis() as i32);
        }
    }
}
