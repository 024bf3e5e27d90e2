//! The one owner of the engine's state: a single loop that takes commands, outcomes of
//! Docker calls and Docker events, and in rounds:
//!
//! 1. folds every input that is ready into the tasks (through `berth_model::plan::apply`);
//! 2. asks the planner what each touched task needs next; applies bookkeeping at once and
//!    marks Docker calls issued (a create's Docker name is chosen here);
//! 3. saves the touched tasks and their new state changes as one group commit, so every
//!    name is durable before its create call and every change before anyone sees it;
//! 4. hands the committed changes to the change log, and only then starts the Docker
//!    calls, each in its own task, which report back as inputs.
//!
//! No lock is held across an await or a Docker call: the state is owned by this loop, and
//! the store is called with the saver moved into a blocking task and back.

use crate::changelog::ChangeLog;
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::error::{ContainerNotFound, EngineError, EngineExit};
use crate::executor::{self, Job};
use crate::observe::EngineEvent;
use crate::settings;
use crate::specs::Specs;
use berth_docker::events::{ContainerEvent, EventKind};
use berth_docker::{ContainerSummary, DockerClient, VolumeConfig, labels};
use berth_model::container::PAUSE_IMAGE;
use berth_model::event::take_changes;
use berth_model::graph::DependencyGraph;
use berth_model::plan::{self, Action, Feedback, Observation, Op, Outcome, PlanConfig, VolumeAction};
use berth_model::volume::VolumeKind;
use berth_model::{ContainerStatus, Task, TaskStatus};
use berth_store::{Group, Saver};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

/// The loop's maps and sets, keyed by task arns and container names: hashed with foldhash
/// (seeded at random per process), several times faster than the standard SipHash on the
/// loop's hot path.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Set<T> = HashSet<T, foldhash::fast::RandomState>;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A request from the engine's handle.
pub enum Command {
    /// Add a task, or update one with the same arn (desired statuses only rise).
    AddTask(Box<Task>, oneshot::Sender<Result<(), EngineError>>),
    /// Every task.
    ListTasks(oneshot::Sender<Vec<Task>>),
    /// One task.
    GetTask(String, oneshot::Sender<Option<Task>>),
    /// How the engine stands with Docker.
    Status(oneshot::Sender<crate::engine::EngineStatus>),
    /// Raise a task's desired status to STOPPED.
    StopTask(String, oneshot::Sender<Result<(), EngineError>>),
    /// Look at a task again now (the seed's `ApplyTaskState`).
    Poke(String),
    /// Sweep a task as soon as it is STOPPED, without the cleanup wait.
    CleanUpNow(String, oneshot::Sender<Result<(), EngineError>>),
    /// Perform one operation on one container now, answering with its outcome.
    Perform { task_arn: String, container: String, action: Action, reply: oneshot::Sender<Result<(), EngineError>> },
    /// Start no more Docker calls (shutdown has begun): calls decided from now on stay
    /// durable as issued and are made at the next start; commits go on.
    Quiesce,
    /// Stop the loop.
    Shutdown(oneshot::Sender<()>),
}

/// Something that happened, for the loop to fold in.
#[derive(Debug)]
pub enum Input {
    /// A Docker call ended.
    Done { task_arn: String, op: Op, outcome: Outcome },
    /// A Docker event of one of this berth's containers.
    Event(ContainerEvent),
    /// An inspect made because of an event (to read ports, exit code).
    Observed { task_arn: String, container: String, observation: Observation },
    /// The event stream was reopened: what it missed must be looked at again.
    Resync,
    /// Docker answers again (or for the first time): this instance's containers, as listed
    /// then, to reconcile the state with.
    Connected(Vec<ContainerSummary>),
    /// The grace period of these containers (ids) that no task owned has passed: remove
    /// those no task owns now either.
    OrphanCheck(Vec<String>),
    /// The loop cannot go on (another live berth holds this instance): it stops with this.
    Fatal(EngineError),
}

struct Entry {
    /// Shared with the group commit that saves it (and with `MemorySaver`, which keeps
    /// it): changed through `Arc::make_mut`, which copies it only while a save holds it.
    task: Arc<Task>,
    graph: DependencyGraph,
    wake_at: Option<DateTime<Utc>>,
    /// Swept as soon as it is STOPPED (`berth run` at its end).
    clean_up_now: bool,
    /// [`Task::record_fingerprint`] of the record last handed to the store (`None`: never):
    /// a round saves the task only when it differs.
    saved: Option<u64>,
}

