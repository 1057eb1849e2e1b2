//! Turns the arguments of `emit` into one envelope, and exposes the codec to
//! Ruby as `ShopifyEvents::Native.encode` / `.decode` (the `test` transport
//! and the specs use them; a captured event went through the same validation
//! and encoding as one sent to the queue).

use std::borrow::Cow;
use std::cell::Cell;

use magnus::{
    function, r_hash::ForEach, value::ReprValue, Fixnum, RArray, RHash, RModule, RString, Ruby,
    Symbol, Value,
};
use shopify_events_core::envelope::{encode_bytes, EnvelopeWriter, PayloadError, Seal};
use shopify_events_core::topic::{Topic, TopicError};
use shopify_events_core::{clock, event_id::EventId};

use crate::errors::Class;
use crate::{errors, event, json};

/// Largest buffer kept between calls; a rare huge event does not pin memory.
const KEEP_CAPACITY: usize = 256 * 1024;

thread_local! {
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's reusable buffer. The buffer is taken out of
/// the thread-local for the call, so a re-entrant emit (Ruby code run while
/// encoding) simply gets a fresh one.
pub(crate) fn with_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = BUFFER.take();
    let result = f(&mut buf);
    if buf.capacity() <= KEEP_CAPACITY {
        BUFFER.set(buf);
    }
    result
}

/// Appends the envelope for one event to `buf` and returns its id. With
/// [`Seal::ByStamp`] the CRC is left to the transport that numbers the
/// event (it seals every envelope it stamps): only for a frame handed
/// straight to such a transport.
pub(crate) fn encode_event(
    ruby: &Ruby,
    buf: &mut Vec<u8>,
    event: [Value; 4],
    seal: Seal,
) -> Result<EventId, magnus::Error> {
    let [topic, payload, key, headers] = event;
    let mut key_digits = itoa::Buffer::new();
    let time_us = clock::now_micros();
    let id = EventId::generate(time_us);
    let topic = topic_of(ruby, topic)?;
    let key_bytes = key_bytes(ruby, key, &mut key_digits)?;
    if headers.is_nil() {
        if let Some(s) = RString::from_value(payload) {
            // The commonest event, in one pass.
            let key = key_bytes.as_deref();
            encode_bytes(buf, id, time_us, &topic, key, string_bytes(s), seal)
                .map_err(|e| errors::encode_error(ruby, e))?;
            return Ok(id);
        }
    }
    let mut writer = EnvelopeWriter::begin_topic(buf, id, time_us, &topic, key_bytes.as_deref())
        .map_err(|e| errors::encode_error(ruby, e))?
        .sealed_by(seal);
    // The topic and key were copied into the envelope: the borrowed bytes
    // are not read again once Ruby code (a header's or payload's `to_s`)
    // could run.
    if !headers.is_nil() {
        write_headers(ruby, &mut writer, headers)?;
    }
    if let Some(s) = RString::from_value(payload) {
        writer
            .payload(string_bytes(s))
            .map_err(|e| errors::encode_error(ruby, e))?;
    } else if RHash::from_value(payload).is_some() || RArray::from_value(payload).is_some() {
        writer
            .payload_with(true, |out| json::encode_payload(ruby, out, payload))
            .map_err(|e| match e {
                PayloadError::Encode(e) => errors::encode_error(ruby, e),
                PayloadError::Write(e) => e,
            })?;
    } else {
        writer.abort();
        return Err(errors::type_error(
            ruby,
            format!(
                "payload must be a String (sent as its bytes) or a Hash or Array (sent as JSON), \
                 got {} ({})",
                payload.inspect(),
                class_name(payload)
            ),
        ));
    }
    Ok(id)
}

/// The topic argument, checked against Kafka's rules once: a String's
/// bytes as they are, or a Symbol's name.
fn topic_of(ruby: &Ruby, topic: Value) -> Result<Topic<'_>, magnus::Error> {
    if let Some(s) = RString::from_value(topic) {
        let bytes = string_bytes(s);
        return Topic::from_bytes(bytes).map_err(|e| invalid_topic(ruby, topic, bytes, e));
    }
    if let Some(sym) = Symbol::from_value(topic) {
        return Topic::new(sym.name()?).map_err(|e| errors::encode_error(ruby, e.into()));
    }
    Err(errors::type_error(
        ruby,
        format!(
            "topic must be a String or Symbol, got {} ({})",
            topic.inspect(),
            class_name(topic)
        ),
    ))
}

/// `InvalidTopic` naming the topic: as Ruby inspects it if it is not even
/// UTF-8, which the rule's message could only show mangled.
#[cold]
fn invalid_topic(ruby: &Ruby, topic: Value, bytes: &[u8], error: TopicError) -> magnus::Error {
    if std::str::from_utf8(bytes).is_ok() {
        return errors::encode_error(ruby, error.into());
    }
    errors::raise(
        ruby,
        Class::InvalidTopic,
        format!(
            "invalid topic {}: Kafka topics use only a-z, A-Z, 0-9, '.', '_' and '-'",
            topic.inspect()
        ),
    )
}

