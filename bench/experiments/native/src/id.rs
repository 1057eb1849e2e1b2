//! The event id as the Ruby String `emit` returns: the product's way
//! (ext/shopify_events/src/event.rs: hex into a stack array, then
//! `rb_enc_str_new` with the US-ASCII encoding object), and the prototype
//! (a US-ASCII String of 36 bytes allocated first and filled in place, two
//! hex digits per table load).

use magnus::{prelude::*, rb_sys::FromRawValue, Ruby, Value};
use rb_sys::{rb_usascii_str_new, RSTRING_PTR};
use shopify_events_core::event_id::EventId;

use crate::cuts::{has, ID, NO_ID_STRING};

/// The id String (or `true` for the ablation that builds none).
#[inline(always)]
pub(crate) fn to_ruby<const CUTS: u32>(ruby: &Ruby, id: &EventId) -> Value {
    if has(CUTS, NO_ID_STRING) {
        return ruby.qtrue().as_value();
    }
    if has(CUTS, ID) {
        return in_place(id);
    }
    let text = id.hyphenated();
    ruby.enc_str_new(text, ruby.usascii_encoding()).as_value()
}

/// Two lowercase hex digits per byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0xF]];
        i += 1;
    }
    table
};

fn in_place(id: &EventId) -> Value {
    // SAFETY: a NULL pointer asks Ruby for 36 uninitialised bytes (plus the
    // terminator it writes itself); they are filled below before any Ruby
    // code can see the String. US-ASCII with the 7-bit code range set, which
    // the hex digits and hyphens are.
    unsafe {
        let string = rb_usascii_str_new(std::ptr::null(), 36);
        let out = RSTRING_PTR(string) as *mut u8;
        let mut at = 0;
        for (i, byte) in id.as_bytes().iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                *out.add(at) = b'-';
                at += 1;
            }
            let pair = HEX_PAIRS[usize::from(*byte)];
            *out.add(at) = pair[0];
            *out.add(at + 1) = pair[1];
            at += 2;
        }
        Value::from_raw(string)
    }
}
