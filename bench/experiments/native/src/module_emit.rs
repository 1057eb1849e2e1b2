//! Prototype: a module-level native `emit`, so that `emit(topic, payload)`
//! is one Ruby call into native code instead of three Ruby method layers
//! (`ShopifyEvents.emit`, the transport's `DropPolicy#emit`) and a native
//! method.
//!
//! - `Experiments.native_kw_<cuts>(topic, payload, key: nil, headers: nil)`:
//!   a C function of arity -1 that takes the keywords itself. Ruby 3.1 hands
//!   keywords to a C function as a new Hash, so a call with `key:` allocates
//!   one; a call without keywords allocates nothing.
//! - `Experiments.positional_<cuts>(topic, payload, key, headers)`: four
//!   positional arguments, for a Ruby method with keyword arguments in front
//!   (bench/experiments/loops.rb), where keywords cost no allocation.
//!
//! Both send through one process-wide emitter (`Experiments.configure(key,
//! mode)`), the way the module-level call would use the configured transport.

use std::sync::OnceLock;

use magnus::{
    function, prelude::*, rb_sys::AsRawValue, rb_sys::FromRawValue, Error, RModule, Ruby, Value,
};
use rb_sys::{rb_hash_lookup2, rb_keyword_given_p, Qundef, RHASH_SIZE, VALUE};

use crate::cuts::*;
use crate::emitter::{Core, ALL};
use crate::errors;

static GLOBAL: OnceLock<Core> = OnceLock::new();
static KEYWORDS: OnceLock<(VALUE, VALUE)> = OnceLock::new();

fn configure(key: i64, mode: u32) -> bool {
    GLOBAL.set(Core::new(key as i32, mode)).is_ok()
}

fn core(ruby: &Ruby) -> Result<&'static Core, Error> {
    GLOBAL
        .get()
        .ok_or_else(|| errors::arg_error(ruby, "call Experiments.configure(key, mode) first"))
}

fn native_kw<const CUTS: u32>(ruby: &Ruby, args: &[Value]) -> Result<Value, Error> {
    let nil = ruby.qnil().as_value();
    // SAFETY: called inside the C function Ruby is running for this call.
    let keywords = unsafe { rb_keyword_given_p() } != 0;
    let (positional, options) = match (keywords, args) {
        (true, [rest @ .., last]) => (rest, Some(*last)),
        _ => (args, None),
    };
    let [topic, payload] = positional else {
        return Err(errors::arg_error(
            ruby,
            format!(
                "wrong number of arguments (given {}, expected 2)",
                positional.len()
            ),
        ));
    };
    let (mut key, mut headers) = (nil, nil);
    if let Some(options) = options {
        let &(key_sym, headers_sym) = KEYWORDS.get().expect("init ran");
        let hash = options.as_raw();
        // SAFETY: Ruby passes keywords as a Hash; lookups run no Ruby code
        // (Symbol keys hash by identity).
        unsafe {
            let undef = Qundef as VALUE;
            let k = rb_hash_lookup2(hash, key_sym, undef);
            let h = rb_hash_lookup2(hash, headers_sym, undef);
            let known = usize::from(k != undef) + usize::from(h != undef);
            if RHASH_SIZE(hash) != known {
                return Err(errors::arg_error(
                    ruby,
                    "unknown keyword: emit takes key: and headers:",
                ));
            }
            if k != undef {
                key = Value::from_raw(k);
            }
            if h != undef {
                headers = Value::from_raw(h);
            }
        }
    }
    core(ruby)?.emit::<CUTS>(ruby, [*topic, *payload, key, headers])
}

fn positional<const CUTS: u32>(
    ruby: &Ruby,
    topic: Value,
    payload: Value,
    key: Value,
    headers: Value,
) -> Result<Value, Error> {
    core(ruby)?.emit::<CUTS>(ruby, [topic, payload, key, headers])
}

pub(crate) fn init(ruby: &Ruby, experiments: RModule) -> Result<(), Error> {
    let _ = KEYWORDS.set((
        ruby.to_symbol("key").as_raw(),
        ruby.to_symbol("headers").as_raw(),
    ));
    experiments.define_module_function("configure", function!(configure, 2))?;
    experiments.define_module_function("native_kw_base", function!(native_kw::<0>, -1))?;
    experiments.define_module_function("native_kw_all", function!(native_kw::<ALL>, -1))?;
    experiments.define_module_function("positional_base", function!(positional::<0>, 4))?;
    experiments.define_module_function("positional_all", function!(positional::<ALL>, 4))?;
    experiments.define_module_function(
        "positional_all_noidstr",
        function!(positional::<{ ALL | NO_ID_STRING }>, 4),
    )?;
    Ok(())
}