/// The loop's state.
pub struct Actor {
    config: EngineConfig,
    instance: String,
    docker: Arc<dyn DockerClient>,
    clock: Arc<dyn Clock>,
    saver: Option<Box<dyn Saver>>,
    log: Arc<ChangeLog>,
    tasks: Map<String, Entry>,
    /// The arn of each held task that has a client token, by token.
    tokens: Map<String, String>,
    dirty: Set<String>,
    wakes: BinaryHeap<Reverse<(DateTime<Utc>, String)>>,
    commands: mpsc::Receiver<Command>,
    inputs: mpsc::UnboundedReceiver<Input>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    /// Direct operations waiting for their outcome, by (task, container).
    waiting: Map<(String, String), oneshot::Sender<Result<(), EngineError>>>,
    /// Replies sent once this round's group is durable.
    after_commit: Vec<oneshot::Sender<Result<(), EngineError>>>,
    /// Operations asked for directly, issued in the next round.
    direct: Vec<(String, Op)>,
    /// Pulls in flight, shared by the Docker calls.
    pulls: Arc<executor::Pulls>,
    /// What waits for the next group commit.
    pending: Batch,
    /// Where each task's record is in `pending`'s group.
    pending_records: Map<String, usize>,
    /// The group commit in flight, if any.
    committing: Option<Committing>,
    /// Docker answered the last time berth asked; while it does not, Docker calls wait in
    /// `held` (nothing is lost or counted as failed) and a connector retries.
    docker_up: bool,
    /// A connector is trying to reach Docker.
    connecting: bool,
    /// Docker has answered at least once since this loop began.
    connected_before: bool,
    /// Docker calls decided while Docker did not answer, made once it does.
    held: Vec<Call>,
    /// Containers whose first inspect since (re)connecting has not answered yet, with the
    /// reason to give if it finds the container gone.
    reconciling: Map<(String, String), &'static str>,
    /// Docker calls other than pulls waiting for one of the `docker_concurrency` places;
    /// only the calls in those places are tasks of their own, so a burst of thousands of
    /// calls costs a queue entry each, not a task each.
    queued: VecDeque<Call>,
    /// Docker calls other than pulls with Docker now (at most `docker_concurrency`).
    calling: usize,
    /// One copy of each distinct container spec of the tasks held.
    specs: Specs,
    /// Shutdown has begun: no Docker call starts any more.
    stopping: bool,
    /// Docker calls decided but not started because shutdown had begun.
    not_started: usize,
    /// Where the loop says how it ended.
    exit: tokio::sync::watch::Sender<Option<EngineExit>>,
    /// Why the loop must stop now (taken by the loop after its inputs).
    fatal: Option<EngineError>,
}

impl Drop for Actor {
    /// However the loop ends, the log stops reading from the store, which it held open.
    fn drop(&mut self) {
        self.log.close();
    }
}

/// What the actor needs to start.
pub struct ActorParts {
    /// Configuration.
    pub config: EngineConfig,
    /// This berth's instance id.
    pub instance: String,
    /// Docker.
    pub docker: Arc<dyn DockerClient>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The store.
    pub saver: Box<dyn Saver>,
    /// The change log readers read.
    pub log: Arc<ChangeLog>,
    /// The tasks loaded at start.
    pub tasks: Vec<Task>,
    /// Commands from the handle.
    pub commands: mpsc::Receiver<Command>,
    /// Inputs (outcomes, events).
    pub inputs: mpsc::UnboundedReceiver<Input>,
    /// For the Docker calls it starts to report back.
    pub inputs_tx: mpsc::UnboundedSender<Input>,
    /// Where pulls report their progress.
    pub progress: tokio::sync::broadcast::Sender<berth_docker::PullProgress>,
    /// This instance's containers as listed at start, when Docker answered then; `None`:
    /// the loop connects in the background (and holds Docker calls until it has).
    pub listed: Option<Vec<ContainerSummary>>,
    /// Where the loop says how it ended.
    pub exit: tokio::sync::watch::Sender<Option<EngineExit>>,
}

impl Actor {
    /// The loop, with its loaded tasks resumed: a container whose outcome berth cannot
    /// know (an operation was in flight, or it was not yet known to be STOPPED) is
    /// inspected before anything else happens to it.
    pub fn new(parts: ActorParts) -> Result<Actor, EngineError> {
        let mut tasks = Map::default();
        let mut dirty = Set::default();
        let mut specs = Specs::default();
        let mut tokens = Map::default();
        for mut task in parts.tasks {
            if let Some(token) = &task.client_token {
                tokens.insert(token.clone(), task.arn.clone());
            }
            specs.share(&mut task);
            let graph = DependencyGraph::build(&task).map_err(|errs| {
                EngineError::InvalidState(format!(
                    "task {}: {}",
                    task.arn,
                    errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                ))
            })?;
            let saved = Some(task.record_fingerprint());
            resume(&mut task);
            dirty.insert(task.arn.clone());
            tasks.insert(
                task.arn.clone(),
                Entry { task: Arc::new(task), graph, wake_at: None, clean_up_now: false, saved },
            );
        }
        let pull_behavior = parts.config.pull_behavior;
        let auth = Arc::clone(&parts.config.auth);
        let listed = parts.listed;
        let mut actor = Actor {
            config: parts.config,
            instance: parts.instance,
            docker: parts.docker,
            clock: parts.clock,
            saver: Some(parts.saver),
            log: parts.log,
            tasks,
            tokens,
            dirty,
            wakes: BinaryHeap::new(),
            commands: parts.commands,
            inputs: parts.inputs,
            inputs_tx: parts.inputs_tx,
            waiting: Map::default(),
            after_commit: Vec::new(),
            direct: Vec::new(),
            pulls: Arc::new(executor::Pulls::new(pull_behavior, auth, parts.progress)),
            pending: Batch::default(),
            pending_records: Map::default(),
            committing: None,
            docker_up: false,
            connecting: false,
            connected_before: false,
            held: Vec::new(),
            reconciling: Map::default(),
            queued: VecDeque::new(),
            calling: 0,
            specs,
            stopping: false,
            not_started: 0,
            exit: parts.exit,
            fatal: None,
        };
        match listed {
            Some(listed) => actor.connected(listed),
            None => actor.docker_lost("not yet reached"),
        }
        Ok(actor)
    }

