//! Numbering at acceptance: every transport that feeds the drain stamps
//! the envelope it sends with its [`Sequencer`]'s next number, under the
//! sequencer held across the non-blocking send, and keeps the number only
//! if the send succeeded (see [`crate::sequence`] and
//! [`crate::accounting`]). A dropped event never consumes a number, so a
//! missing number at the drain is always an event that was accepted and
//! then lost.
//!
//! The stamp is written into the caller's frame buffer, after the
//! transport's prefix, and the envelope's CRC sealed again: one CRC32C
//! over the envelope, the main cost of numbering. A version 1 envelope
//! (`send_envelope` of a row written before the stamp) has no room for a
//! stamp: it goes unnumbered and the drain counts it as unaccounted.

use super::SendError;
use crate::envelope;
use crate::sequence::Sequencer;

/// Stamps the envelope in `frame` (after `prefix` bytes) with the next
/// number of `sequencer` and sends the frame with `send`; the number is
/// kept only if `send` succeeded.
#[inline]
pub(crate) fn send_numbered(
    sequencer: &Sequencer,
    frame: &mut [u8],
    prefix: usize,
    send: impl FnOnce(&[u8]) -> Result<(), SendError>,
) -> Result<(), SendError> {
    let Some(envelope) = frame.get(prefix..) else {
        return Err(SendError::NoPrefix {
            len: frame.len(),
            prefix,
        });
    };
    if !envelope::stampable(envelope) {
        return send(frame);
    }
    sequencer.sequenced(|stamp| {
        envelope::stamp(&mut frame[prefix..], stamp)
            .map_err(|source| SendError::Stamp { source })?;
        send(frame)
    })
}
