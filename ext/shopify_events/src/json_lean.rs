//! The fast walk for JSON payloads: encodes the usual Hash or Array
//! (String, static Symbol, Integer, Float, true/false/nil, nested a few
//! levels) with fewer Ruby API calls and fewer passes per key and value than
//! the full encoder in `json.rs`, and gives up on anything else.
//!
//! - one type dispatch per value on the VALUE bits and the object's type
//!   flags, instead of a chain of `from_value` checks;
//! - static Symbol keys (nearly every Hash key) come from a small cache of
//!   their encoded form (`"name":`), so a key costs a table probe and one
//!   copy instead of `rb_sym2str` (a global symbol table lookup), a UTF-8
//!   check and an escape scan. Static Symbols are immediates that never die
//!   and never change name, so their VALUE is a safe key;
//! - strings are checked and scanned for escapes in one pass, 8 bytes at a
//!   time, and copied with one `memcpy` when nothing needs escaping
//!   (anything else takes `json::write_str`, as the full encoder does);
//! - Array elements are read through the inline RARRAY accessors.
//!
//! It writes the same bytes as the full encoder (`bench/experiments/check.rb`
//! compared them). It gives up, with no reason, on Bignums, Times, dynamic
//! Symbols, Integer keys, non-finite Floats, text that is not UTF-8, cycles
//! and nesting deeper than 8; the caller (`json::encode_payload`) then
//! truncates what it wrote and runs the full encoder, which encodes the
//! value or builds its precise error (value, class, path in the payload).
//! So the hot path carries no error state, and errors stay the same.
//! Measured in docs/BENCHMARKS.md (issue 13, "The cuts in the product").

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{rb_sys::AsRawValue, Value};
use rb_sys::{
    rb_float_value, rb_hash_foreach, rb_sym2str, ruby_value_type, st_retval, Qfalse, Qnil, Qtrue,
    FIX2LONG, FIXNUM_P, FLONUM_P, RARRAY_CONST_PTR, RARRAY_LEN, RB_BUILTIN_TYPE, RSTRING_LEN,
    RSTRING_PTR, SPECIAL_CONST_P, STATIC_SYM_P, VALUE,
};
use shopify_events_core::json;

use crate::json::MAX_DEPTH;

/// The walk gave up (the full encoder then encodes the value or reports why not).
pub(crate) struct Unsupported;

/// Encodes `value` (a Hash or Array) into `out`, or gives up.
pub(crate) fn encode(out: &mut Vec<u8>, value: Value) -> Result<(), Unsupported> {
    let mut walk = Walk {
        out,
        depth: 0,
        stack: [0; 8],
    };
    walk.value(value.as_raw())
}

struct Walk<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
    /// The innermost containers, for cycle detection (deeper ones give up).
    stack: [VALUE; 8],
}

impl Walk<'_> {
    fn value(&mut self, v: VALUE) -> Result<(), Unsupported> {
        if FIXNUM_P(v) {
            // SAFETY: a Fixnum.
            let n = unsafe { FIX2LONG(v) };
            self.out
                .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            return Ok(());
        }
        if FLONUM_P(v) {
            return self.float(v);
        }
        if SPECIAL_CONST_P(v) {
            return self.special(v);
        }
        // SAFETY: a heap object (not a special constant).
        match unsafe { RB_BUILTIN_TYPE(v) } {
            ruby_value_type::RUBY_T_STRING => self.string(v),
            ruby_value_type::RUBY_T_HASH => self.hash(v),
            ruby_value_type::RUBY_T_ARRAY => self.array(v),
            ruby_value_type::RUBY_T_FLOAT => self.float(v),
            // Dynamic Symbols, Bignums, Times and the rest: the product's path.
            _ => Err(Unsupported),
        }
    }

    fn special(&mut self, v: VALUE) -> Result<(), Unsupported> {
        if v == Qnil as VALUE {
            self.out.extend_from_slice(b"null");
        } else if v == Qtrue as VALUE {
            self.out.extend_from_slice(b"true");
        } else if v == Qfalse as VALUE {
            self.out.extend_from_slice(b"false");
        } else if STATIC_SYM_P(v) {
            // SAFETY: rb_sym2str returns the Symbol's frozen name.
            let name = unsafe { rb_sym2str(v) };
            self.string(name)?;
        } else {
            return Err(Unsupported);
        }
        Ok(())
    }

    fn float(&mut self, v: VALUE) -> Result<(), Unsupported> {
        // SAFETY: a Float (flonum or heap).
        let f = unsafe { rb_float_value(v) };
        if !f.is_finite() {
            return Err(Unsupported);
        }
        self.out
            .extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
        Ok(())
    }

    fn string(&mut self, v: VALUE) -> Result<(), Unsupported> {
        // SAFETY: a String; its bytes are copied before any Ruby code runs.
        let bytes = unsafe {
            std::slice::from_raw_parts(RSTRING_PTR(v) as *const u8, RSTRING_LEN(v) as usize)
        };
        write_text(self.out, bytes)
    }

    fn enter(&mut self, v: VALUE) -> Result<(), Unsupported> {
        let live = self.depth.min(self.stack.len());
        if self.depth >= MAX_DEPTH
            || self.depth >= self.stack.len()
            || self.stack[..live].contains(&v)
        {
            return Err(Unsupported);
        }
        self.stack[self.depth] = v;
        self.depth += 1;
        Ok(())
    }

    fn hash(&mut self, v: VALUE) -> Result<(), Unsupported> {
        self.enter(v)?;
        self.out.push(b'{');
        let mut state = PairState {
            walk: self,
            first: true,
            failed: false,
        };
        // SAFETY: `call` matches the callback type; `state` outlives the walk.
        unsafe { rb_hash_foreach(v, Some(pair), &mut state as *mut PairState as VALUE) };
        if state.failed {
            return Err(Unsupported);
        }
        self.out.push(b'}');
        self.depth -= 1;
        Ok(())
    }

    fn key(&mut self, k: VALUE) -> Result<(), Unsupported> {
        if STATIC_SYM_P(k) {
            return symbol_key(self.out, k);
        }
        if FIXNUM_P(k) || SPECIAL_CONST_P(k) {
            return Err(Unsupported);
        }
        // SAFETY: a heap object.
        if unsafe { RB_BUILTIN_TYPE(k) } != ruby_value_type::RUBY_T_STRING {
            return Err(Unsupported);
        }
        self.string(k)?;
        self.out.push(b':');
        Ok(())
    }

    fn array(&mut self, v: VALUE) -> Result<(), Unsupported> {
        self.enter(v)?;
        self.out.push(b'[');
        let mut i = 0;
        // Length and pointer are read again per element: encoding never runs
        // Ruby code here, but stays correct if it did.
        // SAFETY: an Array; index below its current length.
        while i < unsafe { RARRAY_LEN(v) } {
            if i > 0 {
                self.out.push(b',');
            }
            let element = unsafe { *RARRAY_CONST_PTR(v).offset(i as isize) };
            self.value(element)?;
            i += 1;
        }
        self.out.push(b']');
        self.depth -= 1;
        Ok(())
    }
}

