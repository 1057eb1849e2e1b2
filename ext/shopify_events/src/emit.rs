//! What the three native emitters (sysv, socket, direct) share: encode one
//! event into a reused buffer, hand it to the transport, and apply the emit
//! policy — `emit` returns nil for a transport failure it may drop (counted,
//! reason kept for the Ruby side to log), `emit!` raises it, and both raise
//! programming errors at once.

use std::fmt::Display;
use std::sync::Mutex;

use magnus::{Error, RHash, RString, Ruby, Value};

use crate::{codec, event::id_string};

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

fn send<S: FrameSink>(
    sink: &S,
    ruby: &Ruby,
    event: [Value; 4],
) -> Result<Result<RString, S::Failure>, Error> {
    let [topic, payload, key, headers] = event;
    codec::with_buffer(|buf| {
        sink.begin(buf);
        let id = codec::encode_event(ruby, buf, topic, payload, key, headers)?;
        Ok(sink.send(buf).map(|()| id_string(ruby, &id)))
    })
}

/// `emit(topic, payload, key, headers)`: the event id, or nil when the
/// transport could not take it and the failure may be dropped.
pub(crate) fn emit<S: FrameSink>(
    sink: &S,
    last_drop: &LastDrop,
    ruby: &Ruby,
    event: [Value; 4],
) -> Result<Option<RString>, Error> {
    match send(sink, ruby, event)? {
        Ok(id) => Ok(Some(id)),
        Err(failure) if S::droppable(&failure) => {
            sink.count_drop();
            last_drop.set(failure.to_string());
            Ok(None)
        }
        Err(failure) => Err(S::raise(ruby, &failure)),
    }
}

/// `emit!(topic, payload, key, headers)`: the event id, or the failure raised.
pub(crate) fn emit_bang<S: FrameSink>(
    sink: &S,
    ruby: &Ruby,
    event: [Value; 4],
) -> Result<RString, Error> {
    send(sink, ruby, event)?.map_err(|failure| S::raise(ruby, &failure))
}

/// A Hash of counters, `{name: value}` with Symbol keys.
pub(crate) fn counters(ruby: &Ruby, pairs: &[(&str, u64)]) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    for (name, value) in pairs {
        hash.aset(ruby.to_symbol(name), *value)?;
    }
    Ok(hash)
}
