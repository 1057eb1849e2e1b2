//! Placeholder: filled in by the transport's implementation.

use magnus::{Error, RModule, Ruby};

pub(crate) fn init(_ruby: &Ruby, _native: RModule) -> Result<(), Error> {
    Ok(())
}
