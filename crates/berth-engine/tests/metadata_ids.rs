//! The task metadata endpoint's ids: every container gets a random one when its task
//! enters the state, it is durable (the same after a restart, given to stored tasks that
//! lack one), it finds its task, and the endpoint's variables carry it.

mod common;

use berth_engine::{DockerTaskEngine, EngineConfig, MetadataEndpoint, TaskEngine};
use berth_model::{ContainerStatus, Task};
use common::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

const PAIR: &str = r#"{"family": "pair", "containerDefinitions": [
    {"name": "db", "image": "busybox"},
    {"name": "web", "image": "busybox", "environment": [{"name": "ECS_CONTAINER_METADATA_URI", "value": "mine"}]}]}"#;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn endpoint() -> MetadataEndpoint {
    MetadataEndpoint {
        bridge: Some(addr("172.17.0.1:51680")),
        host: Some(addr("127.0.0.1:51680")),
        awsvpc: Some(addr("172.17.0.1:51680")),
    }
}

fn durable(dir: &Path) -> EngineConfig {
    EngineConfig { data_dir: Some(dir.to_path_buf()), metadata_endpoint: endpoint(), ..EngineConfig::default() }
}

fn ids(task: &Task) -> Vec<String> {
    task.containers.iter().map(|c| c.metadata_id.clone().unwrap_or_else(|| panic!("{} has no id", c.name()))).collect()
}

async fn only_task(engine: &DockerTaskEngine) -> Task {
    let mut tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks.len(), 1);
    tasks.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_container_gets_a_random_id_that_finds_it_and_only_it() {
    let fake = fake();
    let engine = engine_with(&fake, EngineConfig::default()).await;
    let (a, b) = (task(PAIR, 1), task(PAIR, 2));
    let (arn_a, arn_b) = (a.arn.clone(), b.arn.clone());
    let handle = engine.handle().unwrap_or_else(|e| panic!("{e}"));
    handle.add_task(a).await.unwrap_or_else(|e| panic!("{e}"));
    handle.add_task(b).await.unwrap_or_else(|e| panic!("{e}"));

    let mut all = BTreeSet::new();
    for arn in [&arn_a, &arn_b] {
        let task = handle.task(arn).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{arn}"));
        for (c, id) in task.containers.iter().zip(ids(&task)) {
            assert!(id.len() == 32 && id.chars().all(|ch| ch.is_ascii_hexdigit()), "128 bits in hex: {id}");
            let (found, name) = handle
                .task_by_metadata_id(&id)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{id} finds nothing"));
            assert_eq!((found.arn.as_str(), name.as_str()), (arn.as_str(), c.name()));
            all.insert(id);
        }
    }
    assert_eq!(all.len(), 4, "distinct ids");
    for unknown in ["", "0", "00000000000000000000000000000000", arn_a.as_str(), "db"] {
        assert!(handle.task_by_metadata_id(unknown).await.unwrap_or_else(|e| panic!("{e}")).is_none(), "{unknown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_variables_point_at_the_address_of_the_task_s_network_mode() {
    let fake = fake();
    fake.add_image(berth_model::container::PAUSE_IMAGE);
    let engine = engine_with(&fake, EngineConfig { metadata_endpoint: endpoint(), ..EngineConfig::default() }).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let cases = [
        (1, "bridge", Some("172.17.0.1:51680")),
        (2, "host", Some("127.0.0.1:51680")),
        (3, "awsvpc", Some("172.17.0.1:51680")),
        (4, "none", None),
    ];
    for (n, mode, expected) in cases {
        let json = PAIR.replace(r#""family": "pair","#, &format!(r#""family": "pair{n}", "networkMode": "{mode}","#));
        let t = task(&json, n);
        let arn = t.arn.clone();
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
        until_all(&mut events, &arn, &["db", "web"], ContainerStatus::Running).await;
        let stored = engine.task(&arn).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{arn}"));
        for c in &stored.containers {
            if c.spec.internal {
                continue;
            }
            let id = c.metadata_id.clone().unwrap_or_default();
            let env: Vec<String> = fake
                .containers()
                .into_iter()
                .find(|s| Some(&s.id) == c.docker_id.as_ref())
                .unwrap_or_else(|| panic!("{mode}: no container {}", c.name()))
                .config
                .env
                .into_iter()
                .filter(|e| e.starts_with("ECS_CONTAINER_METADATA_URI"))
                .collect();
            let want: Vec<String> = match expected {
                Some(addr) => vec![
                    format!("ECS_CONTAINER_METADATA_URI=http://{addr}/v3/{id}"),
                    format!("ECS_CONTAINER_METADATA_URI_V4=http://{addr}/v4/{id}"),
                ],
                // Without an endpoint the task's own value stays.
                None if c.name() == "web" => vec!["ECS_CONTAINER_METADATA_URI=mine".to_string()],
                None => vec![],
            };
            assert_eq!(env, want, "{mode} {}", c.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_survive_a_restart_and_stored_tasks_without_them_get_durable_ones() {
    let fake = fake();
    let first_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut first = engine_with(&fake, durable(first_dir.path())).await;
    first.add_task(task(PAIR, 1)).await.unwrap_or_else(|e| panic!("{e}"));
    let before = ids(&only_task(&first).await);
    let export = first.marshal_json().await.unwrap_or_else(|e| panic!("{e}"));
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let mut again = engine_with(&fake, durable(first_dir.path())).await;
    assert_eq!(ids(&only_task(&again).await), before, "the same ids after a restart");
    let found = again.handle().unwrap_or_else(|e| panic!("{e}")).task_by_metadata_id(&before[0]).await;
    assert!(found.unwrap_or_else(|e| panic!("{e}")).is_some(), "found after a restart");
    again.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // A state from before metadata ids: the task enters without them.
    let mut state: serde_json::Value = serde_json::from_slice(&export).unwrap_or_else(|e| panic!("{e}"));
    let mut stripped = 0;
    strip(&mut state, &mut stripped);
    assert_eq!(stripped, 2, "the export held both ids");
    let old = serde_json::to_vec(&state).unwrap_or_else(|e| panic!("{e}"));
    let second_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut imported = DockerTaskEngine::new(durable(second_dir.path()), std::sync::Arc::new(fake.clone()));
    imported.unmarshal_json(&old).await.unwrap_or_else(|e| panic!("{e}"));
    imported.init().await.unwrap_or_else(|e| panic!("{e}"));
    let given = ids(&only_task(&imported).await);
    assert!(given.iter().all(|id| !before.contains(id)), "new ids");
    imported.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let reloaded = engine_with(&fake, durable(second_dir.path())).await;
    assert_eq!(ids(&only_task(&reloaded).await), given, "the ids given at load were saved");
}

fn strip(v: &mut serde_json::Value, count: &mut usize) {
    match v {
        serde_json::Value::Object(map) => {
            if map.remove("metadata_id").is_some() {
                *count += 1;
            }
            map.values_mut().for_each(|v| strip(v, count));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, count)),
        _ => {}
    }
}
