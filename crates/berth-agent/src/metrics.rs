//! Prometheus metrics (`GET /metrics`). Every family is named `berth_...`; what counts
//! them is the [`crate::telemetry`] module, one type per occurrence, so that each is
//! logged and counted in one place. The gauges of tasks and containers by status are set
//! from the engine's tasks at each [`Metrics::render`].
//!
//! Families: `tasks{status}`, `containers{status}` (internal containers left out),
//! `docker_operation_duration_seconds{operation}` (histogram),
//! `docker_errors_total{operation,kind}`, `state_changes_total{status}`,
//! `pulls_total{result}`, `pull_bytes_total`, `pull_duration_seconds` (histogram),
//! `event_stream_reopens_total`, `steady_state_check_last_timestamp_seconds`,
//! `steady_state_check_age_seconds` (absent before the first check),
//! `store_commits_total{result}`, `store_commit_duration_seconds` (histogram),
//! `images_removed_total`, `image_cleanup_cycles_total`, `tasks_swept_total`, `orphans_removed_total`,
//! `api_requests_total{route,status}`, `api_connections{listener}`. A labelled family shows once one of its series
//! has been counted (the status gauges always show every status).

use crate::telemetry::{
    ApiRequestServed, EventStreamReopened, OrphanRemoved, StateChangesCommitted, SteadyStateCheck, StoreCommitted,
    TaskSwept,
};
use berth_docker::ErrorKind;
use berth_engine::{EngineTelemetry, LogTelemetry, Telemetry};
use berth_model::{ContainerStatus, Task, TaskStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

/// The `Content-Type` of what [`Metrics::render`] returns: the Prometheus text format,
/// version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every task status, for the `tasks{status}` gauges.
const TASK_STATUSES: [TaskStatus; 4] =
    [TaskStatus::None, TaskStatus::Created, TaskStatus::Running, TaskStatus::Stopped];

/// A `status` label (a task or container status, upper case as in the API).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub status: &'static str,
}

/// An `operation` label (a `DockerClient` method's name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct OperationLabels {
    pub operation: String,
}

/// A failed Docker call's labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub operation: String,
    pub kind: &'static str,
}

/// A `result` label: `ok` or `error`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    pub result: &'static str,
}

/// A `listener` label: `unix` or `tcp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ListenerLabels {
    pub listener: &'static str,
}

/// An API request's labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ApiLabels {
    pub route: String,
    pub status: u16,
}

/// The `kind` label of an error class.
pub(crate) fn error_kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::NotModified => "not_modified",
        ErrorKind::Transient => "transient",
        ErrorKind::Permanent => "permanent",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Lost => "lost",
        ErrorKind::Unreachable => "unreachable",
    }
}

/// The `result` label of an outcome.
pub(crate) fn result_label(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// A histogram of Docker call durations: 1 ms to about 65 s.
fn docker_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The agent's metrics: registered once, counted by [`crate::telemetry`], rendered by
/// [`Metrics::render`]. Also the engine's [`Telemetry`].
pub struct Metrics {
    registry: Registry,
    /// One render at a time: a render sets the status gauges, then encodes them.
    render_lock: Mutex<()>,
    pub(crate) tasks: Family<StatusLabels, Gauge>,
    pub(crate) containers: Family<StatusLabels, Gauge>,
    pub(crate) docker_operation_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub(crate) docker_errors: Family<ErrorLabels, Counter>,
    pub(crate) state_changes: Family<StatusLabels, Counter>,
    pub(crate) pulls: Family<ResultLabels, Counter>,
    pub(crate) pull_bytes: Counter,
    pub(crate) pull_duration: Histogram,
    pub(crate) event_stream_reopens: Counter,
    pub(crate) steady_state_check_last: Gauge<f64, AtomicU64>,
    pub(crate) store_commits: Family<ResultLabels, Counter>,
    pub(crate) store_commit_duration: Histogram,
    pub(crate) images_removed: Counter,
    pub(crate) image_cleanup_cycles: Counter,
    pub(crate) tasks_swept: Counter,
    pub(crate) orphans_removed: Counter,
    pub(crate) api_requests: Family<ApiLabels, Counter>,
    pub(crate) api_connections: Family<ListenerLabels, Gauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::build()
    }
}

/// `berth_steady_state_check_age_seconds`, computed at each render from the last check's
/// time; absent before the first check.
#[derive(Debug)]
struct SteadyStateAge {
    last: Gauge<f64, AtomicU64>,
}