    /// Run until shut down or until the handle is gone. A store failure stops the loop:
    /// without durable state berth must not go on calling Docker. However it ends, the
    /// store is let go of, the change log's readers end, and `exit` says why.
    pub async fn run(mut self) {
        let result = self.run_loop().await;
        let exit = match result {
            Ok(()) => EngineExit::Shutdown,
            Err(EngineError::Stopped(e)) => EngineExit::Failed(e),
            Err(e) => EngineExit::Failed(Arc::new(e)),
        };
        if let EngineExit::Failed(e) = &exit {
            tracing::error!(error = %e, "the engine's loop stopped; no more Docker calls are made");
        }
        if self.not_started > 0 {
            tracing::info!(
                calls = self.not_started,
                "Docker calls decided at shutdown were not started; the next start makes them"
            );
        }
        // A clean stop lets go of the instance on the Docker side (a bounded try: a
        // restarted berth of this host takes a dead holder's claim over anyway).
        if matches!(exit, EngineExit::Shutdown) && self.docker_up {
            let release = crate::holder::release(&*self.docker, &self.instance);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), release).await;
        }
        // The store first (its file and the data directory's lock), then the readers.
        if self.committing.is_none() {
            self.saver = None;
        }
        self.log.close();
        self.log.end(exit.clone());
        self.exit.send_replace(Some(exit.clone()));
        // Whoever still waits for an answer gets why.
        let error = || match &exit {
            EngineExit::Failed(e) => EngineError::Stopped(Arc::clone(e)),
            EngineExit::Shutdown => EngineError::NotRunning,
        };
        for reply in self.after_commit.drain(..).chain(std::mem::take(&mut self.pending.replies)) {
            let _ = reply.send(Err(error()));
        }
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(error()));
        }
    }

    async fn run_loop(&mut self) -> Result<(), EngineError> {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            self.round()?;
            if let Some(reply) = shutdown.take() {
                self.finish_commits().await?;
                let _ = reply.send(());
                return Ok(());
            }
            let wake = self.next_wake();
            let sleep = wake.map(|at| self.clock.sleep_until(at));
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.stopping = true;
                        shutdown = Some(reply);
                    }
                    Some(command) => self.command(command),
                    None => return self.finish_commits().await,
                },
                Some(input) = self.inputs.recv() => self.input(input),
                joined = async { match self.committing.as_mut() { Some((h, _)) => h.await, None => std::future::pending().await } } => {
                    self.commit_done(joined)?;
                }
                () = async { match sleep { Some(s) => s.await, None => std::future::pending().await } } => {}
            }
            // Take everything else that is ready now: one round, one commit.
            while let Ok(input) = self.inputs.try_recv() {
                self.input(input);
            }
            if let Some(e) = self.fatal.take() {
                return Err(e);
            }
            while shutdown.is_none() {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown(reply)) => {
                        self.stopping = true;
                        shutdown = Some(reply);
                    }
                    Ok(command) => self.command(command),
                    Err(_) => break,
                }
            }
        }
    }

    fn next_wake(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse((at, arn))) = self.wakes.peek() {
            let current = self.tasks.get(arn).and_then(|e| e.wake_at);
            if current == Some(*at) {
                return Some(*at);
            }
            self.wakes.pop(); // stale
        }
        None
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::AddTask(task, reply) => match self.add_task(*task) {
                Ok(()) => self.after_commit.push(reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::ListTasks(reply) => {
                let mut tasks: Vec<Task> = self.tasks.values().map(|e| Task::clone(&e.task)).collect();
                tasks.sort_by(|a, b| a.arn.cmp(&b.arn));
                let _ = reply.send(tasks);
            }
            Command::Status(reply) => {
                let _ = reply.send(crate::engine::EngineStatus {
                    docker_up: self.docker_up,
                    reconciling: self.reconciling.len(),
                    held: self.held.len(),
                    tasks: self.tasks.len(),
                });
            }
            Command::GetTask(arn, reply) => {
                let _ = reply.send(self.tasks.get(&arn).map(|e| Task::clone(&e.task)));
            }
            Command::StopTask(arn, reply) => match self.tasks.get_mut(&arn) {
                Some(entry) => {
                    Arc::make_mut(&mut entry.task).raise_desired_status(TaskStatus::Stopped);
                    self.dirty.insert(arn);
                    self.after_commit.push(reply);
                }
                None => {
                    let _ = reply.send(Err(EngineError::TaskNotFound(arn)));
                }
            },
            Command::Poke(arn) => {
                if self.tasks.contains_key(&arn) {
                    self.dirty.insert(arn);
                }
            }
            Command::CleanUpNow(arn, reply) => match self.tasks.get_mut(&arn) {
                Some(entry) => {
                    entry.clean_up_now = true;
                    self.dirty.insert(arn);
                    self.after_commit.push(reply);
                }
                None => {
                    let _ = reply.send(Err(EngineError::TaskNotFound(arn)));
                }
            },
            Command::Perform { task_arn, container, action, reply } => {
                if let Err(e) = self.perform_now(&task_arn, &container, action) {
                    let _ = reply.send(Err(e));
                } else {
                    self.waiting.insert((task_arn, container), reply);
                }
            }
            Command::Quiesce => {
                if !self.stopping {
                    tracing::info!("shutdown has begun: no more Docker calls start");
                }
                self.stopping = true;
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn add_task(&mut self, mut task: Task) -> Result<(), EngineError> {
        if let Some(token) = &task.client_token
            && let Some(arn) = self.tokens.get(token).filter(|arn| **arn != task.arn)
        {
            return Err(EngineError::ClientTokenUsed { token: token.clone(), arn: arn.clone() });
        }
        if let Some(entry) = self.tasks.get_mut(&task.arn) {
            Arc::make_mut(&mut entry.task).update_from(&task);
            self.dirty.insert(task.arn);
            return Ok(());
        }
        let graph = DependencyGraph::build(&task).map_err(|errs| {
            EngineError::InvalidState(errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        })?;
        self.specs.share(&mut task);
        if let Some(token) = &task.client_token {
            self.tokens.insert(token.clone(), task.arn.clone());
        }
        self.dirty.insert(task.arn.clone());
        self.tasks.insert(
            task.arn.clone(),
            Entry { task: Arc::new(task), graph, wake_at: None, clean_up_now: false, saved: None },
        );
        Ok(())
    }

    /// A direct operation (the seed's `PullContainer`, `StartContainer`, ...): issued now,
    /// performed after this round's commit, answered when its outcome arrives.
    fn perform_now(&mut self, arn: &str, name: &str, action: Action) -> Result<(), EngineError> {
        let entry = self.tasks.get_mut(arn).ok_or_else(|| EngineError::TaskNotFound(arn.to_string()))?;
        let c = entry
            .task
            .container(name)
            .ok_or_else(|| ContainerNotFound { task_arn: arn.into(), container: name.into() })?;
        if c.in_flight {
            return Err(EngineError::Busy { task_arn: arn.into(), container: name.into() });
        }
        self.dirty.insert(arn.to_string());
        // Queued as if planned: the round issues it with the planner's own.
        self.direct.push((arn.to_string(), Op::container(name, action)));
        Ok(())
    }

    fn input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Done { task_arn, op, outcome } => {
                if !is_pull(&op) {
                    self.calling = self.calling.saturating_sub(1);
                    self.call_queued();
                }
                if !self.waiting.is_empty()
                    && let Op::Container { container, .. } = &op
                    && let Some(reply) = self.waiting.remove(&(task_arn.clone(), container.clone()))
                {
                    let result = match &outcome {
                        Outcome::Failed(e) => Err(EngineError::Operation(e.message.clone())),
                        Outcome::Unknown(m) | Outcome::NotDone(m) => Err(EngineError::Operation(m.clone())),
                        _ => Ok(()),
                    };
                    let _ = reply.send(result);
                }
                if let Outcome::NotDone(why) = &outcome {
                    self.docker_lost(why);
                }
                let mut outcome = outcome;
                if let Op::Container { container, action: Action::Inspect } = &op
                    && !matches!(outcome, Outcome::NotDone(_))
                    && let Some(reason) = self.reconciling.remove(&(task_arn.clone(), container.clone()))
                    && let Outcome::Inspected(observation) = &mut outcome
                    && observation.removed
                    && observation.status == ContainerStatus::Stopped
                {
                    tracing::warn!(task = %task_arn, container = %container, "{reason}");
                    observation.reason = Some(reason.to_string());
                }
                if let Some(entry) = self.tasks.get_mut(&task_arn) {
                    plan::apply(Arc::make_mut(&mut entry.task), Feedback::Done(op, outcome), now, &self.config.plan);
                    self.dirty.insert(task_arn);
                }
            }
            Input::Connected(listed) => self.connected(listed),
            Input::Fatal(e) => self.fatal = Some(e),
            Input::OrphanCheck(ids) => self.remove_orphans(ids),
            Input::Observed { task_arn, container, observation } => self.observe(task_arn, container, observation, now),
            Input::Event(event) => self.event(event, now),
            Input::Resync => {
                let unsure = |c: &berth_model::Container| {
                    c.applied_status >= ContainerStatus::Created
                        && c.known_status < ContainerStatus::Stopped
                        && !c.removed
                };
                for (arn, entry) in &mut self.tasks {
                    if !entry.task.containers.iter().any(unsure) {
                        continue;
                    }
                    for c in &mut Arc::make_mut(&mut entry.task).containers {
                        if unsure(c) {
                            c.needs_inspect = true;
                        }
                    }
                    self.dirty.insert(arn.clone());
                }
            }
        }
    }

    fn observe(&mut self, arn: String, container: String, observation: Observation, now: DateTime<Utc>) {
        if let Some(entry) = self.tasks.get_mut(&arn) {
            plan::apply(
                Arc::make_mut(&mut entry.task),
                Feedback::Observed { container, observation },
                now,
                &self.config.plan,
            );
            self.dirty.insert(arn);
        }
    }

    /// A Docker event of one of this berth's containers, as the model reads it (SPEC 4).
    fn event(&mut self, event: ContainerEvent, now: DateTime<Utc>) {
        let (Some(arn), Some(name)) = (event.labels.get(labels::TASK_ARN), event.labels.get(labels::CONTAINER_NAME))
        else {
            return;
        };
        let (arn, name) = (arn.clone(), name.clone());
        let Some(entry) = self.tasks.get(&arn) else { return };
        let Some(c) = entry.task.container(&name) else { return };
        let id = Some(event.docker_id.clone());
        let stopping = c.desired_status == ContainerStatus::Stopped || c.applied_status == ContainerStatus::Stopped;
        let observation = match event.kind {
            EventKind::Created => {
                Observation { status: ContainerStatus::Created, docker_id: id, ..Observation::default() }
            }
            // Ports are read from inspect and reported with RUNNING; so is the exit code of
            // a `die` that carries none.
            EventKind::Started if !c.spec.port_mappings.is_empty() => {
                return self.inspect_then_observe(&arn, &name, event);
            }
            EventKind::Started => {
                Observation { status: ContainerStatus::Running, has_run: true, docker_id: id, ..Observation::default() }
            }
            // Docker's `stop` follows the `die` that carried the exit code: nothing to learn.
            EventKind::Stopped { exit_code: None } if c.known_status == ContainerStatus::Stopped => return,
            EventKind::Stopped { exit_code: None } => return self.inspect_then_observe(&arn, &name, event),
            EventKind::Stopped { exit_code } => Observation {
                status: ContainerStatus::Stopped,
                exit_code,
                has_run: true,
                docker_id: id,
                ..Observation::default()
            },
            EventKind::Health(h) => Observation { health: Some(h), ..Observation::default() },
            EventKind::Killed { .. } if stopping => return,
            EventKind::Killed { signal } => Observation {
                reason: Some(match signal {
                    Some(s) => format!("killed by signal {s} outside berth"),
                    None => "killed outside berth".into(),
                }),
                ..Observation::default()
            },
            EventKind::OutOfMemory => {
                Observation { reason: Some("out of memory (OOM killed)".into()), ..Observation::default() }
            }
            EventKind::Destroyed => Observation {
                status: ContainerStatus::Stopped,
                removed: true,
                reason: (c.known_status < ContainerStatus::Stopped).then(|| "removed outside berth".to_string()),
                ..Observation::default()
            },
        };
        self.observe(arn, name, observation, now);
    }

    fn inspect_then_observe(&self, arn: &str, name: &str, event: ContainerEvent) {
        if self.stopping {
            // The next start inspects every container it cannot be sure of.
            return;
        }
        let docker = Arc::clone(&self.docker);
        let pulls = Arc::clone(&self.pulls);
        let inputs = self.inputs_tx.clone();
        let timeouts = self.config.timeouts.clone();
        let (task_arn, container) = (arn.to_string(), name.to_string());
        tokio::spawn(async move {
            let job = Job::Inspect { target: Some(event.docker_id.clone()), known: true };
            let observation = match executor::perform(docker.as_ref(), job, &timeouts, &pulls).await {
                Outcome::Inspected(o) => o,
                // Inspect failed: what the event itself says.
                _ => match event.kind {
                    EventKind::Started => Observation {
                        status: ContainerStatus::Running,
                        has_run: true,
                        docker_id: Some(event.docker_id),
                        ..Observation::default()
                    },
                    _ => Observation { status: ContainerStatus::Stopped, has_run: true, ..Observation::default() },
                },
            };
            let _ = inputs.send(Input::Observed { task_arn, container, observation });
        });
    }

    /// Plan every touched task; what the round decided waits for its group commit (the
    /// Docker calls start, and the changes are seen, once it is durable). While one commit
    /// is in flight the next rounds keep planning, and their groups go together into the
    /// next commit.
    fn round(&mut self) -> Result<(), EngineError> {
        let now = self.clock.now();
        while let Some(Reverse((at, _))) = self.wakes.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((at, arn))) = self.wakes.pop()
                && self.tasks.get(&arn).is_some_and(|e| e.wake_at == Some(at))
            {
                self.dirty.insert(arn);
            }
        }
        let mut calls: Vec<Call> = Vec::new();
        let mut group = Group::default();
        let direct: Vec<(String, Op)> = std::mem::take(&mut self.direct);
        for (arn, op) in direct {
            if let Some(entry) = self.tasks.get_mut(&arn) {
                issue(entry, &arn, op, &self.config, now, &mut calls);
            }
        }
        let dirty: Vec<String> = self.dirty.drain().collect();
        let mut swept = false;
        for arn in dirty {
            let Some(entry) = self.tasks.get_mut(&arn) else { continue };
            let forget = advance(entry, &arn, &self.config, now, &mut calls);
            if entry.task.containers.iter().any(|c| c.known_status > c.sent_status) {
                group.changes.extend(take_changes(Arc::make_mut(&mut entry.task), now));
            }
            if forget {
                let containers = entry.task.containers.iter().filter(|c| !c.spec.internal).count();
                let stopped_for = entry.task.known_time.map(|t| now - t);
                self.config.observer.observe(&EngineEvent::TaskSwept { arn: &arn, containers, stopped_for });
                if let Some(token) = &entry.task.client_token {
                    self.tokens.remove(token);
                }
                self.tasks.remove(&arn);
                self.reconciling.retain(|(task, _), _| task != &arn);
                group.tasks.push((arn, None));
                swept = true;
                continue;
            }
            if let Some(at) = entry.wake_at {
                self.wakes.push(Reverse((at, arn.clone())));
            }
            // Only what a crash must remember is written: a round that changed nothing of the
            // record (an inspect that found what berth knew) writes nothing.
            let fingerprint = entry.task.record_fingerprint();
            if entry.saved != Some(fingerprint) {
                entry.saved = Some(fingerprint);
                group.tasks.push((arn, Some(Arc::clone(&entry.task))));
            }
        }
        if swept {
            self.specs.let_go_of_unused();
        }
        // Everything of this round waits for its group to be durable: the next commit
        // carries it (started now if none is in flight).
        // A task already waiting (planned again while a commit was in flight) has its record
        // replaced: the group is one commit, so only its latest record matters.
        for (arn, record) in group.tasks {
            match self.pending_records.get(&arn) {
                Some(&at) => self.pending.group.tasks[at].1 = record,
                None => {
                    self.pending_records.insert(arn.clone(), self.pending.group.tasks.len());
                    self.pending.group.tasks.push((arn, record));
                }
            }
        }
        self.pending.group.changes.extend(group.changes);
        self.pending.calls.extend(calls);
        self.pending.replies.append(&mut self.after_commit);
        self.start_commit()
    }

    /// Start the next group commit, if none is in flight and anything waits for one.
    fn start_commit(&mut self) -> Result<(), EngineError> {
        if self.committing.is_some() || self.pending.is_empty() {
            return Ok(());
        }
        let Batch { group, calls, replies } = std::mem::take(&mut self.pending);
        self.pending_records.clear();
        let released = Batch { group: Group::default(), calls, replies };
        if group.is_empty() {
            // Nothing to save (replies only): release at once.
            self.release(released, Vec::new());
            return Ok(());
        }
        let mut saver = self.saver.take().ok_or_else(|| EngineError::InvalidState("the store is gone".into()))?;
        let observer = Arc::clone(&self.config.observer);
        let handle = tokio::task::spawn_blocking(move || {
            let (tasks, changes) = (group.tasks.len(), group.changes.len());
            let started = std::time::Instant::now();
            let result = saver.save(group);
            let ok = result.is_ok();
            observer.observe(&EngineEvent::StoreCommitted { duration: started.elapsed(), tasks, changes, ok });
            (saver, result)
        });
        self.committing = Some((handle, released));
        Ok(())
    }

    /// A group commit ended: on success its changes go to the log, its replies are sent and
    /// its Docker calls start; then the next commit, if anything waits.
    fn commit_done(&mut self, joined: Result<Saved, tokio::task::JoinError>) -> Result<(), EngineError> {
        let (saver, result) =
            joined.map_err(|e| EngineError::InvalidState(format!("the store's thread failed: {e}")))?;
        self.saver = Some(saver);
        let Some((_, batch)) = self.committing.take() else { return Ok(()) };
        let committed = match result {
            Ok(committed) => committed,
            Err(e) => {
                tracing::error!(error = %e, "saving state failed; the engine stops");
                let e = Arc::new(EngineError::Store(e));
                // Those waiting for this group learn why it was not made durable.
                for reply in batch.replies {
                    let _ = reply.send(Err(EngineError::Stopped(Arc::clone(&e))));
                }
                return Err(EngineError::Stopped(e));
            }
        };
        self.release(batch, committed);
        self.start_commit()
    }

    fn release(&mut self, batch: Batch, committed: Vec<berth_model::StateChange>) {
        if !committed.is_empty() {
            self.config.observer.observe(&EngineEvent::ChangesCommitted(&committed));
        }
        self.log.append(committed);
        for reply in batch.replies {
            let _ = reply.send(Ok(()));
        }
        if !self.docker_up {
            self.held.extend(batch.calls);
            return;
        }
        self.start_calls(batch.calls);
    }

    /// Start Docker calls, each in its own task reporting back as an input. Pulls start at
    /// once (they may take long, and calls for one image share one pull); the others queue
    /// for one of `docker_concurrency` places, so that a restart's inspects of every
    /// container or a burst of creates reach Docker a bounded number at a time.
    fn start_calls(&mut self, calls: Vec<Call>) {
        if self.stopping {
            // Durable as issued: the next start resumes them (inspecting first).
            self.not_started += calls.len();
            return;
        }
        for (task_arn, op) in calls {
            if is_pull(&op) {
                self.spawn_call(task_arn, op);
            } else {
                self.queued.push_back((task_arn, op));
            }
        }
        self.call_queued();
    }

    /// Start queued calls while places are free.
    fn call_queued(&mut self) {
        if self.stopping {
            self.not_started += self.queued.len();
            self.queued.clear();
            return;
        }
        while self.calling < self.config.docker_concurrency.max(1)
            && let Some((task_arn, op)) = self.queued.pop_front()
        {
            if self.spawn_call(task_arn, op) {
                self.calling += 1;
            }
        }
    }

    /// Make the call's request from its task and start it; false (nothing started) when
    /// the task no longer has the container or volume.
    fn spawn_call(&self, task_arn: String, op: Op) -> bool {
        let Some(job) =
            self.tasks.get(&task_arn).and_then(|e| request(&e.task, &task_arn, &op, &self.instance, &self.config))
        else {
            return false;
        };
        let docker = Arc::clone(&self.docker);
        let pulls = Arc::clone(&self.pulls);
        let inputs = self.inputs_tx.clone();
        let timeouts = self.config.timeouts.clone();
        tokio::spawn(async move {
            let outcome = executor::perform(docker.as_ref(), job, &timeouts, &pulls).await;
            let _ = inputs.send(Input::Done { task_arn, op, outcome });
        });
        true
    }

    /// Docker did not answer: hold Docker calls from now on, and have a connector retry
    /// until it does (one at a time).
    fn docker_lost(&mut self, why: &str) {
        if self.docker_up {
            tracing::warn!(error = why, "Docker does not answer; holding Docker calls until it does");
            self.docker_up = false;
        }
        if !self.connecting && !self.stopping {
            self.connecting = true;
            let (docker, instance, inputs) = (Arc::clone(&self.docker), self.instance.clone(), self.inputs_tx.clone());
            let limit = self.config.timeouts.inspect;
            tokio::spawn(connect(docker, instance, inputs, limit));
        }
    }

    /// Docker answers, and listed this instance's containers: reconcile the state with them
    /// (SPEC 6), then make the calls held meanwhile.
    ///
    /// - a container whose create answer was lost is found by its durable name;
    /// - one whose id is known but is not listed vanished: STOPPED, with a reason;
    /// - every other one not known to be STOPPED is inspected before anything else;
    /// - a listed container that no task owns (by id or name) is removed after the orphan
    ///   grace period, if no task owns it then either.
    pub fn connected(&mut self, listed: Vec<ContainerSummary>) {
        let reason = if self.connected_before {
            "container vanished while Docker did not answer"
        } else {
            "container vanished while berth was down"
        };
        let by_name: HashMap<&str, &str> =
            listed.iter().flat_map(|s| s.names.iter().map(move |n| (n.as_str(), s.id.as_str()))).collect();
        for (arn, entry) in &mut self.tasks {
            for c in &mut Arc::make_mut(&mut entry.task).containers {
                if c.removed {
                    continue;
                }
                if c.docker_id.is_none()
                    && let Some(id) = c.docker_name.as_deref().and_then(|n| by_name.get(n))
                {
                    c.docker_id = Some((*id).to_string());
                    self.dirty.insert(arn.clone());
                }
                // Inspected by id before anything else happens to it (not judged from the
                // listing: an imported state's containers carry another instance's label).
                if c.docker_id.is_some() && c.known_status < ContainerStatus::Stopped {
                    c.needs_inspect = true;
                    self.reconciling.insert((arn.clone(), c.spec.name.clone()), reason);
                    self.dirty.insert(arn.clone());
                }
            }
        }
        let owned = self.owned();
        let orphans: Vec<&ContainerSummary> = listed
            .iter()
            .filter(|s| !owned.contains(s.id.as_str()) && !s.names.iter().any(|n| owned.contains(n.as_str())))
            .collect();
        if !orphans.is_empty() {
            let grace = self.config.orphan_grace;
            for s in &orphans {
                tracing::warn!(
                    id = %s.id,
                    name = s.names.first().map_or("", String::as_str),
                    task = s.labels.get(labels::TASK_ARN).map_or("", String::as_str),
                    "a container of this berth belongs to no task; removing it after {grace:?} unless a task claims it"
                );
            }
            let ids: Vec<String> = orphans.iter().map(|s| s.id.clone()).collect();
            let inputs = self.inputs_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = inputs.send(Input::OrphanCheck(ids));
            });
        }
        self.docker_up = true;
        self.connecting = false;
        self.connected_before = true;
        let held = std::mem::take(&mut self.held);
        self.start_calls(held);
    }

    /// Every Docker id and Docker name a task of this berth has.
    fn owned(&self) -> HashSet<&str> {
        self.tasks
            .values()
            .flat_map(|e| e.task.containers.iter())
            .flat_map(|c| c.docker_id.iter().chain(c.docker_name.iter()))
            .map(String::as_str)
            .collect()
    }

    /// Remove the containers among `ids` that still belong to no task.
    fn remove_orphans(&mut self, ids: Vec<String>) {
        if self.stopping {
            return;
        }
        let owned = self.owned();
        let orphans: Vec<String> = ids.into_iter().filter(|id| !owned.contains(id.as_str())).collect();
        if orphans.is_empty() {
            return;
        }
        let docker = Arc::clone(&self.docker);
        let timeouts = self.config.timeouts.clone();
        let observer = Arc::clone(&self.config.observer);
        tokio::spawn(async move {
            for id in orphans {
                match tokio::time::timeout(timeouts.remove, docker.remove_container(&id)).await {
                    Ok(Ok(())) => {
                        tracing::warn!(id = %id, "removed a container of this berth that no task owns");
                        observer.observe(&EngineEvent::OrphanRemoved { docker_id: &id });
                    }
                    Ok(Err(e)) => tracing::warn!(id = %id, error = %e, "cannot remove an orphan container"),
                    Err(_) => tracing::warn!(id = %id, "removing an orphan container timed out"),
                }
            }
        });
    }

    /// Wait for the commit in flight, if any (at shutdown).
    async fn finish_commits(&mut self) -> Result<(), EngineError> {
        while let Some((handle, _)) = self.committing.as_mut() {
            let joined = handle.await;
            self.commit_done(joined)?;
        }
        Ok(())
    }
}

