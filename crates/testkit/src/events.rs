//! Events as the emitting side writes them into a SysV queue.

use shopify_events_core::clock::now_micros;
use shopify_events_core::envelope;
use shopify_events_core::event_id::EventId;
use shopify_events_core::transport::{FrameSink, SysvEmitter};

/// Builds one queue frame (the sysv transport's message-type prefix, then
/// an envelope emitted now) into `frame`; returns the event's id,
/// hyphenated as in the `event_id` header.
pub fn event_frame(
    frame: &mut Vec<u8>,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
) -> [u8; 36] {
    // The prefix does not depend on the queue: no queue is opened.
    SysvEmitter::new(0, 0).begin_frame(frame);
    let time_us = now_micros();
    let id = EventId::generate(time_us);
    envelope::encode(frame, id, time_us, topic, key, &[], payload).expect("encode envelope");
    id.hyphenated()
}

/// `envelope` as the client encoded it, before a transport numbered it: the
/// stamp (producer id, sequence) cleared and the CRC sealed again. A
/// version 1 or unstamped envelope comes back unchanged. For tests that
/// compare what arrived with what they encoded.
pub fn unstamp(envelope: &[u8]) -> Vec<u8> {
    use shopify_events_core::envelope::{stampable, CRC_LEN, STAMP_LEN, STAMP_OFFSET};
    let mut out = envelope.to_vec();
    if !stampable(&out) || out.len() < STAMP_OFFSET + STAMP_LEN + CRC_LEN {
        return out;
    }
    let body_len = out.len() - CRC_LEN;
    out[STAMP_OFFSET..STAMP_OFFSET + STAMP_LEN].fill(0);
    let crc = crc32c::crc32c(&out[..body_len]);
    out[body_len..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// [`unstamp`] of each.
pub fn unstamped(envelopes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    envelopes.iter().map(|e| unstamp(e)).collect()
}
