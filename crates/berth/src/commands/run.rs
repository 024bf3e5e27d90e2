//! `berth run FILE`: run one task in the foreground with an embedded engine (no daemon):
//! one line per state change, each container's output prefixed by its name (as compose
//! does), and at the end the task's containers and task volumes removed (unless `--keep`).
//!
//! ```text
//! berth | web PULLED
//! berth | web RUNNING 0.0.0.0:32768->8080/tcp
//! web   | listening
//! berth | web STOPPED exit 0 (task STOPPED)
//! ```
//!
//! Exit code (SPEC 9): the first non-zero exit code of an essential container that exited
//! on its own, else 0 — a 143 or 137 after berth sent the stop does not count;
//! `--exit-code-from NAME` takes that container's; 125 when berth could not run the task
//! (invalid file, no Docker, an essential container that never started), with the reason;
//! 130 after Ctrl-C, which stops the task cleanly first.

use crate::taskfile;
use anyhow::Context;
use berth_docker::BollardClient;
use berth_engine::{DockerTaskEngine, EngineConfig, LogItem, PullBehavior, TaskEngine};
use berth_model::{ContainerStatus, StateChange, Task, TaskStatus};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit code when berth could not run the task.
const CANNOT_RUN: u8 = 125;
/// Exit code after Ctrl-C.
const INTERRUPTED: u8 = 130;
/// How long the end waits for the last container output.
const LOG_DRAIN: Duration = Duration::from_secs(5);

/// Arguments of `berth run`.
#[derive(Debug, clap::Args)]
pub struct Run {
    /// Task definition file (JSON, in any of the shapes berth reads).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Family for a bare containerDefinitions array (default: the file's name).
    #[arg(long, value_name = "NAME")]
    family: Option<String>,
    /// Keep the task's containers and volumes at the end (and the data directory).
    #[arg(long)]
    keep: bool,
    /// Exit with this container's exit code.
    #[arg(long, value_name = "NAME")]
    exit_code_from: Option<String>,
    /// Where berth keeps its state (default: a fresh directory under the user's state
    /// directory, removed at a clean end).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL for containers without their own stopTimeout.
    #[arg(long, value_name = "SECONDS", default_value_t = berth_docker::DEFAULT_TIMEOUT_SECONDS)]
    stop_timeout: u64,
    /// The local secret source: a JSON file mapping each secret's `valueFrom` (and each
    /// environment file's `value`) to its value.
    #[arg(long, value_name = "FILE")]
    secrets: Option<PathBuf>,
    /// How images are pulled: default (pull; if that fails, use the local image), always,
    /// once (the first time), prefer-cached (pull only what is missing).
    #[arg(long, value_name = "BEHAVIOUR", default_value = "default", value_parser = parse_pull)]
    pull: PullBehavior,
}

fn parse_pull(s: &str) -> Result<PullBehavior, String> {
    match s {
        "default" => Ok(PullBehavior::Default),
        "always" => Ok(PullBehavior::Always),
        "once" => Ok(PullBehavior::Once),
        "prefer-cached" => Ok(PullBehavior::PreferCached),
        other => Err(format!("{other:?}: expected default, always, once or prefer-cached")),
    }
}

impl Run {
    /// Run the task to its end.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
        let code = runtime.block_on(self.run_task());
        Ok(ExitCode::from(code))
    }

    async fn run_task(self) -> u8 {
        match self.prepare().await {
            Ok(prepared) => prepared.drive(&self).await,
            Err(message) => {
                eprintln!("berth: cannot run {}: {message}", self.file.display());
                CANNOT_RUN
            }
        }
    }

    /// Everything that can fail before the task starts: the file, the secrets, Docker,
    /// the data directory.
    async fn prepare(&self) -> Result<Prepared, String> {
        let bytes = taskfile::read(&self.file)?;
        let opts = taskfile::options(&self.file, self.family.as_deref(), rand::random());
        let accepted = berth_model::input::parse(&bytes, &opts).map_err(|rejected| {
            let lines: Vec<String> = rejected.errors.iter().map(|e| format!("\n  error: {e}")).collect();
            let more = match rejected.omitted_errors {
                0 => String::new(),
                n => format!("\n  ... and {n} more errors"),
            };
            format!("invalid task definition:{}{more}", lines.concat())
        })?;
        for w in &accepted.warnings {
            eprintln!("berth: warning: {w}");
        }
        if accepted.omitted_warnings > 0 {
            eprintln!("berth: warning: ... and {} more warnings", accepted.omitted_warnings);
        }
        if let Some(name) = &self.exit_code_from
            && accepted.task.container(name).is_none()
        {
            return Err(format!("--exit-code-from {name}: the task has no container of that name"));
        }
        let secrets = match &self.secrets {
            Some(path) => {
                let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                serde_json::from_slice::<BTreeMap<String, String>>(&text)
                    .map_err(|e| format!("{}: expected a JSON object of strings: {e}", path.display()))?
            }
            None => BTreeMap::new(),
        };
        let docker = BollardClient::connect().await.map_err(|e| format!("cannot reach Docker: {e}"))?;
        let (data_dir, owned) = match &self.data_dir {
            Some(dir) => (dir.clone(), false),
            None => (default_data_dir(), true),
        };
        let mut config =
            EngineConfig { data_dir: Some(data_dir.clone()), secrets: Arc::new(secrets), ..Default::default() };
        config.plan.default_stop_timeout_secs = self.stop_timeout;
        config.pull_behavior = self.pull;
        // As `docker` does: the user's Docker configuration (`$DOCKER_CONFIG` or
        // `~/.docker/config.json`, with its credential helpers).
        config.auth = Arc::new(berth_docker::auth::DockerAuth::user_default());
        let mut engine = DockerTaskEngine::new(config, Arc::new(docker.clone()));
        engine.init().await.map_err(|e| e.to_string())?;
        Ok(Prepared { engine, docker, task: accepted.task, data_dir, owned_data_dir: owned })
    }
}

