//! The engine as an embedder starts it: [`Engine::builder`] takes the configuration and a
//! Docker client, and optionally a saver, a clock, an exported state and an observer;
//! [`EngineBuilder::start`] opens the data directory, loads the state, reaches Docker (or
//! not: [`EngineBuilder::wait_for_docker`]) and starts the one loop that owns the state
//! (the `actor` module). What it returns, an [`EngineHandle`], is a running engine: every
//! call is a message to the loop, and any clone may shut it down.

use crate::actor::{Actor, ActorParts, Added, Command, Input};
use crate::changelog::{ChangeLog, ChangeReader};
use crate::clock::{Clock, SystemClock};
use crate::config::EngineConfig;
use crate::error::{EngineError, EngineExit};
use crate::telemetry::Telemetry;
use crate::watch;
use berth_docker::{DockerClient, PullProgress, labels};
use berth_model::plan::Action;
use berth_model::{StateChange, Task};
use berth_store::{DataDir, Loaded, MemorySaver, Saver};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, mpsc, oneshot, watch as watch_channel};
use tokio::task::JoinHandle;

/// How many pull progress reports a listener may fall behind before losing the oldest.
const PROGRESS_BACKLOG: usize = 1024;

/// How the engine stands with Docker (`GET /healthz` shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStatus {
    /// Docker answered the last time the engine asked.
    pub docker_up: bool,
    /// Containers whose first inspect since the engine (re)connected to Docker has not
    /// answered yet: 0 once the state is reconciled with Docker.
    pub reconciling: usize,
    /// Docker calls waiting for Docker to answer.
    pub held: usize,
    /// Tasks in the state.
    pub tasks: usize,
}

/// What [`EngineHandle::add_task`] did: whether the task is new or an update of the one
/// with its arn, and the task as stored once durable.
#[derive(Debug, Clone)]
pub struct AddOutcome {
    /// True when the task is new; false when it updated the task with the same arn.
    pub created: bool,
    /// The task as the engine holds it after the add.
    pub task: Task,
}

/// The engine's entry point: [`Engine::builder`].
#[derive(Debug)]
pub struct Engine(());

impl Engine {
    /// A builder of an engine with `config` over `docker`.
    pub fn builder(config: EngineConfig, docker: Arc<dyn DockerClient>) -> EngineBuilder {
        EngineBuilder {
            config,
            docker,
            clock: Arc::new(SystemClock::new()),
            saver: None,
            imported: None,
            import_json: None,
            wait_for_docker: true,
            pinged: false,
        }
    }
}

/// How to start an engine ([`Engine::builder`]).
pub struct EngineBuilder {
    config: EngineConfig,
    docker: Arc<dyn DockerClient>,
    clock: Arc<dyn Clock>,
    saver: Option<Box<dyn Saver>>,
    imported: Option<Loaded>,
    import_json: Option<Vec<u8>>,
    wait_for_docker: bool,
    /// Docker answered a ping just before (`compat`'s `init` pings first).
    pinged: bool,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder").field("wait_for_docker", &self.wait_for_docker).finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Save the state with `saver` (default: the data directory's store when the
    /// configuration names one, else memory).
    pub fn saver(mut self, saver: Box<dyn Saver>) -> EngineBuilder {
        self.saver = Some(saver);
        self
    }

