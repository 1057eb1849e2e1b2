//! A test's scratch directory, kept for inspection when the test fails.

use std::path::{Path, PathBuf};

/// A test's scratch space: `state/` for the drain, `spool/` for the spool,
/// the rest for logs. Kept (and its path printed) when the test fails.
pub struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    /// A new directory under the system's temporary directory, named
    /// after `prefix`.
    pub fn new(prefix: &str) -> Dirs {
        Dirs {
            root: tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Where the test's processes write their logs: the directory itself.
    pub fn logs(&self) -> &Path {
        self.root.path()
    }

    /// `state/`, the drain's state directory (the drain creates it).
    pub fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// `spool/`, created on first use.
    pub fn spool(&self) -> PathBuf {
        let dir = self.root.path().join("spool");
        std::fs::create_dir_all(&dir).expect("create spool dir");
        dir
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.root.disable_cleanup(true);
            eprintln!("kept {} for inspection", self.root.path().display());
        }
    }
}
