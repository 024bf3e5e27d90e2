//! `/v1/cluster/...`: the whole cluster, on every node's API (`docs/cluster.md`).
//!
//! - `POST /v1/cluster/tasks[?clientToken=&family=]`: the body as `POST /v1/tasks` takes
//!   it, plus `placementConstraints`, `placementStrategy` and `partitionPolicy`; checked
//!   as on one host (the same 400 with paths, this node's host policy: every node of a
//!   cluster must run the same policy, and the node that runs the task checks again),
//!   then stored once in etcd: 201 when created, 200 when the client token had made it.
//! - `POST /v1/cluster/tasks/{id}/stop`: desired STOPPED (202).
//! - `GET /v1/cluster/tasks`, `GET /v1/cluster/tasks/{id}`: desired state, placement and
//!   each node's status, joined.
//! - `GET /v1/cluster/nodes`: capacity, alive (epoch), used, leader.
//! - `GET /v1/cluster/events?from=REV`: NDJSON, one change a line, from store revision REV
//!   (without it: the current state first, as `PUT`s); resume with the last line's
//!   `revision + 1`. A compacted REV gives a `RESYNC` line and the current state again.
//!
//! A berth not in cluster mode answers each with 409 `NotInCluster`.

use super::access::Followers;
use super::error::{IssueView, is_zero};
use super::{ApiError, ApiState, decode_submission};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_cluster::client::{ClientError, ClusterClient, ClusterTask, NewTask, split_placement};
use berth_model::input::Issue;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::TaskNotFound(_) => ApiError::not_found(e.to_string()),
            ClientError::TokenConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "ClientTokenConflict", e.to_string())
            }
            ClientError::NeverFits(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "NeverFits", e.to_string()),
            ClientError::Contended(_) => ApiError::new(StatusCode::CONFLICT, "Contended", e.to_string()),
            ClientError::Store(_) => ApiError::unavailable(e.to_string()),
            ClientError::Record(_) => ApiError::internal(e.to_string()),
        }
    }
}

/// The cluster client, or the 409 that says this berth is not in a cluster.
fn client(state: &ApiState) -> Result<&ClusterClient, ApiError> {
    state.cluster_client.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "NotInCluster",
            "this berth is not in cluster mode: start it with --cluster etcd://host:port --node NAME (docs/cluster.md)",
        )
    })
}

/// The query `POST /v1/cluster/tasks` takes.
#[derive(Debug, Deserialize)]
pub struct SubmitQuery {
    /// The family of a bare `containerDefinitions` array.
    family: Option<String>,
    /// The idempotency token.
    #[serde(rename = "clientToken")]
    client_token: Option<String>,
}

/// The answer to a cluster submit.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Submitted {
    task: ClusterTask,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<IssueView>,
    #[serde(skip_serializing_if = "is_zero")]
    warnings_omitted: usize,
}

/// `POST /v1/cluster/tasks`.
pub async fn submit(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let client = client(&state)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let body = body.map_err(|e| ApiError::new(e.status(), "BadBody", e.body_text()))?;
    if let Some(token) = &query.client_token {
        super::tasks::check_client_token(token)?;
    }
    let mut value: serde_json::Value = match serde_json::from_slice(body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&body))
    {
        Ok(value) => value,
        // Not JSON: the one-host parser says so, in its words and with its 400.
        Err(_) => {
            decode_submission(&body, query.family.as_deref(), &state.host_policy, rand::random())?;
            return Err(ApiError::bad_request("the body is not JSON"));
        }
    };
    let placing = split_placement(&mut value).map_err(|issues| {
        let issues: Vec<Issue> = issues.into_iter().map(|i| Issue { path: i.path, message: i.message }).collect();
        let first = issues.first().map(ToString::to_string).unwrap_or_default();
        ApiError::invalid_task(format!("invalid placement: {first}"), &issues, &[])
    })?;
    // A bare array names no family: store it in the register shape, with the family given.
    if let (serde_json::Value::Array(_), Some(family)) = (&value, &query.family) {
        value = serde_json::json!({"family": family, "containerDefinitions": value});
    }
    let definition = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    let accepted = decode_submission(&definition, query.family.as_deref(), &state.host_policy, rand::random())?;
    let submitted =
        client.submit(NewTask { definition: value, placing, client_token: query.client_token.clone() }).await?;
    let status = if submitted.created { StatusCode::CREATED } else { StatusCode::OK };
    let task = client.task(&submitted.task.id).await?.unwrap_or(ClusterTask {
        task: submitted.task,
        revision: submitted.revision,
        placement: None,
        pending: None,
        status: Default::default(),
    });
    let answer = Submitted {
        task,
        warnings: accepted.warnings.iter().map(IssueView::from).collect(),
        warnings_omitted: accepted.omitted_warnings,
    };
    Ok((status, Json(answer)).into_response())
}

/// `POST /v1/cluster/tasks/{id}/stop`: desired STOPPED in etcd (202: its node stops it).
pub async fn stop(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let client = client(&state)?;
    client.stop(&id).await?;
    let task = client.task(&id).await?.ok_or_else(|| ApiError::not_found(format!("no cluster task {id}")))?;
    Ok((StatusCode::ACCEPTED, Json(task)).into_response())
}

/// `GET /v1/cluster/tasks`.
pub async fn list_tasks(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let tasks = client(&state)?.list_tasks().await?;
    Ok(Json(tasks).into_response())
}

/// `GET /v1/cluster/tasks/{id}`.
pub async fn get_task(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let task = client(&state)?.task(&id).await?.ok_or_else(|| ApiError::not_found(format!("no cluster task {id}")))?;
    Ok(Json(task).into_response())
}

/// `GET /v1/cluster/nodes`.
pub async fn nodes(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let nodes = client(&state)?.list_nodes().await?;
    Ok(Json(nodes).into_response())
}

/// The query `GET /v1/cluster/events` takes.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    from: Option<i64>,
}

/// `GET /v1/cluster/events?from=REV` (a following stream: one of the listener's places).
pub async fn events(
    State(state): State<Arc<ApiState>>,
    Extension(followers): Extension<Followers>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let client = client(&state)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let place = followers.take()?;
    let rx = client.events(query.from);
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let mut text = match item {
            Ok(event) => serde_json::to_vec(&event),
            Err(e) => serde_json::to_vec(&serde_json::json!({"Error": e.to_string()})),
        }
        .map_err(std::io::Error::other);
        if let Ok(text) = &mut text {
            text.push(b'\n');
        }
        Some((text.map(Bytes::from), rx))
    });
    let mut shutdown = state.shutdown.clone();
    let lines = lines
        .take_until(async move {
            let _ = shutdown.wait_for(|down| *down).await;
        })
        .map(move |line| {
            let _held = &place;
            line
        });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
