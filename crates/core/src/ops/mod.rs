//! Operator commands behind `shopify-events setup` and `shopify-events stats`:
//! sizing and creating the queue against the host's sysctls, and reporting
//! its depth with the drain's counters (from the snapshot it writes); and
//! the check of the queue's owner and mode the drain and the proxy run at
//! start ([`check_queue_access`]).
//!
//! Nothing here prints or exits: each command returns a report that is
//! `serde::Serialize` (for `--json`) and `Display` (for people), and the CLI
//! decides what to show and which exit status to use.

mod group;
mod queue_access;
mod report;
mod setup;
mod size;
mod snapshot;
mod stats;
mod sysctl;

pub use group::{group_id, UnknownGroup};
pub use queue_access::{check_queue_access, QueueAccessError};
pub use report::{
    Advice, LimitSettings, Outcome, QueueState, SetupReport, SysctlConf, SysctlWrite,
};
pub use setup::{setup, SetupError, SetupPlan};
pub use size::{format_size, parse_size, SizeError};
pub use snapshot::{read_drain_snapshot, write_drain_snapshot, DrainSnapshot, SNAPSHOT_MAX_AGE};
pub use stats::{queue_stats, QueueStats};
pub use sysctl::{has_cap_sys_resource, SysctlFs, SYSCTL_CONF_PATH, SYSCTL_MAX};
