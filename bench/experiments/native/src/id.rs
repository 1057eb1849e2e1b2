//! The event id as the Ruby String `emit` returns, the product's way
//! (ext/shopify_events/src/event.rs: hex into a stack array, then
//! `rb_enc_str_new` with the US-ASCII encoding object).

use magnus::{prelude::*, Ruby, Value};
use shopify_events_core::event_id::EventId;

use crate::cuts::{has, NO_ID_STRING};

/// The id String (or `true` for the ablation that builds none).
#[inline(always)]
pub(crate) fn to_ruby<const CUTS: u32>(ruby: &Ruby, id: &EventId) -> Value {
    if has(CUTS, NO_ID_STRING) {
        return ruby.qtrue().as_value();
    }
    let text = id.hyphenated();
    ruby.enc_str_new(text, ruby.usascii_encoding()).as_value()
}
