//! `ShopifyEvents::Native::SysvEmitter`: the `sysv` transport's native half.
//!
//! `emit` runs entirely under the GVL: encoding plus one non-blocking
//! `msgsnd` costs less than releasing and re-acquiring the GVL would.

use std::sync::Mutex;

use magnus::{function, method, prelude::*, Error, RHash, RModule, RString, Ruby, Value};
use shopify_events_core::emitter::{SendError, SysvEmitter as CoreEmitter};

use crate::{codec, errors, event::id_string};

#[magnus::wrap(class = "ShopifyEvents::Native::SysvEmitter", free_immediately, size)]
struct SysvEmitter {
    inner: CoreEmitter,
    /// Why the last non-raising emit gave up; read by the Ruby side to log it.
    last_error: Mutex<Option<String>>,
}

/// A queue key from Ruby: any value that fits `key_t` (i32), or an unsigned
/// 32-bit value as operators write them in hex (`0xDEADBEEF`).
pub(crate) fn queue_key(ruby: &Ruby, key: i64) -> Result<sysvmq::Key, Error> {
    if let Ok(k) = i32::try_from(key) {
        return Ok(k);
    }
    if let Ok(k) = u32::try_from(key) {
        return Ok(k as i32);
    }
    Err(errors::raise(
        ruby,
        "ConfigurationError",
        format!("queue key {key} does not fit in 32 bits; use a value from 1 to 0xFFFFFFFF"),
    ))
}

impl SysvEmitter {
    fn new(ruby: &Ruby, key: i64, mode: u32) -> Result<Self, Error> {
        Ok(SysvEmitter {
            inner: CoreEmitter::new(queue_key(ruby, key)?, mode),
            last_error: Mutex::new(None),
        })
    }

    fn send(
        &self,
        ruby: &Ruby,
        topic: Value,
        payload: Value,
        key: Value,
        headers: Value,
    ) -> Result<Result<RString, SendError>, Error> {
        codec::with_buffer(|buf| {
            self.inner.begin_frame(buf);
            let id = codec::encode_event(ruby, buf, topic, payload, key, headers)?;
            Ok(self.inner.try_send(buf).map(|()| id_string(ruby, &id)))
        })
    }

    /// Returns the event id, or nil when the transport could not take the
    /// event (queue full, queue unusable): counted, reason kept for logging.
    /// Programming errors (bad topic, payload, size) raise.
    fn emit(
        ruby: &Ruby,
        rb_self: &Self,
        topic: Value,
        payload: Value,
        key: Value,
        headers: Value,
    ) -> Result<Option<RString>, Error> {
        match rb_self.send(ruby, topic, payload, key, headers)? {
            Ok(id) => Ok(Some(id)),
            Err(e @ SendError::TooLarge { .. }) => Err(errors::send_error(ruby, &e)),
            Err(e) => {
                rb_self.inner.stats().record_dropped();
                if let Ok(mut last) = rb_self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                Ok(None)
            }
        }
    }

    /// Like `emit`, but raises `QueueFull` / `QueueError` instead of dropping.
    fn emit_bang(
        ruby: &Ruby,
        rb_self: &Self,
        topic: Value,
        payload: Value,
        key: Value,
        headers: Value,
    ) -> Result<RString, Error> {
        rb_self
            .send(ruby, topic, payload, key, headers)?
            .map_err(|e| errors::send_error(ruby, &e))
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|last| last.clone())
    }

    fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let s = rb_self.inner.stats().snapshot();
        let hash = ruby.hash_new();
        hash.aset(ruby.to_symbol("emitted"), s.emitted)?;
        hash.aset(ruby.to_symbol("dropped"), s.dropped)?;
        hash.aset(ruby.to_symbol("queue_full"), s.queue_full)?;
        hash.aset(ruby.to_symbol("reopened"), s.reopened)?;
        Ok(hash)
    }

    fn max_envelope_size(ruby: &Ruby, rb_self: &Self) -> Result<u64, Error> {
        rb_self
            .inner
            .max_envelope_size()
            .map_err(|e| errors::send_error(ruby, &e))
    }

    fn key(&self) -> i64 {
        i64::from(self.inner.key() as u32)
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("SysvEmitter", ruby.class_object())?;
    class.define_singleton_method("new", function!(SysvEmitter::new, 2))?;
    class.define_method("emit", method!(SysvEmitter::emit, 4))?;
    class.define_method("emit!", method!(SysvEmitter::emit_bang, 4))?;
    class.define_method("last_error", method!(SysvEmitter::last_error, 0))?;
    class.define_method("stats", method!(SysvEmitter::stats, 0))?;
    class.define_method(
        "max_envelope_size",
        method!(SysvEmitter::max_envelope_size, 0),
    )?;
    class.define_method("key", method!(SysvEmitter::key, 0))?;
    Ok(())
}
