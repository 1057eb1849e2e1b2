//! What `setup` found and did, for people (`Display`) and tools (`Serialize`).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use sysvmq::{Key, Limits, Queue, Stat};

use super::size::format_size;
use super::spool_dir::{group_name, SpoolDirState};
use super::sysctl::{SYSCTL_CONF_PATH, SYSCTL_MAX};

/// The result of [`setup`](super::setup()): the queue as it now is, and each
/// host setting that has to change, with the command that changes it.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    /// The queue key in hex (`0x53455600`), as `ipcs -q` prints it.
    pub key: String,
    /// What setup did.
    pub outcome: Outcome,
    /// The capacity asked for, in bytes.
    pub requested_capacity: u64,
    /// The permission bits asked for, in octal (`0660`).
    pub requested_mode: String,
    /// The queue after setup; `None` if it does not exist.
    pub queue: Option<QueueState>,
    /// The message queue sysctls, read after any writes.
    pub limits: LimitSettings,
    /// Sysctls written because of `--apply-sysctls`.
    pub sysctls_written: Vec<SysctlWrite>,
    /// What to change where things do not fit; empty when all is well.
    pub advice: Vec<Advice>,
    /// The `/etc/sysctl.d` file that keeps the sysctls across reboots, when
    /// any had to change.
    pub persistent_config: Option<SysctlConf>,
    /// The spool directory, when setup was asked to prepare it and could.
    pub spool: Option<SpoolDirState>,
    /// What to do about a spool directory setup could not prepare. Unlike
    /// `advice`, it leaves the exit status alone: the queue decides it.
    pub spool_advice: Option<Advice>,
}

/// What setup did with the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Outcome {
    /// Created with the requested capacity.
    Created,
    /// Existed and was grown to the requested capacity.
    Grown {
        /// Its capacity before, in bytes.
        from: u64,
    },
    /// Existed with at least the requested capacity; left as it was (setup
    /// never shrinks a queue).
    Unchanged,
    /// Does not exist: a host setting must change first (see the advice).
    NotCreated,
    /// Exists but is smaller than requested, and could not be grown.
    TooSmall,
}

/// One queue as setup left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueState {
    /// The kernel's queue id (`ipcs -q`).
    pub id: i32,
    /// Byte capacity (`msg_qbytes`).
    pub capacity: u64,
    /// Messages in it now.
    pub messages: u64,
    /// Permission bits in octal (`0660`).
    pub mode: String,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
}

/// The three message queue sysctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitSettings {
    /// `kernel.msgmax`: largest message body, in bytes.
    pub msgmax: u64,
    /// `kernel.msgmnb`: capacity of new queues, and the most `IPC_SET` may
    /// give without CAP_SYS_RESOURCE, in bytes.
    pub msgmnb: u64,
    /// `kernel.msgmni`: most queues in the IPC namespace.
    pub msgmni: u64,
}

/// A sysctl setup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlWrite {
    /// The sysctl, e.g. `kernel.msgmnb`.
    pub setting: String,
    /// The file written.
    pub path: PathBuf,
    /// The value written.
    pub value: u64,
}

/// One thing to change: which setting, from what, to what, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// The setting (`kernel.msgmnb`, or `queue 0x53455600 owner`).
    pub setting: String,
    /// Its value now.
    pub current: String,
    /// The value needed.
    pub wanted: String,
    /// What to run or do.
    pub command: String,
}

/// A sysctl.d file to install so the settings survive a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlConf {
    /// Where to put it.
    pub path: String,
    /// Its whole text.
    pub contents: String,
}

impl From<Limits> for LimitSettings {
    fn from(limits: Limits) -> Self {
        LimitSettings {
            msgmax: limits.msgmax,
            msgmnb: limits.msgmnb,
            msgmni: limits.msgmni,
        }
    }
}

impl QueueState {
    pub(super) fn new(queue: &Queue, stat: &Stat) -> QueueState {
        QueueState {
            id: queue.id(),
            capacity: stat.capacity,
            messages: stat.messages,
            mode: format!("{:04o}", stat.mode),
            uid: stat.uid,
            gid: stat.gid,
        }
    }
}

impl SetupReport {
    pub(super) fn new(key: Key, capacity: u64, mode: u32, limits: Limits) -> SetupReport {
        SetupReport {
            key: format!("{key:#010x}"),
            outcome: Outcome::NotCreated,
            requested_capacity: capacity,
            requested_mode: format!("{mode:04o}"),
            queue: None,
            limits: limits.into(),
            sysctls_written: Vec::new(),
            advice: Vec::new(),
            persistent_config: None,
            spool: None,
            spool_advice: None,
        }
    }

