//! `ShopifyEvents::Native::SocketEmitter`: the `socket` transport's native half.
//!
//! `emit` encodes the envelope into a frame and hands it to the core's
//! [`SocketClient`], which only buffers it: no network I/O happens under the
//! GVL. `flush` waits for the proxy's acks and releases the GVL meanwhile
//! (interruptible by Thread#kill, Timeout and signals).

use std::time::Duration;

use magnus::{function, method, prelude::*, Error, RHash, RModule, Ruby};
use shopify_events_core::proxy::{ClientConfig, ProxyAddress, SocketClient};

use crate::emit::{self, DropState, Emitter};
use crate::errors::Class;
use crate::{errors, nogvl::nogvl};

#[magnus::wrap(class = "ShopifyEvents::Native::SocketEmitter", free_immediately, size)]
struct SocketEmitter {
    inner: SocketClient,
    drops: DropState,
}

impl Emitter for SocketEmitter {
    type Transport = SocketClient;

    fn transport(&self) -> &SocketClient {
        &self.inner
    }

    fn drops(&self) -> &DropState {
        &self.drops
    }
}

impl SocketEmitter {
    /// `new(address, token_or_nil, max_buffered_events, max_buffered_bytes)`.
    fn new(
        ruby: &Ruby,
        address: String,
        token: Option<String>,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Self, Error> {
        let address: ProxyAddress =
            address
                .parse()
                .map_err(|e: shopify_events_core::proxy::AddressError| {
                    errors::raise(
                        ruby,
                        Class::ConfigurationError,
                        format!("{e} (SHOPIFY_EVENTS_PROXY)"),
                    )
                })?;
        let mut config = ClientConfig::new(address);
        config.token = token.unwrap_or_default().into_bytes();
        config.max_buffered_events = max_events.max(1);
        config.max_buffered_bytes = max_bytes.max(1024);
        let inner = SocketClient::new(config)
            .map_err(|e| errors::raise(ruby, Class::ConfigurationError, e.to_string()))?;
        Ok(SocketEmitter {
            inner,
            drops: DropState::default(),
        })
    }

    /// Waits up to `timeout` seconds for every emitted event to be acked.
    fn flush(ruby: &Ruby, rb_self: &Self, timeout: f64) -> Result<bool, Error> {
        let timeout = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
        nogvl(ruby, |interrupted| {
            rb_self.inner.flush(timeout, interrupted)
        })
    }

    fn address(&self) -> String {
        self.inner.address().to_string()
    }

    fn stats(ruby: &Ruby, rb_self: &Self) -> Result<RHash, Error> {
        let s = rb_self.inner.snapshot();
        let hash = ruby.hash_new();
        let set = |name: &str, value: u64| hash.aset(ruby.to_symbol(name), value);
        set("emitted", s.emitted)?;
        set("acked", s.acked)?;
        set("dropped", s.dropped)?;
        set("buffer_full", s.buffer_full)?;
        set("rejected", s.rejected)?;
        set("connects", s.connects)?;
        set("connect_failures", s.connect_failures)?;
        set("resent", s.resent)?;
        set("buffered", s.buffered as u64)?;
        set("buffered_bytes", s.buffered_bytes as u64)?;
        hash.aset(ruby.to_symbol("connected"), s.connected)?;
        hash.aset(ruby.to_symbol("last_error"), s.last_error)?;
        Ok(hash)
    }
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let class = native.define_class("SocketEmitter", ruby.class_object())?;
    class.define_singleton_method("new", function!(SocketEmitter::new, 4))?;
    class.define_method("emit", method!(emit::emit::<SocketEmitter>, 4))?;
    class.define_method("emit!", method!(emit::emit_bang::<SocketEmitter>, 4))?;
    class.define_method("drop_log=", method!(emit::set_drop_log::<SocketEmitter>, 1))?;
    class.define_method(
        "send_envelope",
        method!(emit::send_envelope::<SocketEmitter>, 1),
    )?;
    class.define_method(
        "send_envelope!",
        method!(emit::send_envelope_bang::<SocketEmitter>, 1),
    )?;
    class.define_method("flush", method!(SocketEmitter::flush, 1))?;
    class.define_method("last_error", method!(emit::last_drop::<SocketEmitter>, 0))?;
    class.define_method("address", method!(SocketEmitter::address, 0))?;
    class.define_method("stats", method!(SocketEmitter::stats, 0))?;
    Ok(())
}
