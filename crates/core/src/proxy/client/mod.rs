//! [`SocketClient`]: the `socket` transport's client of the proxy.
//!
//! # Run-time behaviour
//!
//! - [`FrameSink::send_frame`] never touches the network: it stamps the
//!   envelope with the client's own [`Sequencer`] (the app is the producer;
//!   the proxy forwards the stamp unchanged, so a frame sent again after a
//!   reconnect carries the same stamp), numbers the frame, copies it into a bounded in-memory buffer of unacknowledged
//!   frames and returns. A background IO thread writes buffered frames
//!   (pipelined, in batches of up to 256 KiB) and reads the proxy's
//!   cumulative acks, which free them. Waking that thread costs a syscall,
//!   so `send_frame` only does it when the thread sleeps for lack of work.
//! - The connection is made lazily, on the first frame; a proxy that is
//!   down is retried with exponential backoff (10 ms to 1 s by default).
//!   After a reconnect every unacknowledged frame is written again, with its
//!   original sequence number: at-least-once, the event id tells duplicates
//!   apart. The proxy closes idle connections; the client reconnects when it
//!   has something to send.
//! - The buffer is bounded by events and bytes. When it is full,
//!   `send_frame` returns [`SendError::SocketBufferFull`] (the caller drops
//!   or raises);
//!   nothing blocks.
//! - A frame the proxy refuses (nack: malformed, too large) is dropped from
//!   the buffer, counted as `rejected`, and its reason kept in `last_error`.
//! - Fork: the process generation ([`crate::process`]) differs in a forked
//!   child; the first call in the child sees it, abandons the parent's state (whose
//!   frames the parent still delivers), closes the inherited descriptors and
//!   starts a fresh buffer and IO thread with its own connection. The
//!   engine is reached through a [`PerProcess`], never a lock, so a fork
//!   while another thread (one that released the GVL to `flush`) held a
//!   lock cannot leave the child waiting for it. The inherited socket is
//!   closed only if its descriptor still names the same socket (device and
//!   inode checked): the parent may have closed and reused that number.
//! - Frames still buffered when the process exits are lost: call
//!   [`SocketClient::flush`] first (the gem does at exit, bounded).

mod config;
mod engine;
mod handshake;
mod io;
mod stats;

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use config::{ClientConfig, ClientError};
use engine::{Engine, Frame, State};
pub use stats::{ClientSnapshot, ClientStats};

use super::wire::frame::{DataHeader, DATA_HEADER_LEN, MAX_TOKEN_LEN};
use super::wire::ProxyAddress;
use crate::per_process::PerProcess;
use crate::sequence::Sequencer;
use crate::transport::{send_numbered, FrameSink, SendError};

/// The client the `socket` transport uses: see the module docs.
pub struct SocketClient {
    config: Arc<ClientConfig>,
    stats: Arc<ClientStats>,
    engine: PerProcess<Arc<Engine>>,
    sequencer: Sequencer,
}

impl std::fmt::Debug for SocketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SocketClient {
    /// A client for `config`; nothing connects until the first frame.
    pub fn new(config: ClientConfig) -> Result<SocketClient, ClientError> {
        if config.token.len() > MAX_TOKEN_LEN {
            return Err(ClientError::TokenTooLong {
                len: config.token.len(),
            });
        }
        crate::process::register();
        let client = SocketClient {
            config: Arc::new(config),
            stats: Arc::new(ClientStats::default()),
            engine: PerProcess::new(),
            sequencer: Sequencer::new(),
        };
        client.engine();
        Ok(client)
    }

    /// The proxy's address.
    pub fn address(&self) -> &ProxyAddress {
        &self.config.address
    }