    /// Use this clock instead of the system's (tests move a [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> EngineBuilder {
        self.clock = clock;
        self
    }

    /// Start from an exported state ([`EngineHandle::export_json`]); read at `start`. Into
    /// a data directory only its tasks are taken, and only when the store holds none.
    pub fn import(mut self, json: &[u8]) -> EngineBuilder {
        self.import_json = Some(json.to_vec());
        self
    }

    /// An exported state already read (the seed's `UnmarshalJSON` reads it early).
    pub(crate) fn import_loaded(mut self, loaded: Loaded) -> EngineBuilder {
        self.imported = Some(loaded);
        self
    }

    /// Docker has just answered a ping: `start` does not ping again.
    pub(crate) fn pinged(mut self) -> EngineBuilder {
        self.pinged = true;
        self
    }

    /// Report what happens inside to `telemetry` (default: the configuration's, which by
    /// default logs each occurrence).
    pub fn observer(mut self, telemetry: Arc<dyn Telemetry>) -> EngineBuilder {
        self.config.telemetry = telemetry;
        self
    }

    /// With true (the default), `start` reaches Docker first and fails when it does not
    /// answer. With false, `start` does not wait: the state is loaded and the loop runs (its
    /// tasks, change log and answers available at once); Docker calls wait until Docker
    /// answers, which a connector tries with backoff, then the state is reconciled with
    /// Docker's containers (SPEC 6). The daemon starts this way, so that its API answers
    /// while Docker is down.
    pub fn wait_for_docker(mut self, wait: bool) -> EngineBuilder {
        self.wait_for_docker = wait;
        self
    }

    /// Load the state and start the loop.
    pub async fn start(mut self) -> Result<EngineHandle, EngineError> {
        if let Some(json) = self.import_json.take() {
            self.imported = Some(read_export(&json)?);
        }
        let limit = self.config.timeouts.inspect;
        if self.wait_for_docker && !self.pinged {
            crate::actor::bounded(limit, "ping", async { Ok(self.docker.ping().await?) }).await?;
        }
        let OpenedStore { mut saver, instance, data_dir } = self.open_store()?;
        let mut loaded = saver.load()?;
        // Into a data directory, an imported state's tasks are taken (saved at the first
        // round); its change log is not: the store's own sequence goes on.
        if let Some(imported) = self.imported.take() {
            if !loaded.tasks.is_empty() {
                return Err(EngineError::InvalidState("cannot import a state into a store that holds tasks".into()));
            }
            loaded.tasks = imported.tasks;
        }
        // Subscribe before listing, so nothing that happens in between is missed.
        let (events, listed) = if self.wait_for_docker {
            // Before anything of the instance is looked at: is it ours (not a restored copy's)?
            crate::actor::bounded(limit, "claim the instance", crate::holder::claim(&*self.docker, &instance)).await?;
            let events =
                crate::actor::bounded(limit, "open events", async { Ok(self.docker.container_events(None).await?) })
                    .await?;
            let listed = crate::actor::bounded(limit, "list containers", async {
                Ok(self.docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await?)
            })
            .await?;
            (Some(events), Some(listed))
        } else {
            (None, None)
        };
        let log = ChangeLog::new(
            loaded.changes,
            loaded.next_seq,
            self.config.retained_changes,
            saver.change_source(),
            Arc::clone(&self.config.telemetry),
        );
        let (commands_tx, commands) = mpsc::channel(1024);
        let (inputs_tx, inputs) = mpsc::unbounded_channel::<Input>();
        let (progress, _) = broadcast::channel(PROGRESS_BACKLOG);
        let (exit_tx, exit) = watch_channel::channel(None);
        let default_stop_timeout_secs = self.config.plan.default_stop_timeout_secs;
        let actor = Actor::new(ActorParts {
            config: self.config.clone(),
            instance: instance.clone(),
            docker: Arc::clone(&self.docker),
            clock: Arc::clone(&self.clock),
            saver,
            log: Arc::clone(&log),
            tasks: loaded.tasks,
            commands,
            inputs,
            inputs_tx: inputs_tx.clone(),
            progress: progress.clone(),
            listed,
            exit: exit_tx,
        })?;
        let checker = tokio::spawn(watch::steady_state_check(
            self.config.steady_state_check,
            inputs_tx.clone(),
            Arc::clone(&self.config.telemetry),
            Arc::clone(&self.clock),
        ));
        let watcher = tokio::spawn(watch::watch(
            Arc::clone(&self.docker),
            events,
            instance.clone(),
            inputs_tx,
            Arc::clone(&self.config.telemetry),
            self.config.timeouts.inspect,
            Arc::clone(&self.clock),
        ));
        let actor = tokio::spawn(actor.run());
        Ok(EngineHandle {
            shared: Arc::new(Shared {
                commands: commands_tx,
                log,
                instance,
                progress,
                exit,
                default_stop_timeout_secs,
                tasks: Mutex::new(Some(Tasks { actor, watcher, checker })),
                data_dir: Mutex::new(data_dir),
            }),
        })
    }

    /// The store and instance id `start` uses: the saver set, else the data directory's
    /// store, else memory with a fresh id.
    fn open_store(&mut self) -> Result<OpenedStore, EngineError> {
        match (&self.config.data_dir, self.saver.take()) {
            (Some(dir), saver) => {
                let data_dir = DataDir::open(dir)?;
                let instance = data_dir.instance_id().to_string();
                let saver = match saver {
                    Some(saver) => saver,
                    None => Box::new(data_dir.store()?),
                };
                Ok(OpenedStore { saver, instance, data_dir: Some(data_dir) })
            }
            (None, Some(saver)) => Ok(OpenedStore { saver, instance: fresh_instance(), data_dir: None }),
            // In memory, an imported state is taken whole: tasks, change log, sequence.
            (None, None) => {
                let saver = match self.imported.take() {
                    Some(imported) => MemorySaver::from_loaded(imported),
                    None => MemorySaver::default(),
                };
                Ok(OpenedStore { saver: Box::new(saver), instance: fresh_instance(), data_dir: None })
            }
        }
    }
}

