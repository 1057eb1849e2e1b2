//! The Ruby side of emitting, shared by the three native emitters (sysv,
//! socket, direct): encode one event into a reused buffer, hand it to the
//! core's transport ([`FrameSink`]), and apply the emit policy — `emit`
//! returns nil for a failure the transport says may be dropped (counted,
//! reason kept for the Ruby side to log), `emit!` raises it, and both raise
//! programming errors at once. Core failures become Ruby exceptions in
//! [`errors::send_error`].
//!
//! The first drop of a burst and the first event taken after it call the
//! emitter's drop log (`drop_log=`, the Ruby transport: `drops_began(reason)`
//! and `drops_ended`), so the Ruby side logs once per burst without a Ruby
//! method between `ShopifyEvents.emit` and this code. Both calls are rare;
//! the common path reads one flag.
//!
//! `send_envelope` / `send_envelope!` take the same path with an envelope
//! encoded earlier (`Native.encode_event`; events deferred to a database
//! commit, outbox rows): the bytes are checked (`DecodeError` for anything
//! that is not one whole, intact envelope) and copied into the frame as they
//! are, so the event keeps the id and emit time it got at the call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use magnus::{prelude::*, typed_data::Obj, Error, RHash, RString, Ruby, TypedData, Value};
use shopify_events_core::envelope::{Envelope, Seal};
use shopify_events_core::event_id::EventId;
use shopify_events_core::transport::{FrameSink, SendError};

use crate::{codec, errors, event::id_string};

/// The instance variable of a native emitter holding its drop log.
const DROP_LOG: &str = "@drop_log";

/// The reason of the last dropped event, and whether drops are going on (a
/// burst: from a drop to the next event taken).
#[derive(Debug, Default)]
pub(crate) struct DropState {
    last: Mutex<Option<String>>,
    burst: AtomicBool,
}

impl DropState {
    fn set(&self, reason: String) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(reason);
        }
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.last.lock().ok().and_then(|last| last.clone())
    }
}

/// Writes one envelope after the frame prefix in a buffer, sealed as the
/// transport allows ([`Seal`]); returns its id.
trait Write: FnOnce(&Ruby, &mut Vec<u8>, Seal) -> Result<EventId, Error> {}
impl<F: FnOnce(&Ruby, &mut Vec<u8>, Seal) -> Result<EventId, Error>> Write for F {}

fn send<S: FrameSink>(
    sink: &S,
    ruby: &Ruby,
    write: impl Write,
) -> Result<Result<RString, SendError>, Error> {
    codec::with_buffer(|buf| {
        sink.begin_frame(buf);
        let seal = if sink.seals() {
            Seal::ByStamp
        } else {
            Seal::Now
        };
        let id = write(ruby, buf, seal)?;
        Ok(sink.send_frame(buf).map(|()| id_string(ruby, &id)))
    })
}

/// Encodes `emit`'s arguments.
fn encoder(event: [Value; 4]) -> impl Write {
    move |ruby, buf, seal| codec::encode_event(ruby, buf, event, seal)
}

/// Appends an envelope encoded earlier, after checking it is one whole,
/// intact envelope (a damaged outbox row must not reach the queue). It
/// stays sealed whatever the transport allows: its CRC is what is checked.
fn copier(envelope: RString) -> impl Write {
    move |ruby, buf, _seal| {
        let start = buf.len();
        // SAFETY: copied at once, before any Ruby code can run.
        buf.extend_from_slice(unsafe { envelope.as_slice() });
        Envelope::decode(&buf[start..])
            .map(|decoded| decoded.id)
            .map_err(|e| errors::decode_error(ruby, e))
    }
}

/// The emit policy, written once: the event id, or nil when the transport
/// could not take the event and says the failure may be dropped (counted,
/// reason kept); other failures raise.
fn dropping<E: Emitter + TypedData>(
    ruby: &Ruby,
    rb_self: Obj<E>,
    write: impl Write,
) -> Result<Option<RString>, Error> {
    let sink = rb_self.transport();
    let drops = rb_self.drops();
    match send(sink, ruby, write)? {
        Ok(id) => {
            if drops.burst.load(Ordering::Relaxed) {
                burst_ended(rb_self, drops)?;
            }
            Ok(Some(id))
        }
        Err(failure) if sink.droppable(&failure) => {
            sink.count_drop();
            let reason = failure.to_string();
            drops.set(reason.clone());
            if !drops.burst.swap(true, Ordering::Relaxed) {
                tell(rb_self, "drops_began", Some(reason))?;
            }
            Ok(None)
        }
        Err(failure) => Err(errors::send_error(ruby, &failure)),
    }
}

