//! `berth cluster ...`: the whole cluster through the local daemon's `/v1/cluster/...` API
//! (docs/cluster.md). The daemon must be in cluster mode (`berth daemon --cluster`).
//!
//! - `submit FILE [--client-token T]`: store a task in etcd (any node may run it); prints
//!   its id. The same as `berth submit --cluster FILE`.
//! - `ps`: every task, where it is placed and what its node reports.
//! - `nodes`: every node: capacity, used, epoch, whether it leads.
//! - `events [--from REV] [--json]`: changes as they happen, resumable by revision.
//! - `stop ID`: desired STOPPED; its node stops it.

use crate::client::{self, Client, HostArgs, Written};
use crate::taskfile;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `berth cluster`.
#[derive(Debug, clap::Args)]
pub struct Cluster {
    #[command(subcommand)]
    command: ClusterCommand,
    #[command(flatten)]
    host: HostArgs,
}

/// A `berth cluster` subcommand.
#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// Store a task definition in the cluster; prints the task's id.
    ///
    /// The body as `berth submit` sends it, plus `placementConstraints`,
    /// `placementStrategy` and `partitionPolicy` beside the definition.
    Submit {
        /// The task definition (JSON; `-` for standard input).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Make the submit idempotent: submitting again with it gives the same task.
        #[arg(long, value_name = "TOKEN")]
        client_token: Option<String>,
    },
    /// List the cluster's tasks: desired status, node, reported status.
    Ps {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the cluster's nodes: capacity, used, epoch, leader.
    Nodes {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the cluster's changes as they happen (tasks, placements, status).
    Events {
        /// Start at this store revision (resume with the last one shown plus 1); without
        /// it, the current state first.
        #[arg(long, value_name = "REV")]
        from: Option<i64>,
        /// Print each change as the API's JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Stop a cluster task.
    Stop {
        /// The task's id.
        #[arg(value_name = "ID")]
        id: String,
    },
}

impl Cluster {
    /// Run the subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.host.connect()?;
        match self.command {
            ClusterCommand::Submit { file, client_token } => submit(&client, &file, client_token.as_deref()),
            ClusterCommand::Ps { json } => ps(&client, json),
            ClusterCommand::Nodes { json } => nodes(&client, json),
            ClusterCommand::Events { from, json } => events(&client, from, json),
            ClusterCommand::Stop { id } => {
                let task = client.block_on(async {
                    client::json(client.post(&["v1", "cluster", "tasks", &id, "stop"], &[], Vec::new()).await?).await
                })?;
                println!("{}", task["task"]["id"].as_str().unwrap_or(&id));
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// `POST /v1/cluster/tasks` with the file; prints the id, warnings to standard error.
fn submit(client: &Client, file: &Path, client_token: Option<&str>) -> anyhow::Result<ExitCode> {
    let body = if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
        bytes
    } else {
        taskfile::read(file).map_err(anyhow::Error::msg)?
    };
    submit_body(client, file, body, client_token)
}

/// `POST /v1/cluster/tasks` with `body` read from `file` (whose name is the family of a
/// bare array); prints the cluster task's id, warnings to standard error.
pub fn submit_body(
    client: &Client,
    file: &Path,
    body: Vec<u8>,
    client_token: Option<&str>,
) -> anyhow::Result<ExitCode> {
    // A bare array names no family: the file's name does, as for `berth submit`.
    let family = taskfile::options(file, None, 0).family;
    let mut query: Vec<(&str, &str)> = client_token.iter().map(|t| ("clientToken", *t)).collect();
    if let Some(family) = &family {
        query.push(("family", family.as_str()));
    }
    let answer =
        client.block_on(async { client::json(client.post(&["v1", "cluster", "tasks"], &query, body).await?).await })?;
    for warning in client::issues(&answer["Warnings"]) {
        eprintln!("warning: {warning}");
    }
    println!("{}", answer["Task"]["task"]["id"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn ps(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let tasks = client.block_on(client.get_json(&["v1", "cluster", "tasks"], &[]))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for t in tasks.as_array().into_iter().flatten() {
        let node = text(&t["placement"]["node"]);
        let status = t["status"].get(&node).cloned().unwrap_or(Value::Null);
        let family = t["task"]["definition"]["family"].as_str().unwrap_or("-").to_string();
        // Unplaced: the scheduler's state (WAITING, FAILED) and why.
        let (state, reason) = if t["pending"].is_null() {
            (text(&status["status"]), text(&status["reason"]))
        } else {
            (text(&t["pending"]["state"]), text(&t["pending"]["reason"]))
        };
        rows.push(vec![text(&t["task"]["id"]), family, text(&t["task"]["desired"]), node, state, reason]);
    }
    print!("{}", client::table(&["ID", "FAMILY", "DESIRED", "NODE", "STATUS", "REASON"], &rows));
    Ok(ExitCode::SUCCESS)
}

fn nodes(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let answer = client.block_on(client.get_json(&["v1", "cluster", "nodes"], &[]))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for n in answer["nodes"].as_array().into_iter().flatten() {
        let alive = !n["alive"].is_null();
        rows.push(vec![
            text(&n["name"]),
            if alive { "alive".into() } else { "gone".into() },
            if alive { text(&n["alive"]["epoch"]) } else { "-".into() },
            format!("{}/{}", n["used"]["cpu"].as_u64().unwrap_or(0), text(&n["info"]["cpu"])),
            format!("{}/{}", n["used"]["memoryMib"].as_u64().unwrap_or(0), text(&n["info"]["memoryMib"])),
            text(&n["used"]["tasks"]),
            if n["leader"].as_bool().unwrap_or(false) { "*".into() } else { String::new() },
        ]);
    }
    print!(
        "{}",
        client::table(&["NODE", "STATE", "EPOCH", "CPU USED/CAP", "MEM MIB USED/CAP", "TASKS", "LEADER"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

fn events(client: &Client, from: Option<i64>, json: bool) -> anyhow::Result<ExitCode> {
    let from = from.map(|r| r.to_string());
    let query: Vec<(&str, &str)> = from.iter().map(|f| ("from", f.as_str())).collect();
    let mut out = std::io::stdout().lock();
    client.block_on(async {
        let mut response = client.get(&["v1", "cluster", "events"], &query).await?;
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| client.failed(e))? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let item: Value = serde_json::from_slice(&line)
                    .map_err(|e| anyhow::anyhow!("the daemon sent a line that is not JSON: {e}"))?;
                if let Some(error) = item["Error"].as_str() {
                    anyhow::bail!("the cluster's event stream failed: {error}");
                }
                let text = if json {
                    line
                } else {
                    let node = item["node"].as_str().map(|n| format!(" on {n}")).unwrap_or_default();
                    let status = item["value"]["status"].as_str().or(item["value"]["desired"].as_str());
                    let status = status.map(|s| format!(" {s}")).unwrap_or_default();
                    format!(
                        "{} {} {} {}{}{}\n",
                        item["revision"],
                        text(&item["op"]),
                        text(&item["kind"]),
                        item["task"].as_str().unwrap_or(""),
                        node,
                        status
                    )
                    .into_bytes()
                };
                if client::write_out(&mut out, &text)? == Written::Closed {
                    return Ok(());
                }
            }
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
