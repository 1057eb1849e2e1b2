//! What the reader reports once each (names of files it does not read,
//! other queues' keys, segments it cannot read), remembered so it is not
//! reported again, and forgotten once a full scan no longer finds it.
//!
//! Bounded: a directory flooded with junk names must not grow the drain's
//! memory forever. What no scan finds is dropped at the end of each scan,
//! so the set holds at most what the directory held at the last scan plus
//! what appeared since; and at most `cap` entries: past it, new things are
//! not remembered (the caller counts them and says so in one line per
//! scan instead of one per file).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Names of ignored files the reader remembers at most: 4096 names of up
/// to 255 bytes are at most about 1 MiB.
pub(super) const MAX_REMEMBERED: usize = 4096;

/// A set whose entries live while full scans find them.
#[derive(Debug)]
pub(super) struct Remembered<K> {
    /// Each entry and the scan that last found it (or added it).
    items: HashMap<K, u64>,
    scan: u64,
    cap: usize,
}

/// What [`Remembered::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Insert {
    /// New, now remembered: report it.
    New,
    /// Remembered already: reported before.
    Known,
    /// New, but the set is full: not remembered.
    Full,
}

impl<K: Hash + Eq> Remembered<K> {
    /// An empty set of at most `cap` entries.
    pub fn new(cap: usize) -> Remembered<K> {
        Remembered {
            items: HashMap::new(),
            scan: 0,
            cap,
        }
    }

    /// Remembers `item` unless it is known or the set is full.
    pub fn insert(&mut self, item: K) -> Insert {
        if self.items.contains_key(&item) {
            return Insert::Known;
        }
        if self.items.len() >= self.cap {
            return Insert::Full;
        }
        self.items.insert(item, self.scan);
        Insert::New
    }

    /// Whether `item` is remembered.
    pub fn contains<Q: Hash + Eq + ?Sized>(&self, item: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.items.contains_key(item)
    }

    /// Starts a full scan: entries it does not [`Remembered::found`] are
    /// forgotten at [`Remembered::end_scan`].
    pub fn begin_scan(&mut self) {
        self.scan += 1;
    }

    /// The scan found `item` (if remembered, it stays).
    pub fn found<Q: Hash + Eq + ?Sized>(&mut self, item: &Q)
    where
        K: Borrow<Q>,
    {
        if self.items.is_empty() {
            return;
        }
        if let Some(scan) = self.items.get_mut(item) {
            *scan = self.scan;
        }
    }

    /// Ends a full scan: forgets what it did not find.
    pub fn end_scan(&mut self) {
        let scan = self.scan;
        self.items.retain(|_, found| *found == scan);
        if self.items.capacity() > 2 * self.items.len().max(64) {
            self.items.shrink_to_fit();
        }
    }

    /// Entries remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_a_scan_does_not_find_are_forgotten_and_the_cap_holds() {
        let mut set = Remembered::new(3);
        assert_eq!(set.insert("a"), Insert::New);
        assert_eq!(set.insert("a"), Insert::Known);
        assert_eq!(set.insert("b"), Insert::New);
        assert_eq!(set.insert("c"), Insert::New);
        assert_eq!(set.insert("d"), Insert::Full);
        set.begin_scan();
        set.found("b");
        set.found("x");
        assert_eq!(set.insert("e"), Insert::Full);
        set.end_scan();
        assert_eq!(set.len(), 1);
        assert!(set.contains("b") && !set.contains("a"));
        // Added between scans: kept until a scan misses it.
        assert_eq!(set.insert("d"), Insert::New);
        set.begin_scan();
        set.found("d");
        set.end_scan();
        assert!(set.contains("d") && !set.contains("b"));
    }

    /// The reader's side: a directory flooded with junk names, then
    /// emptied.
    #[test]
    fn a_reader_remembers_at_most_max_junk_names_and_forgets_deleted_ones() {
        use crate::spool::{segment_name, Discovery, ReaderOptions, SegmentId, SpoolEvent};
        use std::time::Duration;

        let dir = tempfile::tempdir().unwrap();
        let junk = MAX_REMEMBERED + 904;
        for i in 0..junk {
            std::fs::write(dir.path().join(format!("junk-{i}")), b"").unwrap();
        }
        // Other queues' segments: one report per key, as many keys as names.
        for key in 1..=10 {
            let id = SegmentId {
                producer: 1,
                index: 0,
            };
            std::fs::write(dir.path().join(segment_name(key, id)), b"").unwrap();
        }
        let options = ReaderOptions {
            discovery: Discovery::Poll,
            poll_interval: Duration::ZERO,
            ..ReaderOptions::default()
        };
        let mut reader = crate::spool::SpoolReader::open(dir.path(), 0xbeef, options).unwrap();
        assert_eq!(reader.reported.len(), MAX_REMEMBERED);
        assert_eq!(reader.other_keys.len(), 10);
        let stats = reader.stats();
        assert_eq!(stats.ignored, MAX_REMEMBERED as u64 + 10);
        assert_eq!(stats.unlisted, 904);
        let events = reader.take_events();
        let unlisted: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, SpoolEvent::Unlisted { .. }))
            .collect();
        assert_eq!(unlisted.len(), 1, "{unlisted:?}");
        assert!(
            unlisted[0].to_string().contains("904 more files"),
            "{}",
            unlisted[0]
        );

        // The same flood at the next scan: nothing reported again.
        reader.refresh().unwrap();
        assert!(reader.take_events().is_empty());
        assert_eq!(reader.reported.len(), MAX_REMEMBERED);

        // Deleted: forgotten at the next scan.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        reader.refresh().unwrap();
        assert_eq!(reader.reported.len(), 0);
        assert_eq!(reader.other_keys.len(), 0);
        assert_eq!(reader.stats().unlisted, 0);

        // A new junk name is reported (once) again.
        std::fs::write(dir.path().join("junk-0"), b"").unwrap();
        reader.refresh().unwrap();
        reader.refresh().unwrap();
        assert_eq!(reader.reported.len(), 1);
        assert_eq!(reader.take_events().len(), 1);
    }
}
