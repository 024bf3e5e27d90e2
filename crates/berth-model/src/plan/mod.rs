//! The planner: from a task (desired and known statuses, health, exit codes, failures so
//! far) and the time, the next operations. Pure: no I/O, no clock, no randomness; the
//! engine performs what it returns and feeds the outcomes back through [`apply`].
//!
//! The rules, in SPEC 3's words:
//! - each container goes NONE → PULLED → CREATED → RUNNING → STOPPED; nothing new is
//!   issued for a container with an operation in flight, so its transitions are serialized,
//!   while containers of a task progress in parallel as far as their dependencies allow;
//! - links: the target is created before the linking container is created and RUNNING
//!   before it is started; volumesFrom: the source exists before the dependent is created;
//!   dependsOn gates start (START = has run, COMPLETE = exited, SUCCESS = exited 0,
//!   HEALTHY = reports healthy); under awsvpc the pause container is like a link;
//! - a dependency that can no longer be met stops the task, with a reason;
//! - if an essential container stops, the task stops; stopping goes in reverse
//!   dependency order over every kind of edge;
//! - a container that has ever run is never started again, except by its restart policy:
//!   an exit it restarts leaves it RUNNING with a pending restart, answered by
//!   [`Action::Restart`] of the same container (see `restart`);
//! - a COMPLETE, SUCCESS or HEALTHY dependency on a container with a `startTimeout` that is
//!   not met within that many seconds of its start stops the task, with a reason;
//! - failures: see [`apply`]; a waiting retry shows as [`Plan::wake_at`];
//! - a STOPPED task is cleaned up (containers, then task volumes, removed) after
//!   [`PlanConfig::cleanup_wait`], then forgotten.

mod apply;
mod op;
mod restart;

pub use apply::{Feedback, Observation, Outcome, apply, apply_tracked};
pub use op::{Action, Cause, Op, VolumeAction, Waited};

use crate::container::{Container, DependencyCondition};
use crate::graph::{DependencyGraph, EdgeKind};
use crate::status::{ContainerStatus, HealthStatus, TaskStatus};
use crate::task::Task;
use crate::volume::VolumeKind;
use chrono::{DateTime, Duration, Utc};
use std::fmt::Write as _;

/// The engine's default stop timeout in seconds (the seed's `DEFAULT_TIMEOUT_SECONDS`).
pub const DEFAULT_STOP_TIMEOUT_SECS: u64 = 30;

/// How failed pulls, creates and starts are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (3 by default).
    pub attempts: u32,
    /// Wait after the first failure.
    pub initial_backoff: Duration,
    /// Each further failure multiplies the wait by this.
    pub multiplier: u32,
    /// The wait never exceeds this.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::seconds(1),
            multiplier: 2,
            max_backoff: Duration::seconds(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th failure in a row (1-based).
    pub fn backoff(&self, failures: u32) -> Duration {
        let mut wait = self.initial_backoff;
        for _ in 1..failures {
            wait = wait * self.multiplier as i32;
            if wait >= self.max_backoff {
                return self.max_backoff;
            }
        }
        wait.min(self.max_backoff)
    }
}

/// The settings the planner follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanConfig {
    /// Retries of pull, create and start.
    pub retry: RetryPolicy,
    /// How long a STOPPED task's containers stay before cleanup (3 h by default).
    pub cleanup_wait: Duration,
    /// Stop timeout for containers without `stopTimeout`.
    pub default_stop_timeout_secs: u64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            retry: RetryPolicy::default(),
            cleanup_wait: Duration::hours(3),
            default_stop_timeout_secs: DEFAULT_STOP_TIMEOUT_SECS,
        }
    }
}

/// What to do next for one task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Operations that can start now, independent of each other. Bookkeeping operations
    /// come alone or first; after applying them the engine plans again.
    pub ops: Vec<Op>,
    /// Why each operation was chosen: `causes[i]` is the cause of `ops[i]` (see
    /// [`Plan::planned`]).
    pub causes: Vec<Cause>,
    /// The earliest time something not yet possible becomes possible (a retry's backoff
    /// ends, cleanup is due); plan again then, or on the next change.
    pub wake_at: Option<DateTime<Utc>>,
}

