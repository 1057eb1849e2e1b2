//! One tap client's thread (`drain-tap-client`): reads its request,
//! subscribes to the hub, and writes its events as JSON lines until the
//! client leaves or the drain stops.
//!
//! Formatting happens here, not in the drain loop, which only hands over
//! the envelope. The thread blocks in `write(2)` while the client does not
//! read; the hub keeps filling (then dropping for) this client meanwhile.
//! While no event comes it looks every [`HANGUP_CHECK`] whether the client
//! closed its end, so a client that left stops costing the drain loop even
//! when none of its topics flow.

use std::io::{self, BufWriter, Read as _, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::peer::Peer;
use super::protocol::{Notice, Request, MAX_REQUEST, VERSION};
use super::server::{refuse, Context};
use super::{Item, TopicFilter};
use crate::envelope::Envelope;
use crate::sink::write_json_line;

/// Time a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle client thread checks that its client is still there.
const HANGUP_CHECK: Duration = Duration::from_millis(250);
/// Bytes of lines gathered before a write.
const WRITE_BUFFER: usize = 64 << 10;

/// How a client's tap ended, for the drain's log line.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    missed: u64,
}

/// Serves one client; returns when it left or the drain stopped.
pub(super) fn serve_client(stream: UnixStream, peer: Peer, context: &Context) {
    let filter = match read_request(&stream) {
        Ok(filter) => filter,
        Err(reason) => {
            eprintln!(
                "shopify-events drain: refused a tap from pid {} (uid {}): {reason}",
                peer.pid, peer.uid
            );
            refuse(stream, reason);
            return;
        }
    };
    let Some(subscription) = context.hub.subscribe(filter.clone()) else {
        refuse(stream, "the drain is stopping".into());
        return;
    };
    let topics = filter.globs();
    eprintln!(
        "shopify-events drain: tap from pid {} (uid {}) started, topics {}",
        peer.pid,
        peer.uid,
        if topics.is_empty() {
            "(all)".to_owned()
        } else {
            topics.join(" ")
        }
    );
    let ready = Notice::Ready {
        queue: context.queue(),
        pid: context.pid,
        topics,
    };
    let mut tally = Tally::default();
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, &stream);
    let ended = out
        .write_all(&ready.line())
        .and_then(|()| out.flush())
        .and_then(|()| pump(&mut out, &subscription, &mut tally));
    context.hub.unsubscribe(&subscription);
    let how = match ended {
        Ok(true) => "ended (the drain stopped)",
        Ok(false) | Err(_) => "left",
    };
    eprintln!(
        "shopify-events drain: tap from pid {} {how}: {} events shown, {} missed",
        peer.pid, tally.events, tally.missed
    );
}

/// Reads and checks the request line; the refusal reason otherwise.
fn read_request(stream: &UnixStream) -> Result<TopicFilter, String> {
    let line = read_request_line(stream)?;
    let request: Request = serde_json::from_slice(&line)
        .map_err(|e| format!("the request is not a tap request: {e}"))?;
    if request.tap != VERSION {
        return Err(format!(
            "protocol version {} is not served (this drain speaks {VERSION}): use the same shopify-events for tap and drain",
            request.tap
        ));
    }
    TopicFilter::parse(&request.topics).map_err(|e| e.to_string())
}

/// The request line, newline included, read within [`REQUEST_TIMEOUT`] in
/// all: the deadline holds for the whole line, not for each read, so a
/// client dribbling a byte at a time cannot hold its slot past it.
fn read_request_line(stream: &UnixStream) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let late = || format!("no whole request line within {REQUEST_TIMEOUT:?}");
    let mut line = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(late)?;
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let room = chunk.len().min(MAX_REQUEST - line.len());
        let n = match (&*stream).read(&mut chunk[..room]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(late())
            }
            Err(e) => return Err(format!("reading the request: {e}")),
        };
        if n == 0 {
            break;
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            // The client sends nothing after its request; whatever it did
            // is not the protocol and is dropped.
            line.truncate(end + 1);
            return Ok(line);
        }
        if line.len() >= MAX_REQUEST {
            break;
        }
    }
    Err(format!(
        "the request must be one line of at most {MAX_REQUEST} bytes"
    ))
}

/// Writes the subscription's events until the client leaves (`Ok(false)`,
/// or a write error) or the hub closes (`Ok(true)`, after the end notice).
fn pump(
    out: &mut BufWriter<&UnixStream>,
    subscription: &super::Subscription,
    tally: &mut Tally,
) -> io::Result<bool> {
    let items = subscription.items();
    loop {
        match items.recv_timeout(HANGUP_CHECK) {
            Ok(item) => {
                write_item(out, &item, tally)?;
                subscription.done(&item);
                // Whatever else is waiting goes out in the same writes.
                for item in items.try_iter() {
                    write_item(out, &item, tally)?;
                    subscription.done(&item);
                }
                out.flush()?;
            }
            Err(RecvTimeoutError::Timeout) => {
                if hung_up(out.get_ref()) {
                    return Ok(false);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                write_missed(out, subscription.missed_at_end(), tally)?;
                let end = Notice::End {
                    reason: "the drain stopped".into(),
                };
                out.write_all(&end.line())?;
                out.flush()?;
                return Ok(true);
            }
        }
    }
}

fn write_item(out: &mut impl Write, item: &Item, tally: &mut Tally) -> io::Result<()> {
    write_missed(out, item.missed_before, tally)?;
    // The hub decoded it before sending; the CRC cannot fail now.
    if let Ok(event) = Envelope::decode(&item.body) {
        write_json_line(out, &event)?;
        tally.events += 1;
    }
    Ok(())
}

fn write_missed(out: &mut impl Write, events: u64, tally: &mut Tally) -> io::Result<()> {
    if events > 0 {
        out.write_all(&Notice::Missed { events }.line())?;
        tally.missed += events;
    }
    Ok(())
}

/// Whether the client closed its end (it sends nothing after its request).
fn hung_up(stream: &UnixStream) -> bool {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, alive for the duration of the call.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready < 0 || fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}
