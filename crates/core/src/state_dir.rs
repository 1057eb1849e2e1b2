//! The drain's state directory: which files it holds, under which names,
//! and how they are created.
//!
//! One drain per queue keeps its state in one directory (default
//! [`defaults::STATE_DIR`](crate::defaults::STATE_DIR)); several drains (one
//! per queue key) may share it, since every name but the dead-letter file's
//! carries the key as 8 hex digits:
//!
//! | file | written by | what it is |
//! |------|------------|------------|
//! | `journal-KEY.bin` | the drain's receiving thread | the memory-mapped journal ([`crate::drain::journal`]) |
//! | `drain-KEY.lock` | the drain, at start | one drain per queue: an `flock` held for life, and the pid |
//! | `drain-KEY.json` | the drain, every second | the stats snapshot `shopify-events stats` reads ([`crate::ops::DrainSnapshot`]) |
//! | `.drain-KEY.json.PID.tmp` | the drain | the next snapshot, renamed over `drain-KEY.json` |
//! | `dead-letters.jsonl` | the drain | events Kafka will never take; in `dead_letter_dir` if one is configured |
//! | `proxy-KEY.json` | the proxy, every second | its stats snapshot for `shopify-events top` ([`crate::ops::ProxySnapshot`]); in the proxy's own directory ([`defaults::RUN_DIR`](crate::defaults::RUN_DIR)) |
//! | `.proxy-KEY.json.PID.tmp` | the proxy | the next snapshot, renamed over `proxy-KEY.json` |
//! | `accounting-KEY.bin` | the drain, about every second and at shutdown | the loss accounting's state ([`crate::accounting::StateFile`]) |
//! | `.accounting-KEY.bin.PID.tmp` | the drain | the next state, renamed over `accounting-KEY.bin` |
//! | `accounting-KEY.bin.damaged` | the drain, at start | a state file found damaged, kept for the operator |
//! | `dead-letters.jsonl.N` | the drain | rotated dead-letter files, 1 the newest |
//! | `saved/` | the drain, at shutdown | its saved spool: the queue taken at stop, spool segments of the queue's key |
//!
//! What comes next (a tap socket) gets its name here too, so that this
//! table stays the whole list.
//!
//! Every file is created by [`create_file`], so the permissions of state
//! files are decided in one place. Today they are the process's: mode 0666
//! less its umask.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use sysvmq::Key;

/// The state directory of the drain of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
    key: Key,
    dead_letter_dir: PathBuf,
}

impl StateDir {
    /// The state of queue `key` in `root`, dead letters included.
    pub fn new(root: impl Into<PathBuf>, key: Key) -> StateDir {
        let root = root.into();
        StateDir {
            dead_letter_dir: root.clone(),
            root,
            key,
        }
    }

    /// The same, with the dead-letter file in `dir` instead.
    pub fn with_dead_letter_dir(mut self, dir: impl Into<PathBuf>) -> StateDir {
        self.dead_letter_dir = dir.into();
        self
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The queue whose state this is.
    pub fn key(&self) -> Key {
        self.key
    }

    /// Where the dead-letter file is.
    pub fn dead_letter_dir(&self) -> &Path {
        &self.dead_letter_dir
    }

    /// Creates the directory if missing.
    pub fn create(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.root)
    }

    /// `journal-KEY.bin`: the drain's journal.
    pub fn journal(&self) -> PathBuf {
        self.keyed("journal-", ".bin")
    }

    /// `drain-KEY.lock`: held by the one drain of the queue.
    pub fn drain_lock(&self) -> PathBuf {
        self.keyed("drain-", ".lock")
    }

    /// `drain-KEY.json`: the running drain's stats snapshot.
    pub fn stats_snapshot(&self) -> PathBuf {
        self.keyed("drain-", ".json")
    }

    /// `.drain-KEY.json.PID.tmp`: where this process writes the next
    /// snapshot before renaming it over [`StateDir::stats_snapshot`].
    pub fn stats_snapshot_tmp(&self) -> PathBuf {
        self.root.join(format!(
            ".drain-{:08x}.json.{}.tmp",
            self.key as u32,
            std::process::id()
        ))
    }

