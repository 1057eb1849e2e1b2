//! The topic's bytes, checked the product's way: the UTF-8 check of a
//! String, or a Symbol's name copied out (the envelope writer checks the
//! Kafka rules).

use std::borrow::Cow;

use magnus::{prelude::*, RString, Ruby, Symbol, Value};

use crate::errors;

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
