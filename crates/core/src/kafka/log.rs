//! Where a Kafka producer's log lines go: librdkafka's errors, warnings,
//! notices and (when asked) debug lines, and the sink's own notices.

/// How bad a logged condition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// librdkafka's debug lines (only with the `debug` setting).
    Debug,
    /// librdkafka's notices (a connection closed after idling, ...).
    Info,
    /// Something the sink recovers from by itself (a rebuilt producer,
    /// librdkafka's warnings).
    Warn,
    /// An error librdkafka reported (brokers down, authentication, ...).
    Error,
}

/// Where a sink's librdkafka errors and its own notices go: stderr for the
/// drain, the app's logger for the direct transport. Called from
/// librdkafka's threads and from the one polling the sink.
pub trait KafkaLog: Send + Sync {
    /// Records one line (without a trailing newline).
    fn log(&self, level: LogLevel, message: String);
}

/// Writes each line to stderr after a prefix naming the component.
#[derive(Debug, Clone, Copy)]
pub struct StderrLog(pub &'static str);

impl KafkaLog for StderrLog {
    fn log(&self, _level: LogLevel, message: String) {
        eprintln!("{}: {message}", self.0);
    }
}
