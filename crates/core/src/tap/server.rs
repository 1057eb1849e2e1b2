//! [`Tap`]: the drain's handle on the tap, and the `drain-tap` thread that
//! accepts clients on the socket.
//!
//! The thread sleeps in `poll(2)` on the listener and on one end of a
//! socket pair whose other end the [`Tap`] holds, with no timeout: while
//! nobody connects it never wakes. Dropping the [`Tap`] closes that pair;
//! the thread then closes the hub (every client's thread writes what it
//! holds and the end notice), gives the client threads [`END_GRACE`] to
//! finish, shuts down the sockets of those stuck writing to a client that
//! does not read, and removes the socket file.

use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sysvmq::Key;

use super::peer::{own_uid, Peer};
use super::protocol::Notice;
use super::writer::serve_client;
use super::TapHub;
use crate::defaults::{TAP_CLIENT_BUFFER, TAP_MAX_CLIENTS, TAP_SOCKET_MODE};
use crate::state_dir::{bind_socket, StateDir};

/// How long a stopping drain waits for its clients to take their last lines.
const END_GRACE: Duration = Duration::from_secs(1);
/// The pause after a failed accept (EMFILE, ...), instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What the accept thread and the client threads share.
#[derive(Debug)]
pub(super) struct Context {
    pub(super) hub: Arc<TapHub>,
    pub(super) key: Key,
    pub(super) pid: u32,
    drain_uid: u32,
}

/// The drain's handle on the tap. Dropping it ends every tap (clients are
/// told "the drain stopped") and removes the socket.
#[derive(Debug)]
pub struct Tap {
    hub: Arc<TapHub>,
    server: Option<Server>,
}

#[derive(Debug)]
struct Server {
    /// Dropped to wake the accept thread for good.
    wake: UnixStream,
    thread: JoinHandle<()>,
}

impl Tap {
    /// Serves taps on `state`'s socket (`tap-KEY.sock`, mode 0600) from a
    /// new thread. A drain delivers whether or not it can be tapped: if the
    /// socket cannot be bound, this says so on stderr and returns a tap
    /// nobody can connect to.
    pub fn serve(state: &StateDir) -> Tap {
        let path = state.tap_socket();
        match Tap::bind(state) {
            Ok(tap) => tap,
            Err(e) => {
                eprintln!(
                    "shopify-events drain: cannot serve taps on {}: {e}; the drain runs without \
                     (a socket's path must be under 108 bytes: a shorter --state-dir fixes that)",
                    path.display()
                );
                Tap::off()
            }
        }
    }

    fn bind(state: &StateDir) -> io::Result<Tap> {
        let path = state.tap_socket();
        let listener = bind_socket(&path, &state.tap_socket_tmp(), TAP_SOCKET_MODE)?;
        listener.set_nonblocking(true)?;
        let hub = Arc::new(TapHub::new(TAP_CLIENT_BUFFER));
        let context = Arc::new(Context {
            hub: hub.clone(),
            key: state.key(),
            pid: std::process::id(),
            drain_uid: own_uid(),
        });
        let (wake, woken) = UnixStream::pair()?;
        let thread = thread::Builder::new()
            .name("drain-tap".into())
            .spawn(move || {
                accept_until_woken(&listener, &woken, &context);
                let _ = std::fs::remove_file(&path);
            })?;
        Ok(Tap {
            hub,
            server: Some(Server { wake, thread }),
        })
    }

    /// A tap nobody can connect to (a drain without a socket, benchmarks).
    pub fn off() -> Tap {
        Tap {
            hub: Arc::new(TapHub::new(TAP_CLIENT_BUFFER)),
            server: None,
        }
    }

    /// The drain loop's call for each delivered event: `body` gives its
    /// envelope and is called only while somebody taps. Nobody tapping,
    /// this is one relaxed load.
    #[inline]
    pub fn delivered<'a>(&self, body: impl FnOnce() -> Option<&'a [u8]>) {
        self.hub.publish(body);
    }

    /// The hub the events go to.
    pub fn hub(&self) -> &Arc<TapHub> {
        &self.hub
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(Server { wake, thread }) = self.server.take() {
            drop(wake);
            let _ = thread.join();
        }
    }
}

/// A client's thread and a handle on its socket, to cut it off at the end.
struct Client {
    thread: JoinHandle<()>,
    socket: UnixStream,
}

fn accept_until_woken(listener: &UnixListener, woken: &UnixStream, context: &Arc<Context>) {
    let mut clients: Vec<Client> = Vec::new();
    while wait_readable(listener.as_raw_fd(), woken.as_raw_fd()) {
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    clients.retain(|c| !c.thread.is_finished());
                    if let Some(client) = admit(stream, clients.len(), context) {
                        clients.push(client);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    thread::sleep(ACCEPT_RETRY);
                    break;
                }
            }
        }
    }
    context.hub.close();
    let deadline = Instant::now() + END_GRACE;
    while clients.iter().any(|c| !c.thread.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    for client in clients {
        // A client that does not read keeps its thread in write(2).
        let _ = client.socket.shutdown(std::net::Shutdown::Both);
        let _ = client.thread.join();
    }
}

/// Blocks until the listener has a connection (true) or the wake socket
/// closed (false).
fn wait_readable(listener: RawFd, woken: RawFd) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: woken,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds, alive for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if ready < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        return fds[1].revents == 0;
    }
}

/// Checks a new connection and starts its thread, or refuses it.
fn admit(stream: UnixStream, serving: usize, context: &Arc<Context>) -> Option<Client> {
    stream.set_nonblocking(false).ok()?;
    let peer = Peer::of(&stream).ok()?;
    let refusal = if !peer.may_tap(context.drain_uid) {
        Some(format!(
            "uid {} may not tap: only root and the drain's user (uid {}) may, since taps show every payload",
            peer.uid, context.drain_uid
        ))
    } else if serving >= TAP_MAX_CLIENTS {
        Some(format!(
            "{TAP_MAX_CLIENTS} clients are tapping already, the most one drain serves"
        ))
    } else {
        None
    };
    if let Some(reason) = refusal {
        eprintln!(
            "shopify-events drain: refused a tap from pid {} (uid {}, gid {}): {reason}",
            peer.pid, peer.uid, peer.gid
        );
        refuse(stream, reason);
        return None;
    }
    let socket = stream.try_clone().ok()?;
    let context = context.clone();
    let thread = thread::Builder::new()
        .name("drain-tap-client".into())
        .spawn(move || serve_client(stream, peer, &context))
        .ok()?;
    Some(Client { thread, socket })
}

/// Tells a client why it is not served (without waiting on it) and closes.
pub(super) fn refuse(mut stream: UnixStream, reason: String) {
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(&Notice::Refused { reason }.line());
}

impl Context {
    /// The queue key as the ready notice spells it.
    pub(super) fn queue(&self) -> String {
        format!("{:#010x}", self.key as u32)
    }
}
