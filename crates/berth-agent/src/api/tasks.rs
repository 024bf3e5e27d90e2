//! berth's own task endpoints: submit, look at one, stop, read a container's output.

use super::access::Followers;
use super::error::{IssueView, is_zero};
use super::views::TaskView;
use super::{ApiError, ApiState};
use crate::config::HostPolicy;
use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_docker::LogOptions;
use berth_model::Task;
use berth_model::input::{self, ParseOptions};
use berth_model::task::arn_last_part;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The answer to a submit: the task, and what berth will not act on.
#[derive(Debug, Serialize)]
struct Submitted {
    #[serde(flatten)]
    task: TaskView,
    #[serde(rename = "Warnings", skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<IssueView>,
    /// Warnings beyond the first 100, which `Warnings` leaves out.
    #[serde(rename = "WarningsOmitted", skip_serializing_if = "is_zero")]
    warnings_omitted: usize,
}

/// `POST /v1/tasks`: any accepted shape (`?family=` names the family of a bare
/// `containerDefinitions` array). 201 with the task when it is new, 200 when the same arn
/// was there (an update: desired statuses only rise); 400 with every error.
/// `?clientToken=` makes a submit idempotent (ECS RunTask's): while a task submitted with
/// the token is held, the same token gives that task (200), never a second one; with a
/// different definition it is a 409.
pub async fn submit(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let body = body.map_err(|e| ApiError::new(e.status(), "BadBody", e.body_text()))?;
    let mut accepted = decode_submission(&body, query.family.as_deref(), &state.host_policy, rand::random())?;
    if let Some(token) = &query.client_token {
        check_client_token(token)?;
        accepted.task.client_token = Some(token.clone());
    }
    let submitted = accepted.task.clone();
    // One call: whether the task is new (201) or an update (200), and the task as stored.
    let (status, task) = match state.engine.add_task(accepted.task).await {
        Ok(added) => (if added.created { StatusCode::CREATED } else { StatusCode::OK }, added.task),
        Err(berth_engine::EngineError::ClientTokenUsed { token, arn: held }) => {
            let task =
                state.engine.task(&held).await?.ok_or_else(|| ApiError::internal(format!("task {held} vanished")))?;
            if !same_definition(&task, &submitted) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "ClientTokenConflict",
                    format!("client token {token:?} was used for task {held}, whose definition differs from this one"),
                ));
            }
            (StatusCode::OK, task)
        }
        Err(e) => return Err(e.into()),
    };
    let answer = Submitted {
        task: TaskView { waiting_reason: state.engine.waiting_reason(&task.arn).await?, ..TaskView::of(&task) },
        warnings: accepted.warnings.iter().map(IssueView::from).collect(),
        warnings_omitted: accepted.omitted_warnings,
    };
    Ok((status, Json(answer)).into_response())
}

/// A submitted body as a task the host policy allows, or the 400 that says why not (every
/// validation error with its path, or every refusal of the policy). Pure: no I/O, no
/// engine (the fuzz target `api_body` drives it).
pub fn decode_submission(
    body: &[u8],
    family: Option<&str>,
    policy: &HostPolicy,
    arn_random: u128,
) -> Result<input::Accepted, ApiError> {
    let opts = ParseOptions { family: family.map(str::to_string), arn_random };
    let accepted = input::parse(body, &opts).map_err(|r| {
        ApiError::invalid_task(summary("invalid task definition", &r.errors, r.omitted_errors), &r.errors, &r.warnings)
            .with_omitted(r.omitted_errors, r.omitted_warnings)
    })?;
    let refused = crate::policy::refusals(&accepted.task, &accepted.paths, policy);
    if !refused.is_empty() {
        return Err(ApiError::invalid_task(
            summary("refused by this berth's host policy", &refused, 0),
            &refused,
            &accepted.warnings,
        )
        .with_omitted(0, accepted.omitted_warnings));
    }
    Ok(accepted)
}

/// `heading: <the first issue>`, how many more `Errors` lists, and how many more there
/// were that it does not (`omitted`, counted in `ErrorsOmitted`).
fn summary(heading: &str, issues: &[input::Issue], omitted: usize) -> String {
    let text = match issues {
        [] => heading.to_string(),
        [one] => format!("{heading}: {one}"),
        [first, rest @ ..] => format!("{heading}: {first} (and {} more in Errors)", rest.len()),
    };
    if omitted == 0 { text } else { format!("{text}, and {omitted} more not listed (ErrorsOmitted)") }
}

/// The query `POST /v1/tasks` takes.
#[derive(Debug, Deserialize)]
pub struct SubmitQuery {
    /// The family of a bare `containerDefinitions` array (which names none).
    family: Option<String>,
    /// The idempotency token.
    #[serde(rename = "clientToken")]
    client_token: Option<String>,
}

/// The longest client token (ECS RunTask's limit).
const MAX_CLIENT_TOKEN: usize = 64;

/// A client token: 1 to 64 printable ASCII characters, as ECS takes.
pub(super) fn check_client_token(token: &str) -> Result<(), ApiError> {
    if token.is_empty() || token.len() > MAX_CLIENT_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(format!(
            "clientToken: expected 1 to {MAX_CLIENT_TOKEN} printable ASCII characters"
        )));
    }
    Ok(())
}

