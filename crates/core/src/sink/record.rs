//! How an envelope becomes a Kafka record; shared by every producer so the
//! drain and (later) the in-process direct mode map events identically.

/// Header carrying the event id (hyphenated UUIDv7, 36 ASCII bytes), so
/// consumers can drop the duplicates at-least-once delivery may produce.
pub const EVENT_ID_HEADER: &str = "event_id";

/// The Kafka timestamp of an event: its emit time in milliseconds, so an
/// event that waited in the queue keeps its real time.
pub fn timestamp_ms(time_us: i64) -> i64 {
    time_us.div_euclid(1000)
}
