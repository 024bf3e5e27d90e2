//! `berth submit FILE [--client-token TOKEN] [--env NAME=VALUE]... [--container NAME]
//! [--command ARG...]`: send a task definition to the daemon, the flags as RunTask's
//! overrides of one container. Prints the task's arn; warnings go to standard error. A
//! refused task: each error `path: message`, exit 1. `--cluster`: store it in the cluster
//! instead (`berth cluster submit`), any node may run it; prints the cluster task's id.

use crate::client::{self, HostArgs};
use crate::overrides::{OverrideArgs, add_to_body};
use crate::taskfile;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `berth submit`.
#[derive(Debug, clap::Args)]
pub struct Submit {
    /// The task definition (JSON, in any of the shapes berth reads; `-` for standard
    /// input).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Make the submit idempotent (ECS RunTask's clientToken, 1 to 64 printable ASCII
    /// characters): while the daemon holds a task submitted with this token, submitting
    /// again with it gives that task, never a second one.
    #[arg(long, value_name = "TOKEN")]
    client_token: Option<String>,
    /// Store the task in the cluster (etcd) instead of on this daemon: any node may run
    /// it (the daemon must be in cluster mode; the same as `berth cluster submit`).
    #[arg(long)]
    cluster: bool,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    overrides: OverrideArgs,
}

impl Submit {
    /// Submit the file; exit 0 when the daemon took the task.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let body = if self.file.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
                .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
            bytes
        } else {
            taskfile::read(&self.file).map_err(anyhow::Error::msg)?
        };
        // The container the flags name is chosen on the definition as read here; a
        // definition this cannot read is sent as it is, and the daemon says what is wrong.
        let opts = taskfile::options(&self.file, None, 0);
        let body = match berth_model::input::parse(&body, &opts) {
            Ok(accepted) => match self.overrides.of(&accepted.task).map_err(anyhow::Error::msg)? {
                Some(overrides) => add_to_body(&body, &overrides).map_err(anyhow::Error::msg)?,
                None => body,
            },
            Err(_) => body,
        };
        let client = self.host.connect()?;
        if self.cluster {
            return crate::commands::cluster::submit_body(&client, &self.file, body, self.client_token.as_deref());
        }
        let query: Vec<(&str, &str)> = self.client_token.iter().map(|t| ("clientToken", t.as_str())).collect();
        let task = client.block_on(async { client::json(client.post(&["v1", "tasks"], &query, body).await?).await })?;
        for warning in client::issues(&task["Warnings"]) {
            eprintln!("warning: {warning}");
        }
        if let Some(more) = task["WarningsOmitted"].as_u64() {
            eprintln!("warning: ... and {more} more warnings");
        }
        if let Some(why) = task["WaitingReason"].as_str() {
            eprintln!("note: the task is {why}");
        }
        let arn = task["Arn"].as_str().unwrap_or_default();
        println!("{arn}");
        Ok(ExitCode::SUCCESS)
    }
}
