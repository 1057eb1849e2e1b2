//! `shopify-events proxy`: binds the listeners, installs signal handlers,
//! serves metrics and runs the proxy until SIGTERM/SIGINT.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use shopify_events_core::metrics::{self, Health};
use shopify_events_core::proxy::{self, ProxyAddress, ProxyMetrics, ServerConfig};
use shopify_events_core::{ops, state_dir::StateDir};

use crate::args::ProxyArgs;

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} {value} is not a positive number of seconds"))
}

pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(args.queue_key);
    config.token = args.token.filter(|t| !t.is_empty()).map(String::into_bytes);
    anyhow::ensure!(
        args.max_connections > 0,
        "--max-connections must be at least 1"
    );
    config.max_connections = args.max_connections;
    config.idle_timeout = seconds(args.idle_timeout, "--idle-timeout")?;
    config.handshake_timeout = seconds(args.handshake_timeout, "--handshake-timeout")?;
    let mut listeners = Vec::new();
    for text in &args.listen {
        let address: ProxyAddress = text.parse()?;
        listeners.push(address.bind(args.allow_public)?);
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
            "shopify-events proxy: listening on {} for queue {:#010x}{}",
            listener.local_address()?,
            args.queue_key,
            if config.token.is_some() {
                " (token required)"
            } else {
                ""
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
