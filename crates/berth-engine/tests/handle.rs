//! The engine's two faces (issue 15 items 1 and 2): the running, cloneable `EngineHandle`
//! an embedder starts with `Engine::builder`, and the seed's `DockerTaskEngine` in
//! `compat`, which delegates to it. Each seed item not covered by another test file is
//! exercised here.

mod common;

use berth_engine::{DockerTaskEngine, Engine, EngineConfig, EngineError, TaskEngine};
use berth_model::ContainerStatus;
use berth_testutils::Behaviour;
use common::*;
use std::sync::Arc;

const ONE: &str = r#"{"family": "one", "containerDefinitions": [{"name": "web", "image": "busybox"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_task_says_created_or_updated_and_gives_the_task_as_stored() {
    let fake = fake();
    let engine = Engine::builder(EngineConfig::default(), Arc::new(fake.clone()))
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let t = task(ONE, 1);
    let first = engine.add_task(t.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(first.created);
    assert_eq!(first.task.arn, t.arn);
    assert_eq!(first.task.containers.len(), 1);
    let again = engine.add_task(t.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.created, "the same arn again is an update");
    assert_eq!(again.task.arn, t.arn);

    // A graph that cannot run: every reason, typed.
    let mut cyclic = task(
        r#"{"family": "c", "containerDefinitions": [
            {"name": "a", "image": "busybox", "links": ["b"]},
            {"name": "b", "image": "busybox"}]}"#,
        2,
    );
    // b gets a's links: a link of b to itself, which the graph refuses.
    let links = cyclic.containers[0].spec.links.clone();
    cyclic.containers[1].spec = Arc::new(berth_model::ContainerSpec { links, ..(*cyclic.containers[1].spec).clone() });
    match engine.add_task(cyclic).await {
        Err(EngineError::InvalidGraph(errors)) => assert!(!errors.is_empty()),
        other => panic!("expected InvalidGraph, got {other:?}"),
    }
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_clone_shuts_the_engine_down_once_and_the_rest_see_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    let config = || EngineConfig { data_dir: Some(dir.path().to_path_buf()), ..EngineConfig::default() };
    let engine = Engine::builder(config(), Arc::new(fake.clone())).start().await.unwrap_or_else(|e| panic!("{e}"));
    let other = engine.clone();
    let t = task(ONE, 3);
    let arn = t.arn.clone();
    other.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = tokio::join!(engine.shutdown(), other.shutdown());
    a.unwrap_or_else(|e| panic!("{e}"));
    b.unwrap_or_else(|e| panic!("{e}"));
    engine.shutdown().await.unwrap_or_else(|e| panic!("again: {e}"));
    assert!(matches!(other.list_tasks().await, Err(EngineError::NotRunning)));
    assert!(engine.exit().is_some());

    // Durable and released: the next engine on the directory has the task.
    let next = Engine::builder(config(), Arc::new(fake.clone())).start().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(next.task(&arn).await.unwrap_or_else(|e| panic!("{e}")).is_some());
    next.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_state_is_imported_through_the_builder() {
    let fake = fake();
    let first = Engine::builder(EngineConfig::default(), Arc::new(fake.clone()))
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let t = task(ONE, 4);
    first.add_task(t.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let json = first.export_json().await.unwrap_or_else(|e| panic!("{e}"));
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let second = Engine::builder(EngineConfig::default(), Arc::new(fake.clone()))
        .import(&json)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(second.task(&t.arn).await.unwrap_or_else(|e| panic!("{e}")).is_some());
    second.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let bad = Engine::builder(EngineConfig::default(), Arc::new(fake.clone())).import(b"{}").start().await;
    assert!(matches!(bad, Err(EngineError::InvalidState(_))));
}

/// The seed's `ApplyTaskState`, `ApplyContainerState`, `StopContainer`, `RemoveContainer`
/// and `PullContainer`, through `compat`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_direct_operations_delegate_to_the_handle() {
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let mut engine = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
    assert!(matches!(engine.apply_task_state("arn:none").await, Err(EngineError::NotRunning)), "before init");
    engine.init().await.unwrap_or_else(|e| panic!("{e}"));
    let t = task(ONE, 5);
    let arn = t.arn.clone();
    let mut w = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &arn, &["web"], ContainerStatus::Running).await;
    engine.apply_task_state(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    engine.apply_container_state(&arn, "web").await.unwrap_or_else(|e| panic!("{e}"));

    let pulls = fake.pulls("busybox:latest");
    engine.pull_container(&arn, "web").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fake.pulls("busybox:latest"), pulls + 1);
    let name = engine.state().await.unwrap_or_else(|e| panic!("{e}")).tasks[&arn].containers[0]
        .docker_name
        .clone()
        .unwrap_or_default();
    engine.stop_container(&arn, "web").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fake.stops(&name) >= 1);
    until_all(&mut w, &arn, &["web"], ContainerStatus::Stopped).await;
    eventually("nothing in flight", async || {
        engine.list_tasks().await.is_ok_and(|ts| ts.iter().all(|t| t.containers.iter().all(|c| !c.in_flight)))
    })
    .await;
    engine.remove_container(&arn, "web").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fake.container(&name).is_none(), "removed");
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}
