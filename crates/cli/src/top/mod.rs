//! `shopify-events top`: the live view on a terminal (`screen`), or a line
//! per refresh when stdout is not one. The model is `ops::top`.

mod screen;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use shopify_events_core::defaults;
use shopify_events_core::ops::top::{Sampler, Top, TopView};
use sysvmq::Key;

use crate::args::key;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// SysV queue key (decimal or 0x hex).
    #[arg(long, env = "SHOPIFY_EVENTS_QUEUE_KEY", value_parser = key, default_value = defaults::QUEUE_KEY_TEXT)]
    pub queue_key: Key,
    /// The drain's state directory (its snapshot).
    #[arg(long, env = "SHOPIFY_EVENTS_STATE_DIR", default_value = defaults::STATE_DIR)]
    pub state_dir: PathBuf,
    /// The proxy's directory (its snapshot).
    #[arg(long, env = "SHOPIFY_EVENTS_RUN_DIR", default_value = defaults::RUN_DIR)]
    pub run_dir: PathBuf,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = defaults::TOP_INTERVAL.as_secs_f64())]
    pub interval: f64,
    /// Topics to list, the busiest first.
    #[arg(long, default_value_t = defaults::TOP_TOPICS)]
    pub topics: usize,
    /// Print one reading (two samples one interval apart, for the rates) and exit.
    #[arg(long)]
    pub once: bool,
    /// A line per refresh even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// JSON lines instead of key=value lines (implies --plain).
    #[arg(long)]
    pub json: bool,
    /// Stop after this many lines (plain output).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let interval = Duration::try_from_secs_f64(args.interval)
        .ok()
        .filter(|d| *d >= Duration::from_millis(100))
        .with_context(|| {
            format!(
                "--interval {} is not a number of seconds of at least 0.1",
                args.interval
            )
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let mut live = Live {
        sampler: Sampler::new(args.queue_key, &args.state_dir, &args.run_dir),
        top: Top::new(args.queue_key),
        topics: args.topics,
        interval,
        stop,
    };
    let terminal = std::io::stdout().is_terminal();
    if args.once || args.plain || args.json || !terminal {
        live.lines(&args)
    } else {
        live.screen()
    }
}

/// The readings so far and how to take the next.
struct Live {
    sampler: Sampler,
    top: Top,
    topics: usize,
    interval: Duration,
    stop: Arc<AtomicBool>,
}

impl Live {
    fn refresh(&mut self) -> Option<TopView> {
        self.top.observe(self.sampler.read());
        self.top.view(self.topics)
    }

    /// Sleeps until `deadline` in short steps; false if told to stop.
    fn wait(&self, deadline: Instant) -> bool {
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if self.stop.load(Relaxed) {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        !self.stop.load(Relaxed)
    }

    /// A line per refresh (key=value, or JSON), for pipes and logs.
    fn lines(&mut self, args: &TopArgs) -> anyhow::Result<()> {
        let limit = if args.once { Some(1) } else { args.count };
        if args.once {
            // A rate needs two readings.
            self.refresh();
            if !self.wait(Instant::now() + self.interval) {
                return Ok(());
            }
        }
        let mut printed = 0;
        let mut out = std::io::stdout().lock();
        loop {
            let next = Instant::now() + self.interval;
            if let Some(view) = self.refresh() {
                let line = if args.json {
                    serde_json::to_string(&view)?
                } else {
                    view.line()
                };
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    // The reader went away (`| head`): done.
                    return Ok(());
                }
                printed += 1;
            }
            if limit.is_some_and(|limit| printed >= limit) || !self.wait(next) {
                return Ok(());
            }
        }
    }

    /// The full-screen view until `q`, Esc, Ctrl-C or a signal.
    fn screen(&mut self) -> anyhow::Result<()> {
        let mut terminal = ratatui::init();
        let result = self.screen_loop(&mut terminal);
        ratatui::restore();
        result
    }

    fn screen_loop(&mut self, terminal: &mut ratatui::DefaultTerminal) -> anyhow::Result<()> {
        let mut view = self.refresh();
        let mut next = Instant::now() + self.interval;
        loop {
            terminal.draw(|frame| screen::draw(frame, view.as_ref(), self.interval))?;
            loop {
                if self.stop.load(Relaxed) {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= next {
                    view = self.refresh();
                    next = now + self.interval;
                    break;
                }
                if !event::poll((next - now).min(Duration::from_millis(100)))? {
                    continue;
                }
                match event::read()? {
                    Event::Key(k) if k.kind == KeyEventKind::Press => {
                        let ctrl_c = k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL);
                        if ctrl_c || matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) {
                            return Ok(());
                        }
                    }
                    Event::Resize(..) => break,
                    _ => {}
                }
            }
        }
    }
}
