//! `berth ps [--all]`: the daemon's tasks, one a line (STOPPED ones only with `--all`),
//! and, when a task waits for host resources, why (`docs/resources.md`):
//!
//! ```text
//! TASK                               DEFINITION   DESIRED   KNOWN     RESTARTS   CONTAINERS   WAITING
//! 5f0c...                            web:3        RUNNING   RUNNING   2          app,proxy    -
//! 9a1e...                            batch:1      RUNNING   PENDING   -          job          waiting for 512 MiB of memory: 256 free of 1024
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
        let shown: Vec<&Value> = tasks.iter().filter(|t| self.all || t["KnownStatus"] != "STOPPED").collect();
        let mut rows: Vec<Vec<String>> = shown.iter().map(|t| row(t)).collect();
        let mut headers = vec!["TASK", "DEFINITION", "DESIRED", "KNOWN", "RESTARTS", "CONTAINERS"];
        // Only a task none of whose containers was created may wait: its own view says why.
        let mut reasons = Vec::new();
        for task in &shown {
            let mut why = None;
            if not_begun(task)
                && let Some(arn) = task["Arn"].as_str()
            {
                // A task swept since the list has no reason to show.
                if let Ok(view) = client.block_on(client.get_json(&["v1", "tasks", arn], &[])) {
                    why = view["WaitingReason"].as_str().map(str::to_owned);
                }
            }
            reasons.push(why);
        }
        if reasons.iter().any(Option::is_some) {
            headers.push("WAITING");
            for (row, why) in rows.iter_mut().zip(reasons) {
                row.push(why.unwrap_or_else(|| "-".to_owned()));
            }
        }
        let text = client::table(&headers, &rows);
        client::write_out(&mut std::io::stdout().lock(), text.as_bytes())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The task is wanted and none of its containers has a Docker id yet (ECS's task shape).
fn not_begun(task: &Value) -> bool {
    task["DesiredStatus"] != "STOPPED"
        && task["Containers"]
            .as_array()
            .is_none_or(|cs| cs.iter().all(|c| c["DockerId"].as_str().is_none_or(str::is_empty)))
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
