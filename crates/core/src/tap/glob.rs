//! Topic globs: `*` matches any run of characters (dots included), `?`
//! one character, anything else itself. Topic names hold only
//! `[a-zA-Z0-9._-]`, so no escaping is needed and a glob with any other
//! character can never match: it is refused, naming the character.

use super::TapError;
use crate::defaults::TAP_MAX_GLOBS;
use crate::topic::MAX_TOPIC_LEN;

/// One glob over topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicGlob {
    text: String,
}

impl TopicGlob {
    /// Checks `text` and returns it as a glob.
    pub fn parse(text: &str) -> Result<TopicGlob, TapError> {
        let bad = |reason: String| TapError::BadGlob {
            glob: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if text.len() > MAX_TOPIC_LEN {
            return Err(bad(format!(
                "{} bytes long; topics have at most {MAX_TOPIC_LEN}",
                text.len()
            )));
        }
        if let Some((index, ch)) = text.char_indices().find(|&(_, c)| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'))
        }) {
            return Err(bad(format!(
                "character {ch:?} at index {index} cannot occur in a topic name \
                 (topics use a-z, A-Z, 0-9, '.', '_' and '-'; '*' and '?' are the wildcards)"
            )));
        }
        Ok(TopicGlob { text: text.into() })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `topic` matches. Linear in practice: the classic wildcard
    /// walk that backtracks only to the last `*`.
    pub fn matches(&self, topic: &str) -> bool {
        let (glob, topic) = (self.text.as_bytes(), topic.as_bytes());
        let (mut g, mut t) = (0, 0);
        // Where the last `*` was, and the topic position it now covers up to.
        let mut star: Option<(usize, usize)> = None;
        while t < topic.len() {
            match glob.get(g) {
                Some(b'*') => {
                    star = Some((g, t));
                    g += 1;
                }
                Some(&c) if c == b'?' || c == topic[t] => {
                    g += 1;
                    t += 1;
                }
                _ => match star {
                    // Let the last `*` take one more character.
                    Some((star_g, star_t)) => {
                        star = Some((star_g, star_t + 1));
                        g = star_g + 1;
                        t = star_t + 1;
                    }
                    None => return false,
                },
            }
        }
        glob[g..].iter().all(|&c| c == b'*')
    }
}

/// The globs of one client: a topic passes if any matches; no globs pass
/// every topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicFilter {
    globs: Vec<TopicGlob>,
}

impl TopicFilter {
    /// Every glob of `texts` checked; the first bad one is the error. At
    /// most [`TAP_MAX_GLOBS`] of them.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<TopicFilter, TapError> {
        if texts.len() > TAP_MAX_GLOBS {
            return Err(TapError::TooManyGlobs {
                count: texts.len(),
                max: TAP_MAX_GLOBS,
            });
        }
        let globs = texts
            .iter()
            .map(|t| TopicGlob::parse(t.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(TopicFilter { globs })
    }

    /// Whether events of `topic` pass.
    pub fn matches(&self, topic: &str) -> bool {
        self.globs.is_empty() || self.globs.iter().any(|g| g.matches(topic))
    }

    /// How many globs (0: every topic passes).
    pub fn len(&self) -> usize {
        self.globs.len()
    }

    /// Whether there are no globs (every topic passes).
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// The globs as written.
    pub fn globs(&self) -> Vec<String> {
        self.globs.iter().map(|g| g.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(glob: &str, topic: &str) -> bool {
        TopicGlob::parse(glob).expect("glob").matches(topic)
    }

    #[test]
    fn star_spans_any_run_dots_included_and_question_mark_one_character() {
        assert!(matches("orders.*", "orders.created"));
        assert!(matches("orders.*", "orders."));
        assert!(!matches("orders.*", "orders"));
        assert!(matches("*", "anything.at.all"));
        assert!(matches("*.created", "shop.orders.created"));
        assert!(!matches("*.created", "shop.orders.created.v2"));
        assert!(matches("*orders*", "shop.orders.created"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("users.v?", "users.v2"));
        assert!(!matches("users.v?", "users.v10"));
        assert!(matches("orders.created", "orders.created"));
        assert!(!matches("orders.created", "orders.created2"));
        assert!(!matches("Orders.created", "orders.created"));
        assert!(matches("**x", "x"));
    }

    #[test]
    fn characters_no_topic_has_are_refused_by_name() {
        let error = TopicGlob::parse("orders/*").unwrap_err().to_string();
        assert!(error.contains("'/'"), "{error}");
        assert!(error.contains("orders/*"), "{error}");
        assert!(TopicGlob::parse("").is_err());
        assert!(TopicGlob::parse(&"a".repeat(250)).is_err());
        assert!(TopicGlob::parse("[ab]").is_err());
    }

    #[test]
    fn no_globs_pass_everything_several_pass_any() {
        let all = TopicFilter::parse::<&str>(&[]).expect("empty");
        assert!(all.matches("x"));
        let some = TopicFilter::parse(&["orders.*", "users.created"]).expect("globs");
        assert!(some.matches("orders.paid"));
        assert!(some.matches("users.created"));
        assert!(!some.matches("users.deleted"));
        assert_eq!(some.globs(), ["orders.*", "users.created"]);
    }
}
