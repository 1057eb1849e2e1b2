//! Which producer failures are final: an unknown topic, a record too large
//! or a missing authorization can never succeed (the drain dead-letters the
//! event, the direct transport counts it failed); anything else (brokers
//! down, timeouts, leader moves) is retried.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::sink::{Outcome, Rejected};

/// Whether a producer error means the event can never be delivered.
pub fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        UnknownTopicOrPartition
            | UnknownTopic
            | UnknownPartition
            | MessageSizeTooLarge
            | InvalidMessageSize
            | InvalidTopic
            | TopicAuthorizationFailed
            | ClusterAuthorizationFailed
            | InvalidRecord
            | InvalidTimestamp
            | PolicyViolation
            | UnsupportedForMessageFormat
    )
}

/// What a failed delivery report means.
pub(super) fn outcome(error: &KafkaError) -> Outcome {
    match error.rdkafka_error_code() {
        Some(code) if is_permanent(code) => Outcome::Permanent(error.to_string()),
        _ => Outcome::Retry(error.to_string()),
    }
}

/// What a refused `send` means: permanent, or no room until the next poll
/// (QueueFull and other local refusals).
pub(super) fn rejection(error: &KafkaError) -> Rejected {
    match error.rdkafka_error_code() {
        Some(code) if is_permanent(code) => Rejected::Permanent(error.to_string()),
        _ => Rejected::Full,
    }
}
