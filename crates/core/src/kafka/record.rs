//! How an envelope becomes a Kafka record; shared by every producer (the
//! drain and the direct transport) so events are mapped identically.
//!
//! A record carries the event's topic, key (none stays none) and payload,
//! the event's headers in order followed by [`EVENT_ID_HEADER`], and the
//! emit time in milliseconds ([`Envelope::time_ms`](crate::envelope::Envelope::time_ms),
//! which the stdout sink prints too) as its timestamp (CreateTime).

#[cfg(feature = "kafka")]
use rdkafka::message::{Header, OwnedHeaders};
#[cfg(feature = "kafka")]
use rdkafka::producer::BaseRecord;

#[cfg(feature = "kafka")]
use crate::envelope::Envelope;

/// Header carrying the event id (hyphenated UUIDv7, 36 ASCII bytes), so
/// consumers can drop the duplicates at-least-once delivery may produce.
pub const EVENT_ID_HEADER: &str = "event_id";

/// The record for `event`, with `token` as its delivery opaque. `id` holds
/// the hyphenated event id the `event_id` header points into.
#[cfg(feature = "kafka")]
pub(crate) fn record<'a>(
    event: &'a Envelope<'_>,
    id: &'a [u8; 36],
    token: u64,
) -> BaseRecord<'a, [u8], [u8], usize> {
    let mut headers = OwnedHeaders::new_with_capacity(event.headers.len() + 1);
    for (name, value) in event.headers.iter() {
        headers = headers.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    headers = headers.insert(Header {
        key: EVENT_ID_HEADER,
        value: Some(&id[..]),
    });
    let mut record = BaseRecord::with_opaque_to(event.topic, token as usize)
        .payload(event.payload)
        .timestamp(event.time_ms())
        .headers(headers);
    if let Some(key) = event.key {
        record = record.key(key);
    }
    record
}
