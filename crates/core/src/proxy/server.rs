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
//! - Each envelope is checked with [`Envelope::decode`] (CRC included) and
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

use std::collections::HashMap;
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sysvmq::Key;

use super::address::{Listener, Stream};
use super::frame::{
    DataHeader, Hello, NackReason, Reply, Status, Welcome, DATA_HEADER_LEN, HELLO_FIXED_LEN,
    PROTOCOL_VERSION,
};
use super::metrics::ProxyMetrics;
use crate::emitter::{SendError, SysvEmitter, DEFAULT_QUEUE_MODE};
use crate::envelope::{DecodeError, Envelope, MIN_LEN};

/// Settings of a running proxy.
#[derive(Clone)]
pub struct ServerConfig {
    /// The host queue frames go to (created with `queue_mode` if missing).
    pub queue_key: Key,
    /// Permissions of a queue the proxy has to create.
    pub queue_mode: u32,
    /// Shared secret clients must present; `None` accepts any client.
    pub token: Option<Vec<u8>>,
    /// Connections served at once; more are refused with `Busy`.
    pub max_connections: usize,
    /// Time a new connection has to complete its handshake.
    pub handshake_timeout: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Time a write of acks may block before the connection is dropped.
    pub write_timeout: Duration,
    /// Time shutdown waits for connection threads.
    pub shutdown_timeout: Duration,
    /// Largest envelope accepted; `None` uses the queue's limit
    /// (`kernel.msgmax` or its capacity, whichever is smaller). A smaller
    /// value only; the queue's limit always applies.
    pub max_envelope: Option<u32>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: say whether there is one, never what it is.
        f.debug_struct("ServerConfig")
            .field(
                "queue_key",
                &format_args!("{:#010x}", self.queue_key as u32),
            )
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("max_connections", &self.max_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_envelope", &self.max_envelope)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults for the queue at `queue_key`: no token, 1024 connections,
    /// 5 s handshake, 60 s idle, 10 s write and shutdown timeouts.
    pub fn new(queue_key: Key) -> ServerConfig {
        ServerConfig {
            queue_key,
            queue_mode: DEFAULT_QUEUE_MODE,
            token: None,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            max_envelope: None,
        }
    }
}

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

struct Context {
    config: ServerConfig,
    emitter: SysvEmitter,
    max_envelope: usize,
    metrics: Arc<ProxyMetrics>,
    shutdown: Arc<AtomicBool>,
    /// Clones of open streams, to shut their reads down at exit.
    open: Mutex<HashMap<u64, Stream>>,
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
            let end = ConnectionOwner {
                ctx: &worker,
                stream,
            }
            .run();
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

fn write_welcome(mut stream: &Stream, status: Status, max: usize, text: &str) -> io::Result<()> {
    let mut out = Vec::with_capacity(64);
    Welcome {
        version: PROTOCOL_VERSION,
        status,
        max_envelope: max as u32,
        text: text.into(),
    }
    .encode(&mut out);
    stream.write_all(&out)
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }
}

/// How a connection ended.
enum End {
    /// The client closed it at a frame boundary (or shutdown did).
    Closed,
    /// The proxy is shutting down.
    Shutdown,
    /// Silent past the idle timeout.
    Idle,
    /// The handshake failed or timed out.
    Handshake(String),
    /// Malformed, oversized, truncated or out-of-order input.
    Protocol(String),
    /// The socket failed (reset, write timeout).
    Io(io::Error),
}

impl End {
    fn record(&self, m: &ProxyMetrics, peer: &str) {
        match self {
            End::Closed | End::Shutdown => {}
            End::Idle => {
                m.idle_timeouts.inc();
            }
            End::Handshake(why) => {
                m.handshake_failures.inc();
                eprintln!("shopify-events proxy: closed {peer}: handshake failed: {why}");
            }
            End::Protocol(why) => {
                m.protocol_errors.inc();
                eprintln!("shopify-events proxy: closed {peer}: {why}");
            }
            End::Io(e) => eprintln!("shopify-events proxy: closed {peer}: {e}"),
        }
    }
}

struct Connection<'a> {
    ctx: &'a Context,
    reader: BufReader<&'a Stream>,
    writer: &'a Stream,
    /// Replies not yet written.
    out: Vec<u8>,
    /// Highest sequence number handled (enqueued or nacked) and not yet acked.
    ack_due: Option<u64>,
}

/// Owns the stream the [`Connection`] borrows.
struct ConnectionOwner<'a> {
    ctx: &'a Context,
    stream: Stream,
}

