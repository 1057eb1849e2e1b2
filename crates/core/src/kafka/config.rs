//! The producer's librdkafka configuration: our defaults, then the user's
//! settings unchanged (so TLS and SASL are configured the librdkafka way),
//! and the log level librdkafka runs at.

use std::collections::BTreeMap;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

/// librdkafka settings applied before the user's `kafka.*` keys. They favour
/// not losing or reordering events: `acks=all` and the idempotent producer;
/// lz4 compression and a 5 ms linger for throughput.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    // After two minutes without an ack librdkafka gives the event back to
    // us and we send it again: retried without end, visibly.
    ("message.timeout.ms", "120000"),
];

/// librdkafka's default `message.max.bytes`: the largest record it sends.
pub const MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Builds a producer's configuration: defaults, then `settings` unchanged.
pub fn client_config(settings: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in DEFAULTS {
        config.set(*key, *value);
    }
    for (key, value) in settings {
        config.set(key, value);
    }
    config.set_log_level(log_level(settings));
    config
}

/// How much librdkafka logs: its own `log_level` setting (syslog levels,
/// 0-7) if given, debug when a `debug` setting names contexts, else
/// librdkafka's default, info. rdkafka would otherwise derive it from the
/// `log` crate's (absent) logger and keep only errors.
fn log_level(settings: &BTreeMap<String, String>) -> RDKafkaLogLevel {
    use RDKafkaLogLevel::*;
    match settings.get("log_level").map(|v| v.trim().parse::<u8>()) {
        Some(Ok(0)) => Emerg,
        Some(Ok(1)) => Alert,
        Some(Ok(2)) => Critical,
        Some(Ok(3)) => Error,
        Some(Ok(4)) => Warning,
        Some(Ok(5)) => Notice,
        Some(Ok(6)) => Info,
        Some(Ok(_)) => Debug,
        _ if settings.get("debug").is_some_and(|d| !d.trim().is_empty()) => Debug,
        _ => Info,
    }
}
