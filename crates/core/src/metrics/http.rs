//! A tiny HTTP/1.1 server for `GET /metrics` and `GET /health`: the one
//! the drain and the proxy both run, each with its own render callback and
//! health check.
//!
//! Scrapes come every few seconds from one Prometheus, so connections are
//! served one at a time on a single thread, each closed after its response.
//! What keeps one bad client from stalling the others is time, not
//! concurrency: reading the request head has a 2 s deadline (total, so a
//! client dribbling a byte a second gains nothing), each write a 2 s timeout,
//! and the head is capped at 8 KiB.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::request::{linger, read_head, Head};
use super::text::CONTENT_TYPE;

/// How long a client has to send its request head, and each write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle accept loop looks at the shutdown flag by itself:
/// [`Serving::join`] wakes it at once, so this only bounds how late a
/// server whose flag was set without a join notices it. An idle server
/// wakes once per period: each wake-up costs the drain's idle CPU.
const ACCEPT_POLL: Duration = Duration::from_secs(1);

/// Health as the drain reports it on `/health`: `200 ok <detail>` when `ok`,
/// else `503 unhealthy <detail>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Whether the drain is doing its job (load balancers and systemd
    /// watchdogs act on this).
    pub ok: bool,
    /// One line for a human, e.g. `"kafka unreachable for 42s"`.
    pub detail: String,
}

impl Health {
    /// A healthy report.
    pub fn ok(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
        }
    }

    /// An unhealthy report, saying why.
    pub fn failing(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Computes the current [`Health`] on each `/health` request.
pub type HealthCheck = Arc<dyn Fn() -> Health + Send + Sync>;

/// Appends the Prometheus text exposition to the buffer on each `/metrics`
/// request (e.g. [`DrainMetrics::render`](super::DrainMetrics::render)).
pub type RenderMetrics = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The thread [`serve`] started.
#[derive(Debug)]
pub struct Serving {
    thread: JoinHandle<()>,
    /// Written to by [`join`](Self::join): the thread polls the other end
    /// beside the listener, so it sees the shutdown flag at once.
    wake: UnixStream,
}

impl Serving {
    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Wakes the thread to look at its shutdown flag (set it first) and
    /// waits for it to end.
    pub fn join(mut self) -> thread::Result<()> {
        // A full or closed socket means the thread is awake or gone anyway.
        let _ = self.wake.write(&[1]);
        self.thread.join()
    }
}

/// Serves `GET /metrics` and `GET /health` on `listener` from a new thread
/// until `shutdown` is set, which the thread notices at once when
/// [`Serving::join`] is called (within a second otherwise, a few seconds
/// later if it is busy with a stuck client). Idle, it sleeps in `poll(2)`
/// and wakes once a second.
///
/// Takes an already bound listener so the caller chooses the address (see
/// [`bind()`](super::bind())) and tests can bind port 0. Other paths get 404,
/// methods other than GET and HEAD get 405. Errors on one connection only end
/// that connection.
pub fn serve(
    listener: TcpListener,
    render: RenderMetrics,
    health: HealthCheck,
    shutdown: Arc<AtomicBool>,
) -> io::Result<Serving> {
    // std has no accept with a timeout: poll(2) the listener and the wake
    // socket, so a client is served at once and a join is seen at once.
    listener.set_nonblocking(true)?;
    let (wake, woken) = UnixStream::pair()?;
    woken.set_nonblocking(true)?;
    let mut woken = Some(woken);
    let thread = thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            let mut server = Server {
                render,
                health,
                body: String::new(),
            };
            while !shutdown.load(Relaxed) {
                match accept_within(&listener, &mut woken, ACCEPT_POLL) {
                    // Ignored: a failed exchange only concerns that client,
                    // and the server has no log to write it to.
                    Ok(Some(mut stream)) => {
                        let _ = server.handle(&mut stream);
                        linger(&mut stream);
                    }
                    Ok(None) => {}
                    // EMFILE, ECONNABORTED, ...: retried after a pause
                    // instead of spinning.
                    Err(_) => thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(Serving { thread, wake })
}

/// Waits up to `timeout` for a connection on a non-blocking listener, or
/// for a byte on `woken` ([`Serving::join`]): `poll(2)` on both, so a
/// scrape is answered at once and a join is seen at once. A `woken` whose
/// peer is gone (the [`Serving`] dropped without a join) is let go, so it
/// cannot wake the loop again and again.
fn accept_within(
    listener: &TcpListener,
    woken: &mut Option<UnixStream>,
    timeout: Duration,
) -> io::Result<Option<TcpStream>> {
    // A descriptor of -1 is ignored by poll(2).
    let wake_fd = woken.as_ref().map_or(-1, |w| w.as_raw_fd());
    let mut fds = [listener.as_raw_fd(), wake_fd].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: two pollfds, alive for the duration of the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(None)
        } else {
            Err(error)
        };
    }
    if fds[1].revents != 0 {
        // Woken to look at the flag: the byte is read away so the next poll
        // sleeps again; at the end of the stream the peer is gone.
        if let Some(stream) = woken {
            match stream.read(&mut [0; 8]) {
                Ok(0) => *woken = None,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => *woken = None,
                _ => {}
            }
        }
        return Ok(None);
    }
    if ready == 0 {
        return Ok(None);
    }
    match listener.accept() {
        Ok((stream, _)) => Ok(Some(stream)),
        // Another thread, or a client that gave up, took it first.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

struct Server {
    render: RenderMetrics,
    health: HealthCheck,
    /// Reused between scrapes: the exposition is the one sizeable buffer.
    body: String,
}

impl Server {
    fn handle(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        // Accepted sockets inherit O_NONBLOCK on some platforms (BSDs).
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        // Head and body go out as two writes: do not let Nagle hold the body.
        stream.set_nodelay(true)?;
        let (method, path) = match read_head(stream, IO_TIMEOUT)? {
            Head::Request { method, path } => (method, path),
            Head::Malformed => return respond(stream, 400, "", b"", false),
            Head::TooLarge => return respond(stream, 431, "", b"", false),
            Head::Incomplete => return Ok(()),
        };
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            return respond(stream, 405, "", b"", false);
        }
        match path.as_str() {
            "/metrics" => {
                self.body.clear();
                (self.render)(&mut self.body);
                respond(stream, 200, CONTENT_TYPE, self.body.as_bytes(), head_only)
            }
            "/health" => {
                // A panicking check must not take /metrics down with it.
                let health = catch_unwind(AssertUnwindSafe(|| (self.health)()))
                    .unwrap_or_else(|_| Health::failing("health check panicked"));
                let (status, word) = match health.ok {
                    true => (200, "ok"),
                    false => (503, "unhealthy"),
                };
                let body = format!("{word} {}\n", health.detail);
                let text = "text/plain; charset=utf-8";
                respond(stream, status, text, body.as_bytes(), head_only)
            }
            _ => respond(stream, 404, "", b"", false),
        }
    }
}

/// Writes a whole `Connection: close` response (no `Content-Type` when
/// `content_type` is empty; the body is left out for HEAD).
fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    if status == 405 {
        // Required on a 405 (RFC 9110, 15.5.6).
        head.push_str("Allow: GET, HEAD\r\n");
    }
    if !content_type.is_empty() {
        let _ = write!(head, "Content-Type: {content_type}\r\n");
    }
    let _ = write!(
        head,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}
