//! berth: a container task engine for one host (command line).
//!
//! `main` only parses the command line and dispatches; each subcommand lives in its own
//! file under [`commands`].

mod client;
mod commands;
mod overrides;
mod progress;
mod taskfile;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the engine makes many small, short-lived
/// allocations, and with glibc the allocator was half of its CPU (BENCHMARKS.md, issue 3).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about = "A container task engine for one host")]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
