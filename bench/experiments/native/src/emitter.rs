//! `ShopifyEvents::Experiments::Emitter`: the product's native sysv emit
//! (ext/shopify_events/src/emit.rs and sysv_emitter.rs, copied), with the
//! cuts of [`crate::cuts`] chosen per method: `emit_base` is the copy,
//! `emit_<name>` applies the named cuts (see [`VARIANTS`]).

use std::sync::Mutex;

use magnus::{function, method, prelude::*, Error, RModule, Ruby, Value};
use shopify_events_core::transport::{FrameSink, SendError, SysvEmitter as CoreEmitter};

use crate::cuts::*;
use crate::send::DirectQueue;
use crate::{buffer, encode, errors, id, send};

/// All candidate cuts together.
pub(crate) const ALL: u32 = ID | SEND | BUF | LITE | TOPIC | HASH;

/// Defines the `emit_<name>` method of every variant and [`VARIANTS`], the
/// list benchmarks read (`Experiments::VARIANTS`, name => cuts).
macro_rules! variants {
    ($( $name:literal => $cuts:expr ),* $(,)?) => {
        /// Method suffix and cuts of every variant, in the order benchmarks list them.
        pub(crate) const VARIANTS: &[(&str, u32)] = &[$( ($name, $cuts) ),*];

        fn define_variants(class: magnus::RClass) -> Result<(), Error> {
            $( class.define_method(concat!("emit_", $name), method!(Emitter::emit::<{ $cuts }>, 4))?; )*
            Ok(())
        }
    };
}

variants! {
    "base" => 0,
    "id" => ID,
    "send" => SEND,
    "send_nostats" => SEND | NO_STATS,
    "buf" => BUF,
    "lite" => LITE,
    "topic" => LITE | TOPIC,
    "novalidate" => LITE | NO_VALIDATE,
    "nocrc" => LITE | NO_CRC,
    "noidstr" => NO_ID_STRING,
    "constid" => CONST_ID,
    "nosend" => NO_SEND,
    "hash" => HASH,
    "all" => ALL,
    "all_noidstr" => ALL | NO_ID_STRING,
    "all_nosend" => ALL | NO_SEND,
}

/// The state one emitter keeps: the product's core emitter, and what the
/// prototypes keep beside it.
pub(crate) struct Core {
    inner: CoreEmitter,
    direct: DirectQueue,
    key: i32,
    last_drop: Mutex<Option<String>>,
}

impl Core {
    pub(crate) fn new(key: i32, mode: u32) -> Core {
        Core {
            inner: CoreEmitter::new(key, mode),
            direct: DirectQueue::new(),
            key,
            last_drop: Mutex::new(None),
        }
    }

    /// The product's `emit::emit` with the cuts of `CUTS`: the id String,
    /// nil when the failure may be dropped, or the error raised.
    #[inline(always)]
    pub(crate) fn emit<const CUTS: u32>(
        &self,
        ruby: &Ruby,
        event: [Value; 4],
    ) -> Result<Value, Error> {
        let [topic, payload, key, headers] = event;
        let sent = buffer::with::<CUTS, _>(|buf| -> Result<_, Error> {
            self.inner.begin_frame(buf);
            let id = encode::encode::<CUTS>(ruby, buf, topic, payload, key, headers)?;
            Ok(send::send::<CUTS>(&self.inner, &self.direct, self.key, buf).map(|()| id))
        })?;
        match sent {
            Ok(id) => Ok(id::to_ruby::<CUTS>(ruby, &id)),
            Err(failure) if !matches!(failure, SendError::TooLarge { .. }) => {
                self.inner.stats().record_dropped();
                if let Ok(mut last) = self.last_drop.lock() {
                    *last = Some(failure.to_string());
                }
                Ok(ruby.qnil().as_value())
            }
            Err(failure) => Err(errors::raise(ruby, "PayloadTooLarge", failure.to_string())),
        }
    }
}

#[magnus::wrap(class = "ShopifyEvents::Experiments::Emitter", free_immediately, size)]
struct Emitter(Core);

impl Emitter {
    fn new(key: i64, mode: u32) -> Emitter {
        Emitter(Core::new(key as i32, mode))
    }

    fn emit<const CUTS: u32>(
        ruby: &Ruby,
        rb_self: &Self,
        topic: Value,
        payload: Value,
        key: Value,
        headers: Value,
    ) -> Result<Value, Error> {
        rb_self.0.emit::<CUTS>(ruby, [topic, payload, key, headers])
    }

    fn dropped(&self) -> u64 {
        self.0.inner.stats().snapshot().dropped
    }
}

pub(crate) fn init(ruby: &Ruby, experiments: RModule) -> Result<(), Error> {
    let class = experiments.define_class("Emitter", ruby.class_object())?;
    class.define_singleton_method("new", function!(Emitter::new, 2))?;
    class.define_method("dropped", method!(Emitter::dropped, 0))?;
    define_variants(class)?;
    let variants = ruby.hash_new();
    for (name, cuts) in VARIANTS {
        variants.aset(*name, *cuts)?;
    }
    experiments.const_set("VARIANTS", variants)?;
    Ok(())
}
