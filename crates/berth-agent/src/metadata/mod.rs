//! The task metadata endpoint (ECS's v3 and v4, `docs/metadata.md`): what a program inside
//! a task reads about its container, its task and their resource use. Each container
//! finds it through `ECS_CONTAINER_METADATA_URI(_V4)` (set by the engine at create, from
//! the addresses [`bind`] chose); the random id in the path is the only key (nothing is
//! looked up by the caller's address), and an id answers only about its own task.
//!
//! Routes: `/{v3,v4}/<id>` (the container), `/<v>/<id>/task`, `/<v>/<id>/stats`,
//! `/<v>/<id>/task/stats`. Answers come from the engine's state (through its handle) and
//! Docker's inspect and stats; an unknown id is a 404 whose body is a JSON string, as ECS's.

pub mod stats;
pub mod views;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_docker::{ContainerInfo, DockerClient};
use berth_engine::{EngineHandle, MetadataEndpoint};
use berth_model::task::NetworkMode;
use berth_model::{Container, Task};
use futures_util::future::join_all;
use serde_json::{Map, Value};
use stats::NetworkRates;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use views::Version;

/// The port the daemon serves the endpoint on by default (the ECS agent's own port).
pub const DEFAULT_PORT: u16 = 51679;

/// How long one Docker inspect or stats call of an answer may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint's handlers share.
pub struct MetadataState {
    /// The engine: every answer starts with its lookup of the id.
    pub engine: EngineHandle,
    /// Docker, for inspect and stats.
    pub docker: Arc<dyn DockerClient>,
    /// The `Cluster` of task answers.
    pub cluster: String,
    /// Each container's last stats sample, for `network_rate_stats`.
    pub rates: NetworkRates,
}

/// The endpoint's router.
pub fn router(state: Arc<MetadataState>) -> Router {
    Router::new()
        .route("/{version}/{id}", get(container))
        .route("/{version}/{id}/task", get(task))
        .route("/{version}/{id}/stats", get(container_stats))
        .route("/{version}/{id}/task/stats", get(task_stats))
        .with_state(state)
}

/// The most connections each listener of the endpoint serves at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Serve the endpoint on each of `listeners` until `shutdown` turns true (or its sender
/// is gone); `open` counts the connections being served. Each connection has 10 s to send
/// a request's headers and is closed after 60 s without a request.
pub fn serve_on(
    listeners: Vec<TcpListener>,
    state: Arc<MetadataState>,
    open: prometheus_client::metrics::gauge::Gauge,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<std::io::Result<()>>> {
    let app = router(state);
    let limits = crate::serve::Limits {
        max_connections: MAX_CONNECTIONS,
        header_timeout: Some(Duration::from_secs(10)),
        idle_timeout: Some(Duration::from_secs(60)),
    };
    listeners
        .into_iter()
        .map(|listener| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "task metadata endpoint listening");
            }
            tokio::spawn(crate::serve::serve(listener, app.clone(), limits, open.clone(), shutdown.clone()))
        })
        .collect()
}

/// The listeners of the endpoint and the addresses containers reach them at.
#[derive(Debug)]
pub struct Bound {
    /// One listener per address (loopback, and the bridge gateway when Docker gave it).
    pub listeners: Vec<TcpListener>,
    /// What the engine puts in containers' environments.
    pub endpoint: MetadataEndpoint,
}

/// Why the endpoint could not listen.
#[derive(Debug, thiserror::Error)]
#[error("task metadata endpoint: cannot listen on {address}: {source}")]
pub struct BindError {
    /// The address.
    pub address: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Listen on `port` (0: one the system chooses, the same on every address) on the host's
/// loopback (host-mode tasks) and on the gateway of Docker's `bridge` network (bridge and
/// awsvpc tasks; the pause container sits on that network). When Docker does not say the
/// gateway (not reachable now, no IPv4 subnet), bridge and awsvpc containers get no
/// endpoint variables; that is logged.
pub async fn bind(docker: &dyn DockerClient, port: u16) -> Result<Bound, BindError> {
    let gateway = match tokio::time::timeout(DOCKER_TIMEOUT, docker.network_gateway("bridge")).await {
        Ok(Ok(Some(ip))) => Some(ip),
        Ok(Ok(None)) => {
            tracing::warn!(
                "Docker's bridge network has no IPv4 gateway: bridge and awsvpc tasks get no metadata endpoint"
            );
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "bridge and awsvpc tasks get no metadata endpoint");
            None
        }
        Err(_) => {
            tracing::warn!(
                "Docker did not say its bridge gateway in time: bridge and awsvpc tasks get no metadata endpoint"
            );
            None
        }
    };
    // With port 0 the first bind chooses it; another address may have it taken: try again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match bind_all(gateway, port).await {
            Ok(bound) => return Ok(bound),
            Err(e) if port == 0 && attempt < 10 && e.source.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn bind_all(gateway: Option<Ipv4Addr>, port: u16) -> Result<Bound, BindError> {
    let listen = |address: SocketAddr| async move {
        TcpListener::bind(address).await.map_err(|source| BindError { address, source })
    };
    let loopback = listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)).await?;
    let host = loopback
        .local_addr()
        .map_err(|source| BindError { address: SocketAddr::from(([127, 0, 0, 1], port)), source })?;
    let mut listeners = vec![loopback];
    let mut bridge = None;
    if let Some(ip) = gateway {
        let address = SocketAddr::new(IpAddr::V4(ip), host.port());
        listeners.push(listen(address).await?);
        bridge = Some(address);
    }
    Ok(Bound { listeners, endpoint: MetadataEndpoint { bridge, host: Some(host), awsvpc: bridge } })
}

