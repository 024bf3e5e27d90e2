//! The agent's telemetry, one type per observable occurrence (in the manner of
//! Vector's `internal_events`): each is a plain struct of what happened, and its
//! [`emit`](DockerCallFinished::emit) is the one place that occurrence is logged (with
//! `tracing`, structured fields) and counted in [`Metrics`]. Code that observes something
//! builds the event and emits it; it neither logs nor counts on its own.
//!
//! None of these carries credentials, and none may: image references, ids, operation
//! names, durations and counts only.

use crate::metrics::{
    ApiLabels, ErrorLabels, Metrics, OperationLabels, ResultLabels, StatusLabels, error_kind_label, result_label,
};
use berth_docker::ErrorKind;
use berth_model::{ContainerStatus, StateChange};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A Docker call made through [`crate::docker::MeteredDocker`] finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DockerCallFinished<'a> {
    /// The call: the `DockerClient` method's name (`create_container`, `pull_image`, ...).
    pub operation: &'a str,
    /// How long it took (for streams, opening them).
    pub duration: Duration,
    /// Its error's class, when it failed.
    pub error: Option<ErrorKind>,
}

impl DockerCallFinished<'_> {
    /// Log it (failures at debug: many are Docker's normal "no such ..." answers, and
    /// whoever made the call decides what a failure means) and count it:
    /// `berth_docker_operation_duration_seconds{operation}`, and on failure
    /// `berth_docker_errors_total{operation,kind}`.
    pub fn emit(&self, metrics: &Metrics) {
        let seconds = self.duration.as_secs_f64();
        metrics
            .docker_operation_duration
            .get_or_create(&OperationLabels { operation: self.operation.to_string() })
            .observe(seconds);
        match self.error {
            None => tracing::trace!(operation = self.operation, duration_s = seconds, "docker call finished"),
            Some(kind) => {
                let kind = error_kind_label(kind);
                tracing::debug!(operation = self.operation, duration_s = seconds, kind, "docker call failed");
                metrics.docker_errors.get_or_create(&ErrorLabels { operation: self.operation.to_string(), kind }).inc();
            }
        }
    }
}

/// An image pull finished, successfully or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullFinished<'a> {
    /// The image reference pulled.
    pub image: &'a str,
    /// Bytes the pull's progress reports said were downloaded (layers already present
    /// count nothing).
    pub bytes: u64,
    /// How long the pull took.
    pub duration: Duration,
    /// Whether the image is now present.
    pub ok: bool,
}

impl PullFinished<'_> {
    /// Log it (info when it succeeded, warn when not) and count it:
    /// `berth_pulls_total{result}`, `berth_pull_bytes_total`,
    /// `berth_pull_duration_seconds`.
    pub fn emit(&self, metrics: &Metrics) {
        let seconds = self.duration.as_secs_f64();
        if self.ok {
            tracing::info!(image = self.image, bytes = self.bytes, duration_s = seconds, "image pulled");
        } else {
            tracing::warn!(image = self.image, bytes = self.bytes, duration_s = seconds, "image pull failed");
        }
        metrics.pulls.get_or_create(&ResultLabels { result: result_label(self.ok) }).inc();
        metrics.pull_bytes.inc_by(self.bytes);
        metrics.pull_duration.observe(seconds);
    }
}

/// The Docker event stream ended or failed and was opened again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventStreamReopened;

impl EventStreamReopened {
    /// Log it and count it: `berth_event_stream_reopens_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::info!("docker event stream reopened");
        metrics.event_stream_reopens.inc();
    }
}

/// A STOPPED task was swept: its containers and task volumes removed after the cleanup
/// wait, the task out of the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSwept<'a> {
    /// The task.
    pub arn: &'a str,
    /// Its containers.
    pub containers: usize,
    /// How long it had been STOPPED, in seconds.
    pub stopped_for_secs: Option<i64>,
}

impl TaskSwept<'_> {
    /// Log it and count it: `berth_tasks_swept_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::info!(
            task = self.arn,
            containers = self.containers,
            stopped_for_secs = self.stopped_for_secs,
            "swept a stopped task: containers and task volumes removed"
        );
        metrics.tasks_swept.inc();
    }
}

/// A container of this berth that no task owned was removed after the orphan grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanRemoved<'a> {
    /// Its Docker id.
    pub docker_id: &'a str,
}

impl OrphanRemoved<'_> {
    /// Log it and count it: `berth_orphans_removed_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(id = self.docker_id, "removed a container of this berth that no task owned");
        metrics.orphans_removed.inc();
    }
}

/// The periodic steady-state check began (every container not known to be STOPPED is
/// inspected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteadyStateCheck {
    /// When it began.
    pub at: DateTime<Utc>,
}