    /// Waits until every frame sent so far is acknowledged (or refused), up
    /// to `timeout`, or until `cancel` turns true. Returns whether it was.
    pub fn flush(&self, timeout: Duration, cancel: &AtomicBool) -> bool {
        let engine = self.engine();
        let deadline = Instant::now() + timeout;
        let mut state = engine.lock();
        let Some(target) = state.next_seq.checked_sub(1) else {
            return true;
        };
        loop {
            if state.frames.front().map_or(true, |f| f.seq > target) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || cancel.load(Relaxed) {
                return false;
            }
            let slice = left.min(Duration::from_millis(20));
            state = match engine.settled.wait_timeout(state, slice) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// The counters and the buffer's state.
    pub fn snapshot(&self) -> ClientSnapshot {
        let engine = self.engine();
        let state = engine.lock();
        let s = &self.stats;
        ClientSnapshot {
            emitted: s.emitted.load(Relaxed),
            acked: s.acked.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            buffer_full: s.buffer_full.load(Relaxed),
            rejected: s.rejected.load(Relaxed),
            connects: s.connects.load(Relaxed),
            connect_failures: s.connect_failures.load(Relaxed),
            resent: s.resent.load(Relaxed),
            buffered: state.frames.len(),
            buffered_bytes: state.bytes,
            connected: state.connected,
            last_error: state.last_error.clone(),
        }
    }

    /// This process's engine: a fresh one in a forked child, which
    /// abandons the parent's.
    fn engine(&self) -> &Arc<Engine> {
        self.engine
            .get_or_init(|| start(&self.config, &self.stats), abandon)
    }
}

impl FrameSink for SocketClient {
    /// Reserves the data frame header, which `send_frame` fills in.
    fn begin_frame(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.resize(DATA_HEADER_LEN, 0);
    }

    /// Numbers the frame and copies it into the buffer of unacknowledged
    /// frames; never touches the network.
    fn send_frame(&self, frame: &mut [u8]) -> Result<(), SendError> {
        send_numbered(&self.sequencer, frame, DATA_HEADER_LEN, |frame| {
            self.buffer(frame)
        })
    }

    /// Numbering seals every version 2 envelope (`numbered.rs`).
    fn seals(&self) -> bool {
        true
    }

    fn count_drop(&self) {
        self.stats.dropped.fetch_add(1, Relaxed);
    }
}

impl SocketClient {
    /// Copies one numbered frame into the buffer of unacknowledged frames.
    fn buffer(&self, frame: &[u8]) -> Result<(), SendError> {
        if frame.len() < DATA_HEADER_LEN {
            return Err(SendError::NoPrefix {
                len: frame.len(),
                prefix: DATA_HEADER_LEN,
            });
        }
        let engine = self.engine();
        let size = frame.len() - DATA_HEADER_LEN;
        let limit = engine.max_envelope.load(Relaxed);
        if limit != 0 && size > limit {
            return Err(SendError::TooLarge {
                size,
                limit: limit as u64,
                setting: "the proxy's host queue (kernel.msgmax on the host)",
                fix: "raise kernel.msgmax on the host",
            });
        }
        let mut state = engine.lock();
        if state.frames.len() >= self.config.max_buffered_events
            || state.bytes + frame.len() > self.config.max_buffered_bytes
        {
            self.stats.buffer_full.fetch_add(1, Relaxed);
            return Err(SendError::SocketBufferFull {
                address: self.config.address.to_string(),
                events: state.frames.len(),
                bytes: state.bytes,
                last_error: state.last_error.clone().unwrap_or_else(|| "none".into()),
            });
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let mut bytes = state.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(frame);
        DataHeader::write(&mut bytes, size, seq);
        state.bytes += bytes.len();
        state.frames.push_back(Frame { seq, bytes });
        let wake = std::mem::replace(&mut state.io_idle, false);
        drop(state);
        if wake {
            engine.notify_io();
        }
        self.stats.emitted.fetch_add(1, Relaxed);
        Ok(())
    }
}

impl Drop for SocketClient {
    fn drop(&mut self) {
        // Only this generation's engine: a parent's is not ours to stop.
        if let Some(engine) = self.engine.get() {
            engine.lock().closing = true;
            engine.notify_io();
        }
    }
}

/// Forgets the parent's engine in a forked child: its IO thread does not
/// exist here and its lock may be held forever, so it is never locked,
/// only its descriptors closed (the parent's connection is unaffected); the
/// engine itself is leaked by [`PerProcess`].
fn abandon(old: &Arc<Engine>) {
    let fd = old.socket_fd.swap(-1, Relaxed);
    if fd >= 0 && names_socket(fd, old.socket_id.load(Relaxed)) {
        // SAFETY: the child's copy of the parent's socket (checked above);
        // nothing here uses it.
        unsafe { libc::close(fd) };
    }
    // The eventfd's OwnedFd is leaked with the engine and never closes it
    // again.
    if let Some(wake) = &old.wake {
        let raw: RawFd = wake.as_raw_fd();
        // SAFETY: as above, unused in the child from now on.
        unsafe { libc::close(raw) };
    }
}

/// Whether `fd` is still the socket whose [`socket_id`] was `id`: a number
/// the parent closed and reused names another file, which must stay open.
fn names_socket(fd: RawFd, id: u64) -> bool {
    id != 0 && engine::socket_id(fd) == id
}

fn start(config: &Arc<ClientConfig>, stats: &Arc<ClientStats>) -> Arc<Engine> {
    // SAFETY: plain eventfd creation; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    // SAFETY: a fresh descriptor we own (descriptor exhaustion leaves
    // none: the IO thread then relies on its poll timeout).
    let wake = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
    let engine = Arc::new(Engine {
        config: Arc::clone(config),
        stats: Arc::clone(stats),
        state: Mutex::new(State {
            frames: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            sent: 0,
            io_idle: true,
            closing: false,
            connected: false,
            last_error: None,
            spare: Vec::new(),
        }),
        settled: Condvar::new(),
        wake,
        socket_fd: AtomicI32::new(-1),
        socket_id: AtomicU64::new(0),
        max_envelope: AtomicUsize::new(0),
    });
    let worker = Arc::clone(&engine);
    if let Err(e) = thread::Builder::new()
        .name("shopify-events-socket".into())
        .spawn(move || io::run(worker))
    {
        engine.lock().last_error = Some(format!("cannot start the socket IO thread: {e}"));
    }
    engine
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    fn is_open(fd: RawFd) -> bool {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
    }

    /// An engine whose IO thread has already stopped, as in a forked child
    /// (where it does not exist at all).
    fn stopped_engine() -> Arc<Engine> {
        let config = Arc::new(ClientConfig::new(ProxyAddress::Unix("/nonexistent".into())));
        let engine = start(&config, &Arc::new(ClientStats::default()));
        engine.lock().closing = true;
        engine.notify_io();
        std::thread::sleep(Duration::from_millis(50));
        engine
    }

    #[test]
    fn a_forked_child_closes_the_inherited_socket_but_never_a_reused_descriptor_number() {
        // The inherited socket, still the same: closed.
        let (ours, _peer) = UnixStream::pair().unwrap();
        let engine = stopped_engine();
        let fd = ours.as_raw_fd();
        engine.socket_id.store(engine::socket_id(fd), Relaxed);
        engine.socket_fd.store(fd, Relaxed);
        abandon(&engine);
        assert!(!is_open(fd), "the inherited socket stays open");
        std::mem::forget(ours); // already closed
        std::mem::forget(engine); // a child leaks it: its eventfd is closed

        // The parent closed its socket and the number now names a file the
        // child uses: left open.
        let (gone, _peer) = UnixStream::pair().unwrap();
        let stale_id = engine::socket_id(gone.as_raw_fd());
        drop(gone);
        let file = std::fs::File::open("/dev/null").unwrap();
        let engine = stopped_engine();
        engine.socket_id.store(stale_id, Relaxed);
        engine.socket_fd.store(file.as_raw_fd(), Relaxed);
        abandon(&engine);
        std::mem::forget(engine);
        assert!(is_open(file.as_raw_fd()), "closed a reused descriptor");
    }
}
