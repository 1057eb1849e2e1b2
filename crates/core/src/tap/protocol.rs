//! The lines of the tap protocol (the module doc of [`crate::tap`] is the
//! specification): the client's request and the drain's notices.

use serde::{Deserialize, Serialize};

/// The protocol version a request carries.
pub const VERSION: u32 = 1;
/// The longest request line the drain reads, newline included.
pub const MAX_REQUEST: usize = 4096;
/// How every notice line begins; no event line does.
pub const NOTICE_PREFIX: &[u8] = b"{\"tap\":";

/// The client's one line: which protocol, which topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`VERSION`].
    pub tap: u32,
    /// Topic globs; empty for every topic.
    #[serde(default)]
    pub topics: Vec<String>,
}

/// A line from the drain that is not an event. Serialized with `tap`
/// first (`{"tap":"missed","events":3}`), so [`NOTICE_PREFIX`] tells it
/// from an event line without parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tap", rename_all = "lowercase")]
pub enum Notice {
    /// The tap is on: events follow.
    Ready {
        /// The queue key, `0x` and 8 hex digits.
        queue: String,
        /// The drain's pid.
        pid: u32,
        /// The globs in force (empty: every topic).
        topics: Vec<String>,
    },
    /// The drain will not serve this client; it closes the connection.
    Refused {
        /// Why.
        reason: String,
    },
    /// Matching events dropped for this client since its previous line.
    Missed {
        /// How many.
        events: u64,
    },
    /// The last line: the tap is over.
    End {
        /// Why ("the drain stopped").
        reason: String,
    },
}

impl Notice {
    /// The notice as one line, newline included.
    pub fn line(&self) -> Vec<u8> {
        // A derived Serialize of strings and integers cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_begin_with_the_prefix_and_read_back() {
        let notices = [
            Notice::Ready {
                queue: "0x53455600".into(),
                pid: 7,
                topics: vec!["orders.*".into()],
            },
            Notice::Refused {
                reason: "no".into(),
            },
            Notice::Missed { events: 3 },
            Notice::End {
                reason: "the drain stopped".into(),
            },
        ];
        for notice in notices {
            let line = notice.line();
            assert!(line.starts_with(NOTICE_PREFIX), "{line:?}");
            assert_eq!(line.last(), Some(&b'\n'));
            let back: Notice = serde_json::from_slice(&line).expect("parse");
            assert_eq!(back, notice);
        }
        assert_eq!(
            Notice::Missed { events: 3 }.line(),
            b"{\"tap\":\"missed\",\"events\":3}\n"
        );
    }
}
