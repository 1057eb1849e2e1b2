//! `shopify-events setup`: make the queue exist with the wanted capacity, or
//! say exactly which host setting stands in the way.
//!
//! How the kernel decides (see docs/OPERATIONS.md):
//!
//! - A new queue gets `kernel.msgmnb` bytes. `msgctl(IPC_SET)` may then set
//!   any capacity up to `kernel.msgmnb`; above it only with CAP_SYS_RESOURCE.
//! - So without that capability, raising `kernel.msgmnb` is the way: after it,
//!   `IPC_SET` grows an existing queue in place, keeping its messages. Setup
//!   never removes a queue that holds messages.
//! - `kernel.msgmnb` is an `int` sysctl: it stops at 2^31 − 1 bytes. Larger
//!   queues need CAP_SYS_RESOURCE at setup time.
//!
//! Nothing here prints; the report's `Display` is the human form.

use std::io;
use std::path::PathBuf;

use sysvmq::{Key, Limits, Queue};

use super::report::{Outcome, QueueState, SetupReport, SysctlWrite};
use super::spool_dir::prepare_spool_dir;
use super::sysctl::{has_cap_sys_resource, SysctlFs, SYSCTL_MAX};
use crate::defaults;

/// Why setup could not finish. Host settings that merely do not fit are not
/// errors: they come back as [`Advice`](super::Advice) in the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A sysctl could not be read.
    #[error("cannot read {path}: {source}; is /proc mounted in this namespace?", path = path.display())]
    ReadLimits {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The capacity asked for cannot hold even one message.
    #[error(
        "a queue of {capacity} bytes cannot hold one message of {message_size} bytes ({setting}); \
         ask for --capacity of at least {message_size} bytes"
    )]
    CapacityBelowMessage {
        /// The capacity asked for, in bytes.
        capacity: u64,
        /// The largest message the queue must take, in bytes.
        message_size: u64,
        /// Where that size comes from (`kernel.msgmax` or `--max-event`).
        setting: &'static str,
    },
    /// A sysctl would have to exceed what the kernel accepts.
    #[error(
        "{setting} cannot be set to {value}: the kernel's maximum is {SYSCTL_MAX}; ask for at most \
         {SYSCTL_MAX} bytes (--capacity 2047MiB), or run setup with CAP_SYS_RESOURCE (root on an \
         ordinary host), which sets a larger capacity without the sysctl"
    )]
    SysctlOutOfRange {
        /// The sysctl, e.g. `kernel.msgmnb`.
        setting: &'static str,
        /// The value it would need.
        value: u64,
    },
    /// `--apply-sysctls` could not write a sysctl.
    #[error(
        "cannot write {value} to {path}: {source}; run setup --apply-sysctls as root on the host \
         (not in a container), or run `sysctl -w {setting}={value}` yourself",
        path = path.display()
    )]
    WriteSysctl {
        /// The sysctl, e.g. `kernel.msgmnb`.
        setting: &'static str,
        /// The value that was to be written.
        value: u64,
        /// The file written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A queue operation failed; the message names the key and the fix.
    #[error(transparent)]
    Queue(#[from] sysvmq::Error),
    /// The spool directory could not be created or adjusted.
    #[error(
        "cannot {op} the spool directory {path}: {source}; run setup as root, or pass \
         --spool-dir with a directory you may create",
        path = path.display()
    )]
    SpoolDir {
        /// The directory.
        path: PathBuf,
        /// What setup tried ("create", "change the group of", ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `--group` names no group of this host.
    #[error("no group {name:?} on this host; create it (groupadd {name}) or pass its gid")]
    UnknownGroup {
        /// The name given.
        name: String,
    },
}

