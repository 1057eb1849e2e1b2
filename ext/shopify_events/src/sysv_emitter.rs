//! `ShopifyEvents::Native::SysvEmitter`: the `sysv` transport's native half.
//!
//! `emit` runs entirely under the GVL: encoding plus one non-blocking
//! `msgsnd` costs less than releasing and re-acquiring the GVL would.

use magnus::{function, method, prelude::*, Error, RHash, RModule, Ruby};
use shopify_events_core::transport::SysvEmitter as CoreEmitter;

use crate::emit::{self, Emitter, LastDrop};
use crate::errors::{self, Class};

#[magnus::wrap(class = "ShopifyEvents::Native::SysvEmitter", free_immediately, size)]
struct SysvEmitter {
    inner: CoreEmitter,
    last_drop: LastDrop,
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
        Class::ConfigurationError,
        format!("queue key {key} does not fit in 32 bits; use a value from 1 to 0xFFFFFFFF"),
    ))
}

impl Emitter for SysvEmitter {
    type Transport = CoreEmitter;

    fn transport(&self) -> &CoreEmitter {
        &self.inner
    }

    fn last_drop(&self) -> &LastDrop {
        &self.last_drop
    }
}

impl SysvEmitter {
    fn new(ruby: &Ruby, key: i64, mode: u32) -> Result<Self, Error> {
        Ok(SysvEmitter {
            inner: CoreEmitter::new(queue_key(ruby, key)?, mode),
            last_drop: LastDrop::default(),
        })
    }

    fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let s = rb_self.inner.stats().snapshot();
        emit::counters(
            ruby,
            &[
                ("emitted", s.emitted),
                ("dropped", s.dropped),
                ("queue_full", s.queue_full),
                ("reopened", s.reopened),
            ],
        )
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
    class.define_method("emit", method!(emit::emit::<SysvEmitter>, 4))?;
    class.define_method("emit!", method!(emit::emit_bang::<SysvEmitter>, 4))?;
    class.define_method(
        "send_envelope",
        method!(emit::send_envelope::<SysvEmitter>, 1),
    )?;
    class.define_method(
        "send_envelope!",
        method!(emit::send_envelope_bang::<SysvEmitter>, 1),
    )?;
    class.define_method("last_error", method!(emit::last_drop::<SysvEmitter>, 0))?;
    class.define_method("stats", method!(SysvEmitter::stats, 0))?;
    class.define_method(
        "max_envelope_size",
        method!(SysvEmitter::max_envelope_size, 0),
    )?;
    class.define_method("key", method!(SysvEmitter::key, 0))?;
    Ok(())
}
