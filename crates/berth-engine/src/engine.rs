//! The engine's handle: the seed's `DockerTaskEngine` and `TaskEngine`.
//!
//! A `DockerTaskEngine` is created (`new`) with a configuration and a Docker client, may
//! be given a saver or an exported state, and does nothing until `init`: then it opens its
//! data directory, loads its state, subscribes to Docker's events, lists its containers,
//! and starts the one loop that owns the state (the `actor` module). Every call after that
//! is a message to the loop.

use crate::actor::{Actor, ActorParts, Command, Input};
use crate::changelog::{ChangeLog, ChangeReader};
use crate::clock::{Clock, SystemClock};
use crate::config::EngineConfig;
use crate::error::{EngineError, EngineExit};
use crate::watch;
use async_trait::async_trait;
use berth_docker::{DockerClient, labels};
use berth_model::plan::Action;
use berth_model::{StateChange, Task};
use berth_store::{DataDir, Loaded, MemorySaver, Saver};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot, watch as watch_channel};
use tokio::task::JoinHandle;

/// How many pull progress reports a listener may fall behind before losing the oldest.
const PROGRESS_BACKLOG: usize = 1024;

/// What a task engine offers (the seed's `TaskEngine`).
#[async_trait]
pub trait TaskEngine: Send + Sync {
    /// Connect to Docker, load state, resume tasks, start the loop.
    async fn init(&mut self) -> Result<(), EngineError>;
    /// `init`, retried with backoff for as long as Docker does not answer.
    async fn must_init(&mut self) -> Result<(), EngineError>;
    /// A reader of state changes from now on.
    fn task_events(&self) -> Result<ChangeReader, EngineError>;
    /// Where state is saved (before `init`).
    fn set_saver(&mut self, saver: Box<dyn Saver>) -> Result<(), EngineError>;
    /// Add a task, or update the one with the same arn (desired statuses only rise).
    async fn add_task(&self, task: Task) -> Result<(), EngineError>;
    /// Every task.
    async fn list_tasks(&self) -> Result<Vec<Task>, EngineError>;
    /// Restore an exported state (before `init`).
    async fn unmarshal_json(&mut self, data: &[u8]) -> Result<(), EngineError>;
    /// Export the whole state, with its schema version.
    async fn marshal_json(&self) -> Result<Vec<u8>, EngineError>;
}

/// A snapshot of the engine's state, for tests and diagnostics (the seed's `State()`):
/// not part of [`TaskEngine`], and not to be relied upon.
#[derive(Debug, Clone, Default)]
pub struct EngineState {
    /// Tasks by arn.
    pub tasks: HashMap<String, Task>,
    /// (task arn, container name) by Docker id.
    pub containers_by_docker_id: HashMap<String, (String, String)>,
}

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

/// The saver, the instance id, and the data directory (held for its lock) `init` uses.
type OpenedStore = (Box<dyn Saver>, String, Option<DataDir>);

struct Running {
    commands: mpsc::Sender<Command>,
    log: Arc<ChangeLog>,
    instance: String,
    actor: JoinHandle<()>,
    watcher: JoinHandle<()>,
    checker: JoinHandle<()>,
    progress: tokio::sync::broadcast::Sender<berth_docker::PullProgress>,
    /// How the loop ended, once it has.
    exit: watch_channel::Receiver<Option<EngineExit>>,
    /// Holds the data directory's lock until the loop has stopped.
    data_dir: Mutex<Option<DataDir>>,
}

/// The task engine over Docker.
pub struct DockerTaskEngine {
    config: EngineConfig,
    docker: Arc<dyn DockerClient>,
    clock: Arc<dyn Clock>,
    saver: Option<Box<dyn Saver>>,
    imported: Option<Loaded>,
    running: Option<Running>,
}

impl DockerTaskEngine {
    /// A created, uninitialized engine: it may be given a saver or an exported state, but
    /// talks to Docker only once initialized.
    pub fn new(config: EngineConfig, docker: Arc<dyn DockerClient>) -> DockerTaskEngine {
        DockerTaskEngine {
            config,
            docker,
            clock: Arc::new(SystemClock::new()),
            saver: None,
            imported: None,
            running: None,
        }
    }

