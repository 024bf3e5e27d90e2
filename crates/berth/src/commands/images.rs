//! `berth images`: the images on the daemon's host, one a line per tag, and whether
//! berth pulled them (those are the ones its image cleanup may remove).

use crate::client::{self, HostArgs};
use serde_json::Value;
use std::process::ExitCode;

/// Arguments of `berth images`.
#[derive(Debug, clap::Args)]
pub struct Images {
    #[command(flatten)]
    host: HostArgs,
}

impl Images {
    /// Print the table.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.host.connect()?;
        let answer = client.block_on(client.get_json(&["v1", "images"], &[]))?;
        let now = chrono::Utc::now().timestamp();
        let mut rows = Vec::new();
        for image in answer["Images"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let id = image["Id"].as_str().unwrap_or_default();
            let id = id.strip_prefix("sha256:").unwrap_or(id);
            let tags: Vec<&str> = image["RepoTags"]
                .as_array()
                .map(|ts| ts.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let tags = if tags.is_empty() { vec!["<none>"] } else { tags };
            for tag in tags {
                rows.push(vec![
                    tag.to_owned(),
                    id.chars().take(12).collect(),
                    image["Created"].as_i64().map(|c| ago(now - c)).unwrap_or_default(),
                    image["Size"].as_i64().map(size).unwrap_or_default(),
                    if image["PulledByBerth"].as_bool() == Some(true) { "yes" } else { "no" }.to_owned(),
                ]);
            }
        }
        let text = client::table(&["IMAGE", "ID", "CREATED", "SIZE", "PULLED BY BERTH"], &rows);
        client::write_out(&mut std::io::stdout().lock(), text.as_bytes())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// A size in decimal units with four significant digits, as Docker shows it (`4.261MB`).
fn size(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = match value {
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let number = format!("{value:.decimals$}");
    let number = if number.contains('.') { number.trim_end_matches('0').trim_end_matches('.') } else { &number };
    format!("{number}{}", units[unit])
}

/// A number of seconds as `N units ago`.
fn ago(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (n, unit) = match seconds {
        s if s < 60 => return "less than a minute ago".to_owned(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 30 => (s / 86_400, "day"),
        s if s < 86_400 * 365 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_ages() {
        assert_eq!(super::size(999), "999B");
        assert_eq!(super::size(4_261_000), "4.261MB");
        assert_eq!(super::size(123_456_789), "123.5MB");
        assert_eq!(super::size(2_000_000_000), "2GB");
        assert_eq!(super::ago(30), "less than a minute ago");
        assert_eq!(super::ago(7200), "2 hours ago");
        assert_eq!(super::ago(86_400), "1 day ago");
    }
}
