//! Command-line arguments, and the small `setup` and `stats` commands.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use shopify_events_core::drain::config::parse_queue_key;
use shopify_events_core::state_dir::StateDir;
use shopify_events_core::{defaults, ops};
use sysvmq::Key;

/// Moves events from a host SysV queue to Kafka, and manages that queue.
#[derive(Debug, Parser)]
#[command(name = "shopify-events", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Move events from the queue to Kafka (or stdout) until SIGTERM/SIGINT.
    Drain(DrainArgs),
    /// Create the queue with a capacity and check the host's SysV limits.
    Setup(SetupArgs),
    /// Show the queue's depth, bytes, capacity and the running drain's counters.
    Stats(StatsArgs),
    /// Accept events from containers over TCP/Unix sockets into the host queue.
    Proxy(ProxyArgs),
    /// Watch the queue, the drain and the proxy live (q quits).
    Top(crate::top::TopArgs),
    /// Print events live as the drain delivers them, as JSON lines (Ctrl-C ends).
    Tap(crate::tap::TapArgs),
    /// List, show and replay events Kafka would not take.
    DeadLetters(crate::dead_letters::DeadLettersArgs),
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where to listen, repeatable: tcp://HOST:PORT or unix:///PATH.
    #[arg(long = "listen", required = true, value_name = "ADDRESS")]
    pub listen: Vec<String>,
    /// SysV queue key (decimal or 0x hex).
    #[arg(long, env = "SHOPIFY_EVENTS_QUEUE_KEY", value_parser = key, default_value = defaults::QUEUE_KEY_TEXT)]
    pub queue_key: Key,
    /// Shared secret clients must send (SHOPIFY_EVENTS_PROXY_TOKEN in the
    /// app). Visible to every local user in the process list: prefer
    /// --token-file or the environment variable.
    #[arg(long, env = "SHOPIFY_EVENTS_PROXY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the shared secret (its first line), e.g. a systemd
    /// credential: the token never appears in /proc.
    #[arg(
        long,
        env = "SHOPIFY_EVENTS_PROXY_TOKEN_FILE",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// Connections served at once (fewer if the descriptor limit says so).
    #[arg(long, default_value_t = defaults::PROXY_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections in their handshake at once; one more closes the oldest.
    #[arg(long, default_value_t = defaults::PROXY_MAX_PENDING_HANDSHAKES)]
    pub max_pending_handshakes: usize,
    /// Seconds a connection may stay silent between frames before it is closed.
    #[arg(long, default_value_t = defaults::PROXY_IDLE_TIMEOUT.as_secs_f64())]
    pub idle_timeout: f64,
    /// Seconds a new connection has to complete its handshake.
    #[arg(long, default_value_t = defaults::PROXY_HANDSHAKE_TIMEOUT.as_secs_f64())]
    pub handshake_timeout: f64,
    /// Seconds one frame may take from its first byte to its last.
    #[arg(long, default_value_t = defaults::PROXY_FRAME_TIMEOUT.as_secs_f64())]
    pub frame_timeout: f64,
    /// Mode of unix:// sockets (octal; connecting needs write permission).
    #[arg(long, default_value = defaults::PROXY_SOCKET_MODE_TEXT, value_parser = mode)]
    pub socket_mode: u32,
    /// The proxy's spool for events the queue cannot take (larger than
    /// kernel.msgmax, or the queue full).
    #[arg(long, env = "SHOPIFY_EVENTS_SPOOL_DIR", default_value = defaults::SPOOL_DIR)]
    pub spool_dir: PathBuf,
    /// No spool: events larger than kernel.msgmax are refused, a full
    /// queue holds acks until it has room.
    #[arg(long)]
    pub no_spool: bool,
    /// Largest event accepted with a spool, e.g. 1MiB.
    #[arg(long, env = "SHOPIFY_EVENTS_MAX_EVENT_BYTES", value_parser = size)]
    pub max_event_bytes: Option<u64>,
    /// Serve /metrics and /health here (loopback only unless --allow-public).
    #[arg(long, env = "SHOPIFY_EVENTS_PROXY_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Allow non-loopback --listen and --metrics-addr addresses.
    #[arg(long)]
    pub allow_public: bool,
    /// Where to write the proxy's stats snapshot (for `shopify-events top`).
    #[arg(long, env = "SHOPIFY_EVENTS_RUN_DIR", default_value = defaults::RUN_DIR)]
    pub run_dir: PathBuf,
}

pub fn key(text: &str) -> Result<Key, String> {
    parse_queue_key(text).map_err(|e| e.to_string())
}

fn size(text: &str) -> Result<u64, String> {
    ops::parse_size(text).map_err(|e| e.to_string())
}