    /// Use this clock instead of the system's (before `init`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> DockerTaskEngine {
        self.clock = clock;
        self
    }

    /// This berth's instance id, once initialized.
    pub fn instance_id(&self) -> Option<&str> {
        self.running.as_ref().map(|r| r.instance.as_str())
    }

    fn commands(&self) -> Result<&mpsc::Sender<Command>, EngineError> {
        self.running.as_ref().map(|r| &r.commands).ok_or(EngineError::NotRunning)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands()?.send(make(tx)).await.map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }

    /// Why the loop no longer answers: the failure that stopped it, if one did.
    fn gone(&self) -> EngineError {
        match self.exit() {
            Some(EngineExit::Failed(e)) => EngineError::Stopped(e),
            _ => EngineError::NotRunning,
        }
    }

    /// How the engine's loop ended, once it has (`None` while it runs, or before `init`).
    pub fn exit(&self) -> Option<EngineExit> {
        self.running.as_ref().and_then(|r| r.exit.borrow().clone())
    }

    /// Wait until the engine's loop has ended, and say how: an embedder watches this to
    /// learn that a failure (a store commit that failed) stopped the engine. Before `init`:
    /// at once, [`EngineExit::Shutdown`].
    pub async fn stopped(&self) -> EngineExit {
        let Some(running) = self.running.as_ref() else { return EngineExit::Shutdown };
        let mut exit = running.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or(EngineExit::Shutdown),
            // The loop's task is gone without saying (it panicked).
            Err(_) => EngineExit::Failed(Arc::new(EngineError::InvalidState("the engine's loop failed".into()))),
        }
    }

    /// Shutdown has begun: from now on no Docker call starts (calls decided from now on
    /// stay durable as issued, and the next start makes them); commits go on, so calls in
    /// flight through the API still get their answers. [`DockerTaskEngine::stop`] ends it.
    pub async fn begin_shutdown(&self) {
        if let Ok(commands) = self.commands() {
            let _ = commands.send(Command::Quiesce).await;
        }
    }

    /// Stop the loop through a shared handle (others may still hold the engine): the last
    /// commit is made durable, no Docker call starts any more, readers of the change log
    /// end, and the data directory is released. Containers keep running. An error says
    /// the loop had stopped because of a failure before.
    pub async fn stop(&self) -> Result<(), EngineError> {
        let Some(running) = self.running.as_ref() else { return Ok(()) };
        let (tx, rx) = oneshot::channel();
        if running.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        running.watcher.abort();
        running.checker.abort();
        let exit = self.stopped().await;
        running.data_dir.lock().unwrap_or_else(PoisonError::into_inner).take();
        match exit {
            EngineExit::Shutdown => Ok(()),
            EngineExit::Failed(e) => Err(EngineError::Stopped(e)),
        }
    }

    /// A reader of state changes from position `seq` on (a gap marker first if it is older
    /// than the retention).
    pub fn task_events_from(&self, seq: u64) -> Result<ChangeReader, EngineError> {
        Ok(self.running.as_ref().ok_or(EngineError::NotRunning)?.log.reader(Some(seq)))
    }

    /// Progress of the pulls from now on. A listener that falls behind loses the oldest
    /// reports (`Lagged`); pulls never wait for listeners.
    pub fn pull_progress(&self) -> Result<tokio::sync::broadcast::Receiver<berth_docker::PullProgress>, EngineError> {
        Ok(self.running.as_ref().ok_or(EngineError::NotRunning)?.progress.subscribe())
    }

    /// How the engine stands with Docker: reached or not, reconciled or not.
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        self.ask(Command::Status).await
    }

    /// One task, by its arn.
    pub async fn task(&self, arn: &str) -> Result<Option<Task>, EngineError> {
        self.ask(|reply| Command::GetTask(arn.to_string(), reply)).await
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

    /// Look at a task again now (the seed's `ApplyTaskState`): its next operations, if
    /// any, are issued. The engine does this itself on every change.
    pub async fn apply_task_state(&self, arn: &str) -> Result<(), EngineError> {
        self.commands()?.send(Command::Poke(arn.to_string())).await.map_err(|_| EngineError::NotRunning)
    }

    /// Look at a container again now (the seed's `ApplyContainerState`): its task is
    /// planned again, which covers the container.
    pub async fn apply_container_state(&self, arn: &str, _container: &str) -> Result<(), EngineError> {
        self.apply_task_state(arn).await
    }

    async fn perform(&self, arn: &str, container: &str, action: Action) -> Result<(), EngineError> {
        self.ask(|reply| Command::Perform { task_arn: arn.into(), container: container.into(), action, reply }).await?
    }

    /// Pull a container's image now.
    pub async fn pull_container(&self, arn: &str, container: &str) -> Result<(), EngineError> {
        self.perform(arn, container, Action::Pull).await
    }

    /// Create a container now (its links and volumes must exist).
    pub async fn create_container(&self, arn: &str, container: &str) -> Result<(), EngineError> {
        self.perform(arn, container, Action::Create).await
    }

    /// Start a container now (refused by the model for one that has run).
    pub async fn start_container(&self, arn: &str, container: &str) -> Result<(), EngineError> {
        self.perform(arn, container, Action::Start).await
    }

    /// Stop a container now, with its stop timeout.
    pub async fn stop_container(&self, arn: &str, container: &str) -> Result<(), EngineError> {
        let timeout_secs = self.config.plan.default_stop_timeout_secs;
        let tasks = self.list_tasks().await?;
        let timeout_secs = tasks
            .iter()
            .find(|t| t.arn == arn)
            .and_then(|t| t.container(container))
            .map_or(timeout_secs, |c| c.stop_timeout(timeout_secs));
        self.perform(arn, container, Action::Stop { timeout_secs }).await
    }

    /// Remove a container now.
    pub async fn remove_container(&self, arn: &str, container: &str) -> Result<(), EngineError> {
        self.perform(arn, container, Action::Remove).await
    }

    /// A snapshot of the state (the seed's `State()`; for tests and diagnostics).
    pub async fn state(&self) -> Result<EngineState, EngineError> {
        let tasks = self.list_tasks().await?;
        let mut state = EngineState::default();
        for t in tasks {
            for c in &t.containers {
                if let Some(id) = &c.docker_id {
                    state.containers_by_docker_id.insert(id.clone(), (t.arn.clone(), c.spec.name.clone()));
                }
            }
            state.tasks.insert(t.arn.clone(), t);
        }
        Ok(state)
    }

    /// Stop the loop (containers keep running; a new engine on the same data directory
    /// resumes them) and release the data directory.
    pub async fn shutdown(&mut self) -> Result<(), EngineError> {
        let result = self.stop().await;
        if let Some(running) = self.running.take()
            && let Err(e) = running.actor.await
        {
            return Err(EngineError::InvalidState(format!("the engine's loop failed: {e}")));
        }
        result
    }

    /// `init` that does not wait for Docker: the state is loaded and the loop runs (its
    /// tasks, change log and answers available at once); Docker calls wait until Docker
    /// answers, which a connector tries with backoff, then the state is reconciled with
    /// Docker's containers (SPEC 6). The daemon starts this way, so that its API answers
    /// while Docker is down.
    pub async fn init_without_docker(&mut self) -> Result<(), EngineError> {
        self.start(false).await
    }

    /// Load the state and start the loop; with `require_docker`, reach Docker first (an
    /// error when it does not answer), else connect in the background.
    async fn start(&mut self, require_docker: bool) -> Result<(), EngineError> {
        if self.running.is_some() {
            return Err(EngineError::AlreadyInitialized);
        }
        let limit = self.config.timeouts.inspect;
        if require_docker {
            crate::actor::bounded(limit, "ping", async { Ok(self.docker.ping().await?) }).await?;
        }
        let (mut saver, instance, data_dir) = self.open_store()?;
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
        let (events, listed) = if require_docker {
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
        let log = ChangeLog::new(loaded.changes, loaded.next_seq, self.config.retained_changes, saver.change_source());
        let (commands_tx, commands) = mpsc::channel(1024);
        let (inputs_tx, inputs) = mpsc::unbounded_channel::<Input>();
        let (progress, _) = tokio::sync::broadcast::channel(PROGRESS_BACKLOG);
        let (exit_tx, exit) = watch_channel::channel(None);
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
            Arc::clone(&self.config.observer),
            Arc::clone(&self.clock),
        ));
        let watcher = tokio::spawn(watch::watch(
            Arc::clone(&self.docker),
            events,
            instance.clone(),
            inputs_tx,
            Arc::clone(&self.config.observer),
            self.config.timeouts.inspect,
            Arc::clone(&self.clock),
        ));
        let actor = tokio::spawn(actor.run());
        self.running = Some(Running {
            commands: commands_tx,
            log,
            instance,
            actor,
            watcher,
            checker,
            progress,
            exit,
            data_dir: Mutex::new(data_dir),
        });
        Ok(())
    }

    /// The store and instance id `init` uses: the saver set, else the data directory's
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
                Ok((saver, instance, Some(data_dir)))
            }
            (None, Some(saver)) => Ok((saver, format!("{:032x}", rand::random::<u128>()), None)),
            // In memory, an imported state is taken whole: tasks, change log, sequence.
            (None, None) => {
                let saver = match self.imported.take() {
                    Some(imported) => MemorySaver::from_loaded(imported),
                    None => MemorySaver::default(),
                };
                Ok((Box::new(saver), format!("{:032x}", rand::random::<u128>()), None))
            }
        }
    }
}

