//! `ShopifyEvents::Native.decode`: an envelope back into Ruby values (a Hash
//! the Ruby `ShopifyEvents::Event` is built from).

use magnus::{RHash, RString, Ruby};
use shopify_events_core::envelope::{Envelope, Flags};
use shopify_events_core::event_id::EventId;

use crate::errors;

/// The event id as a Ruby String (`"0190f7c2-..."`).
pub(crate) fn id_string(ruby: &Ruby, id: &EventId) -> RString {
    let text = id.hyphenated();
    ruby.enc_str_new(text, ruby.usascii_encoding())
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