struct Prepared {
    engine: DockerTaskEngine,
    docker: BollardClient,
    task: Task,
    data_dir: PathBuf,
    owned_data_dir: bool,
}

impl Prepared {
    async fn drive(mut self, args: &Run) -> u8 {
        let arn = self.task.arn.clone();
        let visible: HashSet<String> =
            self.task.containers.iter().filter(|c| !c.spec.internal).map(|c| c.spec.name.clone()).collect();
        let width = visible.iter().map(String::len).max().unwrap_or(5).max(5);
        let mut reader = match self.engine.task_events() {
            Ok(r) => r,
            Err(e) => return self.fail(&e.to_string()).await,
        };
        // Pull progress: bars on a terminal, plain lines otherwise.
        let progress = self.engine.pull_progress().ok().map(|reports| crate::progress::show(reports, width));
        if let Err(e) = self.engine.add_task(self.task.clone()).await {
            return self.fail(&e.to_string()).await;
        }
        let mut changes: Vec<StateChange> = Vec::new();
        let mut stopped: HashSet<String> = HashSet::new();
        let mut logs = Vec::new();
        let mut interrupted = false;
        while stopped.len() < visible.len() {
            tokio::select! {
                item = reader.next() => {
                    let change = match item {
                        Some(LogItem::Change(change)) => change,
                        Some(_) => continue,
                        // The change stream ended: the engine stopped (a store commit failed).
                        None => {
                            let why = reader.end().map_or_else(|| "the engine stopped".to_string(), |e| e.to_string());
                            return self.fail(&why).await;
                        }
                    };
                    if change.task_arn != arn {
                        continue;
                    }
                    println!("{:width$} | {}", "berth", describe(&change));
                    if change.status == ContainerStatus::Running
                        && let Some(follow) = self.follow_logs(&arn, &change.container_name, width).await
                    {
                        logs.push(follow);
                    }
                    if change.status == ContainerStatus::Stopped {
                        stopped.insert(change.container_name.clone());
                    }
                    changes.push(change);
                }
                signal = tokio::signal::ctrl_c(), if !interrupted => {
                    if signal.is_ok() {
                        interrupted = true;
                        eprintln!("berth: stopping the task (Ctrl-C)");
                        if let Err(e) = self.engine.stop_task(&arn).await {
                            eprintln!("berth: {e}");
                        }
                    }
                }
            }
        }
        // The containers' last output, then the cleanup.
        let _ = tokio::time::timeout(LOG_DRAIN, futures_util::future::join_all(logs)).await;
        let final_task = self.engine.list_tasks().await.ok().and_then(|ts| ts.into_iter().find(|t| t.arn == arn));
        if !args.keep {
            self.clean_up(&arn).await;
        }
        let _ = self.engine.shutdown().await;
        if let Some(progress) = progress {
            progress.abort();
        }
        if args.keep {
            eprintln!("berth: containers kept; state in {}", self.data_dir.display());
        } else if self.owned_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        if interrupted {
            return INTERRUPTED;
        }
        let (code, reason) = exit_code(&self.task, final_task.as_ref(), &changes, args.exit_code_from.as_deref());
        if let Some(reason) = reason {
            eprintln!("berth: could not run the task: {reason}");
        }
        code
    }