#[async_trait]
impl TaskEngine for DockerTaskEngine {
    async fn init(&mut self) -> Result<(), EngineError> {
        self.start(true).await
    }

    async fn must_init(&mut self) -> Result<(), EngineError> {
        let mut backoff = crate::clock::Backoff::new(self.config.init_backoff, std::time::Duration::from_secs(60));
        loop {
            match self.init().await {
                Ok(()) => return Ok(()),
                Err(EngineError::Docker(e)) => {
                    tracing::warn!(error = %e, "Docker does not answer; retrying");
                    crate::clock::sleep(&*self.clock, backoff.next_wait()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn task_events(&self) -> Result<ChangeReader, EngineError> {
        Ok(self.running.as_ref().ok_or(EngineError::NotRunning)?.log.reader(None))
    }

    fn set_saver(&mut self, saver: Box<dyn Saver>) -> Result<(), EngineError> {
        if self.running.is_some() {
            return Err(EngineError::AlreadyInitialized);
        }
        self.saver = Some(saver);
        Ok(())
    }

    async fn add_task(&self, task: Task) -> Result<(), EngineError> {
        self.ask(|reply| Command::AddTask(Box::new(task), reply)).await?
    }

    async fn list_tasks(&self) -> Result<Vec<Task>, EngineError> {
        self.ask(Command::ListTasks).await
    }

    async fn unmarshal_json(&mut self, data: &[u8]) -> Result<(), EngineError> {
        if self.running.is_some() {
            return Err(EngineError::AlreadyInitialized);
        }
        let loaded = berth_store::export::from_json(data).map_err(|e| EngineError::InvalidState(e.to_string()))?;
        self.imported = Some(loaded);
        Ok(())
    }

    async fn marshal_json(&self) -> Result<Vec<u8>, EngineError> {
        let running = self.running.as_ref().ok_or(EngineError::NotRunning)?;
        let tasks = self.list_tasks().await?;
        let changes: Vec<StateChange> = running.log.retained()?;
        let state = Loaded { tasks, changes, next_seq: running.log.next_seq() };
        berth_store::export::to_json(&state)
            .map(String::into_bytes)
            .map_err(|e| EngineError::InvalidState(e.to_string()))
    }
}