/// `kafka` or `stdout`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SinkArg {
    Kafka,
    Stdout,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// TOML configuration file (flags and environment override it).
    #[arg(long, env = "SHOPIFY_EVENTS_CONFIG")]
    pub config: Option<PathBuf>,
    /// SysV queue key (decimal or 0x hex) [default: 0x53455600].
    #[arg(long, env = "SHOPIFY_EVENTS_QUEUE_KEY", value_parser = key)]
    pub queue_key: Option<Key>,
    /// Kafka bootstrap servers (sets kafka."bootstrap.servers").
    #[arg(long, env = "SHOPIFY_EVENTS_BROKERS")]
    pub brokers: Option<String>,
    /// Where events go [default: kafka with brokers, else stdout].
    #[arg(long, value_enum)]
    pub sink: Option<SinkArg>,
    /// Journal, lock file, dead letters and stats snapshot [default: /var/lib/shopify-events].
    #[arg(long, env = "SHOPIFY_EVENTS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Serve /metrics and /health here (loopback only unless --metrics-allow-public).
    #[arg(long, env = "SHOPIFY_EVENTS_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Allow a non-loopback --metrics-addr.
    #[arg(long)]
    pub metrics_allow_public: bool,
    /// Events sent and not yet acknowledged, at most [default: 10000].
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Journal size, e.g. 64MiB.
    #[arg(long, value_parser = size)]
    pub journal_size: Option<u64>,
    /// Seconds to wait for in-flight deliveries at shutdown [default: 10].
    #[arg(long)]
    pub shutdown_timeout: Option<f64>,
    /// A librdkafka setting, KEY=VALUE (repeatable; overrides the file).
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,
    /// Spool directory whose segments for this queue the drain delivers [default: /var/spool/shopify-events].
    #[arg(long, env = "SHOPIFY_EVENTS_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// At SIGTERM, save what is left in the queue to disk (delivered first at the next start).
    #[arg(long, overrides_with = "no_save_on_stop")]
    pub save_on_stop: bool,
    /// Do not save the queue at SIGTERM (overrides the file).
    #[arg(long, overrides_with = "save_on_stop")]
    pub no_save_on_stop: bool,
    /// Seconds the save at SIGTERM may take [default: 15].
    #[arg(long)]
    pub save_timeout: Option<f64>,
    /// Seconds a missing event number may wait for reordering before it counts as a gap [default: 60].
    #[arg(long)]
    pub accounting_window: Option<f64>,
    /// Start even if the journal is damaged where records may follow (they are given up).
    #[arg(long)]
    pub discard_damaged_journal: bool,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// SysV queue key (decimal or 0x hex).
    #[arg(long, env = "SHOPIFY_EVENTS_QUEUE_KEY", value_parser = key, default_value = defaults::QUEUE_KEY_TEXT)]
    pub queue_key: Key,
    /// Queue capacity, e.g. 2GiB.
    #[arg(long, value_parser = size)]
    pub capacity: u64,
    /// Largest event you will send, e.g. 64KiB (checked against kernel.msgmax).
    #[arg(long, value_parser = size)]
    pub max_event: Option<u64>,
    /// Queue permissions (octal).
    #[arg(long, default_value = defaults::QUEUE_MODE_TEXT, value_parser = mode)]
    pub mode: u32,
    /// The group your apps run as (name or number): the queue, new or
    /// existing, gets this group and --mode, and the spool directory this
    /// group, so its members can emit and the drain (a member) can read.
    #[arg(long, value_parser = group)]
    pub group: Option<u32>,
    /// Raise kernel.msgmnb / kernel.msgmax first where they are too small (root).
    #[arg(long)]
    pub apply_sysctls: bool,
    /// The spool directory to create (mode 2770) or adjust.
    #[arg(long, env = "SHOPIFY_EVENTS_SPOOL_DIR", default_value = defaults::SPOOL_DIR)]
    pub spool_dir: PathBuf,
    /// Leave the spool directory alone (wins over --spool-dir).
    #[arg(long)]
    pub no_spool_dir: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn group(text: &str) -> Result<u32, String> {
    ops::group_id(text).map_err(|e| e.to_string())
}

fn mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("mode {text:?} is not an octal file mode like 660"))
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// SysV queue key (decimal or 0x hex).
    #[arg(long, env = "SHOPIFY_EVENTS_QUEUE_KEY", value_parser = key, default_value = defaults::QUEUE_KEY_TEXT)]
    pub queue_key: Key,
    /// The drain's state directory (for its counters).
    #[arg(long, env = "SHOPIFY_EVENTS_STATE_DIR", default_value = defaults::STATE_DIR)]
    pub state_dir: PathBuf,
    /// The spool directory (for the queue's spool files).
    #[arg(long, env = "SHOPIFY_EVENTS_SPOOL_DIR", default_value = defaults::SPOOL_DIR)]
    pub spool_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn setup(args: SetupArgs) -> anyhow::Result<()> {
    let mut plan = ops::SetupPlan::new(args.queue_key, args.capacity);
    plan.mode = args.mode;
    plan.group = args.group;
    plan.max_event = args.max_event;
    plan.raise_sysctls = args.apply_sysctls;
    plan.spool_dir = (!args.no_spool_dir).then_some(args.spool_dir);
    let report = plan.run().context("setup failed")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    if report.is_ready() {
        Ok(())
    } else {
        anyhow::bail!("the queue is not ready: change the settings above and run setup again")
    }
}

pub fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let mut stats = ops::queue_stats(args.queue_key)
        .with_context(|| format!("cannot read queue {:#010x}", args.queue_key))?;
    stats.spool = Some(ops::spool_files(&args.spool_dir, args.queue_key));
    stats.drain = ops::read_drain_snapshot(&StateDir::new(args.state_dir, args.queue_key));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{stats}");
    }
    Ok(())
}
