//! Zero-copy view over an envelope's headers.

use super::cursor::Cursor;
use super::error::DecodeError;

/// The headers of a decoded envelope, borrowed from its bytes. Cheap to copy;
/// iterating parses the (already validated) bytes again rather than
/// allocating a list at decode time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Headers<'a> {
    /// The header entries, without the leading count.
    bytes: &'a [u8],
    count: u16,
}

impl<'a> Headers<'a> {
    /// Reads and validates `count` headers from `cur`.
    pub(super) fn parse(cur: &mut Cursor<'a>, all: &'a [u8]) -> Result<Self, DecodeError> {
        let count = cur.u16("header count")?;
        let start = cur.pos();
        for index in 0..usize::from(count) {
            let name_len = usize::from(cur.u16("header name length")?);
            let name = cur.get(name_len, "header name")?;
            if std::str::from_utf8(name).is_err() {
                return Err(DecodeError::HeaderNameNotUtf8 { index });
            }
            cur.u32_prefixed("header value length", "header value")?;
        }
        let bytes = all.get(start..cur.pos()).unwrap_or_default();
        Ok(Headers { bytes, count })
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in envelope order, as (name, value).
    pub fn iter(&self) -> HeadersIter<'a> {
        HeadersIter {
            cur: Cursor::new(self.bytes, 0),
            left: self.count,
        }
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> HeadersIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> HeadersIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Headers`].
pub struct HeadersIter<'a> {
    cur: Cursor<'a>,
    left: u16,
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // The bytes were validated by `parse`; ending early instead of
        // panicking keeps this sound even if that ever changed.
        let name_len = usize::from(self.cur.u16("").ok()?);
        let name = std::str::from_utf8(self.cur.get(name_len, "").ok()?).ok()?;
        let value = self.cur.u32_prefixed("", "").ok()?;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}