    /// Remove the task's containers and volumes now, and wait until it has left the state.
    async fn clean_up(&self, arn: &str) {
        if let Err(e) = self.engine.clean_up_now(arn).await {
            eprintln!("berth: cleaning up: {e}");
            return;
        }
        for _ in 0..600 {
            match self.engine.list_tasks().await {
                Ok(tasks) if tasks.iter().all(|t| t.arn != arn) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => return,
            }
        }
        eprintln!("berth: the task's containers were not all removed in time; see `docker ps -a`");
    }

    /// Print a running container's output, each line prefixed by its name.
    async fn follow_logs(&self, arn: &str, container: &str, width: usize) -> Option<tokio::task::JoinHandle<()>> {
        let state = self.engine.state().await.ok()?;
        let id = state.tasks.get(arn)?.container(container)?.docker_id.clone()?;
        let docker = self.docker.clone();
        let name = container.to_string();
        Some(tokio::spawn(async move {
            let options =
                bollard::query_parameters::LogsOptionsBuilder::new().follow(true).stdout(true).stderr(true).build();
            let mut stream = docker.bollard().logs(&id, Some(options));
            let mut partial = String::new();
            while let Some(Ok(output)) = stream.next().await {
                partial.push_str(&output.to_string());
                while let Some(end) = partial.find('\n') {
                    println!("{name:width$} | {}", &partial[..end]);
                    partial.drain(..=end);
                }
            }
            if !partial.is_empty() {
                println!("{name:width$} | {partial}");
            }
        }))
    }

    async fn fail(mut self, message: &str) -> u8 {
        eprintln!("berth: cannot run the task: {message}");
        let _ = self.engine.shutdown().await;
        CANNOT_RUN
    }
}

/// One state change as a line.
fn describe(c: &StateChange) -> String {
    let mut line = format!("{} {}", c.container_name, c.status);
    for p in &c.port_bindings {
        let ip = if p.bind_ip.is_empty() { "0.0.0.0" } else { &p.bind_ip };
        line.push_str(&format!(" {ip}:{}->{}/{}", p.host_port, p.container_port, p.protocol.as_str()));
    }
    if let Some(code) = c.exit_code {
        line.push_str(&format!(" exit {code}"));
    }
    if let Some(reason) = &c.reason {
        line.push_str(&format!(": {reason}"));
    }
    if c.task_status != TaskStatus::None {
        line.push_str(&format!(" (task {})", c.task_status));
    }
    line
}

/// The exit code of a run that was not interrupted, and the reason when berth could not run
/// the task.
fn exit_code(task: &Task, last: Option<&Task>, changes: &[StateChange], from: Option<&str>) -> (u8, Option<String>) {
    let ran = |name: &str| changes.iter().any(|c| c.container_name == name && c.status == ContainerStatus::Running);
    let stopped =
        |name: &str| changes.iter().find(|c| c.container_name == name && c.status == ContainerStatus::Stopped);
    let why_not = |name: &str| {
        stopped(name)
            .and_then(|c| c.reason.clone())
            .or_else(|| last.and_then(|t| t.stop_reason.clone()))
            .unwrap_or_else(|| "it never started".to_string())
    };
    if let Some(name) = from {
        if !ran(name) {
            return (CANNOT_RUN, Some(format!("container \"{name}\" never started: {}", why_not(name))));
        }
        return (low_byte(stopped(name).and_then(|c| c.exit_code).unwrap_or(0)), None);
    }
    let essentials: Vec<&str> =
        task.containers.iter().filter(|c| c.spec.essential && !c.spec.internal).map(|c| c.spec.name.as_str()).collect();
    // Exits after the one that stopped the task, with the codes of berth's own stop, were
    // caused by berth; the others were the containers' own.
    let task_stopped_at = changes.iter().find(|c| c.task_status == TaskStatus::Stopped).map(|c| c.seq);
    let own_exits: Vec<i64> = changes
        .iter()
        .filter(|c| {
            c.status == ContainerStatus::Stopped
                && essentials.contains(&c.container_name.as_str())
                && ran(&c.container_name)
        })
        .map(|c| c.exit_code.unwrap_or(0))
        .filter(|code| !(matches!(code, 137 | 143) && task_stopped_at.is_some()))
        .collect();
    // An essential container that never started is berth's failure, unless an essential
    // container that ran had already ended the task on its own (the others were then
    // stopped before they could start: a fast exit racing slower starts).
    if own_exits.is_empty()
        && let Some(name) = essentials.iter().find(|n| !ran(n))
    {
        return (CANNOT_RUN, Some(format!("essential container \"{name}\" never started: {}", why_not(name))));
    }
    for c in changes
        .iter()
        .filter(|c| c.status == ContainerStatus::Stopped && essentials.contains(&c.container_name.as_str()))
    {
        let code = c.exit_code.unwrap_or(0);
        let by_berth = task_stopped_at.is_some_and(|at| c.seq > at) && matches!(code, 137 | 143);
        if code != 0 && !by_berth {
            return (low_byte(code), None);
        }
    }
    (0, None)
}

