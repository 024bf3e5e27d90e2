//! A simulated Docker host for driving the planner in tests: it performs the planner's
//! operations on simulated containers, produces Docker-like events, lets containers exit
//! and become healthy on a schedule, injects failures, and checks, on every operation,
//! the rules the planner must keep (no second create or start, dependency order, stops in
//! reverse order; a restart only of an exited container whose policy restarts that exit,
//! while its task runs). A `Chooser` decides the order in which pending outcomes and events
//! arrive, so property tests can shuffle, delay and duplicate them.

#![allow(dead_code)]

use berth_model::container::{DependencyCondition, PAUSE_CONTAINER_NAME};
use berth_model::graph::{DependencyGraph, EdgeKind};
use berth_model::plan::{self, Action, Feedback, Observation, Op, Outcome, PlanConfig, VolumeAction};
use berth_model::{ApplyError, ContainerStatus, HealthStatus, Task, TaskStatus};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a simulated container does once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    /// Exits on its own after this many seconds, with this code; `None` runs until stopped.
    pub exits: Option<(i64, i64)>,
    /// Reports healthy this many seconds after start (only with a health check).
    pub healthy_after: Option<i64>,
}

impl Behaviour {
    pub const FOREVER: Behaviour = Behaviour { exits: None, healthy_after: None };
    pub fn exits(after: i64, code: i64) -> Behaviour {
        Behaviour { exits: Some((after, code)), healthy_after: None }
    }
}

