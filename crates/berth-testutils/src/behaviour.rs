//! What a started container does: when it exits on its own and when it turns healthy.

use berth_docker::ContainerConfig;
use std::time::Duration;

/// What one run of a container does once started. Times count from the start, in
/// `tokio::time` (tests may pause and advance time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Behaviour {
    /// Exit on its own after this long, with this exit code; `None` runs until stopped.
    pub exit_after: Option<(Duration, i64)>,
    /// Report healthy after this long (only containers with a health check do).
    pub healthy_after: Option<Duration>,
}

impl Behaviour {
    /// Runs until stopped, never reports health.
    pub fn forever() -> Self {
        Behaviour::default()
    }

    /// Exits with `code` right after starting.
    pub fn exits(code: i64) -> Self {
        Behaviour { exit_after: Some((Duration::ZERO, code)), healthy_after: None }
    }

    /// Exits with `code` after `after`.
    pub fn exits_after(after: Duration, code: i64) -> Self {
        Behaviour { exit_after: Some((after, code)), healthy_after: None }
    }

    /// The same, reporting healthy after `after`.
    pub fn healthy_after(self, after: Duration) -> Self {
        Behaviour { healthy_after: Some(after), ..self }
    }
}

/// The signature of a behaviour function (see [`crate::FakeDocker::set_behaviour`]).
pub type BehaviourFn = dyn Fn(&ContainerConfig) -> Behaviour + Send + Sync;

/// The fake's default behaviour, read from the command (entry point and command joined
/// with spaces): `exit N` exits with N right after starting; `sleep N` (seconds, may be
/// fractional) exits after N seconds, with 0 or with the N of an `exit N` also present;
/// anything else (`sleep infinity` included) runs until stopped. A container with a
/// health check (other than `NONE`) reports healthy right after starting.
pub fn default_behaviour(config: &ContainerConfig) -> Behaviour {
    let line = config.entry_point.iter().chain(&config.command).map(String::as_str).collect::<Vec<_>>().join(" ");
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .filter(|w| !w.is_empty())
        .collect();
    let after = |keyword: &str| words.windows(2).filter(|w| w[0] == keyword).map(|w| w[1]).collect::<Vec<_>>();
    let exit_code = after("exit").into_iter().find_map(|w| w.parse::<i64>().ok());
    let sleep = after("sleep")
        .into_iter()
        .find_map(|w| w.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0))
        .map(Duration::from_secs_f64);
    let exit_after = match (sleep, exit_code) {
        (Some(sleep), code) => Some((sleep, code.unwrap_or(0))),
        (None, Some(code)) => Some((Duration::ZERO, code)),
        (None, None) => None,
    };
    let healthy_after = has_health_check(config).then_some(Duration::ZERO);
    Behaviour { exit_after, healthy_after }
}

/// The config asks for a health check (one whose test is not `NONE`).
pub(crate) fn has_health_check(config: &ContainerConfig) -> bool {
    config.health_check.as_ref().is_some_and(|h| h.test.first().is_some_and(|t| t != "NONE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_docker::HealthConfig;

    fn config(entry: &[&str], cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            entry_point: entry.iter().map(|s| s.to_string()).collect(),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            ..ContainerConfig::default()
        }
    }

    #[test]
    fn exit_n_exits_at_once() {
        let b = default_behaviour(&config(&["sh", "-c"], &["echo hi; exit 3"]));
        assert_eq!(b.exit_after, Some((Duration::ZERO, 3)));
        assert_eq!(b.healthy_after, None);
    }

    #[test]
    fn sleep_n_exits_zero_after_n_seconds() {
        let b = default_behaviour(&config(&[], &["sleep", "5"]));
        assert_eq!(b.exit_after, Some((Duration::from_secs(5), 0)));
        let b = default_behaviour(&config(&[], &["sh", "-c", "sleep 0.5 && exit 2"]));
        assert_eq!(b.exit_after, Some((Duration::from_millis(500), 2)));
    }

    #[test]
    fn other_commands_run_until_stopped() {
        for (entry, cmd) in [
            (&[][..], &["nginx", "-g", "daemon off;"][..]),
            (&[], &["sleep", "infinity"]),
            (&[], &["sh", "-c", "exit $CODE"]),
            (&["/bin/myexit"], &["3"]),
            (&[], &[]),
        ] {
            assert_eq!(default_behaviour(&config(entry, cmd)).exit_after, None, "{entry:?} {cmd:?}");
        }
    }

    #[test]
    fn a_health_check_reports_healthy() {
        let mut c = config(&[], &["nginx"]);
        c.health_check =
            Some(HealthConfig { test: vec!["CMD-SHELL".into(), "true".into()], ..HealthConfig::default() });
        assert_eq!(default_behaviour(&c).healthy_after, Some(Duration::ZERO));
        c.health_check = Some(HealthConfig { test: vec!["NONE".into()], ..HealthConfig::default() });
        assert_eq!(default_behaviour(&c).healthy_after, None);
    }
}
