//! The seed's API, in one place: `DockerTaskEngine` and the `TaskEngine` trait, created
//! first and initialized later, as the seed's Go engine is. Each item delegates to an
//! [`EngineHandle`]; an embedder written for Rust uses [`crate::Engine::builder`] and the
//! handle directly.
//!
//! | seed | here |
//! | --- | --- |
//! | `NewDockerTaskEngine` | [`DockerTaskEngine::new`] |
//! | `Init`, `MustInit` | [`TaskEngine::init`], [`TaskEngine::must_init`] |
//! | `SetSaver` | [`TaskEngine::set_saver`] |
//! | `AddTask`, `ListTasks`, `TaskEvents` | [`TaskEngine::add_task`], [`TaskEngine::list_tasks`], [`TaskEngine::task_events`] |
//! | `MarshalJSON`, `UnmarshalJSON` | [`TaskEngine::marshal_json`], [`TaskEngine::unmarshal_json`] |
//! | `State` | [`DockerTaskEngine::state`] ([`EngineState`]) |
//! | `ApplyTaskState`, `ApplyContainerState` | [`DockerTaskEngine::apply_task_state`], [`DockerTaskEngine::apply_container_state`] |
//! | `PullContainer`, `CreateContainer`, `StartContainer`, `StopContainer`, `RemoveContainer` | the methods of those names |
//! | `ContainerNotFound` | [`crate::ContainerNotFound`] |
//! | `TaskCompleted` | [`berth_model::task_completed`] |

use crate::changelog::ChangeReader;
use crate::clock::{Backoff, Clock, SystemClock};
use crate::config::EngineConfig;
use crate::engine::{Engine, EngineHandle, EngineStatus};
use crate::error::{EngineError, EngineExit};
use async_trait::async_trait;
use berth_docker::DockerClient;
use berth_model::Task;
use berth_model::plan::Action;
use berth_store::{Loaded, Saver};
use std::collections::HashMap;
use std::sync::Arc;

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

/// The task engine over Docker, as the seed has it: created, then initialized.
pub struct DockerTaskEngine {
    config: EngineConfig,
    docker: Arc<dyn DockerClient>,
    clock: Arc<dyn Clock>,
    saver: Option<Box<dyn Saver>>,
    imported: Option<Loaded>,
    running: Option<EngineHandle>,
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

    /// The running engine's handle, once initialized.
    pub fn handle(&self) -> Result<&EngineHandle, EngineError> {
        self.running.as_ref().ok_or(EngineError::NotRunning)
    }

    /// This berth's instance id, once initialized.
    pub fn instance_id(&self) -> Option<&str> {
        self.running.as_ref().map(EngineHandle::instance_id)
    }

    /// How the engine's loop ended, once it has (`None` while it runs, or before `init`).
    pub fn exit(&self) -> Option<EngineExit> {
        self.running.as_ref().and_then(EngineHandle::exit)
    }

    /// Wait until the engine's loop has ended, and say how. Before `init`: at once,
    /// [`EngineExit::Shutdown`].
    pub async fn stopped(&self) -> EngineExit {
        match &self.running {
            Some(handle) => handle.stopped().await,
            None => EngineExit::Shutdown,
        }
    }

    /// See [`EngineHandle::begin_shutdown`].
    pub async fn begin_shutdown(&self) {
        if let Some(handle) = &self.running {
            handle.begin_shutdown().await;
        }
    }

    /// Stop the loop through a shared reference ([`EngineHandle::shutdown`]).
    pub async fn stop(&self) -> Result<(), EngineError> {
        match &self.running {
            Some(handle) => handle.shutdown().await,
            None => Ok(()),
        }
    }

    /// Stop the loop (containers keep running; a new engine on the same data directory
    /// resumes them) and release the data directory.
    pub async fn shutdown(&mut self) -> Result<(), EngineError> {
        let result = self.stop().await;
        self.running = None;
        result
    }

    /// A reader of state changes from position `seq` on.
    pub fn task_events_from(&self, seq: u64) -> Result<ChangeReader, EngineError> {
        Ok(self.handle()?.task_events_from(seq))
    }

    /// Progress of the pulls from now on.
    pub fn pull_progress(&self) -> Result<tokio::sync::broadcast::Receiver<berth_docker::PullProgress>, EngineError> {
        Ok(self.handle()?.pull_progress())
    }

