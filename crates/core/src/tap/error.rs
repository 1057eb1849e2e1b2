//! What can go wrong when tapping.

use std::path::PathBuf;

/// Why a tap could not start or ended abnormally (client side, and the
/// glob checks both sides make).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TapError {
    /// A topic glob that can never match a topic.
    #[error("--topic {glob:?} is not a topic glob: {reason}")]
    BadGlob {
        /// The glob as given.
        glob: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More globs than a drain matches for one client.
    #[error("{count} topic globs given; a tap takes at most {max} (the drain matches each against every event's topic): use wider globs")]
    TooManyGlobs {
        /// How many were given.
        count: usize,
        /// [`TAP_MAX_GLOBS`](crate::defaults::TAP_MAX_GLOBS).
        max: usize,
    },
    /// No drain listens on the socket.
    #[error("no drain serves taps at {path} ({error}); is `shopify-events drain` running with this --state-dir and --queue-key?")]
    NotServing {
        /// The socket's path.
        path: PathBuf,
        /// What connecting said.
        error: std::io::Error,
    },
    /// The socket's mode keeps this user out.
    #[error("not allowed to connect to {path}: tapping shows every payload, so only root and the drain's own user may (sudo shopify-events tap, or sudo -u <drain user>)")]
    PermissionDenied {
        /// The socket's path.
        path: PathBuf,
    },
    /// The drain refused the tap.
    #[error("the drain refused the tap: {reason}")]
    Refused {
        /// Its reason.
        reason: String,
    },
    /// The drain sent something that is not the tap protocol.
    #[error("unexpected answer from the drain: {what}")]
    Protocol {
        /// What was wrong.
        what: String,
    },
    /// The connection ended without the drain's end notice.
    #[error(
        "lost the connection to the drain without an end notice (the drain was killed or crashed?)"
    )]
    Lost,
    /// Reading from or writing to the socket failed.
    #[error("{what}: {error}")]
    Io {
        /// What the client was doing.
        what: String,
        /// Why it failed (part of the message, not a separate cause, so
        /// that a chain of causes does not print it twice).
        error: std::io::Error,
    },
}
