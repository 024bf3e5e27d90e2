//! `berth events [--since SEQ] [--no-follow] [--json]`: the daemon's state changes, one a
//! line:
//!
//! ```text
//! SEQ TIME TASK CONTAINER STATUS [exit N] [ports ...] [(task STATUS)] [reason]
//! 12 2025-01-02T10:00:00.123Z 5f0c... web RUNNING ports 0.0.0.0:8080->80/tcp (task RUNNING)
//! ```
//!
//! `--json` prints the API's NDJSON lines as they come. Without `--since` only changes to
//! come are shown; `--since SEQ` starts after change SEQ (0: everything the daemon still
//! keeps), so a reader that stopped can resume where it left off. Changes older than the
//! daemon keeps show as a gap line. Follows new changes until interrupted, unless
//! `--no-follow`; a stream the daemon ends (it is stopping) exits 1 with the `--since` to
//! resume with.

use crate::client::{self, HostArgs, Written};
use serde_json::Value;
use std::process::ExitCode;

/// Arguments of `berth events`.
#[derive(Debug, clap::Args)]
pub struct Events {
    /// Start after the change with this sequence number (0: every change kept).
    #[arg(long, value_name = "SEQ")]
    since: Option<u64>,
    /// Stop once caught up instead of following new changes.
    #[arg(long)]
    no_follow: bool,
    /// Print each change as the API's JSON line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    host: HostArgs,
}

impl Events {
    /// Print the changes.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.host.connect()?;
        let since = self.since.map(|s| s.to_string());
        let mut query = vec![("follow", if self.no_follow { "false" } else { "true" })];
        if let Some(since) = &since {
            query.push(("since", since.as_str()));
        }
        let mut out = std::io::stdout().lock();
        let mut last = self.since;
        let ended_by_daemon = client.block_on(async {
            let mut response = client.get(&["v1", "events"], &query).await?;
            let mut pending: Vec<u8> = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| client.failed(e))? {
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let item: Value = match serde_json::from_slice(&line) {
                        Ok(item) => item,
                        Err(e) => anyhow::bail!("the daemon sent a line that is not JSON: {e}"),
                    };
                    last = position(&item).or(last);
                    let text = if self.json { line } else { human(&item).into_bytes() };
                    if client::write_out(&mut out, &text)? == Written::Closed {
                        return Ok(false);
                    }
                }
            }
            Ok(!self.no_follow)
        })?;
        if ended_by_daemon {
            let resume = last.map(|seq| format!("; resume with --since {seq}")).unwrap_or_default();
            eprintln!("berth: the daemon ended the stream (is it stopping?){resume}");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The sequence number a reader has seen up to once it has read `item`.
fn position(item: &Value) -> Option<u64> {
    match item["Gap"]["To"].as_u64() {
        Some(to) => to.checked_sub(1),
        None => item["Seq"].as_u64(),
    }
}

/// One change (or gap marker) as a line for people.
fn human(item: &Value) -> String {
    if let Some(error) = item.get("Error") {
        return format!("-- the daemon's engine stopped: {}\n", error.as_str().unwrap_or("-"));
    }
    if let Some(gap) = item.get("Gap") {
        let from = gap["From"].as_u64().unwrap_or_default();
        let to = gap["To"].as_u64().unwrap_or_default();
        return format!("-- changes {from} to {} are no longer kept\n", to.saturating_sub(1));
    }
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let time = item["Time"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| text(&item["Time"]));
    let mut line = format!(
        "{} {time} {} {} {}",
        item["Seq"].as_u64().map(|s| s.to_string()).unwrap_or_else(|| "-".to_owned()),
        client::short_arn(item["TaskArn"].as_str().unwrap_or("-")),
        text(&item["ContainerName"]),
        text(&item["Status"]),
    );
    if let Some(code) = item["ExitCode"].as_i64() {
        line.push_str(&format!(" exit {code}"));
    }
    let ports: Vec<String> =
        item["PortBindings"].as_array().map(|ps| ps.iter().map(port).collect()).unwrap_or_default();
    if !ports.is_empty() {
        line.push_str(&format!(" ports {}", ports.join(",")));
    }
    // A task told to stop; said only while it is not STOPPED by this same change.
    if let Some(desired) =
        item["TaskDesiredStatus"].as_str().filter(|s| *s != "NONE" && item["TaskStatus"] != "STOPPED")
    {
        line.push_str(&format!(" (task desired {desired})"));
    }
    if let Some(task) = item["TaskStatus"].as_str().filter(|s| *s != "NONE") {
        line.push_str(&format!(" (task {task})"));
    }
    if let Some(reason) = item["Reason"].as_str().filter(|r| !r.is_empty()) {
        line.push_str(&format!(" {reason}"));
    }
    line.push('\n');
    line
}

/// A bound port as `IP:HOST->CONTAINER/PROTO` (the change log writes its fields in
/// snake case; the ECS names are taken too).
fn port(binding: &Value) -> String {
    let field = |snake: &str, pascal: &str| {
        let v = binding.get(snake).or_else(|| binding.get(pascal)).unwrap_or(&Value::Null);
        v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())).unwrap_or_default()
    };
    let ip = field("bind_ip", "HostIp");
    let host = field("host_port", "HostPort");
    let container = field("container_port", "ContainerPort");
    let protocol = field("protocol", "Protocol");
    let ip = if ip.is_empty() { String::new() } else { format!("{ip}:") };
    format!("{ip}{host}->{container}/{protocol}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let change = serde_json::json!({"Seq": 7, "Time": "2025-01-02T10:00:00.123456Z", "TaskArn": "arn:berth:task/ab",
            "ContainerName": "web", "Status": "STOPPED", "Reason": "killed", "ExitCode": 137,
            "PortBindings": [{"container_port": 80, "host_port": 8080, "bind_ip": "0.0.0.0", "protocol": "tcp"}],
            "TaskStatus": "STOPPED", "TaskDesiredStatus": "STOPPED"});
        assert_eq!(
            human(&change),
            "7 2025-01-02T10:00:00.123Z ab web STOPPED exit 137 ports 0.0.0.0:8080->80/tcp (task STOPPED) killed\n"
        );
        let told = serde_json::json!({"Seq": 8, "Time": "2025-01-02T10:00:00.123456Z", "TaskArn": "arn:berth:task/ab",
            "ContainerName": "db", "Status": "STOPPED", "ExitCode": 1, "TaskStatus": "NONE", "TaskDesiredStatus": "STOPPED"});
        assert_eq!(human(&told), "8 2025-01-02T10:00:00.123Z ab db STOPPED exit 1 (task desired STOPPED)\n");
        assert_eq!(position(&change), Some(7));
        let gap = serde_json::json!({"Gap": {"From": 1, "To": 5}});
        assert_eq!(human(&gap), "-- changes 1 to 4 are no longer kept\n");
        assert_eq!(position(&gap), Some(4));
    }
}
