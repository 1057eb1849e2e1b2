//! `ShopifyEvents::Native::SysvEmitter`: the `sysv` transport's native half.
//!
//! `emit` runs entirely under the GVL: encoding plus one non-blocking
//! `msgsnd` costs less than releasing and re-acquiring the GVL would. So
//! does an append to the spool, where the queue cannot take the event.

use magnus::{function, method, prelude::*, Error, RHash, RModule, Ruby};
use shopify_events_core::transport::SysvEmitter as CoreEmitter;

use crate::emit::{self, DropState, Emitter};
use crate::errors::{self, Class};
use crate::spool_options::spool_options;

#[magnus::wrap(class = "ShopifyEvents::Native::SysvEmitter", free_immediately, size)]
struct SysvEmitter {
    inner: CoreEmitter,
    drops: DropState,
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

    fn drops(&self) -> &DropState {
        &self.drops
    }
}

impl SysvEmitter {
    /// `new(key, mode, spool)`: `spool` is nil (a full queue drops, an
    /// envelope above `kernel.msgmax` raises) or the spool settings
    /// (`spool_options.rs`) that take what the queue cannot.
    fn new(ruby: &Ruby, key: i64, mode: u32, spool: Option<RHash>) -> Result<Self, Error> {
        let key = queue_key(ruby, key)?;
        let mut inner = CoreEmitter::new(key, mode);
        if let Some(settings) = spool {
            let prepare = settings.get(ruby.to_symbol("prepare_ahead")).is_none();
            let mut options = spool_options(ruby, key, settings)?;
            // A long episode (the drain stopped for minutes) rotates
            // segments like the spool transport does: create them ahead.
            options.prepare_ahead |= prepare;
            inner = inner.with_spool(options);
        }
        Ok(SysvEmitter {
            inner,
            drops: DropState::default(),
        })
    }

    fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let s = rb_self.inner.stats().snapshot();
        let spooling = rb_self.inner.spooling().unwrap_or(false);
        emit::counters(
            ruby,
            &[
                ("emitted", s.emitted),
                ("dropped", s.dropped),
                ("queue_full", s.queue_full),
                ("reopened", s.reopened),
                ("spooled", s.spooled),
                ("spooled_bytes", s.spooled_bytes),
                ("spool_failures", s.spool_failures),
                ("spooling", u64::from(spooling)),
            ],
        )
    }

    /// Writes what the spool's `spool_sync` `interval` has not written yet
    /// to disk; nothing under `page_cache` or without a spool.
    fn flush_spool(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        if let Some(writer) = rb_self.inner.spool_writer() {
            writer
                .sync_pending()
                .map_err(|e| errors::spool_error(ruby, &e))?;
        }
        Ok(true)
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
    class.define_singleton_method("new", function!(SysvEmitter::new, 3))?;
    class.define_method("emit", method!(emit::emit::<SysvEmitter>, 4))?;
    class.define_method("emit!", method!(emit::emit_bang::<SysvEmitter>, 4))?;
    class.define_method("drop_log=", method!(emit::set_drop_log::<SysvEmitter>, 1))?;
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
    class.define_method("flush_spool", method!(SysvEmitter::flush_spool, 0))?;
    class.define_method(
        "max_envelope_size",
        method!(SysvEmitter::max_envelope_size, 0),
    )?;
    class.define_method("key", method!(SysvEmitter::key, 0))?;
    Ok(())
}
