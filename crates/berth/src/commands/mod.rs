//! berth's subcommands, one file each. To add one: a module here with a `clap::Args`
//! struct and a `run` method, a variant in [`Command`], and its arm in [`Command::run`].

pub mod cluster;
pub mod daemon;
pub mod events;
pub mod images;
pub mod inspect;
pub mod logs;
pub mod plan;
pub mod ps;
pub mod run;
pub mod stop;
pub mod submit;
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
    /// Run the long-running agent: the HTTP API on a unix socket (and TCP when asked).
    ///
    /// Settings: defaults < --config FILE < BERTH_* variables < flags (see
    /// docs/daemon-config.md). SIGTERM or SIGINT stops it; task containers keep running.
    Daemon(daemon::Daemon),
    /// Send a task definition to the daemon; prints the task's arn.
    ///
    /// Warnings go to standard error. A task the daemon refuses: each error as
    /// `path: message`, exit code 1. The daemon is -H/--host or BERTH_HOST
    /// (unix:///PATH, a socket path, tcp://HOST:PORT), else the socket in the daemon's
    /// default data directory; over TCP the token is BERTH_TOKEN or BERTH_TOKEN_FILE's.
    Submit(submit::Submit),
    /// List the daemon's tasks (STOPPED ones only with --all).
    Ps(ps::Ps),
    /// Show berth's whole view of one task, as JSON.
    Inspect(inspect::Inspect),
    /// Stop a task; its containers stop in the background.
    Stop(stop::Stop),
    /// Show the daemon's state changes as they happen, resumable with --since SEQ.
    Events(events::Events),
    /// Show a container's output (-f: keep following it).
    Logs(logs::Logs),
    /// List the images on the daemon's host, and which berth pulled.
    Images(images::Images),
    /// The whole cluster through the local daemon (cluster mode, docs/cluster.md):
    /// submit, ps, nodes, events, stop.
    Cluster(cluster::Cluster),
}

impl Command {
    /// Run the subcommand; the exit code says how it went.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Validate(cmd) => cmd.run(),
            Command::Plan(cmd) => cmd.run(),
            Command::Run(cmd) => cmd.run(),
            Command::Daemon(cmd) => cmd.run(),
            Command::Submit(cmd) => cmd.run(),
            Command::Ps(cmd) => cmd.run(),
            Command::Inspect(cmd) => cmd.run(),
            Command::Stop(cmd) => cmd.run(),
            Command::Events(cmd) => cmd.run(),
            Command::Logs(cmd) => cmd.run(),
            Command::Images(cmd) => cmd.run(),
            Command::Cluster(cmd) => cmd.run(),
        }
    }
}
