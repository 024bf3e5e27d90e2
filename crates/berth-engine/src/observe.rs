//! What happens inside the engine that an embedder may count or log (the agent turns each
//! event into metrics and log lines in one place). Observers are called inline, from the
//! engine's own tasks: they must be quick and must not block.

use berth_model::StateChange;
use std::fmt;
use std::time::Duration;

/// One occurrence inside the engine.
#[derive(Debug)]
pub enum EngineEvent<'a> {
    /// A group commit ended (`ok` false: the store failed, and the engine stops).
    StoreCommitted {
        /// How long the save took.
        duration: Duration,
        /// Task records written.
        tasks: usize,
        /// State changes appended.
        changes: usize,
        /// Whether it succeeded.
        ok: bool,
    },
    /// State changes became durable and went to the change log.
    ChangesCommitted(&'a [StateChange]),
    /// The Docker event stream ended or failed and was opened again.
    EventStreamReopened,
    /// A STOPPED task's containers and task volumes were removed after the cleanup wait,
    /// and the task left the state.
    TaskSwept {
        /// The task.
        arn: &'a str,
        /// Its containers (internal ones not counted).
        containers: usize,
        /// How long it had been STOPPED.
        stopped_for: Option<chrono::Duration>,
    },
    /// A container of this berth that no task owned was removed after the orphan grace
    /// period.
    OrphanRemoved {
        /// Its Docker id.
        docker_id: &'a str,
    },
    /// The periodic steady-state check began: every container not known to be STOPPED
    /// is inspected.
    SteadyStateCheck,
}

/// Receives the engine's events.
pub trait Observer: fmt::Debug + Send + Sync + 'static {
    /// Called for each event, inline: be quick.
    fn observe(&self, event: &EngineEvent<'_>);
}

/// The default observer: ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn observe(&self, _event: &EngineEvent<'_>) {}
}