/// A failure to inject into the next attempts of one action on one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Transient,
    Permanent,
    /// A timeout; `done` says whether Docker did the work anyway.
    Timeout {
        done: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionKind {
    Pull,
    Create,
    Start,
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SimState {
    Created,
    Running { since: DateTime<Utc> },
    Exited(i64),
}

#[derive(Debug, Clone)]
struct SimContainer {
    id: String,
    state: SimState,
    healthy: bool,
}

/// Picks which pending thing happens next. `0` always takes the first.
pub trait Chooser {
    fn pick(&mut self, n: usize) -> usize;
    /// Whether to duplicate the event about to be delivered.
    fn duplicate(&mut self) -> bool {
        false
    }
}

pub struct First;
impl Chooser for First {
    fn pick(&mut self, _n: usize) -> usize {
        0
    }
}

/// Choices from a fixed sequence (proptest draws it), cycling.
pub struct Scripted {
    pub choices: Vec<u8>,
    pub at: usize,
}
impl Chooser for Scripted {
    fn pick(&mut self, n: usize) -> usize {
        if self.choices.is_empty() || n == 0 {
            return 0;
        }
        let c = self.choices[self.at % self.choices.len()] as usize;
        self.at += 1;
        c % n
    }
    fn duplicate(&mut self) -> bool {
        self.pick(5) == 0
    }
}

pub struct World {
    pub task: Task,
    pub graph: DependencyGraph,
    pub cfg: PlanConfig,
    pub now: DateTime<Utc>,
    start: DateTime<Utc>,
    pub behaviour: BTreeMap<String, Behaviour>,
    pub faults: BTreeMap<(String, ActionKind), VecDeque<Fault>>,
    docker: BTreeMap<String, SimContainer>,
    volumes: BTreeSet<String>,
    next_id: u32,
    in_flight: Vec<(Op, Outcome)>,
    events: Vec<(String, Observation, bool)>,
    pub creates: BTreeMap<String, u32>,
    pub starts: BTreeMap<String, u32>,
    /// Restarts performed, by container.
    pub restarts: BTreeMap<String, u32>,
    /// Exits that the container's restart policy restarts, judged when they happen (the
    /// task and the container desired RUNNING, the code not ignored, the period run).
    pub restartable_exits: BTreeMap<String, u32>,
    /// When each container last started (or restarted) on the simulated host.
    last_start: BTreeMap<String, DateTime<Utc>>,
    /// When each container last exited on its own.
    exited_at: BTreeMap<String, DateTime<Utc>>,
    /// The user stops the task at this time (once), if set.
    pub stop_at: Option<DateTime<Utc>>,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    pub forgotten: bool,
    pub changes: Vec<berth_model::StateChange>,
}

pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date")
}

impl World {
    pub fn new(task: Task, behaviour: BTreeMap<String, Behaviour>) -> World {
        let graph = DependencyGraph::build(&task).expect("valid graph");
        World {
            task,
            graph,
            cfg: PlanConfig { cleanup_wait: Duration::seconds(60), ..PlanConfig::default() },
            now: epoch(),
            start: epoch(),
            behaviour,
            faults: BTreeMap::new(),
            docker: BTreeMap::new(),
            volumes: BTreeSet::new(),
            next_id: 0,
            in_flight: Vec::new(),
            events: Vec::new(),
            creates: BTreeMap::new(),
            starts: BTreeMap::new(),
            restarts: BTreeMap::new(),
            restartable_exits: BTreeMap::new(),
            last_start: BTreeMap::new(),
            exited_at: BTreeMap::new(),
            stop_at: None,
            violations: Vec::new(),
            trace: vec!["t=0s".to_string()],
            forgotten: false,
            changes: Vec::new(),
        }
    }

    fn t(&self) -> i64 {
        (self.now - self.start).num_seconds()
    }

    fn feed(&mut self, fb: Feedback) {
        let before: Vec<(ContainerStatus, u32)> =
            self.task.containers.iter().map(|c| (c.known_status, c.restart_count)).collect();
        let task_before = self.task.known_status;
        plan::apply(&mut self.task, fb, self.now, &self.cfg);
        for (c, (b, count)) in self.task.containers.iter().zip(before) {
            if c.known_status < b {
                self.violations.push(format!("{} went back from {b} to {}", c.name(), c.known_status));
            }
            if c.restart_count < count {
                self.violations.push(format!(
                    "{} restart count went back from {count} to {}",
                    c.name(),
                    c.restart_count
                ));
            }
        }
        if self.task.known_status < task_before {
            self.violations.push("task status went back".into());
        }
        // "Task STOPPED" means nothing of it runs any more (the pause container included).
        if self.task.known_status == TaskStatus::Stopped
            && let Some(c) = self.task.containers.iter().find(|c| c.known_status != ContainerStatus::Stopped)
        {
            self.violations.push(format!("task STOPPED while {} is {}", c.name(), c.known_status));
        }
        let changes = berth_model::event::take_changes(&mut self.task, self.now);
        for ch in &changes {
            let mut task_part =
                if ch.task_status == TaskStatus::None { String::new() } else { format!(" (task {})", ch.task_status) };
            if ch.task_desired_status != TaskStatus::None {
                task_part += &format!(" (task desired {})", ch.task_desired_status);
            }
            let extra = match (&ch.reason, ch.exit_code) {
                (Some(r), Some(code)) => format!(" exit {code}: {r}"),
                (Some(r), None) => format!(": {r}"),
                (None, Some(code)) => format!(" exit {code}"),
                (None, None) => String::new(),
            };
            self.trace.push(format!("  > {} {}{extra}{task_part}", ch.container_name, ch.status));
        }
        self.changes.extend(changes);
    }

    /// Run until nothing more happens (or `max_steps`); returns false if it never settled.
    pub fn run(&mut self, chooser: &mut dyn Chooser, max_steps: usize) -> bool {
        for _ in 0..max_steps {
            if self.forgotten {
                return true;
            }
            if let Some(at) = self.stop_at.filter(|&at| at <= self.now) {
                self.stop_at = None;
                self.trace.push(format!("-- the user stops the task at t={}s", (at - self.start).num_seconds()));
                self.stop_task();
            }
            let plan = plan::plan(&self.task, &self.graph, self.now, &self.cfg);
            if !plan.ops.is_empty() {
                for (op, cause) in plan.ops.into_iter().zip(plan.causes) {
                    self.trace.push(format!("  do {op}  # {cause}"));
                    self.perform(op);
                }
                continue;
            }
            let pending = self.in_flight.len() + self.events.len();
            if pending > 0 {
                let k = chooser.pick(pending);
                if k < self.in_flight.len() {
                    let (op, outcome) = self.in_flight.remove(k);
                    self.feed(Feedback::Done(op, outcome));
                } else {
                    let k = k - self.in_flight.len();
                    // An event may arrive twice (once more at most, so the run ends).
                    let (container, observation, again) = self.events.remove(k);
                    if !again && chooser.duplicate() {
                        self.events.push((container.clone(), observation.clone(), true));
                    }
                    self.feed(Feedback::Observed { container, observation });
                }
                continue;
            }
            let next = [self.next_world_change(), plan.wake_at, self.stop_at].into_iter().flatten().min();
            match next {
                Some(at) => {
                    if at > self.now {
                        self.now = at;
                        self.trace.push(format!("t={}s", self.t()));
                    }
                    self.world_tick();
                }
                None => return true,
            }
        }
        false
    }

    /// When the next scheduled exit or health change happens.
    fn next_world_change(&self) -> Option<DateTime<Utc>> {
        let mut next: Option<DateTime<Utc>> = None;
        for (name, sc) in &self.docker {
            let SimState::Running { since } = sc.state else { continue };
            let b = self.behaviour.get(name).copied().unwrap_or(Behaviour::FOREVER);
            let mut times = Vec::new();
            if let Some((after, _)) = b.exits {
                times.push(since + Duration::seconds(after));
            }
            if let (Some(h), false) = (b.healthy_after, sc.healthy)
                && self.has_health_check(name)
            {
                times.push(since + Duration::seconds(h));
            }
            for t in times {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    fn has_health_check(&self, name: &str) -> bool {
        self.task.container(name).is_some_and(|c| c.spec.health_check.is_some())
    }

    fn world_tick(&mut self) {
        let now = self.now;
        let names: Vec<String> = self.docker.keys().cloned().collect();
        for name in names {
            let b = self.behaviour.get(&name).copied().unwrap_or(Behaviour::FOREVER);
            let has_hc = self.has_health_check(&name);
            let Some(sc) = self.docker.get_mut(&name) else { continue };
            let SimState::Running { since } = sc.state else { continue };
            if let (Some(h), false, true) = (b.healthy_after, sc.healthy, has_hc)
                && since + Duration::seconds(h) <= now
            {
                sc.healthy = true;
                self.events.push((
                    name.clone(),
                    Observation { health: Some(HealthStatus::Healthy), ..Default::default() },
                    false,
                ));
            }
            if let Some((after, code)) = b.exits
                && since + Duration::seconds(after) <= now
            {
                sc.state = SimState::Exited(code);
                self.events.push((name.clone(), die(code), false));
                self.exited_at.insert(name.clone(), now);
                if self.restart_allowed(&name, code, since, now) {
                    *self.restartable_exits.entry(name.clone()).or_default() += 1;
                }
            }
        }
    }

    fn take_fault(&mut self, name: &str, kind: ActionKind) -> Option<Fault> {
        self.faults.get_mut(&(name.to_string(), kind)).and_then(VecDeque::pop_front)
    }

    fn perform(&mut self, op: Op) {
        if op.is_bookkeeping() {
            if op == Op::Forget {
                self.forgotten = true;
            }
            self.feed(Feedback::Done(op, Outcome::Ok));
            return;
        }
        self.feed(Feedback::Issued(op.clone()));
        let outcome = match &op {
            Op::Container { container, action } => self.container_op(container, *action),
            Op::Volume { volume, action } => {
                let docker_name = self.task.volume(volume).map(|v| self.task.docker_volume_name(v)).unwrap_or_default();
                match action {
                    VolumeAction::Create => {
                        self.volumes.insert(docker_name);
                    }
                    VolumeAction::Remove => {
                        self.volumes.remove(&docker_name);
                    }
                }
                Outcome::Ok
            }
            _ => Outcome::Ok,
        };
        self.in_flight.push((op, outcome));
    }

    fn container_op(&mut self, name: &str, action: Action) -> Outcome {
        let fault_kind = match action {
            Action::Pull => Some(ActionKind::Pull),
            Action::Create => Some(ActionKind::Create),
            Action::Start => Some(ActionKind::Start),
            Action::Restart => Some(ActionKind::Restart),
            _ => None,
        };
        let fault = fault_kind.and_then(|k| self.take_fault(name, k));
        let failed =
            |permanent| Outcome::Failed(ApplyError { message: format!("injected failure of {name}"), permanent });
        match fault {
            Some(Fault::Transient) => return failed(false),
            Some(Fault::Permanent) => return failed(true),
            Some(Fault::Timeout { done: false }) => return Outcome::Unknown(format!("timeout on {name}")),
            Some(Fault::Timeout { done: true }) | None => {}
        }
        let outcome = match action {
            Action::Pull => Outcome::Ok,
            Action::Inspect => Outcome::Inspected(self.inspect(name)),
            Action::Create => self.create(name),
            Action::Start => self.start(name),
            Action::Restart => self.restart(name),
            Action::Stop { .. } => self.stop(name),
            Action::Remove => {
                self.docker.remove(name);
                Outcome::Ok
            }
        };
        if let Some(Fault::Timeout { done: true }) = fault {
            Outcome::Unknown(format!("timeout on {name}"))
        } else {
            outcome
        }
    }

    fn inspect(&self, name: &str) -> Observation {
        match self.docker.get(name) {
            None => Observation::default(),
            Some(sc) => {
                let (status, exit_code, has_run) = match sc.state {
                    SimState::Created => (ContainerStatus::Created, None, false),
                    SimState::Running { .. } => (ContainerStatus::Running, None, true),
                    SimState::Exited(code) => (ContainerStatus::Stopped, Some(code), true),
                };
                Observation {
                    status,
                    exit_code,
                    has_run,
                    inspected: true,
                    docker_id: Some(sc.id.clone()),
                    health: sc.healthy.then_some(HealthStatus::Healthy),
                    ..Default::default()
                }
            }
        }
    }

    fn create(&mut self, name: &str) -> Outcome {
        *self.creates.entry(name.to_string()).or_default() += 1;
        if self.docker.contains_key(name) {
            self.violations.push(format!("{name} created twice"));
        }
        let idx = self.task.container_index(name).expect("planned container exists");
        for e in self.graph.dependencies(idx) {
            let dep = self.task.containers[e.to].name().to_string();
            if matches!(e.kind, EdgeKind::Link | EdgeKind::VolumesFrom | EdgeKind::Network)
                && !self.docker.contains_key(&dep)
            {
                self.violations.push(format!("{name} created before its {:?} dependency {dep}", e.kind));
            }
        }
        for m in &self.task.containers[idx].spec.mount_points {
            if let Some(v) = self.task.volume(&m.source_volume)
                && v.needs_create()
                && !self.volumes.contains(&self.task.docker_volume_name(v))
            {
                self.violations.push(format!("{name} created before volume {}", v.name));
            }
        }
        self.next_id += 1;
        let id = format!("id{:04}", self.next_id);
        self.docker.insert(name.to_string(), SimContainer { id: id.clone(), state: SimState::Created, healthy: false });
        // Docker's events name the container's id (and its labels, by which berth knows it).
        let created =
            Observation { status: ContainerStatus::Created, docker_id: Some(id.clone()), ..Default::default() };
        self.events.push((name.to_string(), created, false));
        Outcome::Created(id)
    }

    fn start(&mut self, name: &str) -> Outcome {
        let idx = self.task.container_index(name).expect("planned container exists");
        for e in self.graph.dependencies(idx) {
            let dep = self.task.containers[e.to].name().to_string();
            let state = self.docker.get(&dep).map(|sc| (sc.state.clone(), sc.healthy));
            // What the planner can have known: that the dependency reached the condition at
            // some time (it may have moved on since, and its event not arrived yet).
            let ever_ran = matches!(state, Some((SimState::Running { .. } | SimState::Exited(_), _)));
            let ok = match (e.kind, &state) {
                (EdgeKind::Link | EdgeKind::Network | EdgeKind::DependsOn(DependencyCondition::Start), _) => ever_ran,
                (EdgeKind::VolumesFrom, _) => true,
                (EdgeKind::DependsOn(DependencyCondition::Complete), Some((SimState::Exited(_), _))) => true,
                (EdgeKind::DependsOn(DependencyCondition::Success), Some((SimState::Exited(0), _))) => true,
                (EdgeKind::DependsOn(DependencyCondition::Healthy), Some((_, true))) => true,
                _ => false,
            };
            if !ok {
                self.violations.push(format!("{name} started before its {:?} dependency {dep} ({state:?})", e.kind));
            }
            // Docker refuses to start a container whose link target does not run.
            let runs_now = matches!(state, Some((SimState::Running { .. }, _)));
            if matches!(e.kind, EdgeKind::Link | EdgeKind::Network) && !runs_now {
                return Outcome::Failed(ApplyError {
                    message: format!("cannot link to a non running container {dep}"),
                    permanent: false,
                });
            }
        }
        let Some(sc) = self.docker.get_mut(name) else {
            return Outcome::Failed(ApplyError { message: format!("no such container {name}"), permanent: true });
        };
        match sc.state {
            // Docker starts an exited container again: the planner must never ask.
            SimState::Created | SimState::Exited(_) => sc.state = SimState::Running { since: self.now },
            SimState::Running { .. } => return Outcome::Ok,
        }
        self.last_start.insert(name.to_string(), self.now);
        let starts = self.starts.entry(name.to_string()).or_default();
        *starts += 1;
        if *starts > 1 {
            self.violations.push(format!("{name} started twice"));
        }
        self.events.push((
            name.to_string(),
            Observation { status: ContainerStatus::Running, ..Default::default() },
            false,
        ));
        // A container that exits at once exits before the start call even returns.
        self.world_tick();
        Outcome::Ok
    }

    /// Whether container `name`'s restart policy restarts an exit with `code` now, of a run
    /// that started at `since`, with its task and itself desired RUNNING.
    fn restart_allowed(&self, name: &str, code: i64, since: DateTime<Utc>, exited: DateTime<Utc>) -> bool {
        let Some(c) = self.task.container(name) else { return false };
        let Some(policy) = &c.spec.restart_policy else { return false };
        let period = Duration::seconds(policy.restart_attempt_period_secs as i64);
        self.task.desired_status < TaskStatus::Stopped
            && c.desired_status == ContainerStatus::Running
            && !policy.ignored_exit_codes.contains(&code)
            && exited - since >= period
    }

    fn restart(&mut self, name: &str) -> Outcome {
        let Some(sc) = self.docker.get(name) else {
            return Outcome::Failed(ApplyError { message: format!("no such container {name}"), permanent: true });
        };
        match sc.state {
            SimState::Exited(code) => {
                let since = self.last_start.get(name).copied().unwrap_or(self.start);
                let exited = self.exited_at.get(name).copied().unwrap_or(self.now);
                if !self.restart_allowed(name, code, since, exited) {
                    self.violations.push(format!("{name} restarted against its policy (exit {code})"));
                }
            }
            SimState::Created | SimState::Running { .. } => {
                self.violations.push(format!("{name} restarted while {:?}", sc.state));
            }
        }
        if let Some(sc) = self.docker.get_mut(name) {
            sc.state = SimState::Running { since: self.now };
        }
        self.last_start.insert(name.to_string(), self.now);
        *self.restarts.entry(name.to_string()).or_default() += 1;
        self.events.push((
            name.to_string(),
            Observation { status: ContainerStatus::Running, has_run: true, ..Default::default() },
            false,
        ));
        Outcome::Ok
    }

    fn stop(&mut self, name: &str) -> Outcome {
        let idx = self.task.container_index(name).expect("planned container exists");
        for e in self.graph.dependents(idx) {
            let dep = self.task.containers[e.from].name().to_string();
            if let Some(SimContainer { state: SimState::Running { .. }, .. }) = self.docker.get(&dep) {
                self.violations.push(format!("{name} stopped while its dependent {dep} runs"));
            }
        }
        if let Some(sc) = self.docker.get_mut(name)
            && let SimState::Running { .. } = sc.state
        {
            sc.state = SimState::Exited(143);
            self.events.push((name.to_string(), die(143), false));
        }
        // As the engine does: a stop's outcome is the inspect that follows it, which
        // carries the exit code.
        Outcome::Inspected(self.inspect(name))
    }

    /// Docker containers of this task that still exist.
    pub fn docker_containers(&self) -> usize {
        self.docker.len()
    }

    pub fn docker_volumes(&self) -> usize {
        self.volumes.len()
    }

    /// Containers that run in the simulated Docker.
    pub fn running(&self) -> Vec<String> {
        self.docker
            .iter()
            .filter(|(_, sc)| matches!(sc.state, SimState::Running { .. }))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Raise the task's desired status to STOPPED, as a user's stop call does.
    pub fn stop_task(&mut self) {
        self.task.raise_desired_status(TaskStatus::Stopped);
    }

    pub fn is_pause(name: &str) -> bool {
        name == PAUSE_CONTAINER_NAME
    }
}

fn die(code: i64) -> Observation {
    Observation { status: ContainerStatus::Stopped, exit_code: Some(code), has_run: true, ..Default::default() }
}

/// The task-definition corpus, `shared/ecs-taskdefs`, found beside an ancestor of this
/// crate (in CI the checkout sits next to `shared/`). Never copied into the project; a
/// missing corpus fails the test rather than skipping it.
pub fn corpus_dir() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/ecs-taskdefs"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no shared/ecs-taskdefs beside any ancestor of {}", here.display()))
}

/// The corpus file whose name starts with `NN-`.
pub fn corpus_file(number: &str) -> (String, Vec<u8>) {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{number}-"))))
        .unwrap_or_else(|| panic!("no corpus file {number}-*"));
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (stem, bytes)
}
