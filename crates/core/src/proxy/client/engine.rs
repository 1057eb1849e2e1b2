//! What the callers of one [`SocketClient`](super::SocketClient) and its IO
//! thread share: the buffer of unacknowledged frames, the wake-up eventfd
//! and the connection's descriptor. One engine per process: a forked child
//! starts its own.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::config::ClientConfig;
use super::stats::ClientStats;

/// One numbered frame: the 12-byte header then the envelope.
pub(super) struct Frame {
    pub(super) seq: u64,
    pub(super) bytes: Vec<u8>,
}

/// The buffer of unacknowledged frames and the connection's state,
/// behind the engine's lock.
pub(super) struct State {
    pub(super) frames: VecDeque<Frame>,
    pub(super) bytes: usize,
    pub(super) next_seq: u64,
    /// `frames[..sent]` were written on the current connection.
    pub(super) sent: usize,
    /// The IO thread waits for work and must be woken for a new frame.
    pub(super) io_idle: bool,
    pub(super) closing: bool,
    pub(super) connected: bool,
    pub(super) last_error: Option<String>,
    pub(super) spare: Vec<Vec<u8>>,
}

/// Everything shared by the callers and one IO thread (one per process).
pub(super) struct Engine {
    pub(super) config: Arc<ClientConfig>,
    pub(super) stats: Arc<ClientStats>,
    pub(super) state: Mutex<State>,
    /// Notified whenever frames leave the buffer (flush waits on it).
    pub(super) settled: Condvar,
    /// An eventfd, readable when the IO thread has something new to do
    /// (`None` if it could not be created: the thread then relies on its
    /// poll timeout).
    pub(super) wake: Option<OwnedFd>,
    /// The connection's descriptor (-1 when none), for the fork path. Set
    /// after [`Engine::socket_id`] when connecting, cleared before the
    /// descriptor is closed.
    pub(super) socket_fd: AtomicI32,
    /// Device and inode of that socket: a forked child closes the
    /// descriptor only if it still names this socket.
    pub(super) socket_id: AtomicU64,
    /// The proxy's envelope limit from the last handshake (0: unknown).
    pub(super) max_envelope: AtomicUsize,
}

impl Engine {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn notify_io(&self) {
        if let Some(wake) = &self.wake {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd; a full
            // counter (EAGAIN) still leaves it readable, which is all we need.
            unsafe { libc::write(wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }
}

/// The device and inode of an open socket, as one word (0: not a socket).
pub(super) fn socket_id(fd: RawFd) -> u64 {
    // SAFETY: stat is plain data; fstat only writes it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return 0;
    }
    st.st_dev.rotate_left(32) ^ st.st_ino
}