/// A Docker call decided for a task: the task's arn and the operation. Its request (a
/// create's whole config, ...) is made when the call starts ([`request`]), so that the
/// calls waiting for their group commit, for Docker or for a place cost a few bytes each,
/// not a config each (thousands wait at once when thousands of tasks arrive together).
type Call = (String, Op);

/// What waits for one group commit: the group, and what is released once it is durable.
#[derive(Default)]
struct Batch {
    group: Group,
    calls: Vec<Call>,
    replies: Vec<oneshot::Sender<Result<(), EngineError>>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.group.is_empty() && self.calls.is_empty() && self.replies.is_empty()
    }
}

/// The save running in its blocking task (the saver moved in and handed back), and the
/// batch it makes durable.
type Committing = (tokio::task::JoinHandle<Saved>, Batch);

/// What a save hands back: the saver, and the committed changes or the failure.
type Saved = (Box<dyn Saver>, Result<Vec<berth_model::StateChange>, berth_store::StoreError>);

/// Whether `op` is a pull (not bounded by `docker_concurrency`).
fn is_pull(op: &Op) -> bool {
    matches!(op, Op::Container { action: Action::Pull, .. })
}

/// Make a loaded task resumable: nothing is in flight any more, and every container whose
/// state berth cannot be sure of is inspected first.
fn resume(task: &mut Task) {
    for c in &mut task.containers {
        c.in_flight = false;
        if c.applied_status >= ContainerStatus::Created && c.known_status < ContainerStatus::Stopped && !c.removed {
            c.needs_inspect = true;
        }
    }
    for v in &mut task.volumes {
        v.in_flight = false;
    }
}

