//! The producer's librdkafka context: collects delivery outcomes while
//! librdkafka serves callbacks inside `poll`, notices when every broker is
//! down, and forwards librdkafka's log lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use super::classify::outcome;
use super::log::{KafkaLog, LogLevel};
use crate::sink::{Delivery, Outcome};

/// Collects delivery outcomes while librdkafka serves callbacks in `poll`.
pub(super) struct Context {
    pub(super) outcomes: Mutex<Vec<Delivery>>,
    pub(super) all_brokers_down: AtomicBool,
    pub(super) log: Arc<dyn KafkaLog>,
}

impl Context {
    pub(super) fn new(log: Arc<dyn KafkaLog>) -> Context {
        Context {
            outcomes: Mutex::new(Vec::new()),
            all_brokers_down: AtomicBool::new(false),
            log,
        }
    }

    /// Moves the outcomes collected so far into `out`.
    pub(super) fn take_outcomes(&self, out: &mut Vec<Delivery>) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            out.append(&mut outcomes);
        }
    }
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.all_brokers_down.store(true, Ordering::Relaxed);
        }
        self.log
            .log(LogLevel::Error, format!("kafka: {error}: {reason}"));
    }

    /// librdkafka's log lines (warnings and notices, and debug lines when
    /// the `debug` setting asks for them). Errors come through `error`
    /// above: librdkafka reports them to both, so they are logged once.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let level = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => return,
            RDKafkaLogLevel::Warning => LogLevel::Warn,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => LogLevel::Info,
            RDKafkaLogLevel::Debug => LogLevel::Debug,
        };
        self.log.log(level, format!("kafka {facility}: {message}"));
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        let outcome = match result {
            Ok(_) => {
                self.all_brokers_down.store(false, Ordering::Relaxed);
                Outcome::Delivered
            }
            Err((error, _)) => outcome(error),
        };
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.push(Delivery {
                token: token as u64,
                outcome,
            });
        }
    }
}