/// What `setup` is asked to do. Build it with [`SetupPlan::new`] and adjust
/// the public fields, then [`SetupPlan::run`].
#[derive(Debug, Clone)]
pub struct SetupPlan {
    /// The queue's key.
    pub key: Key,
    /// The byte capacity wanted.
    pub capacity: u64,
    /// Permission bits for a queue setup creates (an existing one keeps its own).
    pub mode: u32,
    /// Largest event body the apps send; `kernel.msgmax` must admit it.
    pub max_event: Option<u64>,
    /// Write the sysctls that stand in the way before creating or growing the
    /// queue (`--apply-sysctls`; needs root on the host).
    pub raise_sysctls: bool,
    /// Where the sysctls are read and written.
    pub sysctl: SysctlFs,
    /// The group the queue and the spool directory are given to
    /// (`--group`): the apps' group, which the drain is a member of.
    pub group: Option<u32>,
    /// The spool directory to create (mode 2770) or adjust; `None` leaves
    /// spools alone.
    pub spool_dir: Option<PathBuf>,
}

/// Runs a [`SetupPlan`] for these four values, writing no sysctl, against the
/// host's `/proc/sys`.
pub fn setup(
    key: Key,
    capacity: u64,
    mode: u32,
    max_event: Option<u64>,
) -> Result<SetupReport, SetupError> {
    SetupPlan {
        mode,
        max_event,
        ..SetupPlan::new(key, capacity)
    }
    .run()
}

impl SetupPlan {
    /// A plan for `key` and `capacity` with mode 0660, no `--max-event`, no
    /// sysctl writes and the host's `/proc/sys`.
    pub fn new(key: Key, capacity: u64) -> SetupPlan {
        SetupPlan {
            key,
            capacity,
            mode: defaults::QUEUE_MODE,
            max_event: None,
            raise_sysctls: false,
            sysctl: SysctlFs::system(),
            group: None,
            spool_dir: None,
        }
    }

    /// Checks the sysctls, then creates or grows the queue where they allow.
    pub fn run(&self) -> Result<SetupReport, SetupError> {
        let mut limits = self.limits()?;
        self.check_capacity(&limits)?;
        // Above msgmnb, IPC_SET needs CAP_SYS_RESOURCE or a larger msgmnb.
        // With --apply-sysctls msgmnb is raised even when we hold the
        // capability, so that a queue an app creates by itself later (the
        // emitter opens or creates) gets the full capacity too.
        let above = self.capacity > limits.msgmnb;
        let capable = above && has_cap_sys_resource();
        if above && self.raise_sysctls && self.capacity > SYSCTL_MAX && !capable {
            // Refused before any write, so a failed run changes nothing.
            return Err(SetupError::SysctlOutOfRange {
                setting: "kernel.msgmnb",
                value: self.capacity,
            });
        }
        let mut report = SetupReport::new(self.key, self.capacity, self.mode, limits);
        if let Some(wanted) = self.max_event.filter(|&max| max > limits.msgmax) {
            if self.raise_sysctls {
                self.raise("kernel.msgmax", wanted, &mut report)?;
            } else {
                report.advise_sysctl("kernel.msgmax", limits.msgmax, wanted);
            }
        }
        if above && self.raise_sysctls && self.capacity <= SYSCTL_MAX {
            self.raise("kernel.msgmnb", self.capacity, &mut report)?;
        }
        let blocked = above && !capable && !self.raise_sysctls;
        limits = self.limits()?;
        report.limits = limits.into();
        match Queue::open(self.key) {
            Ok(queue) => self.grow(queue, blocked, &mut report)?,
            Err(sysvmq::Error::NotFound { .. }) if blocked => {
                report.outcome = Outcome::NotCreated;
                report.advise_msgmnb(limits.msgmnb, "then run `shopify-events setup` again");
            }
            Err(sysvmq::Error::NotFound { .. }) => self.create(&mut report)?,
            Err(err) => return Err(err.into()),
        }
        self.give_queue_to_group(&mut report)?;
        if let Some(dir) = &self.spool_dir {
            // The queue decides the exit status: a drain started by a unit
            // (unprivileged, read-only /var) runs setup too, and must start
            // even when it may not create the spool directory. What to do
            // about it is printed with the advice.
            match prepare_spool_dir(dir, self.group) {
                Ok(state) => report.spool = Some(state),
                Err(err) => report.advise_spool_dir(dir, self.group, &err),
            }
        }
        Ok(report)
    }