/// Plan a task until only Docker calls (or nothing) remain: bookkeeping is applied at
/// once and the task planned again. Returns true when the task is to be forgotten.
fn advance(entry: &mut Entry, arn: &str, config: &EngineConfig, now: DateTime<Utc>, calls: &mut Vec<Call>) -> bool {
    // Each bookkeeping pass settles at least one container or the task; bounded anyway.
    let now_config;
    let plan_config = if entry.clean_up_now {
        now_config = PlanConfig { cleanup_wait: chrono::Duration::zero(), ..config.plan.clone() };
        &now_config
    } else {
        &config.plan
    };
    for _ in 0..=entry.task.containers.len() + 2 {
        let plan = plan::plan(&entry.task, &entry.graph, now, plan_config);
        entry.wake_at = plan.wake_at;
        let mut bookkept = false;
        for op in plan.ops {
            if op == Op::Forget {
                return true;
            }
            if op.is_bookkeeping() {
                plan::apply(Arc::make_mut(&mut entry.task), Feedback::Done(op, Outcome::Ok), now, &config.plan);
                bookkept = true;
            } else {
                issue(entry, arn, op, config, now, calls);
            }
        }
        if !bookkept {
            break;
        }
    }
    false
}

/// Mark `op` issued (choosing a create's Docker name first) and, when it is a Docker
/// call, add it to `calls`.
fn issue(entry: &mut Entry, arn: &str, op: Op, config: &EngineConfig, now: DateTime<Utc>, calls: &mut Vec<Call>) {
    let task = Arc::make_mut(&mut entry.task);
    if let Op::Container { container, action: Action::Create } = &op
        && let Some(i) = task.container_index(container)
        && task.containers[i].docker_name.is_none()
    {
        let name = settings::docker_name(task, &task.containers[i], rand::random());
        task.containers[i].docker_name = Some(name);
    }
    plan::apply(task, Feedback::Issued(op.clone()), now, &config.plan);
    if matches!(op, Op::Container { .. } | Op::Volume { .. }) {
        calls.push((arn.to_string(), op));
    }
}

