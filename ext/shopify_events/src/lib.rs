//! `shopify_events` native extension: a thin magnus skin over
//! `shopify-events-core`. It converts Ruby arguments, calls the core and maps
//! each core error to its own Ruby exception class (defined in
//! `lib/shopify_events/error.rb`, which is loaded before this library, and
//! resolved once when it loads: see `errors.rs`).
//!
//! Everything lives under `ShopifyEvents::Native`; the Ruby API in `lib/`
//! is the public surface.

mod bench;
mod codec;
mod defaults;
mod direct_emitter;
mod emit;
mod errors;
mod event;
mod json;
mod json_lean;
mod nogvl;
mod queue;
mod socket_emitter;
mod spool_emitter;
mod spool_options;
mod spool_reader;
mod sysv_emitter;

use magnus::{prelude::*, Error, Ruby};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let module = ruby.define_module("ShopifyEvents")?;
    let native = module.define_module("Native")?;
    errors::init(ruby, module, native)?;
    defaults::init(ruby, native)?;
    codec::init(ruby, native)?;
    sysv_emitter::init(ruby, native)?;
    socket_emitter::init(ruby, native)?;
    direct_emitter::init(ruby, native)?;
    spool_options::init(ruby, native)?;
    spool_emitter::init(ruby, native)?;
    spool_reader::init(ruby, native)?;
    queue::init(ruby, native)?;
    bench::init(ruby, native)?;
    Ok(())
}
