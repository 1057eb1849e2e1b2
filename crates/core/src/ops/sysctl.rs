//! The message queue sysctls as files under a `/proc/sys`-like root.
//!
//! Reading and writing go through a root directory so that tests (and dry
//! runs) can point it at a temporary directory instead of the host's
//! `/proc/sys`. Values are per IPC namespace: a container sees and sets its
//! own, not the host's.

use std::io;
use std::path::{Path, PathBuf};

use sysvmq::Limits;

/// The largest value the kernel accepts for `kernel.msgmax` and
/// `kernel.msgmnb`: both are `int` sysctls bounded by `INT_MAX`, so a queue
/// capacity of exactly 2 GiB (2^31) cannot come from `kernel.msgmnb`.
pub const SYSCTL_MAX: u64 = i32::MAX as u64;

/// Where the three sysctls `setup` cares about persist across reboots.
pub const SYSCTL_CONF_PATH: &str = "/etc/sysctl.d/60-shopify-events.conf";

/// A `/proc/sys` directory: the real one, or a stand-in for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlFs {
    /// The directory that holds `kernel/msgmax` and friends.
    pub root: PathBuf,
}

impl Default for SysctlFs {
    fn default() -> Self {
        SysctlFs::system()
    }
}

impl SysctlFs {
    /// The host's `/proc/sys` (of this process's IPC namespace).
    pub fn system() -> SysctlFs {
        SysctlFs::at("/proc/sys")
    }

    /// A stand-in rooted at `root` (it must contain `kernel/msgmax`,
    /// `kernel/msgmnb` and `kernel/msgmni`).
    pub fn at(root: impl Into<PathBuf>) -> SysctlFs {
        SysctlFs { root: root.into() }
    }

    /// The file behind a dotted sysctl name (`kernel.msgmnb`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name.replace('.', "/"))
    }

    /// Reads a numeric sysctl such as `kernel.msgmnb`.
    pub fn read(&self, name: &str) -> io::Result<u64> {
        let path = self.path(name);
        let text = std::fs::read_to_string(&path)?;
        text.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} holds {:?}, not a number", path.display(), text.trim()),
            )
        })
    }

    /// Writes a numeric sysctl, as `sysctl -w name=value` does.
    pub fn write(&self, name: &str, value: u64) -> io::Result<()> {
        std::fs::write(self.path(name), format!("{value}\n"))
    }

    /// `kernel.msgmax`, `kernel.msgmnb` and `kernel.msgmni`, read now.
    pub fn limits(&self) -> Result<Limits, (PathBuf, io::Error)> {
        let read = |name: &str| self.read(name).map_err(|err| (self.path(name), err));
        Ok(Limits {
            msgmax: read("kernel.msgmax")?,
            msgmnb: read("kernel.msgmnb")?,
            msgmni: read("kernel.msgmni")?,
        })
    }
}

/// Whether this process may set a queue's capacity above `kernel.msgmnb`:
/// CAP_SYS_RESOURCE in its effective set (root on an ordinary host has it;
/// containers and sandboxes often drop it).
pub fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let Ok(status) = std::fs::read_to_string(Path::new("/proc/self/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}
