//! The HTTP API (SPEC 9): ECS's introspection endpoints and berth's own, one router served
//! on the unix socket and, when configured, on TCP. Handlers only translate: they ask the
//! engine (a message to its loop) or Docker and shape the answer; they hold no state.
//!
//! - `ecs`: `GET /`, `/v1/metadata`, `/v1/tasks` (with `?taskarn=` / `?dockerid=`);
//! - `tasks`: `POST /v1/tasks`, `GET /v1/tasks/{arn}`, `POST /v1/tasks/{arn}/stop`,
//!   `GET /v1/tasks/{arn}/logs`;
//! - `events`: `GET /v1/events` (NDJSON, resumable);
//! - `cluster`: `/v1/cluster/tasks`, `/v1/cluster/tasks/{id}(/stop)`, `/v1/cluster/nodes`,
//!   `/v1/cluster/events` (the whole cluster, through etcd; 409 when not in cluster mode);
//! - `misc`: `GET /v1/images`, `/metrics`, `/healthz`;
//! - `access`: what every request goes through: over TCP the `Host` check and the bearer
//!   token, the listener's cap on following streams, the request timeout.

pub mod access;
mod cluster;
mod ecs;
pub mod error;
mod events;
mod misc;
mod tasks;
pub mod views;

use crate::config::HostPolicy;
use crate::images::ImageLedger;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use berth_docker::DockerClient;
use berth_engine::EngineHandle;
pub use error::ApiError;
use std::sync::Arc;
pub use tasks::decode_submission;
use tokio::sync::watch;

/// What handlers share.
pub struct ApiState {
    /// The engine (initialized).
    pub engine: EngineHandle,
    /// Docker, for logs and images.
    pub docker: Arc<dyn DockerClient>,
    /// The agent's metrics.
    pub metrics: Arc<Metrics>,
    /// The images berth pulled.
    pub ledger: Arc<ImageLedger>,
    /// The cluster name `GET /v1/metadata` reports.
    pub cluster: String,
    /// This berth's instance id.
    pub instance: String,
    /// What submitted tasks may do to the host.
    pub host_policy: HostPolicy,
    /// The cluster, when this berth is in cluster mode.
    pub cluster_client: Option<berth_cluster::client::ClusterClient>,
    /// Turns true when the agent shuts down: following streams end.
    pub shutdown: watch::Receiver<bool>,
}

/// Who may call what on one listener.
#[derive(Debug, Clone)]
pub enum Access {
    /// The unix socket: its mode (0600) is the access control.
    Local,
    /// TCP: every call but `/healthz` (and the introspection endpoints when they are
    /// open) needs `Authorization: Bearer <token>`, and `Host` is checked.
    Token(Arc<str>),
}

/// The router for one listener, with request bodies limited to `body_limit` bytes.
pub fn router(state: Arc<ApiState>, policy: access::Policy, body_limit: usize) -> Router {
    Router::new()
        .route("/", get(ecs::root))
        .route("/v1/metadata", get(ecs::metadata))
        .route("/v1/tasks", get(ecs::tasks).post(tasks::submit))
        .route("/v1/tasks/{arn}", get(tasks::get_task))
        .route("/v1/tasks/{arn}/stop", post(tasks::stop))
        .route("/v1/tasks/{arn}/logs", get(tasks::logs))
        .route("/v1/events", get(events::events))
        .route("/v1/cluster/tasks", get(cluster::list_tasks).post(cluster::submit))
        .route("/v1/cluster/tasks/{id}", get(cluster::get_task))
        .route("/v1/cluster/tasks/{id}/stop", post(cluster::stop))
        .route("/v1/cluster/nodes", get(cluster::nodes))
        .route("/v1/cluster/events", get(cluster::events))
        .route("/v1/images", get(misc::images))
        .route("/metrics", get(misc::metrics))
        .route("/healthz", get(misc::healthz))
        .fallback(misc::not_found)
        .method_not_allowed_fallback(misc::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(Arc::new(policy), access::check))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), count))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Counts every answered request, refusals included: `berth_api_requests_total{route,status}`
/// with the route's pattern (`/v1/tasks/{arn}`), `unmatched` for paths no route has.
async fn count(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.api_request(&route, response.status().as_u16());
    response
}
