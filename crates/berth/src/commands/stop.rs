//! `berth stop ARN`: ask the daemon to stop a task. The answer comes once the stop is
//! recorded; the containers stop in the background (`berth ps --all` shows when).

use crate::client::{self, HostArgs};
use std::process::ExitCode;

/// Arguments of `berth stop`.
#[derive(Debug, clap::Args)]
pub struct Stop {
    /// The task: its arn, or the last part of it.
    #[arg(value_name = "ARN")]
    arn: String,
    #[command(flatten)]
    host: HostArgs,
}

impl Stop {
    /// Stop the task; print its arn.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.host.connect()?;
        let task = client.block_on(async {
            client::json(client.post(&["v1", "tasks", &self.arn, "stop"], &[], Vec::new()).await?).await
        })?;
        println!("{}", task["Arn"].as_str().unwrap_or(&self.arn));
        Ok(ExitCode::SUCCESS)
    }
}