struct PairState<'a, 'b> {
    walk: &'a mut Walk<'b>,
    first: bool,
    failed: bool,
}

unsafe extern "C" fn pair(key: VALUE, value: VALUE, arg: VALUE) -> c_int {
    // SAFETY: `arg` is the PairState of `Walk::hash`, alive for the walk.
    let state = unsafe { &mut *(arg as *mut PairState<'_, '_>) };
    // A panic must not unwind through Ruby's C frames: stop instead.
    let ok = catch_unwind(AssertUnwindSafe(|| {
        if !state.first {
            state.walk.out.push(b',');
        }
        state.first = false;
        state
            .walk
            .key(key)
            .and_then(|()| state.walk.value(value))
            .is_ok()
    }))
    .unwrap_or(false);
    if ok {
        st_retval::ST_CONTINUE as c_int
    } else {
        state.failed = true;
        st_retval::ST_STOP as c_int
    }
}

/// Writes `bytes` as a JSON string if it is UTF-8 (else gives up): ASCII
/// runs that need no escape are found 8 bytes at a time and copied whole.
fn write_text(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Unsupported> {
    if plain_ascii(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return Ok(());
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err(Unsupported);
    }
    json::write_str(out, bytes);
    Ok(())
}

/// True if every byte is ASCII, printable and neither `"` nor `\`.
fn plain_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The standard SWAR tests: a byte below 0x20, a byte equal to '"' or
    // '\\', or a byte with its high bit set (not ASCII).
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let bad = |w: u64| {
        (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
            | zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            | (w & HIGH)
    };
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        if bad(u64::from_le_bytes(word)) != 0 {
            return false;
        }
    }
    let rest = chunks.remainder();
    let mut word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    bad(u64::from_le_bytes(word)) == 0
}

/// Encoded keys (`"name":`) of static Symbols, direct-mapped by VALUE.
struct KeyCache {
    slots: UnsafeCell<[(VALUE, u8, [u8; 47]); 64]>,
}

// SAFETY: touched only under the GVL.
unsafe impl Sync for KeyCache {}

static KEYS: KeyCache = KeyCache {
    slots: UnsafeCell::new([(0, 0, [0; 47]); 64]),
};

fn symbol_key(out: &mut Vec<u8>, sym: VALUE) -> Result<(), Unsupported> {
    // Static Symbol VALUEs are (ID << 8) | 0x0c: the ID's low bits spread them.
    let slot = ((sym >> 8) as usize) & 63;
    // SAFETY: under the GVL; nothing in this function runs Ruby code that
    // could re-enter it between the read and the write.
    let slots = unsafe { &mut *KEYS.slots.get() };
    let (cached, len, text) = &slots[slot];
    if *cached == sym {
        out.extend_from_slice(&text[..usize::from(*len)]);
        return Ok(());
    }
    let start = out.len();
    // SAFETY: rb_sym2str returns the Symbol's frozen name.
    let name = unsafe { rb_sym2str(sym) };
    // SAFETY: a String; copied at once.
    let bytes = unsafe {
        std::slice::from_raw_parts(RSTRING_PTR(name) as *const u8, RSTRING_LEN(name) as usize)
    };
    write_text(out, bytes)?;
    out.push(b':');
    let encoded = &out[start..];
    if encoded.len() <= 47 {
        let mut text = [0u8; 47];
        text[..encoded.len()].copy_from_slice(encoded);
        slots[slot] = (sym, encoded.len() as u8, text);
    }
    Ok(())
}