    /// How the engine stands with Docker.
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        self.handle()?.status().await
    }

    /// One task, by its arn.
    pub async fn task(&self, arn: &str) -> Result<Option<Task>, EngineError> {
        self.handle()?.task(arn).await
    }

    /// Raise a task's desired status to STOPPED.
    pub async fn stop_task(&self, arn: &str) -> Result<(), EngineError> {
        self.handle()?.stop_task(arn).await
    }

    /// See [`EngineHandle::clean_up_now`].
    pub async fn clean_up_now(&self, arn: &str) -> Result<(), EngineError> {
        self.handle()?.clean_up_now(arn).await
    }

    /// Look at a task again now (the seed's `ApplyTaskState`): its next operations, if
    /// any, are issued. The engine does this itself on every change.
    pub async fn apply_task_state(&self, arn: &str) -> Result<(), EngineError> {
        self.handle()?.poke(arn).await
    }

    /// Look at a container again now (the seed's `ApplyContainerState`): its task is
    /// planned again, which covers the container.
    pub async fn apply_container_state(&self, arn: &str, _container: &str) -> Result<(), EngineError> {
        self.apply_task_state(arn).await
    }

    async fn perform(&self, arn: &str, container: &str, action: Action) -> Result<(), EngineError> {
        self.handle()?.perform(arn, container, action).await
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
        let handle = self.handle()?;
        let default = handle.default_stop_timeout_secs();
        let timeout_secs =
            handle.task(arn).await?.and_then(|t| t.container(container).map(|c| c.stop_timeout(default)));
        self.perform(arn, container, Action::Stop { timeout_secs: timeout_secs.unwrap_or(default) }).await
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

    /// `init` that does not wait for Docker ([`crate::EngineBuilder::wait_for_docker`]).
    pub async fn init_without_docker(&mut self) -> Result<(), EngineError> {
        self.start(false).await
    }

    async fn start(&mut self, wait_for_docker: bool) -> Result<(), EngineError> {
        if self.running.is_some() {
            return Err(EngineError::AlreadyInitialized);
        }
        // Docker first, as the seed's `Init` does: a failed ping keeps the saver and the
        // imported state for the next attempt (`must_init`).
        if wait_for_docker {
            let limit = self.config.timeouts.inspect;
            crate::actor::bounded(limit, "ping", async { Ok(self.docker.ping().await?) }).await?;
        }
        let mut builder = Engine::builder(self.config.clone(), Arc::clone(&self.docker))
            .clock(Arc::clone(&self.clock))
            .wait_for_docker(wait_for_docker)
            .pinged();
        if let Some(imported) = self.imported.take() {
            builder = builder.import_loaded(imported);
        }
        if let Some(saver) = self.saver.take() {
            builder = builder.saver(saver);
        }
        self.running = Some(builder.start().await?);
        Ok(())
    }
}

#[async_trait]
impl TaskEngine for DockerTaskEngine {
    async fn init(&mut self) -> Result<(), EngineError> {
        self.start(true).await
    }

    async fn must_init(&mut self) -> Result<(), EngineError> {
        let mut backoff = Backoff::new(self.config.init_backoff, std::time::Duration::from_secs(60));
        loop {
            match self.init().await {
                Ok(()) => return Ok(()),
                Err(EngineError::Docker(e)) => {
                    self.config.telemetry.record(&crate::EngineTelemetry::DockerLost { error: &e.to_string() });
                    crate::clock::sleep(&*self.clock, backoff.next_wait()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn task_events(&self) -> Result<ChangeReader, EngineError> {
        Ok(self.handle()?.task_events())
    }

    fn set_saver(&mut self, saver: Box<dyn Saver>) -> Result<(), EngineError> {
        if self.running.is_some() {
            return Err(EngineError::AlreadyInitialized);
        }
        self.saver = Some(saver);
        Ok(())
    }

    async fn add_task(&self, task: Task) -> Result<(), EngineError> {
        self.handle()?.add(task).await.map(|_| ())
    }

    async fn list_tasks(&self) -> Result<Vec<Task>, EngineError> {
        self.handle()?.list_tasks().await
    }

    async fn unmarshal_json(&mut self, data: &[u8]) -> Result<(), EngineError> {
        if self.running.is_some() {
            return Err(EngineError::AlreadyInitialized);
        }
        self.imported = Some(crate::engine::read_export(data)?);
        Ok(())
    }

    async fn marshal_json(&self) -> Result<Vec<u8>, EngineError> {
        self.handle()?.export_json().await
    }
}
