//! One served connection (its handshake already read by the accepting
//! thread): the welcome, then data frames into the host queue or the
//! spool with cumulative acks, nacks for rejected frames and backpressure
//! while neither can take them. The rules are listed in
//! [the server's docs](super).

use std::io::{self, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use super::context::{write_welcome, Context};
use super::outlet::Put;
use super::reader::{Fill, FrameReader};
use crate::envelope::{DecodeError, Envelope, MIN_LEN};
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::wire::frame::{DataHeader, NackReason, Reply, Status, DATA_HEADER_LEN};
use crate::proxy::wire::Stream;
use crate::transport::FrameSink;

/// A frame buffer larger than this is given back after its frame: a
/// thousand connections that each once carried a 1 MiB event must not
/// keep a GiB between them.
const KEEP_FRAME_CAPACITY: usize = 64 * 1024;

/// How a connection ended.
pub(super) enum End {
    /// The client closed it at a frame boundary.
    Closed,
    /// The proxy is shutting down.
    Shutdown,
    /// Silent past the idle timeout.
    Idle,
    /// Malformed, oversized, truncated, too slow or out-of-order input.
    Protocol(String),
    /// The socket failed (reset, write timeout).
    Io(io::Error),
}

impl End {
    pub(super) fn record(&self, ctx: &Context, peer: &str) {
        let m: &ProxyMetrics = &ctx.metrics;
        match self {
            End::Closed | End::Shutdown => {}
            End::Idle => m.idle_timeouts.inc(),
            End::Protocol(why) => {
                m.protocol_errors.inc();
                ctx.log(&format!("closed {peer}: {why}"));
            }
            End::Io(e) => ctx.log(&format!("closed {peer}: {e}")),
        }
    }
}

struct Connection<'a> {
    ctx: &'a Context,
    reader: FrameReader<'a>,
    writer: &'a Stream,
    /// Replies not yet written.
    out: Vec<u8>,
    /// Highest sequence number handled (enqueued, spooled or nacked) and
    /// not yet acked.
    ack_due: Option<u64>,
    /// The socket's receive timeout inside a frame: reads return at least
    /// this often so the frame's deadline is checked.
    tick: Duration,
}

/// Serves one connection whose `Hello` was accepted: writes the welcome,
/// then takes frames until the client closes, times out, misbehaves or
/// shutdown.
pub(super) fn serve(ctx: &Context, stream: &Stream) -> End {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(ctx.config.write_timeout)))
        .and_then(|()| write_welcome(stream, Status::Ok, ctx.max_envelope, ""));
    if let Err(e) = setup {
        return End::Io(e);
    }
    let tick =
        (ctx.config.frame_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut conn = Connection {
        ctx,
        reader: FrameReader::new(stream),
        writer: stream,
        out: Vec::with_capacity(256),
        ack_due: None,
        tick,
    };
    let end = conn.frames();
    let _ = conn.send_ack();
    end
}

