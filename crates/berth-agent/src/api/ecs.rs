//! ECS's introspection endpoints, with its answer shapes.

use super::views::{MetadataResponse, TaskResponse, TasksResponse};
use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `GET /`: what there is.
pub async fn root() -> impl IntoResponse {
    #[derive(Serialize)]
    struct Available {
        #[serde(rename = "AvailableCommands")]
        available: [&'static str; 10],
    }
    Json(Available {
        available: [
            "/v1/metadata",
            "/v1/tasks",
            "/v1/tasks/{arn}",
            "/v1/tasks/{arn}/stop",
            "/v1/tasks/{arn}/logs",
            "/v1/events",
            "/v1/images",
            "/metrics",
            "/healthz",
            "/",
        ],
    })
}

/// `GET /v1/metadata`.
pub async fn metadata(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    Json(MetadataResponse {
        cluster: state.cluster.clone(),
        container_instance_arn: Some(format!("arn:berth:container-instance/{}", state.instance)),
        version: format!("berth v{}", env!("CARGO_PKG_VERSION")),
    })
}

/// The query `GET /v1/tasks` takes.
#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    taskarn: Option<String>,
    dockerid: Option<String>,
}

/// `GET /v1/tasks`: every task; `?taskarn=` or `?dockerid=` (full or short id): one task.
pub async fn tasks(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<TasksQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    match (query.taskarn, query.dockerid) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give taskarn or dockerid, not both")),
        (Some(arn), None) => match state.engine.task(&arn).await? {
            Some(task) => Ok(Json(TaskResponse::of(&task)).into_response()),
            None => Err(ApiError::not_found(format!("no task with arn {arn}"))),
        },
        (None, Some(id)) => {
            if id.is_empty() {
                return Err(ApiError::bad_request("dockerid is empty"));
            }
            let tasks = state.engine.list_tasks().await?;
            let mut found = tasks.iter().flat_map(|t| {
                t.containers
                    .iter()
                    .filter(|c| c.docker_id.as_deref().is_some_and(|d| d.starts_with(&id)))
                    .map(move |_| t)
            });
            match (found.next(), found.next()) {
                (Some(task), None) => Ok(Json(TaskResponse::of(task)).into_response()),
                (Some(_), Some(_)) => Err(ApiError::bad_request(format!("docker id {id} is ambiguous"))),
                (None, _) => Err(ApiError::not_found(format!("no container with docker id {id}"))),
            }
        }
        (None, None) => {
            let tasks = state.engine.list_tasks().await?;
            Ok(Json(TasksResponse { tasks: tasks.iter().map(TaskResponse::of).collect() }).into_response())
        }
    }
}
