//! `berth inspect ARN`: berth's whole view of one task, as indented JSON.

use crate::client::{self, HostArgs};
use std::process::ExitCode;

/// Arguments of `berth inspect`.
#[derive(Debug, clap::Args)]
pub struct Inspect {
    /// The task: its arn, or the last part of it.
    #[arg(value_name = "ARN")]
    arn: String,
    #[command(flatten)]
    host: HostArgs,
}

impl Inspect {
    /// Print the task.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.host.connect()?;
        let body = client.block_on(async {
            let response = client.get(&["v1", "tasks", &self.arn], &[]).await?;
            response.bytes().await.map_err(|e| client.failed(e))
        })?;
        serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| anyhow::anyhow!("the daemon's answer is not JSON: {e}"))?;
        let mut text = client::pretty(&body);
        text.push('\n');
        client::write_out(&mut std::io::stdout().lock(), text.as_bytes())?;
        Ok(ExitCode::SUCCESS)
    }
}
