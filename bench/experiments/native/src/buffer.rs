//! The reusable frame buffer: the product's thread-local (copied from
//! ext/shopify_events/src/codec.rs).

use std::cell::Cell;

/// Largest buffer kept between calls (as in the product).
const KEEP_CAPACITY: usize = 256 * 1024;

thread_local! {
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's reusable buffer.
#[inline(always)]
pub(crate) fn with<const CUTS: u32, R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = BUFFER.take();
    let result = f(&mut buf);
    if buf.capacity() <= KEEP_CAPACITY {
        BUFFER.set(buf);
    }
    result
}
