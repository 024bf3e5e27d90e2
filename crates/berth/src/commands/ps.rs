//! `berth ps [--all]`: the daemon's tasks, one a line (STOPPED ones only with `--all`):
//!
//! ```text
//! TASK                               DEFINITION   DESIRED   KNOWN     RESTARTS   CONTAINERS
//! 5f0c...                            web:3        RUNNING   RUNNING   2          app,proxy
//! ```
//!
//! RESTARTS is the sum of its containers' restart counts (their restart policies'), `-`
//! when none has a restart policy.

use crate::client::{self, HostArgs};
use serde_json::Value;
use std::process::ExitCode;

/// Arguments of `berth ps`.
#[derive(Debug, clap::Args)]
pub struct Ps {
    /// Show STOPPED tasks too.
    #[arg(short, long)]
    all: bool,
    #[command(flatten)]
    host: HostArgs,
}

impl Ps {
    /// Print the table.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.host.connect()?;
        let answer = client.block_on(client.get_json(&["v1", "tasks"], &[]))?;
        let tasks = answer["Tasks"].as_array().map(Vec::as_slice).unwrap_or_default();
        let rows: Vec<Vec<String>> =
            tasks.iter().filter(|t| self.all || t["KnownStatus"] != "STOPPED").map(row).collect();
        let text = client::table(&["TASK", "DEFINITION", "DESIRED", "KNOWN", "RESTARTS", "CONTAINERS"], &rows);
        client::write_out(&mut std::io::stdout().lock(), text.as_bytes())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// One task's line (ECS's task shape).
fn row(task: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    let all = task["Containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let containers: Vec<&str> = all.iter().filter_map(|c| c["Name"].as_str()).collect();
    let counts: Vec<u64> = all.iter().filter_map(|c| c["RestartCount"].as_u64()).collect();
    let restarts = if counts.is_empty() { "-".to_owned() } else { counts.iter().sum::<u64>().to_string() };
    vec![
        client::short_arn(task["Arn"].as_str().unwrap_or_default()).to_owned(),
        format!("{}:{}", text(&task["Family"]), text(&task["Version"])),
        text(&task["DesiredStatus"]),
        text(&task["KnownStatus"]),
        restarts,
        if containers.is_empty() { "-".to_owned() } else { containers.join(",") },
    ]
}
