//! Handing the frame to the queue: the product's `SysvEmitter::try_send`
//! (queue id from an atomic, both size checks, the mtype check, `msgsnd`,
//! an atomic counter).

use shopify_events_core::emitter::{SendError, SysvEmitter};

use crate::cuts::{has, NO_SEND};

/// Sends one frame (mtype prefix + envelope).
#[inline(always)]
pub(crate) fn send<const CUTS: u32>(emitter: &SysvEmitter, frame: &[u8]) -> Result<(), SendError> {
    if has(CUTS, NO_SEND) {
        return Ok(());
    }
    emitter.try_send(frame)
}
