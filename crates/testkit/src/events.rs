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
