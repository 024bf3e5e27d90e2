//! `berth plan FILE`: validate a task definition and show what berth would do with it, step
//! by step, as if every Docker call succeeded: the planner's operations, each step's state
//! changes, then (unless `--no-stop`) the stop and cleanup that follow a stop request.
//! Nothing touches Docker. Containers keep running, except that a container another one
//! waits on to complete (dependsOn COMPLETE or SUCCESS) exits 0 once it runs, and one
//! another waits on to be HEALTHY reports healthy once it runs.
//!
//! ```text
//! hello: version 1, network bridge, 3 containers
//! start order: writer, web, check
//! step 1
//!   create volume site
//!   pull writer
//!   ...
//! ```

use crate::taskfile;
use anyhow::{Context, bail};
use berth_model::container::DependencyCondition;
use berth_model::event::take_changes;
use berth_model::graph::{DependencyGraph, EdgeKind, GraphErrors};
use berth_model::plan::{self, Action, Feedback, Observation, Op, Outcome, PlanConfig};
use berth_model::{ContainerStatus, HealthStatus, Task, TaskStatus};
use chrono::{DateTime, Duration, Utc};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// More steps than any valid task needs (100 containers, a handful of steps each).
const MAX_STEPS: usize = 2_000;

/// Arguments of `berth plan`.
#[derive(Debug, clap::Args)]
pub struct Plan {
    /// Task definition file (JSON, in any of the shapes berth reads).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Family for a bare containerDefinitions array (default: the file's name).
    #[arg(long, value_name = "NAME")]
    family: Option<String>,
    /// Stop after the task is running; do not show the stop and cleanup.
    #[arg(long)]
    no_stop: bool,
}

impl Plan {
    /// Print the dry run; exit 1 when the file is invalid.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let bytes = taskfile::read(&self.file).map_err(anyhow::Error::msg)?;
        let opts = taskfile::options(&self.file, self.family.as_deref(), 0);
        let accepted = match berth_model::input::parse(&bytes, &opts) {
            Ok(accepted) => accepted,
            Err(rejected) => {
                eprintln!("{}: invalid", self.file.display());
                for e in &rejected.errors {
                    eprintln!("  error: {e}");
                }
                if rejected.omitted_errors > 0 {
                    eprintln!("  ... and {} more errors", rejected.omitted_errors);
                }
                return Ok(ExitCode::from(1));
            }
        };
        for w in &accepted.warnings {
            eprintln!("warning: {w}");
        }
        if accepted.omitted_warnings > 0 {
            eprintln!("warning: ... and {} more warnings", accepted.omitted_warnings);
        }
        let text = dry_run(accepted.task, !self.no_stop).context("planning")?;
        print!("{text}");
        Ok(ExitCode::SUCCESS)
    }
}

/// The whole dry run as text.
fn dry_run(mut task: Task, then_stop: bool) -> anyhow::Result<String> {
    let graph = DependencyGraph::build(&task).map_err(|errs| anyhow::anyhow!("{}", GraphErrors(&errs)))?;
    let cfg = PlanConfig::default();
    let mut out = String::new();
    let names: Vec<&str> = graph.start_order().iter().map(|&i| task.containers[i].name()).collect();
    writeln!(
        out,
        "{}: version {}, network {}, {} containers",
        task.family,
        task.version,
        task.network_mode,
        names.len()
    )?;
    writeln!(out, "start order: {}", names.join(", "))?;
    let mut now = DateTime::<Utc>::UNIX_EPOCH;
    let mut step = 0;
    step_until_idle(&mut task, &graph, &cfg, &mut now, &mut step, &mut out)?;
    if then_stop && task.desired_status < TaskStatus::Stopped {
        writeln!(out, "-- stop requested")?;
        task.raise_desired_status(TaskStatus::Stopped);
        step_until_idle(&mut task, &graph, &cfg, &mut now, &mut step, &mut out)?;
    }
    Ok(out)
}