    /// `proxy-KEY.json`: the running proxy's stats snapshot (in the
    /// directory the proxy is given, [`defaults::RUN_DIR`](crate::defaults::RUN_DIR)
    /// by default).
    pub fn proxy_snapshot(&self) -> PathBuf {
        self.keyed("proxy-", ".json")
    }

    /// `.proxy-KEY.json.PID.tmp`: where this process writes the proxy's
    /// next snapshot before renaming it over [`StateDir::proxy_snapshot`].
    pub fn proxy_snapshot_tmp(&self) -> PathBuf {
        self.root.join(format!(
            ".proxy-{:08x}.json.{}.tmp",
            self.key as u32,
            std::process::id()
        ))
    }

    /// `accounting-KEY.bin`: the loss accounting's state.
    pub fn accounting(&self) -> PathBuf {
        self.keyed("accounting-", ".bin")
    }

    /// `.accounting-KEY.bin.PID.tmp`: where this process writes the next
    /// accounting state before renaming it over [`StateDir::accounting`].
    pub fn accounting_tmp(&self) -> PathBuf {
        self.root.join(format!(
            ".accounting-{:08x}.bin.{}.tmp",
            self.key as u32,
            std::process::id()
        ))
    }

    /// `accounting-KEY.bin.damaged`: a damaged accounting state, set aside.
    pub fn accounting_damaged(&self) -> PathBuf {
        self.keyed("accounting-", ".bin.damaged")
    }

    /// `dead-letters.jsonl`, in the dead-letter directory.
    pub fn dead_letters(&self) -> PathBuf {
        self.dead_letter_dir.join("dead-letters.jsonl")
    }

    /// `dead-letters.jsonl.N`: the `n`th rotated dead-letter file (1 the
    /// newest).
    pub fn dead_letters_rotated(&self, n: usize) -> PathBuf {
        self.dead_letter_dir.join(format!("dead-letters.jsonl.{n}"))
    }

    /// `saved/`: the drain's saved spool, where it moves what is left in
    /// the queue at shutdown (`save_on_stop`).
    pub fn saved_spool(&self) -> PathBuf {
        self.root.join("saved")
    }

    fn keyed(&self, prefix: &str, suffix: &str) -> PathBuf {
        self.root
            .join(format!("{prefix}{:08x}{suffix}", self.key as u32))
    }
}

/// How a state file is opened by [`create_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and written in place, never truncated (the journal, the lock).
    ReadWrite,
    /// Appended to (the dead-letter file).
    Append,
    /// Written from the start, replacing what was there (a snapshot's
    /// temp file).
    Replace,
}

/// Opens the state file at `path`, creating it if missing. Every file of
/// the state directory is created here.
pub fn create_file(path: &Path, access: Access) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true);
    match access {
        Access::ReadWrite => options.read(true).write(true).truncate(false),
        Access::Append => options.append(true),
        Access::Replace => options.write(true).truncate(true),
    };
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_key_in_eight_hex_digits() {
        let state = StateDir::new("/s", 0x5345_5600);
        assert_eq!(state.journal(), Path::new("/s/journal-53455600.bin"));
        assert_eq!(state.drain_lock(), Path::new("/s/drain-53455600.lock"));
        assert_eq!(state.stats_snapshot(), Path::new("/s/drain-53455600.json"));
        assert_eq!(state.dead_letters(), Path::new("/s/dead-letters.jsonl"));
        assert_eq!(state.proxy_snapshot(), Path::new("/s/proxy-53455600.json"));
        assert_eq!(state.accounting(), Path::new("/s/accounting-53455600.bin"));
        assert_eq!(
            state.accounting_damaged(),
            Path::new("/s/accounting-53455600.bin.damaged")
        );
        let negative = StateDir::new("/s", -1).with_dead_letter_dir("/d");
        assert_eq!(negative.journal(), Path::new("/s/journal-ffffffff.bin"));
        assert_eq!(negative.dead_letters(), Path::new("/d/dead-letters.jsonl"));
    }
}