/// What a shell would report of an exit code.
fn low_byte(code: i64) -> u8 {
    u8::try_from(code.rem_euclid(256)).unwrap_or(u8::MAX)
}

/// A fresh directory under the user's state directory (`$XDG_STATE_HOME`, else
/// `~/.local/state`, else the temp directory): `berth/run-<pid>-<random>`.
fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("berth").join(format!("run-{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::input::{ParseOptions, parse};

    fn task() -> Task {
        let json = r#"{"family": "x", "containerDefinitions": [
            {"name": "main", "image": "busybox"}, {"name": "other", "image": "busybox"},
            {"name": "side", "image": "busybox", "essential": false}]}"#;
        parse(json.as_bytes(), &ParseOptions { family: None, arn_random: 1 })
            .map(|a| a.task)
            .unwrap_or_else(|r| panic!("{r}"))
    }

    fn change(seq: u64, name: &str, status: ContainerStatus, exit: Option<i64>, task: TaskStatus) -> StateChange {
        StateChange {
            seq,
            time: chrono::Utc::now(),
            task_arn: "t".into(),
            container_name: name.into(),
            status,
            reason: None,
            exit_code: exit,
            port_bindings: vec![],
            task_status: task,
        }
    }

    fn ran(seq: &mut u64) -> Vec<StateChange> {
        ["main", "other", "side"]
            .iter()
            .map(|n| {
                *seq += 1;
                change(*seq, n, ContainerStatus::Running, None, TaskStatus::None)
            })
            .collect()
    }

    #[test]
    fn the_first_own_non_zero_exit_of_an_essential_container_counts() {
        let mut seq = 0;
        let mut changes = ran(&mut seq);
        changes.push(change(10, "side", ContainerStatus::Stopped, Some(3), TaskStatus::None));
        changes.push(change(11, "main", ContainerStatus::Stopped, Some(42), TaskStatus::Stopped));
        changes.push(change(12, "other", ContainerStatus::Stopped, Some(143), TaskStatus::None));
        assert_eq!(
            exit_code(&task(), None, &changes, None),
            (42, None),
            "side is not essential; other was stopped by berth"
        );
        assert_eq!(exit_code(&task(), None, &changes, Some("side")), (3, None));
        assert_eq!(exit_code(&task(), None, &changes, Some("other")), (143, None));
    }

    #[test]
    fn an_essential_exit_zero_gives_zero() {
        let mut seq = 0;
        let mut changes = ran(&mut seq);
        changes.push(change(10, "main", ContainerStatus::Stopped, Some(0), TaskStatus::Stopped));
        changes.push(change(11, "other", ContainerStatus::Stopped, Some(137), TaskStatus::None));
        assert_eq!(exit_code(&task(), None, &changes, None).0, 0);
    }

    #[test]
    fn an_essential_container_that_never_started_gives_125_with_the_reason() {
        let mut stopped = change(1, "main", ContainerStatus::Stopped, None, TaskStatus::Stopped);
        stopped.reason = Some("pull image nope: pull access denied".into());
        let (code, reason) = exit_code(&task(), None, &[stopped], None);
        assert_eq!(code, 125);
        assert!(reason.unwrap_or_default().contains("pull access denied"));
    }

    #[test]
    fn an_essential_exit_that_stops_the_task_before_another_starts_gives_its_code() {
        // "main" ran and exited 42; the task stopped before "other" could start (its
        // STOPPED, without an exit code, carried the task's).
        let changes = [
            change(1, "main", ContainerStatus::Running, None, TaskStatus::Running),
            change(2, "other", ContainerStatus::Stopped, None, TaskStatus::Stopped),
            change(3, "main", ContainerStatus::Stopped, Some(42), TaskStatus::None),
        ];
        assert_eq!(exit_code(&task(), None, &changes, None), (42, None));
        // Without an own exit, the container that never started is berth's failure.
        assert_eq!(exit_code(&task(), None, &changes[..2], None).0, 125);
    }

    #[test]
    fn pull_behaviours_are_named_as_in_the_spec() {
        assert_eq!(parse_pull("prefer-cached"), Ok(PullBehavior::PreferCached));
        assert_eq!(parse_pull("once"), Ok(PullBehavior::Once));
        assert_eq!(parse_pull("always"), Ok(PullBehavior::Always));
        assert_eq!(parse_pull("default"), Ok(PullBehavior::Default));
        assert!(parse_pull("never").is_err());
    }

    #[test]
    fn exit_codes_are_reported_as_a_shell_would() {
        assert_eq!(low_byte(42), 42);
        assert_eq!(low_byte(256 + 3), 3);
        assert_eq!(low_byte(-1), 255);
    }
}