impl Connection<'_> {
    fn frames(&mut self) -> End {
        let mut frame = Vec::with_capacity(4096);
        self.ctx.outlet.emitter.begin_frame(&mut frame);
        let prefix = frame.len();
        let mut previous: Option<u64> = None;
        loop {
            if self.ctx.shutdown.load(Relaxed) {
                return End::Shutdown;
            }
            let mut deadline = None;
            while self.reader.buffered().len() < DATA_HEADER_LEN {
                let at_boundary = self.reader.buffered().is_empty();
                match self.wait_for_bytes(at_boundary, &mut deadline, "its header") {
                    Ok(true) => {}
                    Ok(false) => return End::Closed,
                    Err(end) => return end,
                }
            }
            let mut head = [0u8; DATA_HEADER_LEN];
            head.copy_from_slice(&self.reader.buffered()[..DATA_HEADER_LEN]);
            self.reader.consume(DATA_HEADER_LEN);
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
                    "frame carries a {size}-byte envelope, larger than the {}-byte limit this proxy announced; send smaller events, or raise the limit on the host (kernel.msgmax, or the proxy's spool and max_event_bytes)",
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
            // The body grows as its bytes arrive: an announced size costs
            // nothing until the bytes are here.
            frame.truncate(prefix);
            loop {
                let missing = prefix + size - frame.len();
                let take = missing.min(self.reader.buffered().len());
                frame.extend_from_slice(&self.reader.buffered()[..take]);
                self.reader.consume(take);
                if take == missing {
                    break;
                }
                let what = format!("the {size}-byte envelope of frame {}", header.seq);
                match self.wait_for_bytes(false, &mut deadline, &what) {
                    Ok(true) => {}
                    Ok(false) => unreachable!("only a boundary ends cleanly"),
                    Err(end) => return end,
                }
            }
            self.ctx.metrics.frames_received.inc();
            let handled = match Envelope::decode(&frame[prefix..]) {
                Err(e) => {
                    let reason = match e {
                        DecodeError::ChecksumMismatch { .. } => NackReason::CrcMismatch,
                        _ => NackReason::Malformed,
                    };
                    self.nack(header.seq, reason, e.to_string())
                        .map_err(End::Io)
                }
                Ok(_) => self.put(&frame, prefix, header.seq),
            };
            if let Err(end) = handled {
                return end;
            }
            if frame.capacity() > KEEP_FRAME_CAPACITY {
                frame.truncate(prefix);
                frame.shrink_to(KEEP_FRAME_CAPACITY);
            }
        }
    }

    /// Reads more bytes: acks what is handled first (the client frees
    /// them while we wait), then one read. At a frame boundary the wait is
    /// the idle timeout, and `Ok(false)` means the client closed; inside a
    /// frame the frame's deadline (set at its first wait) applies.
    fn wait_for_bytes(
        &mut self,
        at_boundary: bool,
        deadline: &mut Option<Instant>,
        what: &str,
    ) -> Result<bool, End> {
        self.send_ack().map_err(End::Io)?;
        let inside = !at_boundary || deadline.is_some();
        let wait = if inside {
            self.tick
        } else {
            self.ctx.config.idle_timeout
        };
        let before = self.reader.buffered().len();
        let fill = self.reader.fill(wait).map_err(End::Io)?;
        match fill {
            Fill::Eof if !inside => {
                return Ok(false);
            }
            Fill::Eof => {
                if self.ctx.shutdown.load(Relaxed) {
                    return Err(End::Shutdown);
                }
                return Err(End::Protocol(format!(
                    "truncated frame: the connection closed inside {what}"
                )));
            }
            Fill::TimedOut if !inside => return Err(End::Idle),
            Fill::TimedOut | Fill::Data => {}
        }
        if !inside && self.reader.buffered().len() > before {
            // The frame's first bytes: its clock starts.
            *deadline = Some(Instant::now() + self.ctx.config.frame_timeout);
        }
        if inside {
            let frame_deadline =
                *deadline.get_or_insert_with(|| Instant::now() + self.ctx.config.frame_timeout);
            if Instant::now() >= frame_deadline {
                return Err(End::Protocol(format!(
                    "too slow: {what} did not arrive within {:?} (--frame-timeout)",
                    self.ctx.config.frame_timeout
                )));
            }
        }
        Ok(true)
    }

    /// Puts one frame into the queue or the spool, waiting while neither
    /// can take it; acks follow once one did.
    fn put(&mut self, frame: &[u8], prefix: usize, seq: u64) -> Result<(), End> {
        let m = &self.ctx.metrics;
        let mut waited = false;
        let mut pause = Duration::from_millis(1);
        let mut logged = false;
        let result = loop {
            match self.ctx.outlet.put(frame, prefix) {
                Put::Enqueued => {
                    m.events_enqueued.inc();
                    m.bytes_enqueued.add((frame.len() - prefix) as u64);
                    break Ok(());
                }
                Put::Spooled => {
                    m.events_spooled.inc();
                    m.bytes_spooled.add((frame.len() - prefix) as u64);
                    break Ok(());
                }
                Put::Refused(why) => {
                    break self.nack(seq, NackReason::TooLarge, why).map_err(End::Io);
                }
                Put::Wait(why) => {
                    if !waited {
                        waited = true;
                        m.queue_full_waits.inc();
                        m.backpressured.add(1);
                        // Earlier frames are settled: let the client free them.
                        if let Err(e) = self.send_ack() {
                            break Err(End::Io(e));
                        }
                    }
                    if !logged {
                        logged = true;
                        self.ctx.log(&format!("holding acks and retrying: {why}"));
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