impl Collector for SteadyStateAge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let last = self.last.get();
        if last <= 0.0 {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        let gauge = ConstGauge::new((now - last).max(0.0));
        let metric = encoder.encode_descriptor(
            "steady_state_check_age_seconds",
            "Seconds since the last steady-state check began",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

impl Metrics {
    /// The gauge of the connections `listener` (`unix`, `tcp`) serves.
    pub(crate) fn connections(&self, listener: &'static str) -> Gauge {
        self.api_connections.get_or_create(&ListenerLabels { listener }).clone()
    }

    /// New metrics, registered.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Self::build())
    }

    fn build() -> Metrics {
        let mut registry = Registry::with_prefix("berth");
        let metrics = Metrics {
            registry: Registry::default(),
            render_lock: Mutex::new(()),
            tasks: Family::default(),
            containers: Family::default(),
            docker_operation_duration: Family::new_with_constructor(docker_duration_histogram),
            docker_errors: Family::default(),
            state_changes: Family::default(),
            pulls: Family::default(),
            pull_bytes: Counter::default(),
            // 100 ms to about 14 min.
            pull_duration: Histogram::new(exponential_buckets(0.1, 2.0, 14)),
            event_stream_reopens: Counter::default(),
            steady_state_check_last: Gauge::default(),
            store_commits: Family::default(),
            // 0.25 ms to about 4 s.
            store_commit_duration: Histogram::new(exponential_buckets(0.00025, 2.0, 15)),
            images_removed: Counter::default(),
            image_cleanup_cycles: Counter::default(),
            tasks_swept: Counter::default(),
            orphans_removed: Counter::default(),
            api_requests: Family::default(),
            api_connections: Family::default(),
        };
        registry.register("tasks", "Tasks by known status", metrics.tasks.clone());
        registry.register(
            "containers",
            "Containers by known status (internal containers left out)",
            metrics.containers.clone(),
        );
        registry.register(
            "docker_operation_duration_seconds",
            "Duration of Docker calls, by operation",
            metrics.docker_operation_duration.clone(),
        );
        registry.register(
            "docker_errors",
            "Failed Docker calls, by operation and error kind",
            metrics.docker_errors.clone(),
        );
        registry.register(
            "state_changes",
            "State changes committed, by container status",
            metrics.state_changes.clone(),
        );
        registry.register("pulls", "Image pulls, by result", metrics.pulls.clone());
        registry.register("pull_bytes", "Bytes downloaded by image pulls", metrics.pull_bytes.clone());
        registry.register("pull_duration_seconds", "Duration of image pulls", metrics.pull_duration.clone());
        registry.register(
            "event_stream_reopens",
            "Times the Docker event stream was opened again",
            metrics.event_stream_reopens.clone(),
        );
        registry.register(
            "steady_state_check_last_timestamp_seconds",
            "Unix time the last steady-state check began (0: none yet)",
            metrics.steady_state_check_last.clone(),
        );
        registry.register_collector(Box::new(SteadyStateAge { last: metrics.steady_state_check_last.clone() }));
        registry.register(
            "api_connections",
            "API connections being served, by listener (unix, tcp)",
            metrics.api_connections.clone(),
        );
        registry.register(
            "store_commits",
            "Group commits of the state store, by result",
            metrics.store_commits.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Duration of group commits of the state store",
            metrics.store_commit_duration.clone(),
        );
        registry.register("images_removed", "Images removed by image cleanup", metrics.images_removed.clone());
        registry.register("image_cleanup_cycles", "Image cleanup cycles run", metrics.image_cleanup_cycles.clone());
        registry.register(
            "tasks_swept",
            "STOPPED tasks swept after the cleanup wait (containers and task volumes removed)",
            metrics.tasks_swept.clone(),
        );
        registry.register(
            "orphans_removed",
            "Containers of this berth that no task owned, removed after the orphan grace period",
            metrics.orphans_removed.clone(),
        );
        registry.register("api_requests", "HTTP API requests, by route and status", metrics.api_requests.clone());
        Metrics { registry, ..metrics }
    }

    /// The Prometheus text exposition (format 0.0.4, see [`CONTENT_TYPE`]), with the task
    /// and container gauges taken from `tasks`.
    pub fn render(&self, tasks: &[Task]) -> String {
        let _one_at_a_time = self.render_lock.lock().unwrap_or_else(PoisonError::into_inner);
        for status in TASK_STATUSES {
            let n = tasks.iter().filter(|t| t.known_status == status).count();
            self.tasks.get_or_create(&StatusLabels { status: status.as_str() }).set(gauge_value(n));
        }
        for status in ContainerStatus::ALL {
            let n = tasks
                .iter()
                .flat_map(|t| &t.containers)
                .filter(|c| !c.spec.internal && c.known_status == status)
                .count();
            self.containers.get_or_create(&StatusLabels { status: status.as_str() }).set(gauge_value(n));
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry) {
            // Writing to a String fails only if an encoder refuses its input.
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }

    /// Count an answered API request: `berth_api_requests_total{route,status}`; `route` is
    /// the route's pattern (`/v1/tasks/{arn}`), never the path asked (unbounded labels).
    pub fn api_request(&self, route: &str, status: u16) {
        ApiRequestServed { route, status }.emit(self);
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The engine's telemetry: each occurrence the agent counts is logged and counted by its
/// type in [`crate::telemetry`]; every other one is logged as the engine's default does.
/// Either way, once.
impl Telemetry for Metrics {
    fn record(&self, event: &EngineTelemetry<'_>) {
        match event {
            EngineTelemetry::StoreCommitted { duration, tasks, changes, ok } => {
                StoreCommitted { duration: *duration, tasks: *tasks, changes: *changes, ok: *ok }.emit(self);
            }
            EngineTelemetry::ChangesCommitted(changes) => StateChangesCommitted { changes }.emit(self),
            EngineTelemetry::EventStreamReopened => EventStreamReopened.emit(self),
            EngineTelemetry::OrphanRemoved { docker_id } => OrphanRemoved { docker_id }.emit(self),
            EngineTelemetry::TaskSwept { arn, containers, stopped_for } => {
                TaskSwept { arn, containers: *containers, stopped_for_secs: stopped_for.map(|d| d.num_seconds()) }
                    .emit(self)
            }
            EngineTelemetry::SteadyStateCheck => SteadyStateCheck { at: chrono::Utc::now() }.emit(self),
            other => LogTelemetry.record(other),
        }
    }
}
