//! `shopify-events dead-letters list|show|replay`: printing and choosing;
//! reading and replaying are `ops::dead_letters`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use shopify_events_core::defaults;
use shopify_events_core::ops::dead_letters::{
    printable, replay, DeadLetter, DeadLetterReader, DeadLetterView, Record, ReplayPlan,
};
use shopify_events_core::state_dir::StateDir;
use sysvmq::Key;

use crate::args::key;
use shopify_events_core::ops::counted;

#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    #[command(subcommand)]
    pub command: DeadLettersCommand,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// One line per dead letter: line, time, event id, topic, size, reason.
    List(ListArgs),
    /// One dead letter in full, its payload shown when printable.
    Show(ShowArgs),
    /// Put dead letters back into the queue with their event id and emit time.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// A dead-letter file, rotated ones too [default: STATE_DIR/dead-letters.jsonl].
    pub file: Option<PathBuf>,
    /// The drain's state directory, for the default file.
    #[arg(long, env = "SHOPIFY_EVENTS_STATE_DIR", default_value = defaults::STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// One JSON object per dead letter, envelope decoded.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub file: FileArgs,
    #[command(flatten)]
    pub select: Select,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Select {
    /// The dead letter on this line of the file (as `list` numbers them); repeatable.
    #[arg(long = "line", value_name = "N")]
    pub lines: Vec<u64>,
    /// The dead letter with this event id (its envelope's, as `list` shows it); repeatable.
    #[arg(long = "id", value_name = "EVENT_ID")]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Which to replay [default: all of them].
    #[command(flatten)]
    pub select: Select,
    /// Send them to this topic instead of their own (same event id and time).
    #[arg(long)]
    pub topic: Option<String>,
    /// SysV queue key (decimal or 0x hex).
    #[arg(long, env = "SHOPIFY_EVENTS_QUEUE_KEY", value_parser = key, default_value = defaults::QUEUE_KEY_TEXT)]
    pub queue_key: Key,
    /// Seconds to wait for room while the queue is full.
    #[arg(long, default_value_t = defaults::REPLAY_WAIT.as_secs_f64())]
    pub wait: f64,
    /// Replay what can be, and list the rest, instead of refusing them all.
    #[arg(long)]
    pub skip_unsendable: bool,
}

pub fn run(args: DeadLettersArgs) -> anyhow::Result<()> {
    match args.command {
        DeadLettersCommand::List(args) => list(args),
        DeadLettersCommand::Show(args) => show(args),
        DeadLettersCommand::Replay(args) => replay_cmd(args),
    }
}

impl FileArgs {
    fn path(&self) -> PathBuf {
        self.file.clone().unwrap_or_else(|| {
            // The key does not matter: the dead-letter file is shared.
            StateDir::new(&self.state_dir, defaults::QUEUE_KEY).dead_letters()
        })
    }
}

/// The file's dead letters, read one at a time; each damaged stretch is
/// reported on stderr as it is met.
fn letters(path: &Path) -> anyhow::Result<impl Iterator<Item = anyhow::Result<DeadLetter>> + '_> {
    let records = DeadLetterReader::open(path)?;
    Ok(records.filter_map(move |record| match record {
        Ok(Record::Letter(letter)) => Some(Ok(letter)),
        Ok(Record::Damaged(d)) => {
            eprintln!(
                "shopify-events: {}:{} (byte {}): {}; {} bytes skipped",
                path.display(),
                d.line,
                d.offset,
                d.reason,
                d.len
            );
            None
        }
        Err(e) => Some(Err(e.into())),
    }))
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let path = args.file.path();
    if !args.json {
        println!("{}", DeadLetterView::list_header());
    }
    for letter in letters(&path)? {
        let view = letter?.view();
        if args.json {
            println!("{}", serde_json::to_string(&view)?);
        } else {
            println!("{}", view.list_line());
        }
    }
    Ok(())
}

impl Select {
    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.ids.is_empty()
    }

    /// Whether `letter` is chosen, and its id (as `list` shows it).
    fn wants(&self, letter: &DeadLetter) -> (bool, Option<String>) {
        let id = letter.id();
        let wanted = self.lines.contains(&letter.line)
            || id.as_ref().is_some_and(|id| self.ids.contains(id));
        (wanted, id)
    }

    /// The letters chosen, in file order, keeping only those; an error
    /// names a choice that matches none.
    fn pick(
        &self,
        letters: impl Iterator<Item = anyhow::Result<DeadLetter>>,
        path: &Path,
    ) -> anyhow::Result<Vec<DeadLetter>> {
        let mut chosen = Vec::new();
        let mut ids = Vec::new();
        for letter in letters {
            let letter = letter?;
            if let (true, id) = self.wants(&letter) {
                chosen.push(letter);
                ids.extend(id);
            }
        }
        for line in &self.lines {
            anyhow::ensure!(
                chosen.iter().any(|l| l.line == *line),
                "no dead letter on line {line} of {} (`shopify-events dead-letters list` numbers them)",
                path.display()
            );
        }
        for id in &self.ids {
            anyhow::ensure!(
                ids.contains(id),
                "no dead letter with event id {id} in {}",
                path.display()
            );
        }
        Ok(chosen)
    }
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let path = args.file.path();
    let chosen = if args.select.is_empty() {
        // The only one, without holding the others.
        let mut first = None;
        let mut count = 0usize;
        for letter in letters(&path)? {
            let letter = letter?;
            count += 1;
            if first.is_none() {
                first = Some(letter);
            }
        }
        anyhow::ensure!(
            count == 1,
            "{} holds {count} dead letters: choose one with --line N or --id EVENT_ID (see `list`)",
            path.display(),
        );
        first.into_iter().collect()
    } else {
        args.select.pick(letters(&path)?, &path)?
    };
    for (i, letter) in chosen.iter().enumerate() {
        let view = letter.view();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&view)?);
        } else {
            if i > 0 {
                println!();
            }
            print!("{view}");
        }
    }
    Ok(())
}

fn replay_cmd(args: ReplayArgs) -> anyhow::Result<()> {
    let path = args.file.path();
    let wait = Duration::try_from_secs_f64(args.wait)
        .with_context(|| format!("--wait {} is not a number of seconds", args.wait))?;
    // Replay checks every chosen event before sending any, so it holds
    // them all: its memory grows with what is chosen (`--line`, `--id`).
    let chosen = if args.select.is_empty() {
        letters(&path)?.collect::<anyhow::Result<Vec<_>>>()?
    } else {
        args.select.pick(letters(&path)?, &path)?
    };
    anyhow::ensure!(
        !chosen.is_empty(),
        "{} holds no dead letters",
        path.display()
    );
    let plan = ReplayPlan {
        key: args.queue_key,
        topic: args.topic,
        wait,
        skip_unsendable: args.skip_unsendable,
    };
    let report = replay(&chosen, &plan)?;
    for (line, id, topic) in &report.replayed {
        println!("replayed line {line}: {id} to {topic}");
    }
    for skipped in &report.skipped {
        eprintln!(
            "shopify-events: skipped line {} ({}): {}",
            skipped.line,
            printable(skipped.event_id.as_deref().unwrap_or("no event id")),
            skipped.reason
        );
    }
    eprintln!(
        "shopify-events: {} replayed into queue {:#010x}; {} is unchanged (move it aside once they arrived)",
        counted(report.replayed.len() as u64, "event"),
        args.queue_key,
        path.display()
    );
    Ok(())
}