    /// Whether the queue exists with the requested capacity and nothing needs
    /// changing (the CLI's exit status).
    pub fn is_ready(&self) -> bool {
        let sized = self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.capacity >= self.requested_capacity);
        sized && self.advice.is_empty()
    }

    pub(super) fn advise_sysctl(&mut self, setting: &str, current: u64, wanted: u64) {
        self.advice.push(Advice {
            setting: setting.to_owned(),
            current: current.to_string(),
            wanted: wanted.to_string(),
            command: format!("sysctl -w {setting}={wanted}"),
        });
        self.persist(setting, wanted);
    }

    /// `kernel.msgmnb` is below the capacity and we may not exceed it.
    pub(super) fn advise_msgmnb(&mut self, current: u64, then: &str) {
        let wanted = self.requested_capacity;
        if wanted <= SYSCTL_MAX {
            self.advise_sysctl("kernel.msgmnb", current, wanted);
            if let Some(advice) = self.advice.last_mut() {
                advice.command = format!("{}; {then}", advice.command);
            }
            return;
        }
        self.advice.push(Advice {
            setting: "kernel.msgmnb".to_owned(),
            current: current.to_string(),
            wanted: wanted.to_string(),
            command: format!(
                "kernel.msgmnb stops at {SYSCTL_MAX}: run `shopify-events setup` as root with \
                 CAP_SYS_RESOURCE (it then sets the capacity directly), or ask for at most \
                 {SYSCTL_MAX} bytes (--capacity 2047MiB); {then}"
            ),
        });
    }

    /// The kernel refused `IPC_SET` although the sysctls we read allow it:
    /// we are not the owner, or they are not this IPC namespace's sysctls.
    pub(super) fn advise_refused(&mut self, owner: u32, then: &str) {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if self.requested_capacity > self.limits.msgmnb || euid == 0 || euid == owner {
            let msgmnb = self.limits.msgmnb;
            self.advise_msgmnb(msgmnb, then);
            if let Some(advice) = self.advice.last_mut() {
                advice.current = format!(
                    "below {} in the kernel's IPC namespace",
                    self.requested_capacity
                );
            }
            return;
        }
        self.advice.push(Advice {
            setting: format!("queue {} owner", self.key),
            current: format!("uid {owner}"),
            wanted: format!("uid {euid} or root"),
            command: format!("run `shopify-events setup` as root or as uid {owner}"),
        });
    }

    /// The spool directory could not be created or adjusted.
    pub(super) fn advise_spool_dir(
        &mut self,
        dir: &std::path::Path,
        group: Option<u32>,
        err: &super::SetupError,
    ) {
        let group = group.map(|gid| format!(" -g {}", group_name(gid)));
        self.spool_advice = Some(Advice {
            setting: format!("spool directory {}", dir.display()),
            current: err.to_string(),
            wanted: format!("mode {:04o}", crate::defaults::SPOOL_DIR_MODE),
            command: format!(
                "install -d -m {:04o}{} {} (as root)",
                crate::defaults::SPOOL_DIR_MODE,
                group.unwrap_or_default(),
                dir.display()
            ),
        });
    }

    pub(super) fn persist(&mut self, setting: &str, value: u64) {
        let conf = self.persistent_config.get_or_insert_with(|| SysctlConf {
            path: SYSCTL_CONF_PATH.to_owned(),
            contents: "# shopify-events: SysV message queue limits (see docs/OPERATIONS.md)\n"
                .to_owned(),
        });
        let line = format!("{setting} = {value}\n");
        if !conf.contents.contains(&line) {
            conf.contents.push_str(&line);
        }
    }
}

impl fmt::Display for SetupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |bytes: u64| format!("{bytes} bytes ({})", format_size(bytes));
        let outcome = match self.outcome {
            Outcome::Created => "created".to_owned(),
            Outcome::Grown { from } => format!("grown from {}", size(from)),
            Outcome::Unchanged => "already large enough, left as it is".to_owned(),
            Outcome::NotCreated => "not created: change the settings below first".to_owned(),
            Outcome::TooSmall => "smaller than requested: change the settings below".to_owned(),
        };
        match &self.queue {
            Some(queue) => writeln!(f, "queue        {} (id {})", self.key, queue.id)?,
            None => writeln!(f, "queue        {} (does not exist)", self.key)?,
        }
        writeln!(f, "outcome      {outcome}")?;
        if let Some(queue) = &self.queue {
            writeln!(f, "capacity     {}", size(queue.capacity))?;
            writeln!(f, "messages     {}", queue.messages)?;
            writeln!(
                f,
                "permissions  {} (uid {}, group {})",
                queue.mode,
                queue.uid,
                group_name(queue.gid)
            )?;
        }
        writeln!(
            f,
            "requested    {}, permissions {}",
            size(self.requested_capacity),
            self.requested_mode
        )?;
        let limits = &self.limits;
        writeln!(
            f,
            "sysctls      kernel.msgmax={} kernel.msgmnb={} kernel.msgmni={}",
            limits.msgmax, limits.msgmnb, limits.msgmni
        )?;
        if let Some(spool) = &self.spool {
            let what = if spool.created {
                "created".to_owned()
            } else if spool.changed.is_empty() {
                "exists".to_owned()
            } else {
                format!("adjusted: {}", spool.changed.join(", "))
            };
            writeln!(
                f,
                "spool dir    {} ({what}; mode {}, uid {}, group {})",
                spool.path.display(),
                spool.mode,
                spool.uid,
                group_name(spool.gid)
            )?;
        }
        for write in &self.sysctls_written {
            writeln!(
                f,
                "wrote        {}={} ({})",
                write.setting,
                write.value,
                write.path.display()
            )?;
        }
        if !self.advice.is_empty() || self.spool_advice.is_some() {
            writeln!(f, "to change:")?;
        }
        for advice in self.advice.iter().chain(&self.spool_advice) {
            writeln!(
                f,
                "  {}: {} -> {}",
                advice.setting, advice.current, advice.wanted
            )?;
            writeln!(f, "    {}", advice.command)?;
        }
        if let Some(conf) = &self.persistent_config {
            writeln!(f, "to keep across reboots, write {}:", conf.path)?;
            for line in conf.contents.lines() {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}
