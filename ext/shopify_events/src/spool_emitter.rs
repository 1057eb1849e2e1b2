//! `ShopifyEvents::Native::SpoolEmitter`: the `spool` transport's native
//! half. `emit` appends the envelope to this process's spool log under the
//! GVL: a copy into a mapped file and one store, no system call in the
//! common case (the next segment is created ahead by a thread of the
//! writer's own, which never touches Ruby).

use magnus::{function, method, prelude::*, Error, RHash, RModule, Ruby};
use shopify_events_core::transport::SpoolEmitter as CoreEmitter;

use crate::emit::{self, DropState, Emitter};
use crate::errors;
use crate::spool_options::spool_options;
use crate::sysv_emitter::queue_key;

#[magnus::wrap(class = "ShopifyEvents::Native::SpoolEmitter", free_immediately, size)]
struct SpoolEmitter {
    inner: CoreEmitter,
    drops: DropState,
}

impl Emitter for SpoolEmitter {
    type Transport = CoreEmitter;

    fn transport(&self) -> &CoreEmitter {
        &self.inner
    }

    fn drops(&self) -> &DropState {
        &self.drops
    }
}

impl SpoolEmitter {
    /// `new(queue_key, spool)`: the spool settings (`spool_options.rs`);
    /// the queue key names the drain that reads the files.
    fn new(ruby: &Ruby, key: i64, spool: RHash) -> Result<Self, Error> {
        let prepare = spool.get(ruby.to_symbol("prepare_ahead")).is_none();
        let mut options = spool_options(ruby, queue_key(ruby, key)?, spool)?;
        options.prepare_ahead |= prepare;
        Ok(SpoolEmitter {
            inner: CoreEmitter::new(options),
            drops: DropState::default(),
        })
    }

    /// Writes what `spool_sync` `interval` has not written yet to disk
    /// (its last records wait for the next append otherwise); nothing
    /// under `page_cache`.
    fn flush(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        rb_self
            .inner
            .writer()
            .sync_pending()
            .map_err(|e| errors::spool_error(ruby, &e))?;
        Ok(true)
    }

    fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let s = rb_self.inner.stats();
        emit::counters(
            ruby,
            &[
                ("emitted", s.emitted),
                ("dropped", s.dropped),
                ("spooled_bytes", s.bytes),
                ("spool_failures", s.failures),
                ("segments", s.segments),
            ],
        )
    }

    fn dir(&self) -> String {
        self.inner.writer().options().dir.display().to_string()
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("SpoolEmitter", ruby.class_object())?;
    class.define_singleton_method("new", function!(SpoolEmitter::new, 2))?;
    class.define_method("emit", method!(emit::emit::<SpoolEmitter>, 4))?;
    class.define_method("emit!", method!(emit::emit_bang::<SpoolEmitter>, 4))?;
    class.define_method("drop_log=", method!(emit::set_drop_log::<SpoolEmitter>, 1))?;
    class.define_method(
        "send_envelope",
        method!(emit::send_envelope::<SpoolEmitter>, 1),
    )?;
    class.define_method(
        "send_envelope!",
        method!(emit::send_envelope_bang::<SpoolEmitter>, 1),
    )?;
    class.define_method("last_error", method!(emit::last_drop::<SpoolEmitter>, 0))?;
    class.define_method("flush", method!(SpoolEmitter::flush, 0))?;
    class.define_method("stats", method!(SpoolEmitter::stats, 0))?;
    class.define_method("dir", method!(SpoolEmitter::dir, 0))?;
    Ok(())
}
