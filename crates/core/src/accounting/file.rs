//! [`StateFile`]: the tracker's state on disk, saved atomically and loaded
//! with damage kept as data.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::format::{decode, encode, Unreadable};
use super::tracker::Tracker;
use super::TrackerConfig;
use crate::state_dir::{create_file, Access, StateDir};

/// Why the state could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountingError {
    /// Writing the temporary file or renaming it into place failed.
    #[error("accounting state {}: {source}; check that the state directory exists, is writable and has space", path.display())]
    Save {
        /// The file being written.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// Bytes of a state file that could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where they start in the file.
    pub offset: u64,
    /// How many bytes were skipped.
    pub len: u64,
    /// What was wrong.
    pub reason: String,
}

/// What [`StateFile::load`] found, for the drain to log (damage loudly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The state file.
    pub path: PathBuf,
    /// Whether there was one (no file: a fresh start, not damage).
    pub found: bool,
    /// Producers read from it.
    pub producers: usize,
    /// Producers its header announced, if the header was intact.
    pub expected: Option<u64>,
    /// Why the whole file was not read (an I/O error, another version).
    pub unreadable: Option<String>,
    /// Why its header was not used (its counters then restart at 0).
    pub header: Option<String>,
    /// Damaged spans skipped between records.
    pub damage: Vec<Damage>,
    /// Where the damaged file was kept for the operator.
    pub set_aside: Option<PathBuf>,
}

impl LoadReport {
    /// Whether anything was lost: the drain reports it loudly.
    pub fn is_damaged(&self) -> bool {
        self.unreadable.is_some()
            || self.header.is_some()
            || !self.damage.is_empty()
            || self.expected.is_some_and(|n| n != self.producers as u64)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        if !self.found {
            return write!(
                f,
                "accounting state {path}: none yet, accounting starts now"
            );
        }
        if let Some(why) = &self.unreadable {
            write!(
                f,
                "accounting state {path} unreadable ({why}); accounting starts over"
            )?;
        } else {
            write!(f, "accounting state {path}: {} producers", self.producers)?;
            if let Some(expected) = self.expected.filter(|&n| n != self.producers as u64) {
                write!(f, " of {expected}")?;
            }
            if let Some(why) = &self.header {
                write!(f, "; header damaged ({why}), counters restart at 0")?;
            }
            for d in &self.damage {
                write!(
                    f,
                    "; {} bytes damaged at offset {}: {}",
                    d.len, d.offset, d.reason
                )?;
            }
            if self.is_damaged() {
                write!(
                    f,
                    "; producers lost with the damage join late when seen again"
                )?;
            }
        }
        if let Some(kept) = &self.set_aside {
            write!(f, "; the file is kept as {}", kept.display())?;
        }
        Ok(())
    }
}

/// The tracker's state file, `accounting-KEY.bin` in the state directory:
/// see the [module docs](super) for the format and the damage rules.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    tmp: PathBuf,
    damaged: PathBuf,
    buf: Vec<u8>,
}

impl StateFile {
    /// The state file of the drain of `state`'s queue.
    pub fn new(state: &StateDir) -> StateFile {
        StateFile {
            path: state.accounting(),
            tmp: state.accounting_tmp(),
            damaged: state.accounting_damaged(),
            buf: Vec::new(),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state, or starts afresh at `now` (Unix ms) if there is
    /// none; keeps what it can of a damaged file, sets the file aside and
    /// counts the damage. Never fails: the report says what happened.
    pub fn load(&self, config: &TrackerConfig, now: u64) -> (Tracker, LoadReport) {
        let mut report = LoadReport {
            path: self.path.clone(),
            ..LoadReport::default()
        };
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return (Tracker::new(config, now), report);
            }
            Err(e) => {
                report.found = true;
                report.unreadable = Some(e.to_string());
                let mut tracker = Tracker::new(config, now);
                tracker.count_damage();
                return (tracker, report);
            }
        };
        report.found = true;
        let mut tracker = match decode(&bytes, config, now) {
            Ok(decoded) => {
                report.producers = decoded.tracker.producers();
                report.expected = decoded.expected;
                report.header = decoded.header;
                report.damage = decoded.damage;
                decoded.tracker
            }
            Err(Unreadable(why)) => {
                report.unreadable = Some(why);
                Tracker::new(config, now)
            }
        };
        if report.is_damaged() {
            tracker.count_damage();
            // Keep the evidence before the next save replaces it.
            if std::fs::rename(&self.path, &self.damaged).is_ok() {
                report.set_aside = Some(self.damaged.clone());
            }
        }
        (tracker, report)
    }

    /// Saves `tracker` as of `now` (Unix ms): writes a temporary file and
    /// renames it over the state file, so a reader (or a crash) sees the
    /// old state or the new one. `sync` also flushes it to disk (at
    /// shutdown); every second the page cache is enough, as it is for the
    /// journal. Marks the tracker saved.
    pub fn save(
        &mut self,
        tracker: &mut Tracker,
        now: u64,
        sync: bool,
    ) -> Result<(), AccountingError> {
        self.buf.clear();
        encode(tracker, now, &mut self.buf);
        let failed = |source| AccountingError::Save {
            path: self.tmp.clone(),
            source,
        };
        let mut file = create_file(&self.tmp, Access::Replace).map_err(failed)?;
        file.write_all(&self.buf).map_err(failed)?;
        if sync {
            file.sync_all().map_err(failed)?;
        }
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|source| AccountingError::Save {
            path: self.path.clone(),
            source,
        })?;
        tracker.saved();
        Ok(())
    }
}
