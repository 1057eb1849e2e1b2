//! JSON encoding of Ruby payloads, straight into the envelope buffer.
//!
//! Walks Hash/Array/String/Symbol/Integer/Float/true/false/nil/Time values
//! with type checks only, so encoding runs no Ruby code on the common path
//! (a Bignum's digits and a Time-like object's UTC conversion are the
//! exceptions). Errors name the offending value and where it sits in the
//! payload (`payload[:items][2]`), and never leave a half-written payload:
//! the envelope writer truncates the buffer on error.
//!
//! Output matches `JSON.generate` for Hash keys (strings), strings (UTF-8,
//! `"` `\` and control characters escaped) and integers; floats use the
//! shortest round-trip form; Times become ISO 8601 UTC with microseconds.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{
    value::ReprValue, Fixnum, Float, Integer, RArray, RHash, RString, Ruby, Symbol, Time, Value,
};
use rb_sys::{rb_hash_foreach, rb_sym2str, st_retval, VALUE};
use shopify_events_core::json;

use crate::{errors, json_lean};

/// Encodes a Hash or Array payload into `out`: the fast walk
/// (`json_lean.rs`) for the usual payload, this module's encoder for the
/// rest and for every error.
pub(crate) fn encode_payload(
    ruby: &Ruby,
    out: &mut Vec<u8>,
    value: Value,
) -> Result<(), magnus::Error> {
    let start = out.len();
    if json_lean::encode(out, value).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    JsonEncoder::new(ruby, out).encode(value)
}

/// Ruby's `JSON.generate` default `max_nesting`.
pub(crate) const MAX_DEPTH: usize = 100;

/// Why a payload cannot be encoded; turned into `TypeError`/`ArgumentError`.
pub(crate) enum JsonError {
    Unsupported {
        inspect: String,
        class: String,
    },
    BadKey {
        inspect: String,
        class: String,
    },
    NotFinite(f64),
    NotUtf8 {
        encoding: String,
    },
    Recursive,
    TooDeep,
    Ruby(magnus::Error),
    /// A bug: encoding stopped without saying why.
    Internal,
}

/// Path segments of the value being encoded, built only on the error path.
enum Segment {
    Key(String),
    Index(usize),
}

pub(crate) struct JsonEncoder<'a> {
    ruby: &'a Ruby,
    out: &'a mut Vec<u8>,
    /// Containers being encoded, outermost first: a repeat means a cycle.
    stack: Containers,
    error: Option<(JsonError, Vec<Segment>)>,
}

impl<'a> JsonEncoder<'a> {
    pub(crate) fn new(ruby: &'a Ruby, out: &'a mut Vec<u8>) -> Self {
        JsonEncoder {
            ruby,
            out,
            stack: Containers::default(),
            error: None,
        }
    }

    /// Encodes `value`, or returns the Ruby exception describing why not.
    pub(crate) fn encode(mut self, value: Value) -> Result<(), magnus::Error> {
        if self.write(value).is_ok() {
            return Ok(());
        }
        let (error, mut path) = self
            .error
            .take()
            .unwrap_or((JsonError::Internal, Vec::new()));
        path.reverse();
        Err(to_ruby_error(self.ruby, error, &render_path(&path)))
    }

    fn fail<T>(&mut self, error: JsonError) -> Result<T, ()> {
        self.error = Some((error, Vec::new()));
        Err(())
    }

    fn at<T>(&mut self, segment: impl FnOnce() -> Segment, result: Result<T, ()>) -> Result<T, ()> {
        if result.is_err() {
            if let Some((_, path)) = self.error.as_mut() {
                path.push(segment());
            }
        }
        result
    }