impl SteadyStateCheck {
    /// Log it and record its time: `berth_steady_state_check_last_timestamp_seconds` (and
    /// from it, at each render, `berth_steady_state_check_age_seconds`).
    pub fn emit(&self, metrics: &Metrics) {
        tracing::debug!(at = %self.at, "steady-state check");
        let seconds = self.at.timestamp_micros() as f64 / 1e6;
        metrics.steady_state_check_last.set(seconds);
    }
}

/// A group commit of the store ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCommitted {
    /// How long the save took.
    pub duration: Duration,
    /// Task records written.
    pub tasks: usize,
    /// State changes appended.
    pub changes: usize,
    /// Whether it succeeded (a failure stops the engine).
    pub ok: bool,
}

impl StoreCommitted {
    /// Log it (an error when it failed) and count it: `berth_store_commits_total{result}`,
    /// `berth_store_commit_duration_seconds`.
    pub fn emit(&self, metrics: &Metrics) {
        let seconds = self.duration.as_secs_f64();
        if self.ok {
            tracing::trace!(duration_s = seconds, tasks = self.tasks, changes = self.changes, "store commit");
        } else {
            tracing::error!(duration_s = seconds, tasks = self.tasks, changes = self.changes, "store commit failed");
        }
        metrics.store_commits.get_or_create(&ResultLabels { result: result_label(self.ok) }).inc();
        metrics.store_commit_duration.observe(seconds);
    }
}

/// State changes became durable and went to the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChangesCommitted<'a> {
    /// The changes.
    pub changes: &'a [StateChange],
}

impl StateChangesCommitted<'_> {
    /// Log it and count each change under its container status:
    /// `berth_state_changes_total{status}`.
    pub fn emit(&self, metrics: &Metrics) {
        if self.changes.is_empty() {
            return;
        }
        let count = |status: ContainerStatus| self.changes.iter().filter(|c| c.status == status).count() as u64;
        for status in ContainerStatus::ALL {
            let n = count(status);
            if n > 0 {
                metrics.state_changes.get_or_create(&StatusLabels { status: status.as_str() }).inc_by(n);
            }
        }
        tracing::debug!(
            count = self.changes.len(),
            created = count(ContainerStatus::Created),
            running = count(ContainerStatus::Running),
            stopped = count(ContainerStatus::Stopped),
            "state changes committed"
        );
    }
}

/// Image cleanup removed an image reference berth had pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRemoved<'a> {
    /// The reference removed (as berth pulled it).
    pub reference: &'a str,
    /// The image's id.
    pub image_id: &'a str,
    /// The image's tags when it was removed (the reference among them).
    pub tags: &'a [String],
    /// How long since berth last used (or pulled) it.
    pub age: Duration,
}

impl ImageRemoved<'_> {
    /// Log it and count it: `berth_images_removed_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::info!(
            image = self.reference,
            image_id = self.image_id,
            tags = ?self.tags,
            age_s = self.age.as_secs(),
            "unused image removed"
        );
        metrics.images_removed.inc();
    }
}

/// One cycle of image cleanup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageCleanupCycle {
    /// Images berth pulled that are present, unused for at least the minimum age.
    pub candidates: usize,
    /// Images removed.
    pub removed: usize,
    /// Images old enough but kept because a container uses them (seen in the listing,
    /// or Docker refused the removal as in use).
    pub kept_in_use: usize,
}

impl ImageCleanupCycle {
    /// Log it (info when something was removed) and count it:
    /// `berth_image_cleanup_cycles_total`.
    pub fn emit(&self, metrics: &Metrics) {
        if self.removed > 0 {
            tracing::info!(
                candidates = self.candidates,
                removed = self.removed,
                kept_in_use = self.kept_in_use,
                "image cleanup cycle"
            );
        } else {
            tracing::debug!(
                candidates = self.candidates,
                removed = self.removed,
                kept_in_use = self.kept_in_use,
                "image cleanup cycle"
            );
        }
        metrics.image_cleanup_cycles.inc();
    }
}

/// The HTTP API answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRequestServed<'a> {
    /// The route (its pattern, e.g. `/v1/tasks/{arn}`, not the path asked).
    pub route: &'a str,
    /// The HTTP status answered.
    pub status: u16,
}

impl ApiRequestServed<'_> {
    /// Count it: `berth_api_requests_total{route,status}` (logged at trace only: the API
    /// logs its requests itself).
    pub fn emit(&self, metrics: &Metrics) {
        tracing::trace!(route = self.route, status = self.status, "api request");
        metrics.api_requests.get_or_create(&ApiLabels { route: self.route.to_string(), status: self.status }).inc();
    }
}