/// Whether `held` (a task submitted before with the same token) is what `submitted` asks
/// for: the same family, version, network mode, containers and volumes (the arn, random for
/// a task without one, and the engine's fields aside).
fn same_definition(held: &Task, submitted: &Task) -> bool {
    held.family == submitted.family
        && held.version == submitted.version
        && held.network_mode == submitted.network_mode
        && held.containers.len() == submitted.containers.len()
        && held.containers.iter().zip(&submitted.containers).all(|(a, b)| a.spec == b.spec)
        && held.volumes.len() == submitted.volumes.len()
        && held.volumes.iter().zip(&submitted.volumes).all(|(a, b)| a.name == b.name && a.kind == b.kind)
}

/// The task a route names: its whole arn (percent-encoded in the path), or the last part
/// of it when that is unique.
async fn resolve(state: &ApiState, given: &str) -> Result<Task, ApiError> {
    if let Some(task) = state.engine.task(given).await? {
        return Ok(task);
    }
    let tasks = state.engine.list_tasks().await?;
    let mut found = tasks.into_iter().filter(|t| arn_last_part(&t.arn) == given);
    match (found.next(), found.next()) {
        (Some(task), None) => Ok(task),
        (Some(a), Some(b)) => Err(ApiError::bad_request(format!(
            "{given} is ambiguous: it ends both {} and {}; give the whole arn",
            a.arn, b.arn
        ))),
        (None, _) => Err(ApiError::not_found(format!("no task {given}"))),
    }
}

/// `GET /v1/tasks/{arn}`, with why it waits while it waits for host resources.
pub async fn get_task(State(state): State<Arc<ApiState>>, Path(arn): Path<String>) -> Result<Response, ApiError> {
    let task = resolve(&state, &arn).await?;
    let waiting_reason = state.engine.waiting_reason(&task.arn).await?;
    Ok(Json(TaskView { waiting_reason, ..TaskView::of(&task) }).into_response())
}

/// `POST /v1/tasks/{arn}/stop`: desired STOPPED, durable before the answer (202: the
/// containers stop in the background).
pub async fn stop(State(state): State<Arc<ApiState>>, Path(arn): Path<String>) -> Result<Response, ApiError> {
    let task = resolve(&state, &arn).await?;
    state.engine.stop_task(&task.arn).await?;
    let task = state.engine.task(&task.arn).await?.unwrap_or(task);
    Ok((StatusCode::ACCEPTED, Json(TaskView::of(&task))).into_response())
}

/// The lines `GET /v1/tasks/{arn}/logs` gives by default: the last 1,000.
pub const DEFAULT_LOG_TAIL: u64 = 1000;

/// The query `GET /v1/tasks/{arn}/logs` takes.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    container: Option<String>,
    #[serde(default)]
    follow: bool,
    tail: Option<String>,
    since: Option<String>,
}

/// `tail`: a number of lines or `all`; absent, [`DEFAULT_LOG_TAIL`].
fn parse_tail(tail: Option<&str>) -> Result<Option<u64>, ApiError> {
    match tail.map(str::trim) {
        None => Ok(Some(DEFAULT_LOG_TAIL)),
        Some(all) if all.eq_ignore_ascii_case("all") => Ok(None),
        Some(n) => n
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid tail {n:?}: expected a number of lines or \"all\""))),
    }
}

/// `since`: Unix seconds, or an RFC 3339 time (`2026-01-02T03:04:05Z`).
fn parse_since(since: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(text) = since.map(str::trim) else { return Ok(None) };
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(Some(seconds));
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|t| Some(t.timestamp())).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid since {text:?}: expected Unix seconds or an RFC 3339 time such as 2026-01-02T03:04:05Z"
        ))
    })
}

/// `GET /v1/tasks/{arn}/logs?container=NAME&follow=true&tail=N&since=T`: the container's
/// output (stdout and stderr as Docker keeps them): its last `tail` lines (1,000 unless
/// asked; `all` for everything) written `since` (Unix seconds or RFC 3339), then, when
/// following, as it comes (one of the listener's following places). The container may
/// be left out when the task has only one.
pub async fn logs(
    State(state): State<Arc<ApiState>>,
    Extension(followers): Extension<Followers>,
    Path(arn): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let options = LogOptions {
        follow: query.follow,
        tail: parse_tail(query.tail.as_deref())?,
        since: parse_since(query.since.as_deref())?,
    };
    let task = resolve(&state, &arn).await?;
    let visible: Vec<_> = task.containers.iter().filter(|c| !c.spec.internal).collect();
    let container = match &query.container {
        Some(name) => visible
            .iter()
            .find(|c| &c.spec.name == name)
            .ok_or_else(|| ApiError::not_found(format!("task {} has no container {name}", task.arn)))?,
        None => match visible.as_slice() {
            [only] => only,
            _ => {
                let names: Vec<&str> = visible.iter().map(|c| c.spec.name.as_str()).collect();
                return Err(ApiError::bad_request(format!(
                    "task {} has several containers: name one with ?container= ({})",
                    task.arn,
                    names.join(", ")
                )));
            }
        },
    };
    let Some(id) = container.docker_id.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "NotCreated",
            format!("container {} of task {} has not been created yet", container.spec.name, task.arn),
        ));
    };
    let place = if options.follow { Some(followers.take()?) } else { None };
    let stream = state.docker.container_logs(&id, options).await.map_err(|e| match e.kind {
        berth_docker::ErrorKind::NotFound => ApiError::not_found(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    })?;
    let mut shutdown = state.shutdown.clone();
    let stream = stream
        .map(move |item| {
            let _held = &place;
            item.map(|chunk| chunk.bytes).map_err(std::io::Error::other)
        })
        .take_until(async move {
            let _ = shutdown.wait_for(|down| *down).await;
        });
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(stream)).into_response())
}
