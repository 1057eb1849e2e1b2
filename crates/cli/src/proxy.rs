//! `shopify-events proxy`: binds the listeners, installs signal handlers,
//! serves metrics and runs the proxy until SIGTERM/SIGINT.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use shopify_events_core::metrics::{self, Health};
use shopify_events_core::proxy::{self, ProxyAddress, ProxyMetrics, ServerConfig};
use shopify_events_core::spool::{SpoolOptions, MAX_RECORD_LIMIT};
use shopify_events_core::{ops, state_dir::StateDir};

use crate::args::ProxyArgs;

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} {value} is not a positive number of seconds"))
}

/// The token from `--token-file`: its first line, which must not be empty.
fn read_token_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --token-file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim_end_matches('\r');
    anyhow::ensure!(
        !token.is_empty(),
        "--token-file {} is empty: put the token on its first line",
        path.display()
    );
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            eprintln!(
                "shopify-events proxy: --token-file {} is readable by every local user; `chmod o-r` it",
                path.display()
            );
        }
    }
    Ok(token.as_bytes().to_vec())
}

/// The spool options, or `None` (with one line saying why and what to do)
/// when the directory cannot be written.
fn spool(args: &ProxyArgs) -> anyhow::Result<Option<SpoolOptions>> {
    if args.no_spool {
        return Ok(None);
    }
    let mut options = SpoolOptions::new(&args.spool_dir, args.queue_key);
    if let Some(max) = args.max_event_bytes {
        options.max_record = usize::try_from(max)
            .ok()
            .filter(|&m| m > 0 && m as u64 <= MAX_RECORD_LIMIT as u64)
            .with_context(|| {
                format!("--max-event-bytes {max} must be between 1 and {MAX_RECORD_LIMIT}")
            })?;
    }
    let dir = CString::new(args.spool_dir.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path; access reads nothing else.
    let usable = unsafe { libc::access(dir.as_ptr(), libc::W_OK | libc::X_OK) } == 0
        && args.spool_dir.is_dir();
    if !usable {
        let why = std::io::Error::last_os_error();
        eprintln!(
            "shopify-events proxy: spool directory {} is not usable ({why}): events larger than \
             kernel.msgmax are refused and a full queue holds acks; create it with \
             `shopify-events setup --group GROUP`, point --spool-dir at a writable directory, \
             or pass --no-spool",
            args.spool_dir.display()
        );
        return Ok(None);
    }
    Ok(Some(options))
}

pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(args.queue_key);
    config.token = match &args.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .map(String::into_bytes),
    };
    anyhow::ensure!(
        args.max_connections > 0,
        "--max-connections must be at least 1"
    );
    anyhow::ensure!(
        args.max_pending_handshakes > 0,
        "--max-pending-handshakes must be at least 1"
    );
    config.max_connections = args.max_connections;
    config.max_pending_handshakes = args.max_pending_handshakes;
    config.idle_timeout = seconds(args.idle_timeout, "--idle-timeout")?;
    config.handshake_timeout = seconds(args.handshake_timeout, "--handshake-timeout")?;
    config.frame_timeout = seconds(args.frame_timeout, "--frame-timeout")?;
    config.spool = spool(&args)?;
    let mut listeners = Vec::new();
    for text in &args.listen {
        let address: ProxyAddress = text.parse()?;
        listeners.push(address.bind_with(args.allow_public, args.socket_mode)?);
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone())
            .context("installing signal handlers")?;
    }
    let counters = Arc::new(ProxyMetrics::for_queue(args.queue_key));
    let addresses = listeners
        .iter()
        .map(|l| l.local_address().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let status = ops::ProxySnapshotWriter::spawn(
        StateDir::new(&args.run_dir, args.queue_key),
        addresses,
        counters.clone(),
        shutdown.clone(),
    )
    .with_context(|| format!("creating {}", args.run_dir.display()))?;
    let server = match &args.metrics_addr {
        Some(addr) => {
            let listener = metrics::bind(addr, args.allow_public)?;
            let bound = listener.local_addr()?;
            let render = {
                let counters = counters.clone();
                Arc::new(move |out: &mut String| counters.render(out))
            };
            let health = Arc::new(|| Health::ok("proxy running"));
            let handle = metrics::serve(listener, render, health, shutdown.clone())?;
            eprintln!("shopify-events proxy: metrics on http://{bound}/metrics");
            Some(handle)
        }
        None => None,
    };
    for listener in &listeners {
        eprintln!(
            "shopify-events proxy: listening on {} for queue {:#010x}{}{}",
            listener.local_address()?,
            args.queue_key,
            if config.token.is_some() {
                " (token required)"
            } else {
                ""
            },
            match &config.spool {
                Some(spool) => format!(", spooling to {}", spool.dir.display()),
                None => String::new(),
            }
        );
    }
    proxy::run(listeners, config, shutdown, counters)?;
    let _ = status.join();
    eprintln!("shopify-events proxy: stopped");
    if let Some(handle) = server {
        let _ = handle.join();
    }
    Ok(())
}
