//! `GET /v1/images`, `/metrics`, `/healthz`, and the answers for unknown routes.

use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// How long `/healthz` waits for Docker to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// One image on the host (the seed's `DescribeDockerImages`), and whether berth pulled it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImageView {
    id: String,
    repo_tags: Vec<String>,
    size: i64,
    created: i64,
    pulled_by_berth: bool,
}

/// `GET /v1/images`: `{"Images": [...]}`.
pub async fn images(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let listed = state.docker.list_images().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let pulled = state.ledger.images();
    let images: Vec<ImageView> = listed
        .into_iter()
        .map(|i| ImageView {
            pulled_by_berth: i.repo_tags.iter().any(|t| pulled.contains(t)),
            id: i.id,
            repo_tags: i.repo_tags,
            size: i.size,
            created: i.created,
        })
        .collect();
    Ok(Json(serde_json::json!({ "Images": images })).into_response())
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let tasks = state.engine.list_tasks().await?;
    let text = state.metrics.render(&tasks);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// `GET /healthz`: 200 while the engine runs, saying whether Docker answers and how many
/// containers still wait for their first inspect since berth (re)connected to Docker
/// (`Reconciling`: 0 once the state agrees with Docker); 503 when the engine does not run.
pub async fn healthz(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let status = state.engine.status().await?;
    let docker = match tokio::time::timeout(PING_TIMEOUT, state.docker.ping()).await {
        Ok(Ok(())) if status.docker_up => "ok",
        _ => "unreachable",
    };
    Ok(Json(serde_json::json!({
        "Status": "ok",
        "Docker": docker,
        "Reconciling": status.reconciling,
        "Tasks": status.tasks,
    }))
    .into_response())
}

/// Any other route.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

/// A known route with the wrong method.
pub async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{} does not take this method", uri.path()),
    )
}