/// The saver, the instance id, and the data directory (held for its lock) `start` uses.
struct OpenedStore {
    saver: Box<dyn Saver>,
    instance: String,
    data_dir: Option<DataDir>,
}

/// An exported state, read.
pub(crate) fn read_export(json: &[u8]) -> Result<Loaded, EngineError> {
    berth_store::export::from_json(json).map_err(|e| EngineError::InvalidState(e.to_string()))
}

/// An instance id for a berth without a data directory.
fn fresh_instance() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The tasks the engine runs beside its loop.
struct Tasks {
    actor: JoinHandle<()>,
    watcher: JoinHandle<()>,
    checker: JoinHandle<()>,
}

/// What every clone of a handle shares.
struct Shared {
    commands: mpsc::Sender<Command>,
    log: Arc<ChangeLog>,
    instance: String,
    progress: broadcast::Sender<PullProgress>,
    /// How the loop ended, once it has.
    exit: watch_channel::Receiver<Option<EngineExit>>,
    /// The stop timeout of a container that sets none.
    default_stop_timeout_secs: u64,
    /// Taken by the first shutdown.
    tasks: Mutex<Option<Tasks>>,
    /// Holds the data directory's lock until the loop has stopped.
    data_dir: Mutex<Option<DataDir>>,
}

/// A running engine. Cheap to clone; every clone talks to the same loop, and any clone
/// may shut it down ([`EngineHandle::shutdown`]). Dropping every clone stops the loop too
/// (after its last commit), but only `shutdown` says when that is done.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").field("instance", &self.shared.instance).finish_non_exhaustive()
    }
}

