//! `shopify-events tap`: the events a running drain delivers, live, as JSON
//! lines on stdout. The drain filters and formats (`shopify_events_core::tap`);
//! this prints, counts and stops.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use shopify_events_core::defaults;
use shopify_events_core::ops::counted;
use shopify_events_core::state_dir::StateDir;
use shopify_events_core::tap::{TapClient, TapError, TapLine, TopicFilter};
use sysvmq::Key;

/// How often a waiting tap looks at Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
pub struct TapArgs {
    /// SysV queue key (decimal or 0x hex) of the drain to tap.
    #[arg(long, env = "SHOPIFY_EVENTS_QUEUE_KEY", value_parser = crate::args::key, default_value = defaults::QUEUE_KEY_TEXT)]
    pub queue_key: Key,
    /// The drain's state directory (where its tap socket is).
    #[arg(long, env = "SHOPIFY_EVENTS_STATE_DIR", default_value = defaults::STATE_DIR)]
    pub state_dir: PathBuf,
    /// Only topics matching this glob (* any run, ? one character); repeatable.
    #[arg(long = "topic", value_name = "GLOB")]
    pub topics: Vec<String>,
    /// Exit after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

pub fn run(args: TapArgs) -> anyhow::Result<()> {
    let filter = TopicFilter::parse(&args.topics)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let path = StateDir::new(&args.state_dir, args.queue_key).tap_socket();
    let mut client = TapClient::connect(&path, &filter)?;
    client.set_wait(Some(SIGNAL_CHECK))?;
    let topics = match client.topics() {
        [] => "all topics".to_owned(),
        globs => globs.join(" "),
    };
    eprintln!(
        "shopify-events tap: queue {}, drain pid {}, {topics}{}; Ctrl-C ends",
        client.queue(),
        client.drain_pid(),
        args.limit
            .map(|n| format!(", the first {}", counted(n, "event")))
            .unwrap_or_default()
    );
    let mut out = io::BufWriter::with_capacity(64 << 10, io::stdout().lock());
    let mut shown = 0u64;
    let mut missed = 0u64;
    let ended = loop {
        if stop.load(Relaxed) {
            break None;
        }
        let line = match client.next_line() {
            Ok(line) => line,
            Err(e @ TapError::Lost) => {
                let _ = out.flush();
                return Err(e).context(format!("after {}", counted(shown, "event")));
            }
            Err(e) => return Err(e.into()),
        };
        let written = match line {
            None => Ok(()),
            Some(TapLine::Event(line)) => {
                shown += 1;
                out.write_all(line)
            }
            Some(TapLine::Missed { events, line }) => {
                missed += events;
                out.write_all(line)
            }
            Some(TapLine::End { reason }) => break Some(reason),
        };
        // Flush only before waiting, so a fast stream goes out in large writes.
        let flushed = written.and_then(|()| {
            if client.has_buffered() {
                Ok(())
            } else {
                out.flush()
            }
        });
        if let Err(e) = flushed {
            // `tap | head`: the reader left, which is a normal end.
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("writing to stdout");
        }
        if args.limit.is_some_and(|n| shown >= n) {
            break None;
        }
    };
    out.flush().or_else(|e| match e.kind() {
        io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    })?;
    let missed = match missed {
        0 => String::new(),
        n => format!(", {n} missed (this tap read too slowly)"),
    };
    match (ended, args.limit) {
        (Some(reason), Some(limit)) if shown < limit => {
            anyhow::bail!(
                "{reason} after {shown} of {}{missed}",
                counted(limit, "event")
            )
        }
        (Some(reason), _) => eprintln!(
            "shopify-events tap: {reason}; {}{missed}",
            counted(shown, "event")
        ),
        (None, _) => eprintln!("shopify-events tap: {}{missed}", counted(shown, "event")),
    }
    Ok(())
}
