//! `shopify-events`: the host command. Parses arguments, sets up signals
//! and prints results; the work happens in `shopify_events_core`.

mod args;
mod dead_letters;
mod drain;
mod proxy;
mod top;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Drain(args) => drain::run(args),
        Command::Setup(args) => args::setup(args),
        Command::Stats(args) => args::stats(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Top(args) => top::run(args),
        Command::DeadLetters(args) => dead_letters::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shopify-events: {error:#}");
            ExitCode::FAILURE
        }
    }
}
