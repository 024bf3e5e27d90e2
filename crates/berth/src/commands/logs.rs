//! `berth logs ARN [CONTAINER] [-f] [--tail N|all] [--since TIME]`: a container's output
//! (standard output and error as Docker keeps them), written to standard output as it
//! comes: its last 1,000 lines unless `--tail` says otherwise. The container may be left
//! out when the task has only one.

use crate::client::{self, HostArgs, Written};
use std::process::ExitCode;

/// Arguments of `berth logs`.
#[derive(Debug, clap::Args)]
pub struct Logs {
    /// The task: its arn, or the last part of it.
    #[arg(value_name = "ARN")]
    arn: String,
    /// The container, by its name in the task.
    #[arg(value_name = "CONTAINER")]
    container: Option<String>,
    /// Keep following the output until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (the daemon's default is 1000), or `all`.
    #[arg(long, value_name = "N")]
    tail: Option<String>,
    /// Only output written since TIME: Unix seconds or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    #[command(flatten)]
    host: HostArgs,
}

impl Logs {
    /// Copy the output to standard output.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.host.connect()?;
        let mut query = Vec::new();
        if let Some(container) = &self.container {
            query.push(("container", container.as_str()));
        }
        if self.follow {
            query.push(("follow", "true"));
        }
        if let Some(tail) = &self.tail {
            query.push(("tail", tail.as_str()));
        }
        if let Some(since) = &self.since {
            query.push(("since", since.as_str()));
        }
        let mut out = std::io::stdout().lock();
        client.block_on(async {
            let mut response = client.get(&["v1", "tasks", &self.arn, "logs"], &query).await?;
            while let Some(chunk) = response.chunk().await.map_err(|e| client.failed(e))? {
                if client::write_out(&mut out, &chunk)? == Written::Closed {
                    break;
                }
            }
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
