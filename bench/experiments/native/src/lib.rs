//! Benchmark-only prototypes of the cuts issue 13 proposes for the emit
//! path, loaded beside the real extension so that each is measured against
//! the product path and the bare `msgsnd` floor in one process. Nothing here
//! is product code: every entry point sits under `ShopifyEvents::Experiments`,
//! which the gem never loads.
//!
//! - `region { }` brackets what callgrind counts (`--toggle-collect=se_exp_region`);
//! - `msgsnd_only(qid, frame)`: a native method that does nothing but `msgsnd`;
//! - `polluted_floor(...)`: the floor loop with a set amount of user code and
//!   data touched between calls ([`polluted_floor`]);
//! - `Emitter#emit_<variant>`: the product's native emit, copied, with the
//!   cuts of [`cuts`] chosen per variant ([`emitter::VARIANTS`]);
//! - `native_kw_*` / `positional_*`: a module-level native emit
//!   ([`module_emit`]).

mod buffer;
mod cuts;
mod emitter;
mod encode;
mod envelope;
mod errors;
mod id;
/// The lean Hash walk, as the product has it since it was promoted from
/// this prototype (it names the full encoder's depth limit as
/// `crate::json::MAX_DEPTH`).
#[path = "../../../../ext/shopify_events/src/json_lean.rs"]
mod json_lean;
mod json_product;
/// What the product's `json_lean.rs` takes from its `json` module.
mod json {
    pub(crate) use crate::json_product::MAX_DEPTH;
}
mod module_emit;
mod polluted_floor;
mod region;
mod send;
mod topic;

use magnus::{prelude::*, Error, Ruby};

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let experiments = ruby
        .define_module("ShopifyEvents")?
        .define_module("Experiments")?;
    region::init(experiments);
    emitter::init(ruby, experiments)?;
    module_emit::init(ruby, experiments)?;
    Ok(())
}
