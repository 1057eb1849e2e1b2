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
//! | `tap-KEY.sock` | the drain, at start | the Unix socket `shopify-events tap` connects to ([`crate::tap`]); mode 0600, removed at a clean stop |
//! | `.tap-KEY.tmp` | the drain, at start | the tap socket while it is bound and made private, renamed to `tap-KEY.sock` |
//!
//! This table is the whole list: a new file gets its name here.
//!
//! # Permissions
//!
//! Every file is created by [`create_file`], so the permissions of state
//! files are decided in one place, whatever the process's umask (which can
//! only narrow them further):
//!
//! - the journal, the dead letters and the lock: [`PRIVATE_MODE`] (0600).
//!   The first two hold event payloads, which must be no easier to read on
//!   disk than in the queue (0660, owner and group);
//! - the stats snapshot: [`SHARED_MODE`] (0640), counters only, so that
//!   `shopify-events stats` works for the drain's group;
//! - the tap socket, made by [`bind_socket`]:
//!   [`defaults::TAP_SOCKET_MODE`](crate::defaults::TAP_SOCKET_MODE) (0600),
//!   since whoever can connect reads every payload.
//!
//! A file that already exists with a wider mode (created by an older drain
//! under the umask) is narrowed when it is opened; one the drain cannot
//! narrow is an error naming the file and the `chmod` that fixes it.
//! Files are opened with `O_NOFOLLOW`: a symbolic link planted at a state
//! file's name is refused, never followed.
//!
//! The directory is created [`DIR_MODE`] (0750) by [`StateDir::create`],
//! and an existing one the drain owns is narrowed to it (a directory it
//! does not own, or a sticky one such as `/tmp`, is left alone: the files'
//! own modes still hold).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
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

    /// Creates the directory if missing, [`DIR_MODE`]; narrows an existing
    /// one the process owns to it (see [Permissions](self#permissions)).
    pub fn create(&self) -> io::Result<()> {
        create_dir(&self.root)
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

    /// `tap-KEY.sock`: the running drain's tap socket.
    pub fn tap_socket(&self) -> PathBuf {
        self.keyed("tap-", ".sock")
    }

    /// `.tap-KEY.tmp`: where the drain binds the tap socket and sets its
    /// mode before renaming it to [`StateDir::tap_socket`]. Short, because
    /// a socket's path must fit in 108 bytes; one name per key is enough,
    /// since only the drain holding the queue's lock binds it.
    pub fn tap_socket_tmp(&self) -> PathBuf {
        self.keyed(".tap-", ".tmp")
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

/// Mode of the state files only the drain reads: the journal and the dead
/// letters (event payloads) and the lock.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of the stats snapshot, which `shopify-events stats` reads: counters,
/// no payloads.
pub const SHARED_MODE: u32 = 0o640;
/// Mode of the state directory.
pub const DIR_MODE: u32 = 0o750;

/// How a state file is opened by [`create_file`], and so its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and written in place, never truncated (the journal, the lock):
    /// [`PRIVATE_MODE`].
    ReadWrite,
    /// Appended to (the dead-letter file): [`PRIVATE_MODE`].
    Append,
    /// Written from the start, replacing what was there (a snapshot's
    /// temp file): [`SHARED_MODE`].
    Replace,
}

impl Access {
    /// The widest mode a file opened this way may have.
    pub fn mode(self) -> u32 {
        match self {
            Access::ReadWrite | Access::Append => PRIVATE_MODE,
            Access::Replace => SHARED_MODE,
        }
    }
}

/// Opens the state file at `path`, creating it if missing with
/// [`Access::mode`], narrowing it to that mode if it is wider. Every file of
/// the state directory is created here.
pub fn create_file(path: &Path, access: Access) -> io::Result<File> {
    let mode = access.mode();
    let mut options = OpenOptions::new();
    options
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    match access {
        Access::ReadWrite => options.read(true).write(true).truncate(false),
        Access::Append => options.append(true),
        Access::Replace => options.write(true).truncate(true),
    };
    let file = options.open(path)?;
    let current = file.metadata()?.permissions().mode() & 0o7777;
    if current & !mode != 0 {
        let narrowed = current & mode;
        file.set_permissions(std::fs::Permissions::from_mode(narrowed))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "state file {} has mode {current:04o}, wider than {mode:04o}, and cannot be narrowed ({e}); run `chmod {narrowed:o} {}` as its owner",
                        path.display(),
                        path.display()
                    ),
                )
            })?;
    }
    Ok(file)
}

/// Creates `dir` (and missing parents) with [`DIR_MODE`], or narrows an
/// existing directory this process owns to it.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    let current = meta.permissions().mode() & 0o7777;
    // SAFETY: geteuid has no failure mode and touches no memory.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    let sticky = current & 0o1000 != 0;
    if ours && !sticky && current & !DIR_MODE & 0o777 != 0 {
        let narrowed = (current & !0o777) | (current & DIR_MODE);
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(narrowed))?;
    }
    Ok(())
}

/// Binds a Unix socket at `path` with permissions `mode`, replacing a
/// socket a killed process left there. Every socket of the state directory
/// is created here.
///
/// `bind(2)` creates the socket file with 0777 less the umask, and a socket
/// file's mode cannot be changed through its descriptor: so the socket is
/// bound at `tmp`, given `mode`, and only then renamed to `path` (which
/// replaces a stale one atomically). A client finds it under `path` only
/// once it is private. The caller must be the only process binding `tmp`
/// (the drain holds the queue's lock).
pub fn bind_socket(path: &Path, tmp: &Path, mode: u32) -> io::Result<UnixListener> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(tmp)?;
    let placed = std::fs::set_permissions(tmp, Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    Ok(listener)
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
        assert_eq!(state.tap_socket(), Path::new("/s/tap-53455600.sock"));
        assert_eq!(state.tap_socket_tmp(), Path::new("/s/.tap-53455600.tmp"));
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

#[cfg(test)]
mod socket_tests {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

    use super::*;

    #[test]
    fn a_bound_socket_has_the_mode_asked_for_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(dir.path(), 0x5345_5600);
        // What a drain killed with -9 leaves behind.
        drop(bind_socket(&state.tap_socket(), &state.tap_socket_tmp(), 0o644).expect("first"));
        let listener =
            bind_socket(&state.tap_socket(), &state.tap_socket_tmp(), 0o600).expect("again");
        let meta = std::fs::metadata(state.tap_socket()).expect("socket file");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(
            !state.tap_socket_tmp().exists(),
            "the temporary name is gone"
        );
        std::os::unix::net::UnixStream::connect(state.tap_socket()).expect("connect");
        assert!(listener.accept().is_ok());
    }
}
