//! berth's subcommands, one file each. To add one: a module here with a `clap::Args`
//! struct and a `run` method, a variant in [`Command`], and its arm in [`Command::run`].

pub mod plan;
pub mod run;
pub mod validate;

use clap::Subcommand;
use std::process::ExitCode;

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check task definition files without running anything.
    ///
    /// Prints each file's verdict, errors and warnings; exits 0 when every file is valid,
    /// 1 otherwise.
    Validate(validate::Validate),
    /// Validate a task definition and show, step by step, what berth would do with it.
    ///
    /// A dry run: every Docker call is taken as a success and no container exits on its
    /// own; nothing touches Docker.
    Plan(plan::Plan),
    /// Run one task in the foreground with an embedded engine, until it stops.
    ///
    /// Shows each state change and the containers' output; removes the task's containers
    /// and volumes at the end unless --keep. Exit code: the first non-zero exit code of an
    /// essential container that exited on its own (or --exit-code-from's), 125 when the
    /// task could not run, 130 after Ctrl-C.
    Run(run::Run),
}

impl Command {
    /// Run the subcommand; the exit code says how it went.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Validate(cmd) => cmd.run(),
            Command::Plan(cmd) => cmd.run(),
            Command::Run(cmd) => cmd.run(),
        }
    }
}
