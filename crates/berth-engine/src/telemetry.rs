//! The engine's one telemetry channel (in the manner of Vector's `internal_events`): what
//! happens inside the engine is reported only as a typed [`EngineTelemetry`] to the
//! embedder's [`Telemetry`]; the engine writes no log lines of its own for these. The
//! default, [`LogTelemetry`], logs each one; an embedder that counts them (the agent's
//! metrics) logs and counts each in one place. Telemetry is called inline, from the
//! engine's own tasks: it must be quick and must not block.

use berth_model::StateChange;
use std::fmt;
use std::time::Duration;

/// One occurrence inside the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineTelemetry<'a> {
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
    /// Docker did not answer: Docker calls are held until it does, and a connector retries.
    DockerLost {
        /// Why.
        error: &'a str,
    },
    /// An attempt to reach Docker failed; another follows after `retry_in`.
    DockerNotYetReached {
        /// Why.
        error: &'a str,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// Docker answered (again), listing this berth's containers: the state is reconciled.
    DockerReached {
        /// This berth's containers listed.
        containers: usize,
    },
    /// A container of this berth that no task owns: removed after the grace period unless
    /// a task claims it meanwhile.
    OrphanFound {
        /// Its Docker id.
        docker_id: &'a str,
        /// Its first name.
        name: &'a str,
        /// The task its labels name.
        task: &'a str,
        /// The grace period.
        grace: Duration,
    },
    /// A container of this berth that no task owned was removed after the orphan grace
    /// period.
    OrphanRemoved {
        /// Its Docker id.
        docker_id: &'a str,
    },
    /// Removing an orphan container failed (it is tried again at the next reconciliation).
    OrphanRemoveFailed {
        /// Its Docker id.
        docker_id: &'a str,
        /// Why.
        error: &'a str,
    },
    /// A container berth knew was found gone (after a restart or an outage): STOPPED with
    /// this reason.
    ContainerVanished {
        /// The task.
        arn: &'a str,
        /// The container.
        container: &'a str,
        /// The reason given.
        reason: &'a str,
    },
    /// The Docker event stream ended; it is reopened (at once when it had worked, else
    /// after `retry_in`).
    EventStreamEnded {
        /// The wait before reopening, when it ended at once without delivering anything.
        retry_in: Option<Duration>,
    },
    /// The Docker event stream could not be reopened; tried again after a wait.
    EventStreamReopenFailed {
        /// Why.
        error: &'a str,
    },
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
    /// The periodic steady-state check began: every container not known to be STOPPED
    /// is inspected.
    SteadyStateCheck,
    /// Shutdown has begun: no more Docker calls start.
    ShutdownBegun,
    /// The loop ended with Docker calls decided but not started (the next start makes
    /// them).
    CallsNotStarted {
        /// How many.
        calls: usize,
    },
    /// A change reader behind memory could not read older changes back from the store: it
    /// gets a gap from `from` to the oldest change memory keeps.
    OlderChangesUnreadable {
        /// The position the reader asked for.
        from: u64,
        /// Why the store could not answer.
        error: &'a str,
    },
    /// A failure stopped the engine's loop (a store commit failed): no more Docker calls.
    Stopped {
        /// The failure.
        error: &'a (dyn std::error::Error + Send + Sync),
    },
}

/// Receives the engine's telemetry.
pub trait Telemetry: fmt::Debug + Send + Sync + 'static {
    /// Called for each occurrence, inline: be quick.
    fn record(&self, event: &EngineTelemetry<'_>);
}

/// The default telemetry: logs each occurrence with `tracing` (target
/// `berth_engine::telemetry`), at the level its meaning calls for. Each log event is named
/// after its occurrence (`event_stream_ended`, ...), for filters.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogTelemetry;

impl Telemetry for LogTelemetry {
    fn record(&self, event: &EngineTelemetry<'_>) {
        use EngineTelemetry as T;
        match event {
            T::StoreCommitted { duration, tasks, changes, ok: true } => {
                tracing::trace!(duration_s = duration.as_secs_f64(), tasks, changes, "store commit");
            }
            T::StoreCommitted { duration, tasks, changes, ok: false } => {
                tracing::error!(
                    duration_s = duration.as_secs_f64(),
                    tasks,
                    changes,
                    "saving state failed; the engine stops"
                );
            }
            T::ChangesCommitted(changes) => tracing::trace!(count = changes.len(), "state changes committed"),
            T::DockerLost { error } => {
                tracing::warn!(error, "Docker does not answer; holding Docker calls until it does");
            }
            T::DockerNotYetReached { error, retry_in } => {
                tracing::debug!(error, retry_in = ?retry_in, "Docker does not answer yet");
            }
            T::DockerReached { containers } => tracing::info!(containers, "Docker answers; reconciling"),
            T::OrphanFound { docker_id, name, task, grace } => tracing::warn!(
                id = docker_id,
                name,
                task,
                "a container of this berth belongs to no task; removing it after {grace:?} unless a task claims it"
            ),
            T::OrphanRemoved { docker_id } => {
                tracing::warn!(id = docker_id, "removed a container of this berth that no task owns");
            }
            T::OrphanRemoveFailed { docker_id, error } => {
                tracing::warn!(id = docker_id, error, "cannot remove an orphan container");
            }
            T::ContainerVanished { arn, container, reason } => tracing::warn!(task = arn, container, "{reason}"),
            T::EventStreamEnded { retry_in: None } => {
                tracing::warn!(name: "event_stream_ended", "Docker event stream ended; reopening");
            }
            T::EventStreamEnded { retry_in: Some(wait) } => tracing::debug!(
                name: "event_stream_ended_at_once",
                retry_in = ?wait,
                "Docker event stream ended at once; reopening after a wait"
            ),
            T::EventStreamReopenFailed { error } => tracing::warn!(
                name: "event_stream_reopen_failed",
                error,
                "cannot reopen the Docker event stream; retrying"
            ),
            T::EventStreamReopened => tracing::info!("docker event stream reopened"),
            T::TaskSwept { arn, containers, stopped_for } => tracing::info!(
                task = arn,
                containers,
                stopped_for_secs = stopped_for.map(|d| d.num_seconds()),
                "swept a stopped task: containers and task volumes removed"
            ),
            T::SteadyStateCheck => tracing::debug!("steady-state check"),
            T::ShutdownBegun => tracing::info!("shutdown has begun: no more Docker calls start"),
            T::CallsNotStarted { calls } => {
                tracing::info!(calls, "Docker calls decided at shutdown were not started; the next start makes them");
            }
            T::OlderChangesUnreadable { from, error } => {
                tracing::warn!(error, from, "cannot read older state changes from the store; readers get a gap");
            }
            T::Stopped { error } => {
                tracing::error!(error = %error, "the engine's loop stopped; no more Docker calls are made");
            }
        }
    }
}

/// Telemetry that drops everything (no log lines either).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {
    fn record(&self, _event: &EngineTelemetry<'_>) {}
}