/// Tells the drop log that an event was taken after drops.
#[cold]
fn burst_ended<E: Emitter + TypedData>(rb_self: Obj<E>, drops: &DropState) -> Result<(), Error> {
    if drops.burst.swap(false, Ordering::Relaxed) {
        tell(rb_self, "drops_ended", None)?;
    }
    Ok(())
}

/// Calls `event` on the emitter's drop log, if `drop_log=` set one. What it
/// raises reaches the caller of emit, as a failing logger's error would.
#[cold]
fn tell<E: TypedData>(rb_self: Obj<E>, event: &str, reason: Option<String>) -> Result<(), Error> {
    let log: Value = rb_self.ivar_get(DROP_LOG)?;
    if log.is_nil() {
        return Ok(());
    }
    match reason {
        Some(reason) => log.funcall::<_, _, Value>(event, (reason,))?,
        None => log.funcall::<_, _, Value>(event, ())?,
    };
    Ok(())
}

/// The `!` policy: the event id, or the failure raised.
fn raising<E: Emitter>(ruby: &Ruby, rb_self: &E, write: impl Write) -> Result<RString, Error> {
    send(rb_self.transport(), ruby, write)?.map_err(|failure| errors::send_error(ruby, &failure))
}

/// A native emitter class (`SysvEmitter`, `SpoolEmitter`, `SocketEmitter`,
/// `DirectEmitter`): a core transport and its drop state. Its `emit`,
/// `emit!`, `send_envelope`, `send_envelope!`, `last_drop` and `drop_log=`
/// are the functions below, registered for the concrete class
/// (`method!(emit::emit::<SysvEmitter>, 4)`).
pub(crate) trait Emitter {
    /// The core transport.
    type Transport: FrameSink;

    /// The core transport.
    fn transport(&self) -> &Self::Transport;

    /// The reason of the last dropped event, and whether drops go on.
    fn drops(&self) -> &DropState;
}

/// `emit(topic, payload, key, headers)`: the event id, or nil when the
/// transport could not take it and the failure may be dropped (counted,
/// reason kept, the drop log told once per burst). Programming errors (bad
/// topic, payload, size) raise.
pub(crate) fn emit<E: Emitter + TypedData>(
    ruby: &Ruby,
    rb_self: Obj<E>,
    topic: Value,
    payload: Value,
    key: Value,
    headers: Value,
) -> Result<Option<RString>, Error> {
    dropping(ruby, rb_self, encoder([topic, payload, key, headers]))
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
    raising(ruby, rb_self, encoder([topic, payload, key, headers]))
}

/// `send_envelope(bytes)`: as `emit`, for an envelope encoded earlier
/// (`Native.encode_event`), sent as it is.
pub(crate) fn send_envelope<E: Emitter + TypedData>(
    ruby: &Ruby,
    rb_self: Obj<E>,
    envelope: RString,
) -> Result<Option<RString>, Error> {
    dropping(ruby, rb_self, copier(envelope))
}

/// `send_envelope!(bytes)`: as `emit!`, for an envelope encoded earlier.
pub(crate) fn send_envelope_bang<E: Emitter>(
    ruby: &Ruby,
    rb_self: &E,
    envelope: RString,
) -> Result<RString, Error> {
    raising(ruby, rb_self, copier(envelope))
}

/// `last_drop`: why the last dropped event was dropped, if one was.
pub(crate) fn last_drop<E: Emitter>(rb_self: &E) -> Option<String> {
    rb_self.drops().get()
}

/// `drop_log = log`: the object told `drops_began(reason)` at the first
/// drop of a burst and `drops_ended` at the first event taken after it
/// (the transport, which logs them); nil for none.
pub(crate) fn set_drop_log<E: TypedData>(rb_self: Obj<E>, log: Value) -> Result<Value, Error> {
    rb_self.ivar_set(DROP_LOG, log)?;
    Ok(log)
}

/// A Hash of counters, `{name: value}` with Symbol keys.
pub(crate) fn counters(ruby: &Ruby, pairs: &[(&str, u64)]) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    for (name, value) in pairs {
        hash.aset(ruby.to_symbol(name), *value)?;
    }
    Ok(hash)
}
