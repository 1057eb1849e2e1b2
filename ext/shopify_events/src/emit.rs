//! The Ruby side of emitting, shared by the three native emitters (sysv,
//! socket, direct): encode one event into a reused buffer, hand it to the
//! core's transport ([`FrameSink`]), and apply the emit policy — `emit`
//! returns nil for a failure the transport says may be dropped (counted,
//! reason kept for the Ruby side to log), `emit!` raises it, and both raise
//! programming errors at once. Core failures become Ruby exceptions in
//! [`errors::send_error`].

use std::sync::Mutex;

use magnus::{Error, RHash, RString, Ruby, Value};
use shopify_events_core::transport::{FrameSink, SendError};

use crate::{codec, errors, event::id_string};

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
) -> Result<Result<RString, SendError>, Error> {
    let [topic, payload, key, headers] = event;
    codec::with_buffer(|buf| {
        sink.begin_frame(buf);
        let id = codec::encode_event(ruby, buf, topic, payload, key, headers)?;
        Ok(sink.send_frame(buf).map(|()| id_string(ruby, &id)))
    })
}

/// A native emitter class (`SysvEmitter`, `SocketEmitter`,
/// `DirectEmitter`): a core transport and the reason of its last drop. Its
/// `emit`, `emit!` and `last_drop` are the functions below, registered for
/// the concrete class (`method!(emit::emit::<SysvEmitter>, 4)`).
pub(crate) trait Emitter {
    /// The core transport.
    type Transport: FrameSink;

    /// The core transport.
    fn transport(&self) -> &Self::Transport;

    /// Where the reason of the last dropped event is kept.
    fn last_drop(&self) -> &LastDrop;
}

/// `emit(topic, payload, key, headers)`: the event id, or nil when the
/// transport could not take it and the failure may be dropped (counted,
/// reason kept). Programming errors (bad topic, payload, size) raise.
pub(crate) fn emit<E: Emitter>(
    ruby: &Ruby,
    rb_self: &E,
    topic: Value,
    payload: Value,
    key: Value,
    headers: Value,
) -> Result<Option<RString>, Error> {
    let sink = rb_self.transport();
    match send(sink, ruby, [topic, payload, key, headers])? {
        Ok(id) => Ok(Some(id)),
        Err(failure) if sink.droppable(&failure) => {
            sink.count_drop();
            rb_self.last_drop().set(failure.to_string());
            Ok(None)
        }
        Err(failure) => Err(errors::send_error(ruby, &failure)),
    }
}

/// `emit!(topic, payload, key, headers)`: the event id, or the failure raised.
pub(crate) fn emit_bang<E: Emitter>(
    ruby: &Ruby,
    rb_self: &E,
    topic: Value,
    payload: Value,
    key: Value,
    headers: Value,
) -> Result<RString, Error> {
    send(rb_self.transport(), ruby, [topic, payload, key, headers])?
        .map_err(|failure| errors::send_error(ruby, &failure))
}

/// `last_drop`: why the last dropped event was dropped, if one was.
pub(crate) fn last_drop<E: Emitter>(rb_self: &E) -> Option<String> {
    rb_self.last_drop().get()
}

/// A Hash of counters, `{name: value}` with Symbol keys.
pub(crate) fn counters(ruby: &Ruby, pairs: &[(&str, u64)]) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    for (name, value) in pairs {
        hash.aset(ruby.to_symbol(name), *value)?;
    }
    Ok(hash)
}
