//! Exceptions for the prototypes: the standard classes, and the product's
//! where a prototype reports what the product reports.

use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

/// `ShopifyEvents::<name>`, or `StandardError` if it is missing.
pub(crate) fn raise(ruby: &Ruby, name: &str, message: impl Into<String>) -> Error {
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("ShopifyEvents")
        .and_then(|m| m.const_get::<_, ExceptionClass>(name))
        .unwrap_or_else(|_| ruby.exception_standard_error());
    Error::new(class, message.into())
}

pub(crate) fn type_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_type_error(), message.into())
}

pub(crate) fn arg_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_arg_error(), message.into())
}