impl EngineHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.shared.commands.send(make(tx)).await.map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }

    /// Why the loop no longer answers: the failure that stopped it, if one did.
    fn gone(&self) -> EngineError {
        match self.exit() {
            Some(EngineExit::Failed(e)) => EngineError::Stopped(e),
            _ => EngineError::NotRunning,
        }
    }

    /// This berth's instance id.
    pub fn instance_id(&self) -> &str {
        &self.shared.instance
    }

    /// Add a task, or update the one with the same arn (desired statuses only rise);
    /// answers once the change is durable, with whether the task is new and the task as
    /// stored.
    pub async fn add_task(&self, task: Task) -> Result<AddOutcome, EngineError> {
        let added = self.add(task).await?;
        // Copied here, off the loop.
        Ok(AddOutcome { created: added.created, task: Task::clone(&added.task) })
    }

    /// `add_task` without the copy of the task (the seed's `AddTask` answers nothing).
    pub(crate) async fn add(&self, task: Task) -> Result<Added, EngineError> {
        self.ask(|reply| Command::AddTask(Box::new(task), reply)).await?
    }

    /// Every task, by arn.
    pub async fn list_tasks(&self) -> Result<Vec<Task>, EngineError> {
        self.ask(Command::ListTasks).await
    }

    /// One task, by its arn.
    pub async fn task(&self, arn: &str) -> Result<Option<Task>, EngineError> {
        self.ask(|reply| Command::GetTask(arn.to_string(), reply)).await
    }

    /// The task holding the container whose metadata id is `id`, and that container's
    /// name (the task metadata endpoint's one lookup). The task is shared with the engine,
    /// not copied: hold it only while answering.
    pub async fn task_by_metadata_id(&self, id: &str) -> Result<Option<(Arc<Task>, String)>, EngineError> {
        self.ask(|reply| Command::ByMetadataId(id.to_string(), reply)).await
    }

    /// Why a task waits for host resources (`"waiting for 512 MiB of memory: 256 free of
    /// 1024, 2 tasks ahead"`); `None` when it does not wait (admitted, never held, or no
    /// capacity configured).
    pub async fn waiting_reason(&self, arn: &str) -> Result<Option<String>, EngineError> {
        let mut reasons = self.ask(|reply| Command::WaitingReasons(Some(arn.to_string()), reply)).await?;
        Ok(reasons.pop().map(|(_, why)| why))
    }

    /// Every task waiting for host resources with why, first in line first.
    pub async fn waiting_reasons(&self) -> Result<Vec<(String, String)>, EngineError> {
        self.ask(|reply| Command::WaitingReasons(None, reply)).await
    }

    /// Raise a task's desired status to STOPPED.
    pub async fn stop_task(&self, arn: &str) -> Result<(), EngineError> {
        self.ask(|reply| Command::StopTask(arn.to_string(), reply)).await?
    }

    /// Remove a task's containers and task volumes as soon as it is STOPPED, without the
    /// cleanup wait; the task then leaves the state (`berth run` does this at its end).
    pub async fn clean_up_now(&self, arn: &str) -> Result<(), EngineError> {
        self.ask(|reply| Command::CleanUpNow(arn.to_string(), reply)).await?
    }

    /// How the engine stands with Docker: reached or not, reconciled or not.
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        self.ask(Command::Status).await
    }

    /// A reader of state changes from now on.
    pub fn task_events(&self) -> ChangeReader {
        self.shared.log.reader(None)
    }

    /// A reader of state changes from position `seq` on (a gap marker first if it is older
    /// than the retention).
    pub fn task_events_from(&self, seq: u64) -> ChangeReader {
        self.shared.log.reader(Some(seq))
    }

    /// Progress of the pulls from now on. A listener that falls behind loses the oldest
    /// reports (`Lagged`); pulls never wait for listeners.
    pub fn pull_progress(&self) -> broadcast::Receiver<PullProgress> {
        self.shared.progress.subscribe()
    }

    /// Look at a task again now: its next operations, if any, are issued. The engine does
    /// this itself on every change.
    pub async fn poke(&self, arn: &str) -> Result<(), EngineError> {
        self.shared.commands.send(Command::Poke(arn.to_string())).await.map_err(|_| self.gone())
    }

    /// Perform one operation on one container now, answering with its outcome (the seed's
    /// direct container operations).
    pub(crate) async fn perform(&self, arn: &str, container: &str, action: Action) -> Result<(), EngineError> {
        self.ask(|reply| Command::Perform { task_arn: arn.into(), container: container.into(), action, reply }).await?
    }

    /// The stop timeout of a container that sets none.
    pub(crate) fn default_stop_timeout_secs(&self) -> u64 {
        self.shared.default_stop_timeout_secs
    }

    /// Export the whole state (tasks and retained changes), with its schema version.
    pub async fn export_json(&self) -> Result<Vec<u8>, EngineError> {
        let tasks = self.list_tasks().await?;
        let changes: Vec<StateChange> = self.shared.log.retained()?;
        let state = Loaded { tasks, changes, next_seq: self.shared.log.next_seq() };
        berth_store::export::to_json(&state)
            .map(String::into_bytes)
            .map_err(|e| EngineError::InvalidState(e.to_string()))
    }

    /// How the engine's loop ended, once it has (`None` while it runs).
    pub fn exit(&self) -> Option<EngineExit> {
        self.shared.exit.borrow().clone()
    }

    /// Wait until the engine's loop has ended, and say how: an embedder watches this to
    /// learn that a failure (a store commit that failed) stopped the engine.
    pub async fn stopped(&self) -> EngineExit {
        let mut exit = self.shared.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or(EngineExit::Shutdown),
            // The loop's task is gone without saying (it panicked).
            Err(_) => EngineExit::Failed(Arc::new(EngineError::InvalidState("the engine's loop failed".into()))),
        }
    }

    /// Shutdown has begun: from now on no Docker call starts (calls decided from now on
    /// stay durable as issued, and the next start makes them); commits go on, so calls in
    /// flight through the API still get their answers. [`EngineHandle::shutdown`] ends it.
    pub async fn begin_shutdown(&self) {
        let _ = self.shared.commands.send(Command::Quiesce).await;
    }

    /// Stop the loop: returns once the last commit is durable, no Docker call starts any
    /// more, readers of the change log end, and the data directory is released.
    /// Containers keep running; a new engine on the same data directory resumes them. Any
    /// clone may call it, and again (it then waits for the same end). An error says the
    /// loop had stopped because of a failure before.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let tasks = self.shared.tasks.lock().unwrap_or_else(PoisonError::into_inner).take();
        let mut panicked = None;
        if let Some(tasks) = tasks {
            tasks.watcher.abort();
            tasks.checker.abort();
            if let Err(e) = tasks.actor.await {
                panicked = Some(EngineError::InvalidState(format!("the engine's loop failed: {e}")));
            }
        }
        let exit = self.stopped().await;
        self.shared.data_dir.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(e) = panicked {
            return Err(e);
        }
        match exit {
            EngineExit::Shutdown => Ok(()),
            EngineExit::Failed(e) => Err(EngineError::Stopped(e)),
        }
    }
}
