//! Operator commands behind `shopify-events setup`, `stats`, `top` and
//! `dead-letters`: sizing and creating the queue against the host's
//! sysctls and preparing the spool directory; reporting its depth with the
//! drain's counters (from the snapshot it writes) once or live, with the
//! proxy's beside them; and reading and replaying dead letters.
//!
//! Nothing here prints or exits: each command returns a report that is
//! `serde::Serialize` (for `--json`) and `Display` (for people), and the CLI
//! decides what to show and which exit status to use.

mod counted;
pub mod dead_letters;
mod group;
mod proxy_snapshot;
mod published;
mod report;
mod setup;
mod size;
mod snapshot;
mod spool_dir;
mod stats;
mod sysctl;
pub mod top;

pub use counted::counted;
pub use group::{group_id, group_name, UnknownGroup};
pub use proxy_snapshot::{
    read_proxy_snapshot, write_proxy_snapshot, ProxyCounters, ProxySnapshot, ProxySnapshotWriter,
};
pub use published::{publish, read_published, unix_now, Down, Liveness, Published, STALE_AFTER};
pub use report::{
    Advice, LimitSettings, Outcome, QueueState, SetupReport, SysctlConf, SysctlWrite,
};
pub use setup::{setup, SetupError, SetupPlan};
pub use size::{format_size, parse_size, SizeError};
pub use snapshot::{read_drain_snapshot, write_drain_snapshot, DrainSnapshot, SNAPSHOT_MAX_AGE};
pub use spool_dir::{prepare_spool_dir, SpoolDirState};
pub use stats::{queue_stats, spool_files, QueueStats, SpoolFiles};
pub use sysctl::{has_cap_sys_resource, SysctlFs, SYSCTL_CONF_PATH, SYSCTL_MAX};
