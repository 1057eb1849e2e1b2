//! The `shopify-events drain` binary as a child process of the test.
//!
//! A [`DrainSpec`] holds what every drain of a test shares (binary, queue,
//! state directory, spool directory, flags); [`DrainSpec::spawn`] starts one, with its stderr
//! in `drain-N.log` and its stdout (the stdout sink's JSON lines) in
//! `drain-N.out` in the log directory. The [`DrainProcess`] is killed
//! (SIGKILL, by its own handle) when it drops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::state_dir::StateDir;
use sysvmq::Key;

use crate::command::{run_ok, signal};
use crate::metrics::parse_metrics;
use crate::net::{free_port, get, Response};

/// Everything the drains of one test share.
#[derive(Debug, Clone)]
pub struct DrainSpec {
    bin: PathBuf,
    key: Key,
    state_dir: PathBuf,
    spool_dir: PathBuf,
    log_dir: PathBuf,
    metrics: bool,
    extra: Vec<String>,
}

impl DrainSpec {
    /// Drains of `bin` (the cli tests' `env!("CARGO_BIN_EXE_shopify-events")`)
    /// for the queue `key`, keeping state in `state_dir` and logs in
    /// `log_dir`, reading the spool in `log_dir/spool` (created at spawn).
    pub fn new(bin: impl Into<PathBuf>, key: Key, state_dir: &Path, log_dir: &Path) -> DrainSpec {
        DrainSpec {
            bin: bin.into(),
            key,
            state_dir: state_dir.to_owned(),
            spool_dir: log_dir.join("spool"),
            log_dir: log_dir.to_owned(),
            metrics: false,
            extra: Vec::new(),
        }
    }

    /// Read the spool in `dir` instead (created at spawn).
    pub fn spool_dir(mut self, dir: &Path) -> DrainSpec {
        self.spool_dir = dir.to_owned();
        self
    }

    /// The spool directory the drains read.
    pub fn spool(&self) -> &Path {
        &self.spool_dir
    }

    /// Deliver to the Kafka brokers at `bootstrap`.
    pub fn brokers(self, bootstrap: &str) -> DrainSpec {
        self.args(["--brokers", bootstrap])
    }

    /// Serve `/metrics` and `/health` on a free loopback port
    /// ([`DrainProcess::get`], [`DrainProcess::scrape`]).
    pub fn with_metrics(mut self) -> DrainSpec {
        self.metrics = true;
        self
    }

    /// One more flag.
    pub fn arg(mut self, arg: impl Into<String>) -> DrainSpec {
        self.extra.push(arg.into());
        self
    }

    /// More flags.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> DrainSpec {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The drain's state directory, as the drain names its files.
    pub fn state(&self) -> StateDir {
        StateDir::new(&self.state_dir, self.key)
    }

    /// Starts a drain; `n` numbers its log files.
    pub fn spawn(&self, n: usize) -> DrainProcess {
        let log = self.log_dir.join(format!("drain-{n}.log"));
        let stdout = self.log_dir.join(format!("drain-{n}.out"));
        let metrics = self.metrics.then(|| format!("127.0.0.1:{}", free_port()));
        std::fs::create_dir_all(&self.spool_dir).expect("create spool dir");
        let mut command = Command::new(&self.bin);
        command
            .arg("drain")
            .args(["--queue-key", &format!("{:#010x}", self.key as u32)])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--spool-dir")
            .arg(&self.spool_dir);
        if let Some(addr) = &metrics {
            command.args(["--metrics-addr", addr]);
        }
        let child = command
            .args(&self.extra)
            .env_remove("SHOPIFY_EVENTS_CONFIG")
            .env_remove("SHOPIFY_EVENTS_BROKERS")
            .env_remove("SHOPIFY_EVENTS_METRICS_ADDR")
            .env_remove("SHOPIFY_EVENTS_SPOOL_DIR")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("create drain stdout"))
            .stderr(std::fs::File::create(&log).expect("create drain log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        DrainProcess {
            child,
            log,
            stdout,
            metrics,
        }
    }

    /// `shopify-events stats --json` for the queue and state directory.
    pub fn stats_json(&self) -> serde_json::Value {
        let out = run_ok(
            Command::new(&self.bin)
                .args(["stats", "--json", "--queue-key"])
                .arg(format!("{:#010x}", self.key as u32))
                .arg("--state-dir")
                .arg(&self.state_dir),
            "shopify-events stats",
        );
        serde_json::from_slice(&out).expect("stats --json output")
    }

    /// The drain's stats snapshot (written each second), if there is one.
    pub fn snapshot(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.state().stats_snapshot()).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// One running drain, killed (SIGKILL, its own child only) on drop.
#[derive(Debug)]
pub struct DrainProcess {
    child: Child,
    log: PathBuf,
    stdout: PathBuf,
    metrics: Option<String>,
}

impl DrainProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Sends SIGTERM (to this child only) and does not wait.
    pub fn signal_term(&self) {
        signal(self.child.id(), "TERM");
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        self.signal_term();
        self.wait_timeout(timeout)
    }

    /// SIGKILL to this child only, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait drain") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Panics, with the log, unless the drain is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait drain") {
            panic!("the drain exited: {status}\n{}", self.log_text());
        }
    }

    /// `host:port` of the metrics server, from the drain's startup line
    /// (for drains given `--metrics-addr` by hand, port 0 included).
    pub fn metrics_addr(&mut self, timeout: Duration) -> String {
        if let Some(addr) = &self.metrics {
            return addr.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_text();
            if let Some(rest) = log.split("metrics on http://").nth(1) {
                if let Some(addr) = rest.split("/metrics").next() {
                    return addr.to_owned();
                }
            }
            self.assert_running();
            assert!(Instant::now() < deadline, "no metrics line in:\n{log}");
            sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `/health` answers (any status); panics after `timeout`.
    pub fn wait_serving(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            if self.get("/health").is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "drain metrics not up after {timeout:?}\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(2));
        }
    }

    /// `GET path` on the metrics server of a drain spawned
    /// [`with_metrics`](DrainSpec::with_metrics); `None` if it did not answer.
    pub fn get(&self, path: &str) -> Option<Response> {
        let addr = self.metrics.as_ref().expect("spawned with_metrics()");
        get(addr, path)
    }

    /// The metrics exposition, parsed to `name -> value`.
    pub fn scrape(&self) -> Option<HashMap<String, f64>> {
        let response = self.get("/metrics")?;
        (response.status == 200).then(|| parse_metrics(&response.body))
    }
}

impl Drop for DrainProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
