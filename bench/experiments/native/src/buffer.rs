//! The reusable frame buffer: the product's thread-local (copied from
//! ext/shopify_events/src/codec.rs), and the prototype guarded by the GVL.

use std::cell::{Cell, UnsafeCell};

use crate::cuts::{has, BUF};

/// Largest buffer kept between calls (as in the product).
const KEEP_CAPACITY: usize = 256 * 1024;

thread_local! {
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// One buffer for the process, used only while the GVL is held: every emit
/// runs under the GVL, and the extension is not Ractor-safe, so at most one
/// thread is inside at a time. `busy` makes a re-entrant emit (Ruby code run
/// while encoding, e.g. `Bignum#to_s`) use a fresh buffer instead.
struct GvlBuffer {
    buf: UnsafeCell<Vec<u8>>,
    busy: Cell<bool>,
}

// SAFETY: only touched under the GVL (see above).
unsafe impl Sync for GvlBuffer {}

static GVL_BUFFER: GvlBuffer = GvlBuffer {
    buf: UnsafeCell::new(Vec::new()),
    busy: Cell::new(false),
};

/// Runs `f` with a reusable buffer, chosen by `CUTS`.
#[inline(always)]
pub(crate) fn with<const CUTS: u32, R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    if has(CUTS, BUF) {
        if GVL_BUFFER.busy.replace(true) {
            return f(&mut Vec::new());
        }
        // SAFETY: `busy` was false: nobody else holds the buffer, and the GVL
        // keeps other threads out until `busy` is cleared below.
        let buf = unsafe { &mut *GVL_BUFFER.buf.get() };
        let result = f(buf);
        if buf.capacity() > KEEP_CAPACITY {
            *buf = Vec::new();
        }
        GVL_BUFFER.busy.set(false);
        return result;
    }
    let mut buf = BUFFER.take();
    let result = f(&mut buf);
    if buf.capacity() <= KEEP_CAPACITY {
        BUFFER.set(buf);
    }
    result
}
