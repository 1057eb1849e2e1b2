//! [`SeenWindow`]: which sequence numbers above a producer's watermark were
//! seen, one bit each.

use std::collections::VecDeque;

/// A bitmap over `[base, base + 64 × words)`, `base` a multiple of 64.
/// Empty (no words) while a producer's numbers arrive in order: it only
/// grows when a number arrives ahead of a missing one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SeenWindow {
    base: u64,
    words: VecDeque<u64>,
}

/// Windows at most this many words keep their allocation when emptied.
const KEEP_WORDS: usize = 4;

impl SeenWindow {
    /// A window from its saved parts; `base` must be a multiple of 64.
    pub(super) fn from_parts(base: u64, words: Vec<u64>) -> SeenWindow {
        SeenWindow {
            base,
            words: words.into(),
        }
    }

    /// The first number it covers (a multiple of 64).
    pub(super) fn base(&self) -> u64 {
        self.base
    }

    /// Its words, lowest numbers first.
    pub(super) fn words(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.words.iter().copied()
    }

    /// Words it holds: what it costs, in units of 8 bytes.
    pub(super) fn len_words(&self) -> usize {
        self.words.len()
    }

    /// Words that covering `seq` would take (at least the current ones).
    pub(super) fn words_to_cover(&self, next: u64, seq: u64) -> usize {
        let base = if self.words.is_empty() {
            next & !63
        } else {
            self.base
        };
        (((seq - base) / 64) as usize + 1).max(self.words.len())
    }

    /// Whether `seq` (at least the watermark) was seen.
    pub(super) fn get(&self, seq: u64) -> bool {
        let Some(offset) = seq.checked_sub(self.base) else {
            return false;
        };
        let index = (offset / 64) as usize;
        self.words
            .get(index)
            .is_some_and(|w| w & (1 << (offset % 64)) != 0)
    }

    /// Marks `seq` seen; `next` is the watermark (`seq ≥ next`), where an
    /// empty window starts. Returns whether it was seen already.
    pub(super) fn set(&mut self, next: u64, seq: u64) -> bool {
        if self.words.is_empty() {
            self.base = next & !63;
        }
        let offset = seq - self.base;
        let index = (offset / 64) as usize;
        if index >= self.words.len() {
            self.words.resize(index + 1, 0);
        }
        let bit = 1 << (offset % 64);
        let word = &mut self.words[index];
        let was = *word & bit != 0;
        *word |= bit;
        was
    }

    /// Forgets every number below `next`.
    pub(super) fn drop_below(&mut self, next: u64) {
        while !self.words.is_empty() && self.base + 64 <= next {
            self.words.pop_front();
            self.base += 64;
        }
        if self.words.is_empty() {
            self.clear();
        }
    }

    /// The first number from `from` (inclusive) below `to` that was seen, if any.
    pub(super) fn next_seen(&self, from: u64, to: u64) -> Option<u64> {
        let mut seq = from.max(self.base);
        while seq < to {
            let offset = seq - self.base;
            let word = *self.words.get((offset / 64) as usize)?;
            let masked = word >> (offset % 64);
            if masked != 0 {
                let found = seq + u64::from(masked.trailing_zeros());
                return (found < to).then_some(found);
            }
            seq = (seq | 63) + 1;
        }
        None
    }

    /// The first number from `from` below `to` that was not seen, if any.
    pub(super) fn next_missing(&self, from: u64, to: u64) -> Option<u64> {
        let mut seq = from;
        while seq < to {
            let Some(offset) = seq.checked_sub(self.base) else {
                return Some(seq);
            };
            let Some(&word) = self.words.get((offset / 64) as usize) else {
                return Some(seq);
            };
            let masked = !word >> (offset % 64);
            if masked != 0 {
                let found = seq + u64::from(masked.trailing_zeros());
                return (found < to).then_some(found);
            }
            seq = (seq | 63) + 1;
        }
        None
    }

    /// Empties the window, releasing a large allocation.
    pub(super) fn clear(&mut self) {
        if self.words.capacity() > KEEP_WORDS {
            self.words = VecDeque::new();
        } else {
            self.words.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_scan_across_words() {
        let mut w = SeenWindow::default();
        assert!(!w.set(70, 75));
        assert!(w.set(70, 75), "seen twice");
        assert!(!w.set(70, 200));
        assert_eq!(w.base(), 64);
        assert_eq!(w.len_words(), 3);
        assert!(w.get(75) && w.get(200) && !w.get(76) && !w.get(10));
        assert_eq!(w.next_seen(70, 300), Some(75));
        assert_eq!(w.next_seen(76, 300), Some(200));
        assert_eq!(w.next_seen(76, 200), None);
        assert_eq!(w.next_missing(75, 300), Some(76));
        assert_eq!(w.next_missing(200, 201), None);
        assert_eq!(w.next_missing(200, 300), Some(201));
        w.drop_below(130);
        assert_eq!(w.base(), 128);
        assert!(w.get(200));
        w.drop_below(256);
        assert_eq!(w.len_words(), 0);
        assert_eq!(w.words_to_cover(300, 300 + 64 * 3), 4);
    }
}