    fn write(&mut self, value: Value) -> Result<(), ()> {
        let ruby = self.ruby;
        if let Some(s) = RString::from_value(value) {
            return self.write_rstring(s);
        }
        if let Some(n) = Fixnum::from_value(value) {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(n.to_i64()).as_bytes());
            return Ok(());
        }
        if let Some(h) = RHash::from_value(value) {
            return self.write_hash(h);
        }
        if let Some(a) = RArray::from_value(value) {
            return self.write_array(a);
        }
        if let Some(f) = Float::from_value(value) {
            return self.write_float(f.to_f64());
        }
        if let Some(sym) = Symbol::from_value(value) {
            return self.write_rstring(symbol_name(self.ruby, sym));
        }
        if value.is_nil() {
            self.out.extend_from_slice(b"null");
            return Ok(());
        }
        if value.as_raw() == ruby.qtrue().as_value().as_raw() {
            self.out.extend_from_slice(b"true");
            return Ok(());
        }
        if value.as_raw() == ruby.qfalse().as_value().as_raw() {
            self.out.extend_from_slice(b"false");
            return Ok(());
        }
        if let Some(i) = Integer::from_value(value) {
            // Bignum: Ruby renders the digits.
            return match i.funcall::<_, _, RString>("to_s", ()) {
                Ok(digits) => {
                    // SAFETY: a fresh string nothing else references.
                    self.out.extend_from_slice(unsafe { digits.as_slice() });
                    Ok(())
                }
                Err(e) => self.fail(JsonError::Ruby(e)),
            };
        }
        self.write_time_like(value)
    }

    fn write_rstring(&mut self, s: RString) -> Result<(), ()> {
        // SAFETY: the bytes are copied out before any Ruby code runs.
        let bytes = unsafe { s.as_slice() };
        if std::str::from_utf8(bytes).is_err() {
            let encoding = s
                .funcall::<_, _, Value>("encoding", ())
                .map(|e| e.to_string())
                .unwrap_or_default();
            return self.fail(JsonError::NotUtf8 { encoding });
        }
        json::write_str(self.out, bytes);
        Ok(())
    }

    fn write_float(&mut self, f: f64) -> Result<(), ()> {
        if !f.is_finite() {
            return self.fail(JsonError::NotFinite(f));
        }
        self.out
            .extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
        Ok(())
    }

    fn enter(&mut self, container: Value) -> Result<(), ()> {
        if self.stack.len >= MAX_DEPTH {
            return self.fail(JsonError::TooDeep);
        }
        if self.stack.contains(container.as_raw()) {
            return self.fail(JsonError::Recursive);
        }
        self.stack.push(container.as_raw());
        Ok(())
    }

    fn write_hash(&mut self, hash: RHash) -> Result<(), ()> {
        self.enter(hash.as_value())?;
        self.out.push(b'{');
        let mut first = true;
        let mut failed = false;
        for_each_pair(hash, |key, value| {
            if !first {
                self.out.push(b',');
            }
            first = false;
            // Stays true if encoding the pair panics and the walk stops.
            failed = true;
            let written = self.write_key(key).and_then(|()| self.write(value));
            failed = self.at(|| Segment::Key(inspect(key)), written).is_err();
            !failed
        });
        if failed {
            return Err(());
        }
        self.out.push(b'}');
        self.stack.pop();
        Ok(())
    }

    fn write_key(&mut self, key: Value) -> Result<(), ()> {
        if let Some(s) = RString::from_value(key) {
            self.write_rstring(s)?;
        } else if let Some(sym) = Symbol::from_value(key) {
            self.write_rstring(symbol_name(self.ruby, sym))?;
        } else if let Some(n) = Fixnum::from_value(key) {
            self.out.push(b'"');
            self.out
                .extend_from_slice(itoa::Buffer::new().format(n.to_i64()).as_bytes());
            self.out.push(b'"');
        } else {
            let class = class_name(key);
            return self.fail(JsonError::BadKey {
                inspect: inspect(key),
                class,
            });
        }
        self.out.push(b':');
        Ok(())
    }

    fn write_array(&mut self, array: RArray) -> Result<(), ()> {
        self.enter(array.as_value())?;
        self.out.push(b'[');
        // Index access re-reads the length: encoding an element may run Ruby
        // code (Bignum#to_s), which could change the array.
        let mut i = 0;
        while i < array.len() {
            if i > 0 {
                self.out.push(b',');
            }
            let element: Value = array
                .entry(i as isize)
                .unwrap_or_else(|_| self.ruby.qnil().as_value());
            let result = self.write(element);
            self.at(|| Segment::Index(i), result)?;
            i += 1;
        }
        self.out.push(b']');
        self.stack.pop();
        Ok(())
    }

    /// `Time`, and objects that claim to be one (ActiveSupport::TimeWithZone).
    fn write_time_like(&mut self, value: Value) -> Result<(), ()> {
        let time = match Time::from_value(value) {
            Some(time) => Some(time),
            None => {
                let time_class = self.ruby.class_time();
                match value.funcall::<_, _, bool>("is_a?", (time_class,)) {
                    Ok(true) => value
                        .funcall::<_, _, Value>("getutc", ())
                        .ok()
                        .and_then(Time::from_value),
                    _ => None,
                }
            }
        };
        let Some(time) = time else {
            return self.fail(JsonError::Unsupported {
                inspect: inspect(value),
                class: class_name(value),
            });
        };
        match time.timespec() {
            Ok(ts) => {
                json::write_utc_time(self.out, ts.tv_sec, ts.tv_nsec / 1000);
                Ok(())
            }
            Err(e) => self.fail(JsonError::Ruby(e)),
        }
    }
}

