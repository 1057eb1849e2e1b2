//! Maps core errors to the Ruby exception classes of `lib/shopify_events/error.rb`.
//!
//! Every class the extension raises is resolved once, when the extension
//! loads ([`init`]): a class missing from `error.rb` (a rename, a typo) makes
//! `require "shopify_events"` fail with a `NameError` naming it, instead of
//! an exception of the wrong class surfacing the first time an error is
//! raised. `ShopifyEvents::Native::EXCEPTION_CLASSES` lists their names.

use std::sync::OnceLock;

use magnus::value::Opaque;
use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};
use shopify_events_core::envelope::{DecodeError, EncodeError};
use shopify_events_core::spool::SpoolError;
use shopify_events_core::transport::SendError;

/// A Ruby exception class of `lib/shopify_events/error.rb`, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    ConfigurationError,
    InvalidTopic,
    PayloadTooLarge,
    DecodeError,
    TransportError,
    QueueFull,
    BufferFull,
    QueueError,
    PermissionDenied,
    QueueNotFound,
    SpoolFull,
    SpoolError,
}

impl Class {
    const ALL: [Class; 12] = [
        Class::ConfigurationError,
        Class::InvalidTopic,
        Class::PayloadTooLarge,
        Class::DecodeError,
        Class::TransportError,
        Class::QueueFull,
        Class::BufferFull,
        Class::QueueError,
        Class::PermissionDenied,
        Class::QueueNotFound,
        Class::SpoolFull,
        Class::SpoolError,
    ];

    /// The constant's name under `ShopifyEvents`.
    fn name(self) -> &'static str {
        match self {
            Class::ConfigurationError => "ConfigurationError",
            Class::InvalidTopic => "InvalidTopic",
            Class::PayloadTooLarge => "PayloadTooLarge",
            Class::DecodeError => "DecodeError",
            Class::TransportError => "TransportError",
            Class::QueueFull => "QueueFull",
            Class::BufferFull => "BufferFull",
            Class::QueueError => "QueueError",
            Class::PermissionDenied => "PermissionDenied",
            Class::QueueNotFound => "QueueNotFound",
            Class::SpoolFull => "SpoolFull",
            Class::SpoolError => "SpoolError",
        }
    }
}

/// The classes of [`Class::ALL`], in that order, once resolved.
static CLASSES: OnceLock<[Opaque<ExceptionClass>; Class::ALL.len()]> = OnceLock::new();

/// Resolves every [`Class`] under `ShopifyEvents` (which `error.rb` defined
/// before the extension was required) and publishes their names as
/// `ShopifyEvents::Native::EXCEPTION_CLASSES`.
pub(crate) fn init(ruby: &Ruby, module: RModule, native: RModule) -> Result<(), Error> {
    let mut resolved = Vec::with_capacity(Class::ALL.len());
    for class in Class::ALL {
        let found: ExceptionClass = module.const_get(class.name()).map_err(|e| {
            Error::new(
                ruby.exception_name_error(),
                format!(
                    "shopify_events: the extension raises ShopifyEvents::{}, which is not an \
                     exception class ({e}); lib/shopify_events/error.rb must define it before \
                     the extension loads",
                    class.name()
                ),
            )
        })?;
        // Constants keep their classes alive; this keeps ours even if one
        // is removed later.
        magnus::gc::register_mark_object(found);
        resolved.push(Opaque::from(found));
    }
    if let Ok(classes) = resolved.try_into() {
        // A second init (never done by Ruby) keeps the first resolution.
        let _ = CLASSES.set(classes);
    }
    let names = ruby.ary_from_iter(Class::ALL.iter().map(|class| class.name()));
    names.freeze();
    native.const_set("EXCEPTION_CLASSES", names)
}

/// An exception of `class` with `message`.
pub(crate) fn raise(ruby: &Ruby, class: Class, message: impl Into<String>) -> Error {
    let index = Class::ALL.iter().position(|c| *c == class);
    let resolved = index.and_then(|i| CLASSES.get().map(|all| ruby.get_inner(all[i])));
    // Always resolved: init fails unless every class is, and no Ruby code
    // runs before init. StandardError keeps even the impossible case from
    // panicking across the FFI boundary.
    let class = resolved.unwrap_or_else(|| ruby.exception_standard_error());
    Error::new(class, message.into())
}

pub(crate) fn type_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_type_error(), message.into())
}

pub(crate) fn arg_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_arg_error(), message.into())
}

pub(crate) fn encode_error(ruby: &Ruby, error: EncodeError) -> Error {
    match error {
        EncodeError::InvalidTopic(e) => raise(ruby, Class::InvalidTopic, e.to_string()),
        other => arg_error(ruby, other.to_string()),
    }
}

pub(crate) fn decode_error(ruby: &Ruby, error: DecodeError) -> Error {
    raise(
        ruby,
        Class::DecodeError,
        format!("malformed envelope: {error}"),
    )
}

/// A transport's failure. The socket transport's full buffer raises
/// `QueueFull` like the sysv queue's (the proxy fills it while the host
/// queue is full); the direct transport's raises `BufferFull`. A spool that
/// is full raises `SpoolFull` (a `QueueFull`), one that cannot be written
/// `SpoolError` (a `QueueError`).
pub(crate) fn send_error(ruby: &Ruby, error: &SendError) -> Error {
    match error {
        SendError::QueueFull { .. } | SendError::SocketBufferFull { .. } => {
            raise(ruby, Class::QueueFull, error.to_string())
        }
        SendError::DirectBufferFull { .. } => raise(ruby, Class::BufferFull, error.to_string()),
        SendError::TooLarge { .. } | SendError::EventTooLarge { .. } => {
            raise(ruby, Class::PayloadTooLarge, error.to_string())
        }
        SendError::Spool { source, .. } => match source {
            SpoolError::RecordTooLarge { .. } => {
                raise(ruby, Class::PayloadTooLarge, error.to_string())
            }
            SpoolError::NotAnEnvelope { .. } => arg_error(ruby, error.to_string()),
            full if full.is_full() => raise(ruby, Class::SpoolFull, error.to_string()),
            _ => raise(ruby, Class::SpoolError, error.to_string()),
        },
        SendError::Queue(e) => queue_error(ruby, e),
        _ => raise(ruby, Class::TransportError, error.to_string()),
    }
}

pub(crate) fn queue_error(ruby: &Ruby, error: &sysvmq::Error) -> Error {
    let class = match error {
        sysvmq::Error::Full { .. } => Class::QueueFull,
        sysvmq::Error::PermissionDenied { .. } => Class::PermissionDenied,
        sysvmq::Error::NotFound { .. } => Class::QueueNotFound,
        _ => Class::QueueError,
    };
    raise(ruby, class, error.to_string())
}

/// A spool operation's failure outside `emit` (opening a reader).
pub(crate) fn spool_error(ruby: &Ruby, error: &SpoolError) -> Error {
    let class = if error.is_full() {
        Class::SpoolFull
    } else {
        Class::SpoolError
    };
    raise(ruby, class, error.to_string())
}