    /// `--group`: the queue's `msg_perm.gid`, so that the group's processes
    /// may use it under mode 0660.
    fn give_queue_to_group(&self, report: &mut SetupReport) -> Result<(), SetupError> {
        let (Some(gid), Some(state)) = (self.group, &report.queue) else {
            return Ok(());
        };
        if state.gid == gid {
            return Ok(());
        }
        let queue = Queue::open(self.key)?;
        queue.set_group(gid)?;
        report.queue = Some(QueueState::new(&queue, &queue.stat()?));
        Ok(())
    }

    fn limits(&self) -> Result<Limits, SetupError> {
        self.sysctl
            .limits()
            .map_err(|(path, source)| SetupError::ReadLimits { path, source })
    }

    fn check_capacity(&self, limits: &Limits) -> Result<(), SetupError> {
        let (message_size, setting) = match self.max_event {
            Some(max) if max > limits.msgmax => (max, "--max-event"),
            _ => (limits.msgmax, "kernel.msgmax"),
        };
        if self.capacity < message_size {
            return Err(SetupError::CapacityBelowMessage {
                capacity: self.capacity,
                message_size,
                setting,
            });
        }
        Ok(())
    }

    fn raise(
        &self,
        setting: &'static str,
        value: u64,
        report: &mut SetupReport,
    ) -> Result<(), SetupError> {
        let path = self.sysctl.path(setting);
        self.sysctl
            .write(setting, value)
            .map_err(|source| SetupError::WriteSysctl {
                setting,
                value,
                path: path.clone(),
                source,
            })?;
        report.sysctls_written.push(SysctlWrite {
            setting: setting.to_owned(),
            path,
            value,
        });
        // /proc/sys forgets on reboot; the report says how to keep it.
        report.persist(setting, value);
        Ok(())
    }

    /// The queue exists: grow it in place if it is smaller than asked.
    fn grow(
        &self,
        queue: Queue,
        blocked: bool,
        report: &mut SetupReport,
    ) -> Result<(), SetupError> {
        let stat = queue.stat()?;
        report.queue = Some(QueueState::new(&queue, &stat));
        if stat.capacity >= self.capacity {
            report.outcome = Outcome::Unchanged;
            return Ok(());
        }
        report.outcome = Outcome::TooSmall;
        let then = format!(
            "then run `shopify-events setup` again: it grows the queue in place and its {} \
             messages stay (no need to remove it)",
            stat.messages
        );
        if blocked {
            report.advise_msgmnb(report.limits.msgmnb, &then);
            return Ok(());
        }
        match queue.set_capacity(self.capacity) {
            Ok(()) => {
                report.outcome = Outcome::Grown {
                    from: stat.capacity,
                };
                report.queue = Some(QueueState::new(&queue, &queue.stat()?));
            }
            Err(sysvmq::Error::PermissionDenied { .. }) => {
                report.advise_refused(stat.uid, &then);
            }
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }

    /// The queue is missing and its capacity is allowed: create and size it.
    fn create(&self, report: &mut SetupReport) -> Result<(), SetupError> {
        let queue = Queue::create(self.key, self.mode)?;
        match queue.set_capacity(self.capacity) {
            Ok(()) => {
                report.outcome = Outcome::Created;
                report.queue = Some(QueueState::new(&queue, &queue.stat()?));
                Ok(())
            }
            Err(sysvmq::Error::PermissionDenied { .. }) => {
                // The kernel disagrees with the sysctls we read (another IPC
                // namespace, or a stand-in root): do not leave a queue of the
                // wrong size behind, unless an app already sent into it.
                let stat = queue.stat()?;
                if stat.messages == 0 {
                    queue.remove()?;
                    report.outcome = Outcome::NotCreated;
                } else {
                    report.outcome = Outcome::TooSmall;
                    report.queue = Some(QueueState::new(&queue, &stat));
                }
                let then = "then run `shopify-events setup` again".to_owned();
                report.advise_refused(stat.uid, &then);
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }
}
