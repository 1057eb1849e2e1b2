//! One proxy connection: the handshake, then data frames into the host
//! queue with cumulative acks, nacks for rejected frames and backpressure
//! while the queue is full. The rules are listed in [the server's docs](super).

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use super::context::{write_welcome, Context};
use crate::envelope::{DecodeError, Envelope, MIN_LEN};
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::wire::frame::{
    DataHeader, Hello, NackReason, Reply, Status, DATA_HEADER_LEN, HELLO_FIXED_LEN,
    PROTOCOL_VERSION,
};
use crate::proxy::wire::Stream;
use crate::transport::{FrameSink, SendError};

/// How a connection ended.
pub(super) enum End {
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
    pub(super) fn record(&self, m: &ProxyMetrics, peer: &str) {
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

/// Serves one accepted connection until it ends: the handshake, then
/// frames until the client closes, times out, misbehaves or shutdown.
pub(super) fn serve(ctx: &Context, stream: Stream) -> End {
    let stream = &stream;
    if let Err(e) = stream.set_write_timeout(Some(ctx.config.write_timeout)) {
        return End::Io(e);
    }
    let mut conn = Connection {
        ctx,
        reader: BufReader::with_capacity(64 * 1024, stream),
        writer: stream,
        out: Vec::with_capacity(256),
        ack_due: None,
    };
    if let Err(end) = conn.handshake() {
        return end;
    }
    if let Err(e) = stream.set_read_timeout(Some(ctx.config.idle_timeout)) {
        return End::Io(e);
    }
    let end = conn.frames();
    let _ = conn.send_ack();
    end
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
            match self.ctx.emitter.forward_frame(frame) {
                Ok(()) => break Ok(()),
                Err(SendError::TooLarge { .. }) => {
                    let why = format!(
                        "envelope of {} bytes is larger than the queue accepts now (kernel.msgmax was lowered?)",
                        frame.len() - 8
                    );
                    break self.nack(seq, NackReason::TooLarge, why).map_err(End::Io);
                }
                Err(e) => {
                    if let SendError::QueueFull { .. } = e {
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
