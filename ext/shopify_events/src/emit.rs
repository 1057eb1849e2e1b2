//! What the three native emitters (sysv, socket, direct) share: encode one
//! event into a reused buffer, hand it to the transport, and apply the emit
//! policy — `emit` returns nil for a transport failure it may drop (counted,
//! reason kept for the Ruby side to log), `emit!` raises it, and both raise
//! programming errors at once.
//!
//! `send_envelope` / `send_envelope!` take the same path with an envelope
//! encoded earlier (`Native.encode_event`; events deferred to a database
//! commit, outbox rows): the bytes are checked (`DecodeError` for anything
//! that is not one whole envelope) and copied into the frame as they are, so
//! the event keeps the id and emit time it got at the call.

use std::fmt::Display;
use std::sync::Mutex;

use magnus::{Error, RHash, RString, Ruby, Value};

use shopify_events_core::envelope::Envelope;
use shopify_events_core::event_id::EventId;

use crate::{codec, errors, event::id_string};

/// A transport's side of emitting: how a frame starts, how it is sent, and
/// what a failure means.
pub(crate) trait FrameSink {
    /// Why a send failed.
    type Failure: Display;

    /// Clears `buf` and writes what precedes the envelope in a frame.
    fn begin(&self, buf: &mut Vec<u8>);

    /// Hands over one frame (`begin`'s prefix plus an envelope), never blocking.
    fn send(&self, frame: &[u8]) -> Result<(), Self::Failure>;

    /// Whether `emit` drops this failure (returns nil) rather than raising.
    fn droppable(failure: &Self::Failure) -> bool;

    /// Counts a dropped event, where the transport does not count it itself.
    fn count_drop(&self) {}

    /// The Ruby exception for a failure.
    fn raise(ruby: &Ruby, failure: &Self::Failure) -> Error;
}

/// The reason of the last dropped event.
#[derive(Debug, Default)]
pub(crate) struct LastDrop(Mutex<Option<String>>);

impl LastDrop {
    fn set(&self, reason: String) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(reason);
        }
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|last| last.clone())
    }
}

/// Writes one envelope after the frame prefix in a buffer; returns its id.
trait Write: FnOnce(&Ruby, &mut Vec<u8>) -> Result<EventId, Error> {}
impl<F: FnOnce(&Ruby, &mut Vec<u8>) -> Result<EventId, Error>> Write for F {}

fn send<S: FrameSink>(
    sink: &S,
    ruby: &Ruby,
    write: impl Write,
) -> Result<Result<RString, S::Failure>, Error> {
    codec::with_buffer(|buf| {
        sink.begin(buf);
        let id = write(ruby, buf)?;
        Ok(sink.send(buf).map(|()| id_string(ruby, &id)))
    })
}

/// The emit policy, written once: the event id, or nil when the transport
/// could not take the event and the failure may be dropped (counted, reason
/// kept); other failures raise.
fn dropping<S: FrameSink>(
    sink: &S,
    last_drop: &LastDrop,
    ruby: &Ruby,
    write: impl Write,
) -> Result<Option<RString>, Error> {
    match send(sink, ruby, write)? {
        Ok(id) => Ok(Some(id)),
        Err(failure) if S::droppable(&failure) => {
            sink.count_drop();
            last_drop.set(failure.to_string());
            Ok(None)
        }
        Err(failure) => Err(S::raise(ruby, &failure)),
    }
}

/// The `!` policy: the event id, or the failure raised.
fn raising<S: FrameSink>(sink: &S, ruby: &Ruby, write: impl Write) -> Result<RString, Error> {
    send(sink, ruby, write)?.map_err(|failure| S::raise(ruby, &failure))
}

fn encoder(event: [Value; 4]) -> impl Write {
    let [topic, payload, key, headers] = event;
    move |ruby, buf| codec::encode_event(ruby, buf, topic, payload, key, headers)
}

/// Appends an envelope encoded earlier, after checking it is one whole,
/// intact envelope (a damaged outbox row must not reach the queue).
fn copier(envelope: RString) -> impl Write {
    move |ruby, buf| {
        let start = buf.len();
        // SAFETY: copied at once, before any Ruby code can run.
        buf.extend_from_slice(unsafe { envelope.as_slice() });
        Envelope::decode(&buf[start..])
            .map(|decoded| decoded.id)
            .map_err(|e| errors::decode_error(ruby, e))
    }
}

/// `emit(topic, payload, key, headers)`: the event id, or nil when the
/// transport could not take it and the failure may be dropped.
pub(crate) fn emit<S: FrameSink>(
    sink: &S,
    last_drop: &LastDrop,
    ruby: &Ruby,
    event: [Value; 4],
) -> Result<Option<RString>, Error> {
    dropping(sink, last_drop, ruby, encoder(event))
}

/// `emit!(topic, payload, key, headers)`: the event id, or the failure raised.
pub(crate) fn emit_bang<S: FrameSink>(
    sink: &S,
    ruby: &Ruby,
    event: [Value; 4],
) -> Result<RString, Error> {
    raising(sink, ruby, encoder(event))
}

/// `send_envelope(bytes)`: as `emit`, for an envelope encoded earlier.
pub(crate) fn send_envelope<S: FrameSink>(
    sink: &S,
    last_drop: &LastDrop,
    ruby: &Ruby,
    envelope: RString,
) -> Result<Option<RString>, Error> {
    dropping(sink, last_drop, ruby, copier(envelope))
}

/// `send_envelope!(bytes)`: as `emit!`, for an envelope encoded earlier.
pub(crate) fn send_envelope_bang<S: FrameSink>(
    sink: &S,
    ruby: &Ruby,
    envelope: RString,
) -> Result<RString, Error> {
    raising(sink, ruby, copier(envelope))
}

/// A Hash of counters, `{name: value}` with Symbol keys.
pub(crate) fn counters(ruby: &Ruby, pairs: &[(&str, u64)]) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    for (name, value) in pairs {
        hash.aset(ruby.to_symbol(name), *value)?;
    }
    Ok(hash)
}
