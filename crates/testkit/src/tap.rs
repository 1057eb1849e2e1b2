//! `shopify-events tap` as a child process of the test: its stdout (the
//! events) and stderr in files of the log directory, killed (SIGKILL, its
//! own handle) when it drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::command::signal;
use crate::drain::DrainSpec;

/// One running `shopify-events tap`.
#[derive(Debug)]
pub struct TapProcess {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl TapProcess {
    /// Taps the drains of `drain` (same binary, queue and state directory)
    /// with `args` (`--topic`, `--limit`); `name` names its files
    /// (`tap-NAME.out`, `tap-NAME.log`) in `log_dir`.
    pub fn spawn(drain: &DrainSpec, log_dir: &Path, name: &str, args: &[&str]) -> TapProcess {
        TapProcess::spawn_with(drain.tap_command(), log_dir, name, args)
    }

    /// The same with its stdout (the events) thrown away, for benchmarks.
    pub fn spawn_discarding(
        drain: &DrainSpec,
        log_dir: &Path,
        name: &str,
        args: &[&str],
    ) -> TapProcess {
        TapProcess::start(drain.tap_command(), log_dir, name, args, None)
    }

    /// The same from a command the caller prepared (another user, say):
    /// `command` must run `shopify-events tap --queue-key .. --state-dir ..`.
    pub fn spawn_with(command: Command, log_dir: &Path, name: &str, args: &[&str]) -> TapProcess {
        let stdout = log_dir.join(format!("tap-{name}.out"));
        TapProcess::start(command, log_dir, name, args, Some(stdout))
    }

    fn start(
        mut command: Command,
        log_dir: &Path,
        name: &str,
        args: &[&str],
        stdout: Option<PathBuf>,
    ) -> TapProcess {
        let stderr = log_dir.join(format!("tap-{name}.log"));
        let out = match &stdout {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("create tap stdout")),
            None => Stdio::null(),
        };
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(std::fs::File::create(&stderr).expect("create tap stderr"))
            .spawn()
            .expect("run shopify-events tap");
        TapProcess {
            child,
            stdout: stdout.unwrap_or_else(|| PathBuf::from("/dev/null")),
            stderr,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed so far (events and notices).
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the drain answered it (its "tapping" line on stderr);
    /// panics with its stderr if it exited or `timeout` passed first.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains("shopify-events tap: queue") {
            if let Some(status) = self.child.try_wait().expect("try_wait tap") {
                panic!("the tap exited: {status}\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the tap was not ready after {timeout:?}\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait tap") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGINT (Ctrl-C) to this child only.
    pub fn interrupt(&self) {
        signal(self.child.id(), "INT");
    }
}

impl Drop for TapProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
