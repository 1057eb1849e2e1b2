//! The arguments of `emit` into one envelope: the product's way (a copy of
//! `encode_event` in ext/shopify_events/src/codec.rs, headers left out: no
//! benchmark passes them) or with the prototype cuts.

use std::borrow::Cow;

use magnus::{prelude::*, Error, Fixnum, RArray, RHash, RString, Ruby, Symbol, Value};
use shopify_events_core::envelope::{EnvelopeWriter, PayloadError};
use shopify_events_core::{clock, event_id::EventId};

use crate::cuts::{has, lite, CONST_ID, HASH};
use crate::envelope::{self, Payload, WriteError};
use crate::topic::{self, string_bytes};
use crate::{errors, json_lean, json_product::JsonEncoder};

/// Appends the envelope for one event to `buf` and returns its id.
#[inline(always)]
pub(crate) fn encode<const CUTS: u32>(
    ruby: &Ruby,
    buf: &mut Vec<u8>,
    topic: Value,
    payload: Value,
    key: Value,
    headers: Value,
) -> Result<EventId, Error> {
    if !headers.is_nil() {
        return Err(errors::arg_error(ruby, "the prototypes take no headers"));
    }
    let (id, time_us) = if has(CUTS, CONST_ID) {
        (
            EventId::from_bytes([0x01, 0x90, 0, 0, 0, 0, 0x70, 0, 0x80, 0, 0, 0, 0, 0, 0, 1]),
            1,
        )
    } else {
        let time_us = clock::now_micros();
        (EventId::generate(time_us), time_us)
    };
    let mut digits = itoa::Buffer::new();
    let key_bytes = key_bytes(ruby, key, &mut digits)?;
    if lite(CUTS) {
        let topic_bytes = topic::checked::<CUTS>(ruby, topic)?;
        let body = payload_kind(ruby, payload)?;
        let result = match body {
            Some(bytes) => envelope::write::<CUTS, Error, fn(&mut Vec<u8>) -> Result<(), Error>>(
                buf,
                &id,
                time_us,
                topic_bytes,
                key_bytes.as_deref(),
                Payload::Bytes(bytes),
            ),
            None => envelope::write::<CUTS, Error, _>(
                buf,
                &id,
                time_us,
                topic_bytes,
                key_bytes.as_deref(),
                Payload::Json(|out: &mut Vec<u8>| json::<CUTS>(ruby, out, payload)),
            ),
        };
        return match result {
            Ok(()) => Ok(id),
            Err(WriteError::Payload(e)) => Err(e),
            Err(WriteError::TooLarge) => Err(errors::arg_error(ruby, "envelope larger than 4 GiB")),
        };
    }
    let writer = {
        let topic_text = topic::product_topic_str(ruby, topic)?;
        EnvelopeWriter::begin(buf, id, time_us, &topic_text, key_bytes.as_deref())
            .map_err(|e| errors::raise(ruby, "InvalidTopic", e.to_string()))?
    };
    match payload_kind(ruby, payload)? {
        Some(bytes) => {
            writer
                .payload(bytes)
                .map_err(|e| errors::arg_error(ruby, e.to_string()))?;
        }
        None => {
            writer
                .payload_with(true, |out| json::<CUTS>(ruby, out, payload))
                .map_err(|e| match e {
                    PayloadError::Encode(e) => errors::arg_error(ruby, e.to_string()),
                    PayloadError::Write(e) => e,
                })?;
        }
    }
    Ok(id)
}

/// A String payload's bytes, or None for a Hash or Array (sent as JSON).
fn payload_kind<'a>(ruby: &Ruby, payload: Value) -> Result<Option<&'a [u8]>, Error> {
    if let Some(s) = RString::from_value(payload) {
        return Ok(Some(string_bytes(s)));
    }
    if RHash::from_value(payload).is_some() || RArray::from_value(payload).is_some() {
        return Ok(None);
    }
    Err(errors::type_error(
        ruby,
        format!(
            "payload must be a String, Hash or Array, got {}",
            payload.inspect()
        ),
    ))
}

/// JSON of a Hash or Array payload: the product's encoder, or the lean walk
/// with the product's as the fallback that reports what went wrong.
#[inline(always)]
fn json<const CUTS: u32>(ruby: &Ruby, out: &mut Vec<u8>, payload: Value) -> Result<(), Error> {
    if has(CUTS, HASH) {
        let start = out.len();
        if json_lean::encode(out, payload).is_ok() {
            return Ok(());
        }
        out.truncate(start);
    }
    JsonEncoder::new(ruby, out).encode(payload)
}

/// The product's `key_bytes` (ext/shopify_events/src/codec.rs).
fn key_bytes<'a>(
    ruby: &Ruby,
    key: Value,
    digits: &'a mut itoa::Buffer,
) -> Result<Option<Cow<'a, [u8]>>, Error> {
    if key.is_nil() {
        return Ok(None);
    }
    if let Some(s) = RString::from_value(key) {
        return Ok(Some(Cow::Borrowed(string_bytes(s))));
    }
    if let Some(n) = Fixnum::from_value(key) {
        return Ok(Some(Cow::Borrowed(digits.format(n.to_i64()).as_bytes())));
    }
    if let Some(sym) = Symbol::from_value(key) {
        return Ok(Some(match sym.name()? {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        }));
    }
    Err(errors::type_error(
        ruby,
        format!(
            "key must be a String, Symbol, Integer or nil, got {}",
            key.inspect()
        ),
    ))
}