fn key_bytes<'a>(
    ruby: &Ruby,
    key: Value,
    digits: &'a mut itoa::Buffer,
) -> Result<Option<Cow<'a, [u8]>>, magnus::Error> {
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
            "key must be a String, Symbol, Integer or nil, got {} ({})",
            key.inspect(),
            class_name(key)
        ),
    ))
}

/// The bytes of a Ruby String argument.
///
/// The caller copies them into the envelope before any Ruby code can run (and
/// so before the string could change or be collected: it is an argument of
/// the current method call, visible to the GC on the machine stack).
fn string_bytes<'a>(s: RString) -> &'a [u8] {
    // SAFETY: see above; the slice does not outlive the emit call.
    unsafe {
        let bytes = s.as_slice();
        std::slice::from_raw_parts(bytes.as_ptr(), bytes.len())
    }
}

fn write_headers(
    ruby: &Ruby,
    writer: &mut EnvelopeWriter<'_>,
    headers: Value,
) -> Result<(), magnus::Error> {
    let Some(hash) = RHash::from_value(headers) else {
        return Err(errors::type_error(
            ruby,
            format!(
                "headers must be a Hash of String => String, got {} ({})",
                headers.inspect(),
                class_name(headers)
            ),
        ));
    };
    let mut failure = None;
    hash.foreach(
        |name: Value, value: Value| match write_header(ruby, writer, name, value) {
            Ok(()) => Ok(ForEach::Continue),
            Err(e) => {
                failure = Some(e);
                Ok(ForEach::Stop)
            }
        },
    )?;
    failure.map_or(Ok(()), Err)
}

fn write_header(
    ruby: &Ruby,
    writer: &mut EnvelopeWriter<'_>,
    name: Value,
    value: Value,
) -> Result<(), magnus::Error> {
    let name_text: Cow<'_, str> = if let Some(s) = RString::from_value(name) {
        match std::str::from_utf8(string_bytes(s)) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => {
                return Err(errors::arg_error(
                    ruby,
                    format!("header name {} is not valid UTF-8", name.inspect()),
                ))
            }
        }
    } else if let Some(sym) = Symbol::from_value(name) {
        sym.name()?
    } else {
        return Err(errors::type_error(
            ruby,
            format!(
                "header names must be String or Symbol, got {} ({})",
                name.inspect(),
                class_name(name)
            ),
        ));
    };
    let mut digits = itoa::Buffer::new();
    let value_bytes: &[u8] = if let Some(s) = RString::from_value(value) {
        string_bytes(s)
    } else if let Some(n) = Fixnum::from_value(value) {
        digits.format(n.to_i64()).as_bytes()
    } else if let Some(sym) = Symbol::from_value(value) {
        return writer
            .header(&name_text, sym.name()?.as_bytes())
            .map_err(|e| errors::encode_error(ruby, e));
    } else {
        return Err(errors::type_error(
            ruby,
            format!(
                "header {:?} must be a String, Symbol or Integer, got {} ({})",
                name_text,
                value.inspect(),
                class_name(value)
            ),
        ));
    };
    writer
        .header(&name_text, value_bytes)
        .map_err(|e| errors::encode_error(ruby, e))
}

pub(crate) fn class_name(value: Value) -> String {
    // SAFETY: copied into an owned String at once.
    unsafe { value.classname() }.into_owned()
}

/// `Native.encode(topic, payload, key, headers)`: the envelope as a binary String.
fn encode(
    ruby: &Ruby,
    topic: Value,
    payload: Value,
    key: Value,
    headers: Value,
) -> Result<RString, magnus::Error> {
    with_buffer(|buf| {
        buf.clear();
        encode_event(ruby, buf, [topic, payload, key, headers], Seal::Now)?;
        Ok(ruby.str_from_slice(buf))
    })
}

/// `Native.encode_event(topic, payload, key, headers)`: `[id, envelope]`,
/// the id String `emit` would return and the envelope it would send. Events
/// deferred to a database commit are encoded (and validated) at the call
/// with it, and sent later with an emitter's `send_envelope`.
fn encode_event_pair(
    ruby: &Ruby,
    topic: Value,
    payload: Value,
    key: Value,
    headers: Value,
) -> Result<(RString, RString), magnus::Error> {
    with_buffer(|buf| {
        buf.clear();
        let id = encode_event(ruby, buf, [topic, payload, key, headers], Seal::Now)?;
        Ok((
            event::id_string(ruby, &id),
            ruby.enc_str_new(&buf[..], ruby.ascii8bit_encoding()),
        ))
    })
}

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), magnus::Error> {
    native.define_module_function("encode", function!(encode, 4))?;
    native.define_module_function("encode_event", function!(encode_event_pair, 4))?;
    native.define_module_function("decode", function!(event::decode, 1))?;
    native.define_module_function("message_size_limit", function!(message_size_limit, 0))?;
    let _ = ruby;
    Ok(())
}

fn message_size_limit() -> u64 {
    sysvmq::message_size_limit()
}