/// Plan, perform every operation as a success, repeat until nothing is left to do (waits,
/// such as the cleanup delay, are skipped over).
fn step_until_idle(
    task: &mut Task,
    graph: &DependencyGraph,
    cfg: &PlanConfig,
    now: &mut DateTime<Utc>,
    step: &mut usize,
    out: &mut String,
) -> anyhow::Result<()> {
    loop {
        if *step >= MAX_STEPS {
            bail!("no steady state after {MAX_STEPS} steps");
        }
        let p = plan::plan(task, graph, *now, cfg);
        if p.ops.is_empty() {
            match p.wake_at {
                Some(at) => {
                    writeln!(out, "wait {}s", (at - *now).num_seconds())?;
                    *now = at;
                    continue;
                }
                None => return Ok(()),
            }
        }
        *step += 1;
        writeln!(out, "step {step}")?;
        let mut forget = false;
        for op in p.ops {
            writeln!(out, "  {op}")?;
            forget |= op == Op::Forget;
            let outcome = match &op {
                Op::Container { container, action: Action::Create } => Outcome::Created(format!("dry-run-{container}")),
                _ => Outcome::Ok,
            };
            if !op.is_bookkeeping() {
                plan::apply(task, Feedback::Issued(op.clone()), *now, cfg);
            }
            plan::apply(task, Feedback::Done(op, outcome), *now, cfg);
        }
        for (container, observation) in waited_on(task, graph) {
            plan::apply(task, Feedback::Observed { container, observation }, *now, cfg);
        }
        for ch in take_changes(task, *now) {
            let mut moved =
                if ch.task_status == TaskStatus::None { String::new() } else { format!(" (task {})", ch.task_status) };
            if ch.task_desired_status != TaskStatus::None && ch.task_status != TaskStatus::Stopped {
                moved.insert_str(0, &format!(" (task desired {})", ch.task_desired_status));
            }
            let code = ch.exit_code.map(|c| format!(" exit {c}")).unwrap_or_default();
            writeln!(out, "  > {} {}{code}{moved}", ch.container_name, ch.status)?;
        }
        if forget {
            return Ok(());
        }
        *now += Duration::seconds(1);
    }
}

/// What running containers that others wait on do next in the dry run: exit 0 for a
/// COMPLETE or SUCCESS dependency, report healthy for a HEALTHY one.
fn waited_on(task: &Task, graph: &DependencyGraph) -> Vec<(String, Observation)> {
    let mut events = Vec::new();
    for e in graph.edges() {
        let dep = &task.containers[e.to];
        if dep.known_status != ContainerStatus::Running {
            continue;
        }
        let observation = match e.kind {
            EdgeKind::DependsOn(DependencyCondition::Complete | DependencyCondition::Success) => Observation {
                status: ContainerStatus::Stopped,
                exit_code: Some(0),
                has_run: true,
                ..Observation::default()
            },
            EdgeKind::DependsOn(DependencyCondition::Healthy) if dep.health != HealthStatus::Healthy => {
                Observation { health: Some(HealthStatus::Healthy), ..Observation::default() }
            }
            _ => continue,
        };
        events.push((dep.name().to_string(), observation));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::input::{ParseOptions, parse};

    fn task(json: &str) -> Task {
        parse(json.as_bytes(), &ParseOptions { family: None, arn_random: 1 })
            .map(|a| a.task)
            .unwrap_or_else(|r| panic!("{r}"))
    }

    #[test]
    fn dry_run_brings_a_linked_pair_up_in_order_then_down_in_reverse() {
        let text = dry_run(
            task(
                r#"{"family": "pair", "containerDefinitions": [
                    {"name": "web", "image": "busybox", "links": ["db"]},
                    {"name": "db", "image": "busybox"}]}"#,
            ),
            true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(text.starts_with("pair: version 1, network bridge, 2 containers\nstart order: db, web\n"), "{text}");
        let pos = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} missing in\n{text}"));
        assert!(pos("create db") < pos("create web"));
        assert!(pos("start db") < pos("start web"));
        assert!(pos("-- stop requested") < pos("stop web"));
        assert!(pos("stop web") < pos("stop db"), "reverse order");
        assert!(pos("  > web RUNNING (task RUNNING)") < pos("-- stop requested"));
        assert!(text.ends_with("  forget task\n"), "{text}");
    }
}
