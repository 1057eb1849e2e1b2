//! `ShopifyEvents::Native.decode`: an envelope back into Ruby values (a Hash
//! the Ruby `ShopifyEvents::Event` is built from).

use magnus::rb_sys::FromRawValue;
use magnus::{RHash, RString, Ruby, Value};
use rb_sys::{rb_usascii_str_new, RSTRING_PTR};
use shopify_events_core::envelope::{Envelope, Flags};
use shopify_events_core::event_id::EventId;

use crate::errors;

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

/// The event id as a Ruby String (`"0190f7c2-..."`, US-ASCII), the text
/// of `EventId::hyphenated` written straight into a new String: every emit
/// returns one, so it skips the stack copy and the encoding lookup.
pub(crate) fn id_string(ruby: &Ruby, id: &EventId) -> RString {
    // SAFETY: under the GVL (`ruby`). A NULL pointer asks Ruby for a String
    // of 36 bytes it does not fill (it writes the terminator); all 36 are
    // written below before any Ruby code can see the String.
    let string = unsafe {
        let string = rb_usascii_str_new(std::ptr::null(), 36);
        let out = RSTRING_PTR(string) as *mut u8;
        let mut at = 0;
        for (i, byte) in id.as_bytes().iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                *out.add(at) = b'-';
                at += 1;
            }
            let [high, low] = HEX_PAIRS[usize::from(*byte)];
            *out.add(at) = high;
            *out.add(at + 1) = low;
            at += 2;
        }
        Value::from_raw(string)
    };
    // Always a String; the type check is a few instructions.
    RString::from_value(string)
        .unwrap_or_else(|| ruby.enc_str_new(id.hyphenated(), ruby.usascii_encoding()))
}

fn binary(ruby: &Ruby, bytes: &[u8]) -> RString {
    ruby.enc_str_new(bytes, ruby.ascii8bit_encoding())
}

pub(crate) fn decode(ruby: &Ruby, bytes: RString) -> Result<RHash, magnus::Error> {
    // SAFETY: every field is copied into new Ruby objects below, and no Ruby
    // code that could change `bytes` runs before the last copy... except the
    // allocations themselves, which can trigger GC but never mutate a String.
    // Copy first anyway: a compacting GC may move embedded string contents.
    let owned = unsafe { bytes.as_slice() }.to_vec();
    let envelope = Envelope::decode(&owned).map_err(|e| errors::decode_error(ruby, e))?;
    let hash = ruby.hash_new();
    hash.aset(ruby.to_symbol("id"), id_string(ruby, &envelope.id))?;
    hash.aset(ruby.to_symbol("time_us"), envelope.time_us)?;
    hash.aset(ruby.to_symbol("topic"), ruby.str_new(envelope.topic))?;
    hash.aset(ruby.to_symbol("key"), envelope.key.map(|k| binary(ruby, k)))?;
    let headers = ruby.hash_new();
    for (name, value) in envelope.headers.iter() {
        headers.aset(ruby.str_new(name), binary(ruby, value))?;
    }
    hash.aset(ruby.to_symbol("headers"), headers)?;
    let json = envelope.flags.contains(Flags::PAYLOAD_JSON);
    let payload = if json {
        ruby.enc_str_new(envelope.payload, ruby.utf8_encoding())
    } else {
        binary(ruby, envelope.payload)
    };
    hash.aset(ruby.to_symbol("payload"), payload)?;
    hash.aset(ruby.to_symbol("json"), json)?;
    Ok(hash)
}