/// An answer: JSON with its status.
fn answer(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// ECS's 404 for an id it does not know: a JSON string.
fn unknown(version: Version, what: &str, id: &str) -> Response {
    let lookup = if what.contains("stats") || what.contains("task") {
        "unable to get task arn from request: unable to get task Arn from v3 endpoint ID"
    } else {
        "unable to get container ID from request: unable to get docker ID from v3 endpoint ID"
    };
    answer(StatusCode::NOT_FOUND, format!("{} {what} handler: {lookup}: {id}", version.name()))
}

fn internal(message: String) -> Response {
    answer(StatusCode::INTERNAL_SERVER_ERROR, message)
}

fn version(v: &str) -> Option<Version> {
    match v {
        "v3" => Some(Version::V3),
        "v4" => Some(Version::V4),
        _ => None,
    }
}

/// The task and container of `id`, or the answer to give instead.
async fn lookup(
    state: &MetadataState,
    v: &str,
    id: &str,
    what: &str,
) -> Result<(Version, Arc<Task>, String), Response> {
    let Some(version) = version(v) else { return Err(StatusCode::NOT_FOUND.into_response()) };
    match state.engine.task_by_metadata_id(id).await {
        Ok(Some((task, name))) => Ok((version, task, name)),
        Ok(None) => Err(unknown(version, what, id)),
        Err(e) => Err(internal(format!("berth's engine does not answer: {e}"))),
    }
}

/// Inspect each container that Docker has, at once; `None` for one it has not or that
/// inspect could not read (the answer then has what berth knows of it).
async fn inspect_all(docker: &dyn DockerClient, containers: &[&Container]) -> Vec<Option<ContainerInfo>> {
    join_all(containers.iter().map(|c| async move {
        let id = c.docker_id.as_deref()?;
        tokio::time::timeout(DOCKER_TIMEOUT, docker.inspect_container(id)).await.ok()?.ok()
    }))
    .await
}

fn pause_of(task: &Task) -> Option<&Container> {
    (task.network_mode == NetworkMode::Awsvpc).then(|| task.containers.iter().find(|c| c.spec.internal)).flatten()
}

async fn container(State(state): State<Arc<MetadataState>>, Path((v, id)): Path<(String, String)>) -> Response {
    let (version, task, name) = match lookup(&state, &v, &id, "container metadata").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(c) = task.container(&name) else { return unknown(version, "container metadata", &id) };
    let pause = pause_of(&task).filter(|p| p.name() != c.name());
    let wanted: Vec<&Container> = std::iter::once(c).chain(pause).collect();
    let infos = inspect_all(&*state.docker, &wanted).await;
    let pause_view = pause.map(|p| (p, infos.get(1).and_then(Option::as_ref)));
    answer(StatusCode::OK, views::container(version, &task, c, infos[0].as_ref(), pause_view))
}

async fn task(State(state): State<Arc<MetadataState>>, Path((v, id)): Path<(String, String)>) -> Response {
    let (version, task, _) = match lookup(&state, &v, &id, "task metadata").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    // As ECS: the containers Docker has.
    let present: Vec<&Container> = task.containers.iter().filter(|c| c.docker_id.is_some()).collect();
    let infos = inspect_all(&*state.docker, &present).await;
    let pause = pause_of(&task).map(|p| {
        let info = present.iter().position(|c| c.name() == p.name()).and_then(|i| infos[i].as_ref());
        (p, info)
    });
    let containers =
        present.iter().zip(&infos).map(|(c, info)| views::container(version, &task, c, info.as_ref(), pause)).collect();
    answer(StatusCode::OK, views::task(version, &state.cluster, &task, containers))
}

/// One stats sample of a container by Docker id, with v4's rates.
async fn sample(state: &MetadataState, version: Version, docker_id: &str) -> Result<Value, String> {
    let sample = match tokio::time::timeout(DOCKER_TIMEOUT, state.docker.container_stats(docker_id)).await {
        Ok(Ok(sample)) => sample,
        Ok(Err(e)) => return Err(format!("Unable to get container stats for: {docker_id}: {e}")),
        Err(_) => return Err(format!("Unable to get container stats for: {docker_id}: Docker did not answer in time")),
    };
    let mut sample = sample;
    if version == Version::V4 {
        state.rates.add_rates(docker_id, &mut sample);
    }
    Ok(sample)
}

async fn container_stats(State(state): State<Arc<MetadataState>>, Path((v, id)): Path<(String, String)>) -> Response {
    let (version, task, name) = match lookup(&state, &v, &id, "container stats").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(docker_id) = task.container(&name).and_then(|c| c.docker_id.clone()) else {
        return answer(StatusCode::OK, Value::Object(Map::new()));
    };
    drop(task);
    match sample(&state, version, &docker_id).await {
        Ok(sample) => answer(StatusCode::OK, sample),
        Err(message) => internal(message),
    }
}

async fn task_stats(State(state): State<Arc<MetadataState>>, Path((v, id)): Path<(String, String)>) -> Response {
    let (version, task, _) = match lookup(&state, &v, &id, "task stats").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let ids: Vec<String> = task.containers.iter().filter_map(|c| c.docker_id.clone()).collect();
    drop(task);
    let samples = join_all(ids.iter().map(|docker_id| sample(&state, version, docker_id))).await;
    let by_id: Map<String, Value> = ids
        .into_iter()
        .zip(samples)
        .map(|(docker_id, s)| (docker_id, s.unwrap_or_else(|_| Value::Object(Map::new()))))
        .collect();
    answer(StatusCode::OK, Value::Object(by_id))
}
