//! `ShopifyEvents::Native::DirectEmitter`: the `direct` transport's native
//! half, a thin skin over `shopify_events_core::direct::DirectProducer`.
//!
//! `emit` encodes under the GVL and `try_send`s the bytes into the bounded
//! channel (never blocks). `flush` waits for Kafka without the GVL, and an
//! interrupt (Thread#kill, Timeout, a signal) ends the wait.

use std::collections::BTreeMap;
use std::time::Duration;

use magnus::{function, method, prelude::*, Error, RArray, RHash, RModule, Ruby};
use shopify_events_core::direct::{DirectConfig, DirectError, DirectProducer};
use shopify_events_core::kafka::LogLevel;

use crate::emit::{self, DropState, Emitter};
use crate::errors::Class;
use crate::{errors, nogvl::nogvl};

#[magnus::wrap(class = "ShopifyEvents::Native::DirectEmitter", free_immediately, size)]
struct DirectEmitter {
    inner: DirectProducer,
    drops: DropState,
}

fn config_error(ruby: &Ruby, error: &DirectError) -> Error {
    errors::raise(ruby, Class::ConfigurationError, error.to_string())
}

impl Emitter for DirectEmitter {
    type Transport = DirectProducer;

    fn transport(&self) -> &DirectProducer {
        &self.inner
    }

    fn drops(&self) -> &DropState {
        &self.drops
    }
}

impl DirectEmitter {
    /// `DirectEmitter.new(settings, buffer, shutdown_grace_seconds)`:
    /// `settings` is a Hash of librdkafka String keys to String values.
    fn new(ruby: &Ruby, settings: RHash, buffer: usize, grace: f64) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        settings.foreach(|key: String, value: String| {
            map.insert(key, value);
            Ok(magnus::r_hash::ForEach::Continue)
        })?;
        if !grace.is_finite() || grace < 0.0 {
            return Err(errors::raise(
                ruby,
                Class::ConfigurationError,
                format!("direct transport shutdown grace {grace} is not a number of seconds >= 0"),
            ));
        }
        let config = DirectConfig {
            settings: map,
            buffer,
            shutdown_grace: Duration::from_secs_f64(grace),
        };
        let inner = DirectProducer::new(config).map_err(|e| config_error(ruby, &e))?;
        Ok(DirectEmitter {
            inner,
            drops: DropState::default(),
        })
    }

    /// Waits up to `timeout` seconds, without the GVL, until every event
    /// emitted so far is acknowledged by Kafka or failed for good.
    fn flush(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<bool, Error> {
        let timeout = seconds(timeout);
        nogvl(ruby, |interrupted| {
            rb_self.inner.flush(timeout, interrupted)
        })
    }

    /// Waits up to `timeout` seconds, without the GVL, for librdkafka's
    /// log lines; returns `[[level, message], ...]` with level `:debug`,
    /// `:info`, `:warn` or `:error` (empty when none came or the thread was
    /// interrupted).
    fn take_logs(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<RArray, Error> {
        let timeout = seconds(timeout);
        let lines = nogvl(ruby, |interrupted| {
            rb_self.inner.take_logs(timeout, interrupted)
        })?;
        let array = ruby.ary_new_capa(lines.len());
        for line in lines {
            let level = match line.level {
                LogLevel::Debug => "debug",
                LogLevel::Info => "info",
                LogLevel::Warn => "warn",
                LogLevel::Error => "error",
            };
            array.push((ruby.to_symbol(level), line.message))?;
        }
        Ok(array)
    }

    /// Stops taking events (emit then raises TransportError); what the
    /// worker holds is delivered in the background within the shutdown grace.
    fn close(&self) {
        self.inner.close();
    }

    /// The last reason an emit dropped, or an event failed or was retried.
    fn last_error(&self) -> Option<String> {
        self.inner.last_error().or_else(|| self.drops.get())
    }

    fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let s = rb_self.inner.stats();
        let hash = ruby.hash_new();
        hash.aset(ruby.to_symbol("emitted"), s.emitted)?;
        hash.aset(ruby.to_symbol("dropped"), s.dropped)?;
        hash.aset(ruby.to_symbol("delivered"), s.delivered)?;
        hash.aset(ruby.to_symbol("failed"), s.failed)?;
        hash.aset(ruby.to_symbol("retried"), s.retried)?;
        hash.aset(ruby.to_symbol("pending"), s.pending)?;
        hash.aset(ruby.to_symbol("buffer"), rb_self.inner.config().buffer)?;
        Ok(hash)
    }

    fn max_envelope_size(&self) -> usize {
        self.inner.config().max_envelope_size()
    }
}

/// A timeout in seconds from Ruby: NaN and anything not positive are zero,
/// infinity is a very long time.
fn seconds(timeout: f64) -> Duration {
    if timeout > 0.0 {
        Duration::from_secs_f64(timeout.min(1e9))
    } else {
        Duration::ZERO
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("DirectEmitter", ruby.class_object())?;
    class.define_singleton_method("new", function!(DirectEmitter::new, 3))?;
    class.define_method("emit", method!(emit::emit::<DirectEmitter>, 4))?;
    class.define_method("emit!", method!(emit::emit_bang::<DirectEmitter>, 4))?;
    class.define_method("drop_log=", method!(emit::set_drop_log::<DirectEmitter>, 1))?;
    class.define_method(
        "send_envelope",
        method!(emit::send_envelope::<DirectEmitter>, 1),
    )?;
    class.define_method(
        "send_envelope!",
        method!(emit::send_envelope_bang::<DirectEmitter>, 1),
    )?;
    class.define_method("flush", method!(DirectEmitter::flush, 1))?;
    class.define_method("take_logs", method!(DirectEmitter::take_logs, 1))?;
    class.define_method("close", method!(DirectEmitter::close, 0))?;
    class.define_method("last_error", method!(DirectEmitter::last_error, 0))?;
    class.define_method("last_drop", method!(emit::last_drop::<DirectEmitter>, 0))?;
    class.define_method("stats", method!(DirectEmitter::stats, 0))?;
    class.define_method(
        "max_envelope_size",
        method!(DirectEmitter::max_envelope_size, 0),
    )?;
    Ok(())
}
