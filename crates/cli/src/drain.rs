//! `shopify-events drain`: configuration layering, signals, metrics server.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;
use shopify_events_core::drain::{Drain, DrainConfig, SinkKind};
use shopify_events_core::kafka::KafkaSink;
use shopify_events_core::metrics::{self, DrainMetrics, Health};
use shopify_events_core::sink::{Sink, StdoutSink};

use crate::args::{DrainArgs, SinkArg};
use shopify_events_core::ops::counted;

/// File, then environment and flags (clap already merged those two).
fn config(args: DrainArgs) -> anyhow::Result<DrainConfig> {
    let mut config = match &args.config {
        Some(path) => DrainConfig::from_file(path)?,
        None => DrainConfig::default(),
    };
    if let Some(key) = args.queue_key {
        config.queue_key = key;
    }
    if let Some(brokers) = args.brokers {
        config.kafka.insert("bootstrap.servers".into(), brokers);
    }
    for setting in args.kafka {
        let (key, value) = setting.split_once('=').with_context(|| {
            format!("--kafka {setting:?} is not KEY=VALUE (e.g. --kafka compression.type=zstd)")
        })?;
        config.kafka.insert(key.trim().into(), value.trim().into());
    }
    if let Some(sink) = args.sink {
        config.sink = Some(match sink {
            SinkArg::Kafka => SinkKind::Kafka,
            SinkArg::Stdout => SinkKind::Stdout,
        });
    }
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    if args.metrics_addr.is_some() {
        config.metrics_addr = args.metrics_addr;
    }
    config.metrics_allow_public |= args.metrics_allow_public;
    if let Some(n) = args.max_in_flight {
        config.max_in_flight = n;
    }
    if let Some(size) = args.journal_size {
        config.journal_size = size;
    }
    if let Some(secs) = args.shutdown_timeout {
        config.shutdown_timeout = secs;
    }
    if let Some(dir) = args.spool_dir {
        config.spool_dir = dir;
    }
    if args.save_on_stop {
        config.save_on_stop = true;
    }
    if args.no_save_on_stop {
        config.save_on_stop = false;
    }
    if let Some(secs) = args.save_timeout {
        config.save_timeout = secs;
    }
    if let Some(secs) = args.accounting_window {
        config.accounting_window = secs;
    }
    config.discard_damaged_journal |= args.discard_damaged_journal;
    config.validate()?;
    Ok(config)
}

pub fn run(args: DrainArgs) -> anyhow::Result<()> {
    let config = config(args)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone())
            .context("installing signal handlers")?;
    }
    let metrics = Arc::new(DrainMetrics::for_queue(config.queue_key));
    match config.sink_kind() {
        SinkKind::Kafka => {
            let sink =
                KafkaSink::new(&config.kafka_settings()).context("invalid kafka settings")?;
            drain(&config, sink, metrics, shutdown)
        }
        SinkKind::Stdout => drain(&config, StdoutSink::new(), metrics, shutdown),
    }
}

fn drain<S: Sink>(
    config: &DrainConfig,
    sink: S,
    metrics: Arc<DrainMetrics>,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let description = sink.describe();
    let mut drain = Drain::open(config, sink, metrics.clone())?;
    let server = match &config.metrics_addr {
        Some(addr) => {
            let listener = metrics::bind(addr, config.metrics_allow_public)?;
            let bound = listener.local_addr()?;
            let health = drain.health();
            let report = move || {
                health.lock().map(|h| h.clone()).unwrap_or_else(|_| Health {
                    ok: false,
                    detail: "poisoned".into(),
                })
            };
            let render = Arc::new(move |out: &mut String| metrics.render(out));
            let handle = metrics::serve(listener, render, Arc::new(report), shutdown.clone())?;
            eprintln!("shopify-events drain: metrics on http://{bound}/metrics");
            Some(handle)
        }
        None => None,
    };
    eprintln!(
        "shopify-events drain: draining queue {:#010x} and spool {} to {description} (state in {})",
        config.queue_key,
        config.spool_dir.display(),
        config.state_dir.display()
    );
    let summary = drain.run(&shutdown)?;
    eprintln!(
        "shopify-events drain: stopped; {} not yet acknowledged stay in the journal or their \
         spool segment and go first next start{}",
        counted(summary.left_in_flight as u64, "event"),
        if summary.saved > 0 {
            format!(
                ", after {} saved from the queue",
                counted(summary.saved, "event")
            )
        } else {
            String::new()
        }
    );
    if let Some(handle) = server {
        let _ = handle.join();
    }
    Ok(())
}