/// Containers being encoded, outermost first. The first few live inline so
/// that encoding a usual, shallow payload allocates nothing.
#[derive(Default)]
struct Containers {
    inline: [VALUE; 8],
    len: usize,
    spill: Vec<VALUE>,
}

impl Containers {
    fn contains(&self, value: VALUE) -> bool {
        self.inline[..self.len.min(8)].contains(&value) || self.spill.contains(&value)
    }

    fn push(&mut self, value: VALUE) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = value,
            None => self.spill.push(value),
        }
        self.len += 1;
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
        if self.len >= self.inline.len() {
            self.spill.pop();
        }
    }
}

/// The name of a Symbol as a String, without copying it out (unlike
/// `Symbol::name`).
fn symbol_name(ruby: &Ruby, sym: Symbol) -> RString {
    // SAFETY: rb_sym2str cannot raise; it returns the symbol's frozen name.
    let name = unsafe { Value::from_raw(rb_sym2str(sym.as_raw())) };
    RString::from_value(name).unwrap_or_else(|| ruby.str_new(""))
}

/// Calls `f` with each pair of `hash` until it returns false.
///
/// `rb_hash_foreach` without `rb_protect` (which `RHash::foreach` pays for
/// each Hash): nothing `f` runs can raise. Encoding only type-checks, and its
/// rare calls into Ruby go through magnus, which catches exceptions.
fn for_each_pair<F: FnMut(Value, Value) -> bool>(hash: RHash, mut f: F) {
    unsafe extern "C" fn call<F: FnMut(Value, Value) -> bool>(
        key: VALUE,
        value: VALUE,
        arg: VALUE,
    ) -> c_int {
        // SAFETY: `arg` is the `&mut F` passed below, alive for the whole walk.
        let f = unsafe { &mut *(arg as *mut F) };
        // SAFETY: Ruby passes live objects.
        let (key, value) = unsafe { (Value::from_raw(key), Value::from_raw(value)) };
        // A panic must not unwind through Ruby's C frames: stop instead.
        let go_on = catch_unwind(AssertUnwindSafe(|| f(key, value))).unwrap_or(false);
        (if go_on {
            st_retval::ST_CONTINUE
        } else {
            st_retval::ST_STOP
        }) as c_int
    }
    // SAFETY: `call::<F>` matches the callback type and `f` outlives the walk.
    unsafe { rb_hash_foreach(hash.as_raw(), Some(call::<F>), &mut f as *mut F as VALUE) };
}

fn inspect(value: Value) -> String {
    let text = value.inspect();
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn class_name(value: Value) -> String {
    // SAFETY: the name is copied into an owned String at once.
    unsafe { value.classname() }.into_owned()
}

fn render_path(path: &[Segment]) -> String {
    let mut text = String::from("payload");
    for segment in path {
        match segment {
            Segment::Key(k) => text.push_str(&format!("[{k}]")),
            Segment::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

fn to_ruby_error(ruby: &Ruby, error: JsonError, at: &str) -> magnus::Error {
    match error {
        JsonError::Unsupported { inspect, class } => errors::type_error(
            ruby,
            format!(
                "cannot encode {inspect} ({class}) at {at} as JSON: payload values must be \
                 String, Symbol, Integer, Float, true, false, nil, Time, Array or Hash; \
                 convert it first (for example with #to_s or #as_json)"
            ),
        ),
        JsonError::BadKey { inspect, class } => errors::type_error(
            ruby,
            format!("cannot use {inspect} ({class}) as a JSON object key at {at}: keys must be String, Symbol or Integer"),
        ),
        JsonError::NotFinite(f) => errors::arg_error(
            ruby,
            format!("{} at {at} is not valid JSON: send finite numbers only (or nil)", ruby_float_name(f)),
        ),
        JsonError::NotUtf8 { encoding } => errors::arg_error(
            ruby,
            format!(
                "string at {at} is not valid UTF-8 (encoding {encoding}): JSON carries text only; \
                 Base64-encode binary data, or pass the whole payload as a String to send raw bytes"
            ),
        ),
        JsonError::Recursive => errors::arg_error(
            ruby,
            format!("payload is recursive: {at} contains itself; JSON cannot encode cycles"),
        ),
        JsonError::TooDeep => errors::arg_error(
            ruby,
            format!("payload nests deeper than {MAX_DEPTH} levels at {at}; flatten it"),
        ),
        JsonError::Ruby(e) => e,
        JsonError::Internal => magnus::Error::new(
            ruby.exception_runtime_error(),
            format!("shopify_events: internal error while encoding {at} as JSON"),
        ),
    }
}

fn ruby_float_name(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}
