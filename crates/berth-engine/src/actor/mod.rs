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
//!
//! The loop's state is split by concern, one file and one type each:
//! - `tasks`: the task table ([`tasks::TaskTable`]), planning and issuing;
//! - `entry`: one task held, and whether its record changed since it was saved
//!   ([`entry::Entry`]);
//! - `commit`: the commit pipeline ([`commit::CommitPipeline`]);
//! - `gate`: the gate every Docker call waits at ([`gate::Gate`]);
//! - `reconcile`: reaching Docker, matching its containers, orphans
//!   ([`reconcile::Reconciliation`]);
//! - `events`: Docker's events folded into the tasks;
//! - `admission`: host resources, which waiting task may begin ([`admission::Admitter`]).

mod admission;
mod commit;
mod entry;
mod events;
mod gate;
mod reconcile;
mod tasks;

pub(crate) use gate::bounded;

use crate::changelog::ChangeLog;
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::error::{ContainerNotFound, EngineError, EngineExit};
use crate::executor;
use crate::telemetry::EngineTelemetry;
use admission::Admitter;
use berth_docker::events::ContainerEvent;
use berth_docker::{ContainerSummary, DockerClient};
use berth_model::event::take_changes;
use berth_model::plan::{Action, Feedback, Op, Outcome};
use berth_model::{ContainerStatus, Task, TaskStatus};
use berth_store::{Group, Saver};
use chrono::{DateTime, Utc};
use commit::CommitPipeline;
use gate::{Call, Gate};
use reconcile::Reconciliation;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tasks::TaskTable;
use tokio::sync::{mpsc, oneshot};

/// The loop's maps and sets, keyed by task arns and container names: hashed with foldhash
/// (seeded at random per process), several times faster than the standard SipHash on the
/// loop's hot path.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Set<T> = HashSet<T, foldhash::fast::RandomState>;

/// What adding a task answers once it is durable: whether the task is new, and the task as
/// the round that made it durable left it.
pub struct Added {
    /// True when the task is new.
    pub created: bool,
    /// The task as stored.
    pub task: Arc<Task>,
}

/// Where the answer to a command goes once its round is durable.
pub(super) enum Reply {
    /// Done, or why not.
    Done(oneshot::Sender<Result<(), EngineError>>),
    /// A task was added: answered with the task as stored (taken when its round is staged).
    Added { reply: oneshot::Sender<Result<Added, EngineError>>, arn: String, created: bool, task: Option<Arc<Task>> },
}

impl Reply {
    /// Its round is durable.
    fn ok(self) {
        match self {
            Reply::Done(reply) => {
                let _ = reply.send(Ok(()));
            }
            Reply::Added { reply, created, task: Some(task), .. } => {
                let _ = reply.send(Ok(Added { created, task }));
            }
            Reply::Added { reply, arn, task: None, .. } => {
                let _ = reply.send(Err(EngineError::TaskNotFound(arn)));
            }
        }
    }