/// The Docker request of a call, made from the task as it is when the call starts (a
/// create's whole config, a stop's target: the id if known by then, else the name).
/// `None` when the task no longer has the container or volume.
fn request(task: &Task, arn: &str, op: &Op, instance: &str, config: &EngineConfig) -> Option<Job> {
    let job = match op {
        Op::Container { container, action } => {
            let c = task.container(container)?;
            let target = c.docker_id.clone().or_else(|| c.docker_name.clone());
            match *action {
                Action::Pull => Job::Pull {
                    image: c.spec.image.clone(),
                    local_only: c.spec.internal && c.spec.image == PAUSE_IMAGE,
                },
                Action::Create => Job::Create {
                    config: Box::new(settings::container_config(
                        task,
                        c,
                        instance,
                        &config.secrets,
                        &config.container_limits,
                    )),
                    instance: instance.to_string(),
                    host_paths: config.host_paths.clone(),
                },
                Action::Start => Job::Start { target: target.unwrap_or_default() },
                Action::Stop { timeout_secs } => Job::Stop { target: target.unwrap_or_default(), timeout_secs },
                Action::Remove => Job::Remove { target: target.unwrap_or_default() },
                Action::Inspect => Job::Inspect { known: c.docker_id.is_some(), target },
            }
        }
        Op::Volume { volume, action } => {
            let v = task.volume(volume)?;
            let name = task.docker_volume_name(v);
            match action {
                VolumeAction::Create => {
                    let (driver, driver_opts, mut volume_labels) = match &v.kind {
                        VolumeKind::Docker(cfg) => (cfg.driver.clone(), cfg.driver_opts.clone(), cfg.labels.clone()),
                        _ => (None, BTreeMap::new(), BTreeMap::new()),
                    };
                    volume_labels.insert(labels::INSTANCE.into(), instance.into());
                    volume_labels.insert(labels::TASK_ARN.into(), arn.into());
                    Job::CreateVolume(VolumeConfig { name, driver, driver_opts, labels: volume_labels })
                }
                VolumeAction::Remove => {
                    Job::RemoveVolume { name, instance: instance.to_string(), arn: arn.to_string() }
                }
            }
        }
        Op::MarkStopped { .. } | Op::StopTask { .. } | Op::Forget => return None,
    };
    Some(job)
}

