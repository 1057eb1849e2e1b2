//! The `shopify-events proxy` binary as a child process of the test, with
//! the process limits a hostile host would give it (descriptor limit,
//! umask).
//!
//! A [`ProxySpec`] holds what every proxy of a test shares; each
//! [`ProxySpec::spawn`] writes its stderr to `proxy-N.log` in the log
//! directory, and its snapshot for `top` (`--run-dir`) goes there too,
//! never into the host's `/run/shopify-events`. The [`ProxyProcess`] is
//! killed (SIGKILL, by its own handle) when it drops.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use shopify_events_core::proxy::ProxyAddress;
use sysvmq::Key;

use crate::net::free_port;

/// Everything the proxies of one test share.
#[derive(Debug, Clone)]
pub struct ProxySpec {
    bin: PathBuf,
    key: Key,
    address: ProxyAddress,
    log_dir: PathBuf,
    nofile: Option<u64>,
    umask: Option<u32>,
    extra: Vec<String>,
}

impl ProxySpec {
    /// Proxies of `bin` for queue `key`, listening on a free loopback TCP
    /// port, logging into `log_dir`.
    pub fn new(bin: impl Into<PathBuf>, key: Key, log_dir: &Path) -> ProxySpec {
        ProxySpec {
            bin: bin.into(),
            key,
            address: ProxyAddress::Tcp(format!("127.0.0.1:{}", free_port())),
            log_dir: log_dir.to_owned(),
            nofile: None,
            umask: None,
            extra: Vec::new(),
        }
    }

    /// Listen on `address` instead.
    pub fn listen(mut self, address: ProxyAddress) -> ProxySpec {
        self.address = address;
        self
    }

    /// Run under `ulimit -n n` (soft and hard).
    pub fn nofile(mut self, n: u64) -> ProxySpec {
        self.nofile = Some(n);
        self
    }

    /// Run with this umask.
    pub fn umask(mut self, mask: u32) -> ProxySpec {
        self.umask = Some(mask);
        self
    }

    /// More flags.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> ProxySpec {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Where clients connect.
    pub fn address(&self) -> &ProxyAddress {
        &self.address
    }

    /// Starts a proxy; `n` numbers its log file. Returns once it accepts
    /// connections (panics with its log if it does not within 20 s).
    pub fn spawn(&self, n: usize) -> ProxyProcess {
        let log = self.log_dir.join(format!("proxy-{n}.log"));
        // The test's own directory unless the test names one.
        let run_dir = match self.extra.iter().any(|a| a == "--run-dir") {
            true => Vec::new(),
            false => vec!["--run-dir".into(), self.log_dir.as_os_str().to_owned()],
        };
        // Never the host's default spool directory, which no test drain
        // reads: the test's own, unless the test names one or none.
        let spool_dir = match self
            .extra
            .iter()
            .any(|a| a == "--spool-dir" || a == "--no-spool")
        {
            true => Vec::new(),
            false => vec![
                "--spool-dir".into(),
                self.log_dir.join("spool").into_os_string(),
            ],
        };
        let mut command = Command::new(&self.bin);
        command
            .arg("proxy")
            .args(["--listen", &self.address.to_string()])
            .args(["--queue-key", &format!("{:#010x}", self.key as u32)])
            .args(&self.extra)
            .args(run_dir)
            .args(spool_dir)
            .env_remove("SHOPIFY_EVENTS_PROXY_TOKEN")
            .env_remove("SHOPIFY_EVENTS_SPOOL_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create proxy log"));
        let (nofile, umask) = (self.nofile, self.umask);
        // SAFETY: only async-signal-safe calls (setrlimit, umask) between
        // fork and exec.
        unsafe {
            command.pre_exec(move || {
                if let Some(n) = nofile {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(mask) = umask {
                    libc::umask(mask);
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let mut proxy = ProxyProcess {
            child,
            log,
            address: self.address.clone(),
        };
        proxy.wait_listening(Duration::from_secs(20));
        proxy
    }
}

/// One running proxy, killed (SIGKILL, its own child only) on drop.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    log: PathBuf,
    address: ProxyAddress,
}

impl ProxyProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where clients connect.
    pub fn address(&self) -> &ProxyAddress {
        &self.address
    }

    /// SIGKILL to this child only, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics, with the log, unless the proxy is still running.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait proxy") {
            panic!("the proxy exited: {status}\n{}", self.log_text());
        }
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait proxy") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn wait_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains("listening on") {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "proxy not listening after {timeout:?}\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