impl Plan {
    /// Nothing to do now and nothing to wait for.
    pub fn is_idle(&self) -> bool {
        self.ops.is_empty() && self.wake_at.is_none()
    }

    /// Each operation with its cause, in the order decided.
    pub fn planned(&self) -> impl Iterator<Item = (&Op, Cause)> {
        self.ops.iter().zip(self.causes.iter().copied())
    }

    /// One operation a line with its cause after `#`, in the order decided.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (op, cause) in self.planned() {
            let _ = writeln!(out, "{op}  # {cause}");
        }
        if let Some(at) = self.wake_at {
            let _ = writeln!(out, "wait until {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        out
    }

    fn push(&mut self, op: Op, cause: Cause) {
        self.ops.push(op);
        self.causes.push(cause);
    }

    fn wake(&mut self, at: DateTime<Utc>) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// The next operations for `task`, whose dependency graph is `graph`, at time `now`.
pub fn plan(task: &Task, graph: &DependencyGraph, now: DateTime<Utc>, cfg: &PlanConfig) -> Plan {
    let mut plan = Plan::default();
    if task.desired_status < TaskStatus::Stopped {
        if let Some(reason) = reason_to_stop(task, graph) {
            plan.push(Op::StopTask { reason }, Cause::TaskCannotRun);
            return plan;
        }
        if let Some(reason) = start_timed_out(task, graph, now, &mut plan) {
            plan.wake_at = None;
            plan.push(Op::StopTask { reason }, Cause::StartTimedOut);
            return plan;
        }
        plan_volumes_up(task, &mut plan);
        for &i in graph.start_order() {
            plan_container_up(task, graph, i, now, cfg, &mut plan);
        }
    } else {
        let mut all_stopped = true;
        for &i in graph.start_order().iter().rev() {
            all_stopped &= task.containers[i].known_status == ContainerStatus::Stopped;
            plan_container_down(task, graph, i, now, cfg, &mut plan);
        }
        if all_stopped {
            plan_cleanup(task, now, cfg, &mut plan);
        }
    }
    // Bookkeeping first (a stable sort keeps the decided order otherwise); each cause
    // stays with its operation.
    if plan.ops.iter().any(Op::is_bookkeeping) {
        let mut planned: Vec<(Op, Cause)> = plan.ops.drain(..).zip(plan.causes.drain(..)).collect();
        planned.sort_by_key(|(op, _)| !op.is_bookkeeping());
        (plan.ops, plan.causes) = planned.into_iter().unzip();
    }
    plan
}

/// Why a task that should run must stop instead: an essential container stopped, an
/// internal one stopped, a volume berth cannot provide, or a dependency that can no longer
/// be met.
fn reason_to_stop(task: &Task, graph: &DependencyGraph) -> Option<String> {
    for v in &task.volumes {
        if let VolumeKind::Unsupported { kind } = &v.kind {
            return Some(format!("volume \"{}\": {kind} is not supported by berth", v.name));
        }
        if let Some(err) = &v.error {
            return Some(format!("volume \"{}\" could not be created: {err}", v.name));
        }
    }
    for c in &task.containers {
        if c.known_status != ContainerStatus::Stopped {
            continue;
        }
        if c.spec.internal {
            return Some(format!("internal container \"{}\" stopped", c.name()));
        }
        if c.spec.essential {
            return Some(match (&c.applying_error, c.known_exit_code) {
                (Some(err), _) => format!("essential container \"{}\" failed: {err}", c.name()),
                (None, Some(code)) => format!("essential container \"{}\" exited with code {code}", c.name()),
                (None, None) => match &c.reason {
                    Some(r) => format!("essential container \"{}\" stopped: {r}", c.name()),
                    None => format!("essential container \"{}\" stopped", c.name()),
                },
            });
        }
    }
    for (i, c) in task.containers.iter().enumerate() {
        if c.has_run || c.known_status == ContainerStatus::Stopped || c.desired_status < ContainerStatus::Running {
            continue;
        }
        for e in graph.dependencies(i) {
            let dep = &task.containers[e.to];
            if let Some(why) = unmet_forever(c, dep, e.kind) {
                return Some(format!(
                    "{} of \"{}\" on \"{}\" can no longer be met: {why}",
                    describe_edge(e.kind),
                    c.name(),
                    dep.name()
                ));
            }
        }
    }
    None
}

/// A dependency that waits on a container with a `startTimeout` (COMPLETE, SUCCESS or
/// HEALTHY, of a container that has not run yet and should) and is not met that many seconds
/// after that container started: why the task stops. While none has passed, wakes the plan
/// when the first would.
fn start_timed_out(task: &Task, graph: &DependencyGraph, now: DateTime<Utc>, plan: &mut Plan) -> Option<String> {
    for (i, c) in task.containers.iter().enumerate() {
        if c.has_run || c.known_status == ContainerStatus::Stopped || c.desired_status < ContainerStatus::Running {
            continue;
        }
        for e in graph.dependencies(i) {
            let EdgeKind::DependsOn(cond) = e.kind else { continue };
            let dep = &task.containers[e.to];
            let (Some(secs), Some(started)) = (dep.spec.start_timeout, dep.started_at) else { continue };
            if cond == DependencyCondition::Start || condition_met(dep, cond) {
                continue;
            }
            let due = seconds_after(started, secs);
            if now >= due {
                return Some(format!(
                    "dependency ({cond}) of \"{}\" on \"{}\" not met within its startTimeout of {secs} s",
                    c.name(),
                    dep.name()
                ));
            }
            plan.wake(due);
        }
    }
    None
}

/// `secs` seconds after `t`, saturating at the end of time (a record may hold any value).
fn seconds_after(t: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(Duration::try_seconds)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn describe_edge(kind: EdgeKind) -> String {
    match kind {
        EdgeKind::DependsOn(cond) => format!("dependency ({cond})"),
        other => other.field().to_string(),
    }
}

/// Whether `dep` can never satisfy what `c` needs of it, and why. Only asked while `c` has
/// not run.
fn unmet_forever(c: &Container, dep: &Container, kind: EdgeKind) -> Option<String> {
    if dep.known_status != ContainerStatus::Stopped {
        return None;
    }
    let exited = || match (&dep.applying_error, dep.known_exit_code) {
        (Some(err), _) => format!("it failed: {err}"),
        (None, Some(code)) => format!("it exited with code {code}"),
        (None, None) => "it stopped".to_string(),
    };
    match kind {
        EdgeKind::Link | EdgeKind::Network => Some(exited()),
        EdgeKind::VolumesFrom => (c.known_status < ContainerStatus::Created && dep.docker_id.is_none())
            .then(|| "it was never created".into()),
        EdgeKind::DependsOn(DependencyCondition::Start | DependencyCondition::Complete) => {
            (!dep.has_run).then(|| format!("it never ran ({})", exited()))
        }
        EdgeKind::DependsOn(DependencyCondition::Success) => (dep.known_exit_code != Some(0)).then(exited),
        EdgeKind::DependsOn(DependencyCondition::Healthy) => {
            Some(format!("it stopped before it was healthy ({})", exited()))
        }
    }
}

fn plan_volumes_up(task: &Task, plan: &mut Plan) {
    for v in &task.volumes {
        if v.needs_create() && !v.created && !v.in_flight {
            plan.push(Op::Volume { volume: v.name.clone(), action: VolumeAction::Create }, Cause::VolumeNeeded);
        }
    }
}

/// What container `i` needs next on its way up to its desired status.
fn plan_container_up(
    task: &Task,
    graph: &DependencyGraph,
    i: usize,
    now: DateTime<Utc>,
    cfg: &PlanConfig,
    plan: &mut Plan,
) {
    let c = &task.containers[i];
    if c.desired_status == ContainerStatus::Stopped {
        // The seed's payload can ask one container of a running task to stop.
        return plan_container_down(task, graph, i, now, cfg, plan);
    }
    if c.in_flight {
        return;
    }
    let name = c.name();
    // After a restart, a reopened event stream or a timeout, a container that is not known
    // to be STOPPED is looked at before anything else, running ones included.
    if c.needs_inspect && c.known_status < ContainerStatus::Stopped {
        let restartable = c.spec.restart_policy.is_some() && c.known_status == ContainerStatus::Running;
        plan.push(
            Op::container(name, Action::Inspect),
            if restartable { Cause::ExitUnconfirmed } else { Cause::Uncertain },
        );
        return;
    }
    if c.pending_restart.is_some() {
        match c.retry_at.filter(|&at| at > now) {
            Some(at) => plan.wake(at),
            None => plan.push(Op::container(name, Action::Restart), Cause::RestartDue),
        }
        return;
    }
    if c.reached_desired() {
        return;
    }
    if let Some(at) = c.retry_at.filter(|&at| at > now) {
        plan.wake(at);
        return;
    }
    let (action, cause) = match c.known_status {
        ContainerStatus::None => (Action::Pull, Cause::NotPulled),
        ContainerStatus::Pulled if may_create(task, graph, i) => {
            (Action::Create, Cause::CreateReady(waited(task, graph, i, false)))
        }
        ContainerStatus::Created if !c.has_run && may_start(task, graph, i) => {
            (Action::Start, Cause::StartReady(waited(task, graph, i, true)))
        }
        _ => return,
    };
    plan.push(Op::container(name, action), cause);
}

/// What container `i` waits for before its create (`start` false) or its start: every gate
/// [`may_create`] or [`may_start`] checks that it has.
fn waited(task: &Task, graph: &DependencyGraph, i: usize, start: bool) -> Waited {
    let mut w = Waited::default();
    for e in graph.dependencies(i) {
        match e.kind {
            EdgeKind::Link => w.links = true,
            EdgeKind::Network => w.pause = true,
            EdgeKind::VolumesFrom => w.volumes_from |= !start,
            EdgeKind::DependsOn(cond) if start => {
                let at = match cond {
                    DependencyCondition::Start => 0,
                    DependencyCondition::Complete => 1,
                    DependencyCondition::Success => 2,
                    DependencyCondition::Healthy => 3,
                };
                w.depends_on[at] = true;
            }
            EdgeKind::DependsOn(_) => {}
        }
    }
    w.task_volumes = !start
        && task.containers[i]
            .spec
            .mount_points
            .iter()
            .any(|m| task.volume(&m.source_volume).is_some_and(|v| v.needs_create()));
    w
}

/// Create gates: links and the pause container created, volumesFrom sources existing,
/// mounted task volumes made.
fn may_create(task: &Task, graph: &DependencyGraph, i: usize) -> bool {
    let deps_ok = graph.dependencies(i).all(|e| {
        let dep = &task.containers[e.to];
        match e.kind {
            EdgeKind::Link | EdgeKind::Network | EdgeKind::VolumesFrom => {
                dep.known_status >= ContainerStatus::Created && dep.docker_id.is_some()
            }
            EdgeKind::DependsOn(_) => true,
        }
    });
    deps_ok
        && task.containers[i]
            .spec
            .mount_points
            .iter()
            .all(|m| task.volume(&m.source_volume).is_some_and(|v| !v.needs_create() || v.created))
}

/// Start gates: links and the pause container RUNNING, dependsOn conditions met.
fn may_start(task: &Task, graph: &DependencyGraph, i: usize) -> bool {
    graph.dependencies(i).all(|e| {
        let dep = &task.containers[e.to];
        match e.kind {
            EdgeKind::Link | EdgeKind::Network => dep.known_status == ContainerStatus::Running,
            EdgeKind::VolumesFrom => true,
            EdgeKind::DependsOn(cond) => condition_met(dep, cond),
        }
    })
}

/// Whether `dep` meets a dependsOn condition now.
fn condition_met(dep: &Container, cond: DependencyCondition) -> bool {
    match cond {
        DependencyCondition::Start => dep.has_run,
        DependencyCondition::Complete => dep.has_run && dep.known_status == ContainerStatus::Stopped,
        DependencyCondition::Success => dep.known_status == ContainerStatus::Stopped && dep.known_exit_code == Some(0),
        DependencyCondition::Healthy => {
            dep.known_status == ContainerStatus::Running && dep.health == HealthStatus::Healthy
        }
    }
}

/// What container `i` needs on its way down to STOPPED. One that never ran is simply
/// marked STOPPED; a running one is stopped once everything that needs it has stopped.
fn plan_container_down(
    task: &Task,
    graph: &DependencyGraph,
    i: usize,
    now: DateTime<Utc>,
    cfg: &PlanConfig,
    plan: &mut Plan,
) {
    let c = &task.containers[i];
    if c.in_flight || c.known_status == ContainerStatus::Stopped {
        return;
    }
    let name = c.name();
    if c.needs_inspect {
        plan.push(Op::container(name, Action::Inspect), Cause::Uncertain);
        return;
    }
    let task_stops = task.desired_status >= TaskStatus::Stopped;
    if c.known_status < ContainerStatus::Running {
        plan.push(
            Op::MarkStopped { container: name.to_string(), reason: None },
            Cause::NotRunning { task: task_stops },
        );
        return;
    }
    if let Some(at) = c.retry_at.filter(|&at| at > now) {
        plan.wake(at);
        return;
    }
    let dependents_stopped =
        graph.dependents(i).all(|e| task.containers[e.from].known_status == ContainerStatus::Stopped);
    if dependents_stopped {
        let timeout_secs = c.stop_timeout(cfg.default_stop_timeout_secs);
        let dependents = graph.dependents(i).next().is_some();
        plan.push(
            Op::container(name, Action::Stop { timeout_secs }),
            Cause::StopReady { task: task_stops, dependents },
        );
    }
}

/// Remove a STOPPED task's containers once the wait is over, then its task volumes, then
/// forget it.
fn plan_cleanup(task: &Task, now: DateTime<Utc>, cfg: &PlanConfig, plan: &mut Plan) {
    // Saturating: a state may hold a time near the end of time.
    let due =
        task.known_time.map_or(now, |t| t.checked_add_signed(cfg.cleanup_wait).unwrap_or(DateTime::<Utc>::MAX_UTC));
    if due > now {
        plan.wake(due);
        return;
    }
    let mut containers_left = false;
    for c in &task.containers {
        // Any container a create was issued for may exist, with or without a known id
        // (Docker removes by name too, and "no such container" counts as removed).
        if c.applied_status >= ContainerStatus::Created && !c.removed {
            containers_left = true;
            match c.retry_at.filter(|&at| at > now) {
                Some(at) => plan.wake(at),
                None if !c.in_flight => plan.push(Op::container(c.name(), Action::Remove), Cause::CleanupDue),
                None => {}
            }
        }
    }
    if containers_left {
        return;
    }
    let mut volumes_left = false;
    for v in &task.volumes {
        if v.managed_by_task() && v.created && !v.removed {
            volumes_left = true;
            match v.retry_at.filter(|&at| at > now) {
                Some(at) => plan.wake(at),
                None if !v.in_flight => plan.push(
                    Op::Volume { volume: v.name.clone(), action: VolumeAction::Remove },
                    Cause::ContainersRemoved,
                ),
                None => {}
            }
        }
    }
    if !volumes_left && !task.containers.iter().any(|c| c.in_flight) {
        plan.push(Op::Forget, Cause::CleanedUp);
    }
}
