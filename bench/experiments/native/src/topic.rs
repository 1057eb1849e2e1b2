//! The topic's bytes, checked: the product's way (UTF-8 check of a String,
//! or a Symbol's name copied out; the Kafka rules checked by the envelope
//! writer), and the prototype cache of validated topics.
//!
//! The cache holds up to [`CACHE_SIZE`] frozen topic Strings (literals in a
//! file with `# frozen_string_literal: true`, constants) and static Symbols.
//! A frozen String never changes, so the one that passed once passes again:
//! a hit is one pointer compare. Cached Strings are registered with the GC
//! as permanently marked (and so never moved or freed): a bounded leak of
//! at most [`CACHE_SIZE`] objects. Other topics are checked on every emit.

use std::borrow::Cow;
use std::cell::{Cell, UnsafeCell};

use magnus::{prelude::*, rb_sys::AsRawValue, RString, Ruby, Symbol, Value};
use rb_sys::{rb_gc_register_mark_object, rb_sym2str, RSTRING_LEN, RSTRING_PTR, VALUE};
use shopify_events_core::topic::validate_topic;

use crate::cuts::{has, NO_VALIDATE, TOPIC};
use crate::errors;

const CACHE_SIZE: usize = 8;

/// Validated topics, touched only under the GVL.
struct TopicCache {
    entries: UnsafeCell<[VALUE; CACHE_SIZE]>,
    len: Cell<usize>,
}

// SAFETY: read and written only while holding the GVL.
unsafe impl Sync for TopicCache {}

static CACHE: TopicCache = TopicCache {
    entries: UnsafeCell::new([0; CACHE_SIZE]),
    len: Cell::new(0),
};

/// The product's `topic_str` (ext/shopify_events/src/codec.rs): a String's
/// bytes if they are UTF-8, or a Symbol's name.
pub(crate) fn product_topic_str<'a>(
    ruby: &Ruby,
    topic: Value,
) -> Result<Cow<'a, str>, magnus::Error> {
    if let Some(s) = RString::from_value(topic) {
        return match std::str::from_utf8(string_bytes(s)) {
            Ok(text) => Ok(Cow::Borrowed(text)),
            Err(_) => Err(invalid(ruby, topic)),
        };
    }
    if let Some(sym) = Symbol::from_value(topic) {
        return Ok(Cow::Owned(sym.name()?.into_owned()));
    }
    Err(not_a_topic(ruby, topic))
}

/// The topic's bytes for the one-pass writer, validated unless cached (or
/// unless the ablation skips validation).
#[inline(always)]
pub(crate) fn checked<'a, const CUTS: u32>(
    ruby: &Ruby,
    topic: Value,
) -> Result<&'a [u8], magnus::Error> {
    let raw = topic.as_raw();
    if has(CUTS, TOPIC) {
        // SAFETY: under the GVL; `len` never exceeds CACHE_SIZE.
        let entries = unsafe { &*CACHE.entries.get() };
        if entries[..CACHE.len.get()].contains(&raw) {
            return Ok(topic_bytes(topic));
        }
    }
    let bytes = if let Some(s) = RString::from_value(topic) {
        string_bytes(s)
    } else if Symbol::from_value(topic).is_some() {
        // SAFETY: rb_sym2str returns the Symbol's frozen name, kept alive by
        // the Symbol (static Symbols live forever).
        unsafe {
            let name = rb_sym2str(raw);
            std::slice::from_raw_parts(RSTRING_PTR(name) as *const u8, RSTRING_LEN(name) as usize)
        }
    } else {
        return Err(not_a_topic(ruby, topic));
    };
    if has(CUTS, NO_VALIDATE) {
        return Ok(bytes);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid(ruby, topic))?;
    validate_topic(text).map_err(|e| errors::raise(ruby, "InvalidTopic", e.to_string()))?;
    if has(CUTS, TOPIC) {
        remember(topic);
    }
    Ok(bytes)
}

#[cold]
fn remember(topic: Value) {
    let len = CACHE.len.get();
    if len == CACHE_SIZE || !frozen_or_static(topic) {
        return;
    }
    // SAFETY: under the GVL; the object is marked (and pinned) for ever, so
    // its VALUE cannot be reused by another object.
    unsafe {
        rb_gc_register_mark_object(topic.as_raw());
        (*CACHE.entries.get())[len] = topic.as_raw();
    }
    CACHE.len.set(len + 1);
}

fn frozen_or_static(topic: Value) -> bool {
    if topic.is_frozen() && RString::from_value(topic).is_some() {
        return true;
    }
    // A static Symbol is an immediate value.
    Symbol::from_value(topic).is_some_and(|s| s.as_static().is_some())
}

fn topic_bytes<'a>(topic: Value) -> &'a [u8] {
    let raw = topic.as_raw();
    // SAFETY: a cached topic is a frozen String or a static Symbol, both
    // alive for ever (see `remember`).
    unsafe {
        let s = if RString::from_value(topic).is_some() {
            raw
        } else {
            rb_sym2str(raw)
        };
        std::slice::from_raw_parts(RSTRING_PTR(s) as *const u8, RSTRING_LEN(s) as usize)
    }
}

/// The bytes of a String argument, copied into the envelope before any Ruby
/// code can run (as in the product).
pub(crate) fn string_bytes<'a>(s: RString) -> &'a [u8] {
    // SAFETY: see above; the slice does not outlive the emit call.
    unsafe {
        let bytes = s.as_slice();
        std::slice::from_raw_parts(bytes.as_ptr(), bytes.len())
    }
}

fn invalid(ruby: &Ruby, topic: Value) -> magnus::Error {
    errors::raise(
        ruby,
        "InvalidTopic",
        format!(
            "invalid topic {}: Kafka topics use only a-z, A-Z, 0-9, '.', '_' and '-'",
            topic.inspect()
        ),
    )
}

fn not_a_topic(ruby: &Ruby, topic: Value) -> magnus::Error {
    errors::type_error(
        ruby,
        format!("topic must be a String or Symbol, got {}", topic.inspect()),
    )
}
