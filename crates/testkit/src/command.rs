//! Running commands, and signalling the test's own children (by pid, never
//! by name).

use std::process::{Command, Stdio};

/// Runs `command` (stdin closed) and returns its stdout; panics with its
/// status and stderr, naming it `what`, unless it succeeded.
pub fn run_ok(command: &mut Command, what: &str) -> Vec<u8> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sends signal `name` (`TERM`, `STOP`, ...) to `pid`, a child of the test;
/// panics if `kill` fails.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}