    /// It failed, or will never be done.
    fn err(self, e: EngineError) {
        match self {
            Reply::Done(reply) => {
                let _ = reply.send(Err(e));
            }
            Reply::Added { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// A request from the engine's handle.
pub enum Command {
    /// Add a task, or update one with the same arn (desired statuses only rise).
    AddTask(Box<Task>, oneshot::Sender<Result<Added, EngineError>>),
    /// Every task.
    ListTasks(oneshot::Sender<Vec<Task>>),
    /// One task.
    GetTask(String, oneshot::Sender<Option<Task>>),
    /// The task (shared, not copied) and container name of a container's metadata id.
    ByMetadataId(String, oneshot::Sender<Option<(Arc<Task>, String)>>),
    /// Why tasks wait for host resources, first in line first: the one task given, or
    /// every waiting task.
    WaitingReasons(Option<String>, oneshot::Sender<Vec<(String, String)>>),
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
    /// Docker events of this berth's containers, in the order Docker sent them (the
    /// watcher hands over everything it read at once).
    Events(Vec<ContainerEvent>),
    /// An inspect to make again (still in flight).
    InspectAgain(Call),
    /// One of the engine's own Docker calls (an inspect an event asked for, an orphan's
    /// removal) ended.
    OwnDone { own: gate::Own, outcome: Outcome },
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

/// The loop's state.
pub struct Actor {
    config: EngineConfig,
    instance: String,
    docker: Arc<dyn DockerClient>,
    clock: Arc<dyn Clock>,
    log: Arc<ChangeLog>,
    /// Every task, and what the next round looks at.
    tasks: TaskTable,
    /// The store, and what waits for the next group commit.
    commits: CommitPipeline,
    /// Where the Docker calls wait.
    gate: Gate,
    /// Where reconciliation with Docker stands.
    reconcile: Reconciliation,
    /// Host resources: who waits, who holds.
    admission: Admitter,
    commands: mpsc::Receiver<Command>,
    inputs: mpsc::UnboundedReceiver<Input>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    /// Direct operations waiting for their outcome, by (task, container).
    waiting: Map<(String, String), oneshot::Sender<Result<(), EngineError>>>,
    /// Operations asked for directly, issued in the next round.
    direct: Vec<Call>,
    /// Pulls in flight, shared by the Docker calls.
    pulls: Arc<executor::Pulls>,
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
        let mut tasks = TaskTable::load(parts.tasks, parts.clock.now(), &parts.config.plan)?;
        let admission = Admitter::load(parts.config.capacity.clone(), &mut tasks);
        let pull_behavior = parts.config.pull_behavior;
        let auth = Arc::clone(&parts.config.auth);
        let listed = parts.listed;
        let mut actor = Actor {
            config: parts.config,
            instance: parts.instance,
            docker: parts.docker,
            clock: parts.clock,
            log: parts.log,
            tasks,
            commits: CommitPipeline::new(parts.saver),
            gate: Gate::default(),
            reconcile: Reconciliation::default(),
            admission,
            commands: parts.commands,
            inputs: parts.inputs,
            inputs_tx: parts.inputs_tx,
            waiting: Map::default(),
            direct: Vec::new(),
            pulls: Arc::new(executor::Pulls::new(pull_behavior, auth, parts.progress)),
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
            self.config.telemetry.record(&EngineTelemetry::Stopped { error: e.as_ref() });
        }
        if self.gate.not_started > 0 {
            self.config.telemetry.record(&EngineTelemetry::CallsNotStarted { calls: self.gate.not_started });
        }
        // A clean stop lets go of the instance on the Docker side (a bounded try: a
        // restarted berth of this host takes a dead holder's claim over anyway).
        if matches!(exit, EngineExit::Shutdown) && self.gate.docker_up {
            let release = crate::holder::release(&*self.docker, &self.instance);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), release).await;
        }
        // The store first (its file and the data directory's lock), then the readers.
        let replies = self.commits.close();
        self.log.close();
        self.log.end(exit.clone());
        self.exit.send_replace(Some(exit.clone()));
        // Whoever still waits for an answer gets why.
        let error = || match &exit {
            EngineExit::Failed(e) => EngineError::Stopped(Arc::clone(e)),
            EngineExit::Shutdown => EngineError::NotRunning,
        };
        for reply in replies {
            reply.err(error());
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
            let wake = self.tasks.next_wake();
            let sleep = wake.map(|at| self.clock.sleep_until(at));
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        self.gate.stopping = true;
                        shutdown = Some(reply);
                    }
                    Some(command) => self.command(command),
                    None => return self.finish_commits().await,
                },
                Some(input) = self.inputs.recv() => self.input(input),
                joined = self.commits.wait() => {
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
                        self.gate.stopping = true;
                        shutdown = Some(reply);
                    }
                    Ok(command) => self.command(command),
                    Err(_) => break,
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::AddTask(task, reply) => {
                if !self.tasks.entries.contains_key(&task.arn)
                    && let Err(e) = self.admission.check(&task)
                {
                    let _ = reply.send(Err(EngineError::NeverFits(e)));
                    return;
                }
                match self.tasks.add(*task) {
                    Ok((arn, created)) => {
                        if created && let Some(entry) = self.tasks.entries.get_mut(&arn) {
                            self.admission.submit(entry.task_mut());
                        }
                        self.commits.after_commit.push(Reply::Added { reply, arn, created, task: None });
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::WaitingReasons(arn, reply) => {
                let reasons = match arn {
                    Some(arn) => self.admission.waiting_reason(&arn).map(|why| (arn, why)).into_iter().collect(),
                    None => self.admission.waiting_reasons(),
                };
                let _ = reply.send(reasons);
            }
            Command::ListTasks(reply) => {
                let mut tasks: Vec<Task> = self.tasks.entries.values().map(|e| Task::clone(e.task())).collect();
                tasks.sort_by(|a, b| a.arn.cmp(&b.arn));
                let _ = reply.send(tasks);
            }
            Command::Status(reply) => {
                let _ = reply.send(crate::engine::EngineStatus {
                    docker_up: self.gate.docker_up,
                    reconciling: self.reconcile.pending.len(),
                    held: self.gate.held.len(),
                    tasks: self.tasks.entries.len(),
                });
            }
            Command::GetTask(arn, reply) => {
                let _ = reply.send(self.tasks.entries.get(&arn).map(|e| Task::clone(e.task())));
            }
            Command::ByMetadataId(id, reply) => {
                let _ = reply.send(self.tasks.by_metadata_id(&id));
            }
            Command::StopTask(arn, reply) => match self.tasks.entries.get_mut(&arn) {
                Some(entry) => {
                    entry.task_mut().raise_desired_status(TaskStatus::Stopped);
                    self.tasks.dirty.insert(arn);
                    self.commits.after_commit.push(Reply::Done(reply));
                }
                None => {
                    let _ = reply.send(Err(EngineError::TaskNotFound(arn)));
                }
            },
            Command::Poke(arn) => {
                if self.tasks.entries.contains_key(&arn) {
                    self.tasks.dirty.insert(arn);
                }
            }
            Command::CleanUpNow(arn, reply) => match self.tasks.entries.get_mut(&arn) {
                Some(entry) => {
                    entry.clean_up_now = true;
                    self.tasks.dirty.insert(arn);
                    self.commits.after_commit.push(Reply::Done(reply));
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
                if !self.gate.stopping {
                    self.config.telemetry.record(&EngineTelemetry::ShutdownBegun);
                }
                self.gate.stopping = true;
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    /// A direct operation (the seed's `PullContainer`, `StartContainer`, ...): issued now,
    /// performed after this round's commit, answered when its outcome arrives.
    fn perform_now(&mut self, arn: &str, name: &str, action: Action) -> Result<(), EngineError> {
        let entry = self.tasks.entries.get_mut(arn).ok_or_else(|| EngineError::TaskNotFound(arn.to_string()))?;
        let c = entry
            .task()
            .container(name)
            .ok_or_else(|| ContainerNotFound { task_arn: arn.into(), container: name.into() })?;
        if c.in_flight {
            return Err(EngineError::Busy { task_arn: arn.into(), container: name.into() });
        }
        // Nothing is done for a task that waits for host resources, asked for or not.
        if let Some(why) = self.admission.waiting_reason(arn) {
            return Err(EngineError::Operation(format!("task {arn} is {why}")));
        }
        self.tasks.dirty.insert(arn.to_string());
        // Queued as if planned: the round issues it with the planner's own.
        self.direct.push(Call { task_arn: arn.to_string(), op: Op::container(name, action) });
        Ok(())
    }

    fn input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Done { task_arn, op, outcome } => {
                self.call_ended(&op);
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
                // Docker listed it a moment ago: not found yet is a create still in flight
                // (Docker lists a container before it can be inspected), not a vanishing.
                // The inspect stays in flight and is made again a moment later; not found
                // then, it is gone.
                if matches!(&op, Op::Container { container, action: Action::Inspect }
                    if self.reconcile.listed.remove(&(task_arn.clone(), container.clone())))
                    && matches!(&outcome, Outcome::Inspected(o) if o.removed)
                {
                    let (inputs, again) =
                        (self.inputs_tx.clone(), crate::clock::sleep(&*self.clock, reconcile::LISTED_INSPECT_AGAIN));
                    tokio::spawn(async move {
                        again.await;
                        let _ = inputs.send(Input::InspectAgain(Call { task_arn, op }));
                    });
                    return;
                }
                if let Op::Container { container, action: Action::Inspect } = &op
                    && !matches!(outcome, Outcome::NotDone(_))
                    && let Some(reason) = self.reconcile.pending.remove(&(task_arn.clone(), container.clone()))
                    && let Outcome::Inspected(observation) = &mut outcome
                    && observation.removed
                    && observation.status == ContainerStatus::Stopped
                {
                    self.config.telemetry.record(&EngineTelemetry::ContainerVanished {
                        arn: &task_arn,
                        container,
                        reason,
                    });
                    observation.reason = Some(reason.to_string());
                }
                // A late start seen while this call was in flight (rare: looked up only then).
                let late = match &op {
                    Op::Container { container, .. } if !self.reconcile.late_starts.is_empty() => self
                        .reconcile
                        .late_starts
                        .remove(&(task_arn.clone(), container.clone()))
                        .map(|id| (container.clone(), id)),
                    _ => None,
                };
                if let Some(entry) = self.tasks.entries.get_mut(&task_arn) {
                    entry.apply(Feedback::Done(op, outcome), now, &self.config.plan);
                    self.tasks.dirty.insert(task_arn.clone());
                }
                if let Some((container, id)) = late {
                    self.stop_late_start(&task_arn, &container, &id);
                }
            }
            Input::Connected(listed) => self.connected(listed),
            Input::InspectAgain(call) => self.pass_gate(vec![call]),
            Input::Fatal(e) => self.fatal = Some(e),
            Input::OrphanCheck(ids) => self.remove_orphans(ids),
            Input::OwnDone { own, outcome } => {
                if let Some((own, outcome)) = self.own_ended(own, outcome) {
                    match own {
                        gate::Own::EventInspect { task_arn, container, event } => {
                            let observation = events::inspected(event, outcome);
                            self.observe(task_arn, container, observation, now);
                        }
                        gate::Own::RemoveOrphan { docker_id } => self.orphan_removal_ended(&docker_id, &outcome),
                    }
                }
            }
            Input::Events(events) => {
                for event in events {
                    self.event(event, now);
                }
            }
            Input::Resync => self.tasks.inspect_uncertain(),
        }
    }

    /// Plan every touched task; what the round decided waits for its group commit (the
    /// Docker calls start, and the changes are seen, once it is durable). While one commit
    /// is in flight the next rounds keep planning, and their groups go together into the
    /// next commit.
    fn round(&mut self) -> Result<(), EngineError> {
        let now = self.clock.now();
        self.tasks.wake_due(now);
        let mut calls: Vec<Call> = Vec::new();
        let mut group = Group::default();
        for Call { task_arn, op } in std::mem::take(&mut self.direct) {
            if let Some(entry) = self.tasks.entries.get_mut(&task_arn) {
                tasks::issue(entry, &task_arn, op, &self.config, now, &mut calls);
            }
        }
        let dirty: Vec<String> = self.tasks.dirty.drain().collect();
        let mut swept = false;
        for arn in dirty {
            swept |= self.plan_task(arn, now, &mut calls, &mut group);
        }
        // What this round released or queued lets waiting tasks begin in the same round.
        for arn in self.admission.admit() {
            swept |= self.plan_task(arn, now, &mut calls, &mut group);
        }
        if swept {
            self.tasks.let_go_of_unused_specs();
        }
        // Everything of this round waits for its group to be durable: the next commit
        // carries it (started now if none is in flight).
        for reply in &mut self.commits.after_commit {
            if let Reply::Added { arn, task, .. } = reply {
                *task = self.tasks.entries.get(arn.as_str()).map(|e| Arc::clone(e.task()));
            }
        }
        self.commits.stage(group, calls);
        self.start_commit()
    }

    /// Plan one task (unless it waits for host resources) and add what the round must
    /// save of it to `group`; returns true when it was swept.
    fn plan_task(&mut self, arn: String, now: DateTime<Utc>, calls: &mut Vec<Call>, group: &mut Group) -> bool {
        let Some(entry) = self.tasks.entries.get_mut(&arn) else { return false };
        self.admission.settle(entry.task());
        let forget = !self.admission.holds_back(&arn) && tasks::advance(entry, &arn, &self.config, now, calls);
        self.admission.settle(entry.task());
        if entry.task().containers.iter().any(|c| c.known_status > c.sent_status) {
            group.changes.extend(take_changes(entry.task_mut(), now));
        }
        if forget {
            let containers = entry.task().containers.iter().filter(|c| !c.spec.internal).count();
            let stopped_for = entry.task().known_time.map(|t| now - t);
            self.config.telemetry.record(&EngineTelemetry::TaskSwept { arn: &arn, containers, stopped_for });
            self.tasks.forget(&arn);
            self.admission.forget(&arn);
            self.reconcile.pending.retain(|(task, _), _| task != &arn);
            group.tasks.push((arn, None));
            return true;
        }
        let wake_at = entry.wake_at;
        // Only what a crash must remember is written: a round that changed nothing of the
        // record (an inspect that found what berth knew) writes nothing.
        if let Some(record) = entry.take_record_to_save() {
            group.tasks.push((arn.clone(), Some(record)));
        }
        if let Some(at) = wake_at {
            self.tasks.wake_at(arn, at);
        }
        false
    }
}
