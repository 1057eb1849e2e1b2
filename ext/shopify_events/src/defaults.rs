//! `ShopifyEvents::Native::DEFAULTS`: the core's defaults
//! (`shopify_events_core::defaults`) as a frozen Hash with Symbol keys, so
//! the Ruby configuration takes its defaults from the one place the drain,
//! the proxy and the transports take theirs. Durations are Float seconds.

use magnus::{prelude::*, Error, IntoValue, RModule, Ruby};
use shopify_events_core::defaults as d;

pub(crate) fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    let text = |s: &str| {
        let s = ruby.str_new(s);
        s.freeze();
        s
    };
    let pairs: [(&str, magnus::Value); 14] = [
        ("queue_key", (d::QUEUE_KEY as u32).into_value_with(ruby)),
        ("queue_permissions", d::QUEUE_MODE.into_value_with(ruby)),
        ("state_dir", text(d::STATE_DIR).as_value()),
        ("spool_dir", text(d::SPOOL_DIR).as_value()),
        ("spool_sync", text(d::SPOOL_SYNC_TEXT).as_value()),
        ("max_event_bytes", d::MAX_EVENT_BYTES.into_value_with(ruby)),
        ("max_in_flight", d::MAX_IN_FLIGHT.into_value_with(ruby)),
        ("journal_size", d::JOURNAL_SIZE.into_value_with(ruby)),
        (
            "shutdown_timeout",
            d::SHUTDOWN_TIMEOUT.as_secs_f64().into_value_with(ruby),
        ),
        ("metrics_addr", text(d::METRICS_ADDR).as_value()),
        (
            "flush_timeout",
            d::FLUSH_TIMEOUT.as_secs_f64().into_value_with(ruby),
        ),
        ("direct_buffer", d::DIRECT_BUFFER.into_value_with(ruby)),
        (
            "socket_max_buffered_events",
            d::SOCKET_MAX_BUFFERED_EVENTS.into_value_with(ruby),
        ),
        (
            "socket_max_buffered_bytes",
            d::SOCKET_MAX_BUFFERED_BYTES.into_value_with(ruby),
        ),
    ];
    let hash = ruby.hash_new();
    for (name, value) in pairs {
        hash.aset(ruby.to_symbol(name), value)?;
    }
    hash.freeze();
    native.const_set("DEFAULTS", hash)
}