/// Reach Docker again: ping, then list this instance's containers, retried with backoff
/// (up to 10 s between attempts) until it answers or the loop is gone.
async fn connect(
    docker: Arc<dyn DockerClient>,
    instance: String,
    inputs: mpsc::UnboundedSender<Input>,
    limit: std::time::Duration,
) {
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        // Bounded as an inspect is: a daemon that accepts and never answers is retried, not
        // waited for (bollard's own limit is hours).
        let attempt = bounded(limit, "reach Docker", async {
            docker.ping().await?;
            // Before anything of the instance is looked at: is it ours (not a restored copy's)?
            crate::holder::claim(&*docker, &instance).await?;
            docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await.map_err(EngineError::from)
        });
        match attempt.await {
            Err(e @ EngineError::InstanceHeld { .. }) => {
                let _ = inputs.send(Input::Fatal(e));
                return;
            }
            Ok(listed) => {
                tracing::info!(containers = listed.len(), "Docker answers; reconciling");
                let _ = inputs.send(Input::Connected(listed));
                return;
            }
            Err(e) => tracing::debug!(error = %e, retry_in = ?backoff, "Docker does not answer yet"),
        }
        if inputs.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
    }
}

/// `call`, or a timeout error naming `what` once `limit` has passed.
pub(crate) async fn bounded<T>(
    limit: std::time::Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(EngineError::Docker(berth_docker::DockerError::new(
            berth_docker::ErrorKind::Timeout,
            what,
            "Docker",
            format!("no answer in {}s", limit.as_secs()),
        ))),
    }
}
