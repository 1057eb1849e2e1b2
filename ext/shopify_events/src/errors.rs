//! Maps core errors to the Ruby exception classes of `lib/shopify_events/error.rb`.
//!
//! Classes are looked up by name when an error is raised: raising is the rare
//! path, and a lookup can fall back to `ShopifyEvents::Error` (or
//! `StandardError`) instead of panicking if a class is missing.

use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};
use shopify_events_core::envelope::{DecodeError, EncodeError};
use shopify_events_core::transport::SendError;

/// `ShopifyEvents::<name>`, falling back to `ShopifyEvents::Error`, then `StandardError`.
pub(crate) fn class(ruby: &Ruby, name: &str) -> ExceptionClass {
    let lookup = |name: &str| -> Option<ExceptionClass> {
        let module: RModule = ruby.class_object().const_get("ShopifyEvents").ok()?;
        module.const_get(name).ok()
    };
    lookup(name)
        .or_else(|| lookup("Error"))
        .unwrap_or_else(|| ruby.exception_standard_error())
}

pub(crate) fn raise(ruby: &Ruby, name: &str, message: impl Into<String>) -> Error {
    Error::new(class(ruby, name), message.into())
}

pub(crate) fn type_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_type_error(), message.into())
}

pub(crate) fn arg_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_arg_error(), message.into())
}

pub(crate) fn encode_error(ruby: &Ruby, error: EncodeError) -> Error {
    match error {
        EncodeError::InvalidTopic(e) => raise(ruby, "InvalidTopic", e.to_string()),
        other => arg_error(ruby, other.to_string()),
    }
}

pub(crate) fn decode_error(ruby: &Ruby, error: DecodeError) -> Error {
    raise(ruby, "DecodeError", format!("malformed envelope: {error}"))
}

/// A transport's failure. The socket transport's full buffer raises
/// `QueueFull` like the sysv queue's (the proxy fills it while the host
/// queue is full); the direct transport's raises `BufferFull`.
pub(crate) fn send_error(ruby: &Ruby, error: &SendError) -> Error {
    match error {
        SendError::QueueFull { .. } | SendError::SocketBufferFull { .. } => {
            raise(ruby, "QueueFull", error.to_string())
        }
        SendError::DirectBufferFull { .. } => raise(ruby, "BufferFull", error.to_string()),
        SendError::TooLarge { .. } => raise(ruby, "PayloadTooLarge", error.to_string()),
        SendError::Queue(e) => queue_error(ruby, e),
        _ => raise(ruby, "TransportError", error.to_string()),
    }
}

pub(crate) fn queue_error(ruby: &Ruby, error: &sysvmq::Error) -> Error {
    let name = match error {
        sysvmq::Error::Full { .. } => "QueueFull",
        sysvmq::Error::PermissionDenied { .. } => "PermissionDenied",
        sysvmq::Error::NotFound { .. } => "QueueNotFound",
        _ => "QueueError",
    };
    raise(ruby, name, error.to_string())
}