impl ConnectionOwner<'_> {
    fn run(self) -> End {
        let stream = &self.stream;
        if let Err(e) = stream.set_write_timeout(Some(self.ctx.config.write_timeout)) {
            return End::Io(e);
        }
        let mut conn = Connection {
            ctx: self.ctx,
            reader: BufReader::with_capacity(64 * 1024, stream),
            writer: stream,
            out: Vec::with_capacity(256),
            ack_due: None,
        };
        if let Err(end) = conn.handshake() {
            return end;
        }
        if let Err(e) = stream.set_read_timeout(Some(self.ctx.config.idle_timeout)) {
            return End::Io(e);
        }
        let end = conn.frames();
        let _ = conn.send_ack();
        end
    }
}

impl Connection<'_> {
    fn handshake(&mut self) -> Result<(), End> {
        let deadline = Instant::now() + self.ctx.config.handshake_timeout;
        let mut bytes = vec![0u8; HELLO_FIXED_LEN];
        self.read_by(&mut bytes, deadline)?;
        let token_len = match Hello::decode(&bytes) {
            Ok(None) => u16::from_le_bytes([bytes[6], bytes[7]]) as usize,
            Ok(Some(_)) => 0,
            Err(e) => return Err(End::Handshake(e.to_string())),
        };
        bytes.resize(HELLO_FIXED_LEN + token_len, 0);
        self.read_by(&mut bytes[HELLO_FIXED_LEN..], deadline)?;
        let hello = match Hello::decode(&bytes) {
            Ok(Some((hello, _))) => hello,
            Ok(None) => return Err(End::Handshake("handshake cut short".into())),
            Err(e) => return Err(End::Handshake(e.to_string())),
        };
        let refuse = |status, text: String| {
            let _ = write_welcome(self.writer, status, 0, &text);
            Err(End::Handshake(text))
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
        if let Some(token) = &self.ctx.config.token {
            if !constant_time_eq(token, &hello.token) {
                return refuse(
                    Status::BadToken,
                    "wrong or missing token: set SHOPIFY_EVENTS_PROXY_TOKEN to the proxy's --token"
                        .into(),
                );
            }
        }
        write_welcome(self.writer, Status::Ok, self.ctx.max_envelope, "").map_err(End::Io)
    }

    /// Reads exactly `buf.len()` bytes before `deadline` (handshake only).
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), End> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.ctx.metrics.idle_timeouts.inc();
                return Err(End::Handshake(format!(
                    "no handshake within {:?}",
                    self.ctx.config.handshake_timeout
                )));
            }
            self.writer.set_read_timeout(Some(left)).map_err(End::Io)?;
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => return Err(End::Handshake("connection closed during handshake".into())),
                Ok(n) => filled += n,
                Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
        Ok(())
    }

    fn frames(&mut self) -> End {
        let mut frame = Vec::with_capacity(4096);
        self.ctx.emitter.begin_frame(&mut frame);
        let prefix = frame.len();
        let mut previous: Option<u64> = None;
        loop {
            if self.ctx.shutdown.load(Relaxed) {
                return End::Shutdown;
            }
            if self.reader.buffer().is_empty() {
                if let Err(e) = self.send_ack() {
                    return End::Io(e);
                }
            }
            let mut head = [0u8; DATA_HEADER_LEN];
            match self.read_frame_part(&mut head, true) {
                Ok(true) => {}
                Ok(false) => return End::Closed,
                Err(end) => return end,
            }
            let header = DataHeader::decode(&head);
            let size = header.envelope_len();
            if (header.len as usize) < 8 + MIN_LEN {
                let why = format!(
                    "frame length {} is below the smallest frame ({} = 8 + {MIN_LEN}-byte envelope)",
                    header.len,
                    8 + MIN_LEN
                );
                return self.nack_and_close(header.seq, NackReason::Malformed, why);
            }
            if size > self.ctx.max_envelope {
                let why = format!(
                    "frame carries a {size}-byte envelope, larger than the host queue's {}-byte limit (kernel.msgmax or the queue's capacity); send smaller events or raise kernel.msgmax on the host",
                    self.ctx.max_envelope
                );
                return self.nack_and_close(header.seq, NackReason::TooLarge, why);
            }
            if let Some(last) = previous.filter(|&last| header.seq <= last) {
                let why = format!(
                    "frame sequence number {} out of order: it must be greater than the previous frame's {last}",
                    header.seq
                );
                return self.nack_and_close(header.seq, NackReason::OutOfOrder, why);
            }
            previous = Some(header.seq);
            frame.resize(prefix + size, 0);
            match self.read_frame_part(&mut frame[prefix..], false) {
                Ok(true) => {}
                Ok(false) | Err(End::Idle) => {
                    return End::Protocol(format!(
                        "truncated frame {}: the connection ended or stalled inside its {size}-byte envelope",
                        header.seq
                    ))
                }
                Err(end) => return end,
            }
            self.ctx.metrics.frames_received.inc();
            if let Err(e) = Envelope::decode(&frame[prefix..]) {
                let reason = match e {
                    DecodeError::ChecksumMismatch { .. } => NackReason::CrcMismatch,
                    _ => NackReason::Malformed,
                };
                if let Err(e) = self.nack(header.seq, reason, e.to_string()) {
                    return End::Io(e);
                }
                continue;
            }
            match self.enqueue(&frame, header.seq) {
                Ok(()) => {}
                Err(end) => return end,
            }
        }
    }

    /// Fills `buf`. `Ok(false)` when the peer closed before its first byte
    /// and `at_boundary`; a timeout before the first byte at a boundary is
    /// [`End::Idle`], anywhere else a truncated frame.
    fn read_frame_part(&mut self, buf: &mut [u8], at_boundary: bool) -> Result<bool, End> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 && at_boundary => return Ok(false),
                Ok(0) => {
                    return Err(End::Protocol(format!(
                        "truncated frame: connection closed after {filled} of {} bytes",
                        buf.len()
                    )))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) && filled == 0 && at_boundary => return Err(End::Idle),
                Err(e) if is_timeout(&e) => {
                    return Err(End::Protocol(format!(
                        "truncated frame: stalled for {:?} after {filled} of {} bytes",
                        self.ctx.config.idle_timeout,
                        buf.len()
                    )))
                }
                Err(e) => return Err(End::Io(e)),
            }
        }
        Ok(true)
    }

    /// Puts one frame (mtype prefix + envelope) into the queue, waiting for
    /// room while it is full; acks follow once the kernel took it.
    fn enqueue(&mut self, frame: &[u8], seq: u64) -> Result<(), End> {
        let m = &self.ctx.metrics;
        let mut waited = false;
        let mut pause = Duration::from_millis(1);
        let mut logged = false;
        let result = loop {
            match self.ctx.emitter.try_send(frame) {
                Ok(()) => break Ok(()),
                Err(SendError::TooLarge { .. }) => {
                    let why = format!(
                        "envelope of {} bytes is larger than the queue accepts now (kernel.msgmax was lowered?)",
                        frame.len() - 8
                    );
                    break self.nack(seq, NackReason::TooLarge, why).map_err(End::Io);
                }
                Err(e) => {
                    if let SendError::Full { .. } = e {
                        if !waited {
                            m.queue_full_waits.inc();
                        }
                    } else {
                        m.queue_errors.inc();
                        if !logged {
                            eprintln!("shopify-events proxy: cannot enqueue, holding acks and retrying: {e}");
                            logged = true;
                        }
                    }
                    if !waited {
                        waited = true;
                        m.backpressured.add(1);
                        // Earlier frames are in the queue: let the client free them.
                        if let Err(e) = self.send_ack() {
                            break Err(End::Io(e));
                        }
                    }
                    if self.ctx.shutdown.load(Relaxed) {
                        break Err(End::Shutdown);
                    }
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        };
        if waited {
            m.backpressured.sub(1);
        }
        if result.is_ok() {
            m.events_enqueued.inc();
            m.bytes_enqueued.add((frame.len() - 8) as u64);
            self.ack_due = Some(seq);
        }
        result
    }

    fn send_ack(&mut self) -> io::Result<()> {
        if let Some(seq) = self.ack_due.take() {
            self.out.clear();
            Reply::Ack(seq).encode(&mut self.out);
            self.writer.write_all(&self.out)?;
        }
        Ok(())
    }

    fn nack(&mut self, seq: u64, reason: NackReason, text: String) -> io::Result<()> {
        self.ctx.metrics.frames_nacked.inc();
        // A nacked frame is settled too: the cumulative ack may pass it.
        self.send_ack()?;
        self.out.clear();
        Reply::Nack { seq, reason, text }.encode(&mut self.out);
        self.writer.write_all(&self.out)?;
        self.ack_due = Some(seq);
        Ok(())
    }

    fn nack_and_close(&mut self, seq: u64, reason: NackReason, why: String) -> End {
        self.ctx.metrics.frames_nacked.inc();
        let _ = self.send_ack();
        self.out.clear();
        Reply::Nack {
            seq,
            reason,
            text: why.clone(),
        }
        .encode(&mut self.out);
        let _ = self.writer.write_all(&self.out);
        End::Protocol(why)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}
