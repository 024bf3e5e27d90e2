//! Restart: a new engine on the same data directory gives the same tasks and the same
//! change log, and resumes every task without creating or starting anything twice.

mod common;

use berth_docker::labels;
use berth_engine::{DockerTaskEngine, EngineConfig, EngineError, LogItem, TaskEngine};
use berth_model::{ContainerStatus, StateChange, TaskStatus};
use berth_store::StoreError;
use berth_testutils::{Behaviour, FakeDocker};
use common::*;
use std::path::Path;
use std::sync::Arc;

const PAIR: &str = r#"{"family": "pair", "volumes": [{"name": "scratch", "host": {}}], "containerDefinitions": [
    {"name": "db", "image": "busybox", "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/s"}]},
    {"name": "web", "image": "busybox", "links": ["db"], "portMappings": [{"containerPort": 80}]}]}"#;

fn durable(dir: &Path) -> EngineConfig {
    EngineConfig { data_dir: Some(dir.to_path_buf()), ..EngineConfig::default() }
}

fn all_changes(engine: &DockerTaskEngine) -> Vec<StateChange> {
    let mut reader = engine.task_events_from(1).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(item) = reader.try_next() {
        match item {
            LogItem::Change(c) => out.push(c),
            LogItem::Gap { from, to } => panic!("unexpected gap {from}..{to}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_engine_on_the_same_data_directory_resumes_where_the_old_one_was() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());

    let mut first = engine_with(&fake, durable(dir.path())).await;
    let instance = first.instance_id().map(str::to_string).unwrap_or_default();
    let mut events = Watcher::new(first.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(PAIR, 1);
    let arn = t.arn.clone();
    first.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["db", "web"], ContainerStatus::Running).await;
    let tasks_before = first.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    let log_before = all_changes(&first);
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // Every container carries this berth's instance label.
    let ours: Vec<_> = fake.containers().into_iter().filter(|c| c.labels.get(labels::TASK_ARN) == Some(&arn)).collect();
    assert_eq!(ours.len(), 2);
    assert!(ours.iter().all(|c| c.labels.get(labels::INSTANCE) == Some(&instance)));

    let second = engine_with(&fake, durable(dir.path())).await;
    assert_eq!(second.instance_id(), Some(instance.as_str()), "the instance id is kept");
    let tasks_after = second.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks_after.len(), 1);
    assert_eq!(tasks_after[0].arn, tasks_before[0].arn);
    for (a, b) in tasks_after[0].containers.iter().zip(&tasks_before[0].containers) {
        assert_eq!(
            (a.name(), &a.docker_id, &a.docker_name, a.known_status),
            (b.name(), &b.docker_id, &b.docker_name, b.known_status)
        );
    }
    assert_eq!(all_changes(&second), log_before, "the same change log");
    // A reader resumes from any position without gaps or repeats.
    let last = log_before.last().map_or(0, |c| c.seq);
    for from in 1..=last {
        let mut r = second.task_events_from(from).unwrap_or_else(|e| panic!("{e}"));
        let mut seqs = Vec::new();
        while let Some(LogItem::Change(c)) = r.try_next() {
            seqs.push(c.seq);
        }
        assert_eq!(seqs, (from..=last).collect::<Vec<_>>());
    }

    let mut events = Watcher::new(second.task_events().unwrap_or_else(|e| panic!("{e}")));
    second.stop_task(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    let stopped = until_all(&mut events, &arn, &["db", "web"], ContainerStatus::Stopped).await;
    assert!(stopped.iter().any(|c| c.task_status == TaskStatus::Stopped));
    assert!(stopped.iter().all(|c| c.seq > last), "sequence numbers go on after a restart");
    for c in fake.containers().into_iter().filter(|c| c.labels.get(labels::TASK_ARN) == Some(&arn)) {
        assert_eq!(fake.creates(&c.name), 1, "{} created once", c.name);
        assert_eq!(c.times_started, 1, "{} started once", c.name);
    }
    assert_eq!(fake.restarts_of_exited(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_happened_while_berth_was_down_is_found_on_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let mut first = engine_with(&fake, durable(dir.path())).await;
    let mut events = Watcher::new(first.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(PAIR, 2);
    let arn = t.arn.clone();
    first.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["db", "web"], ContainerStatus::Running).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // While berth is down, the essential `db` is killed.
    let db = fake
        .containers()
        .into_iter()
        .find(|c| c.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some("db"))
        .unwrap_or_else(|| panic!("db exists"));
    assert!(fake.kill(&db.name, 137));

    let second = engine_with(&fake, durable(dir.path())).await;
    let mut events = Watcher::new(second.task_events_from(1).unwrap_or_else(|e| panic!("{e}")));
    let changes = until_task_stopped(&mut events, &arn).await;
    let db_stopped = changes.iter().find(|c| c.container_name == "db" && c.status == ContainerStatus::Stopped);
    assert_eq!(db_stopped.and_then(|c| c.exit_code), Some(137), "{changes:#?}");
    until_all(&mut events, &arn, &["web"], ContainerStatus::Stopped).await;
    assert_eq!(fake.restarts_of_exited(), 0, "an exited container is never started again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_is_held_by_one_engine_at_a_time() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    let mut first = engine_with(&fake, durable(dir.path())).await;
    let mut second = DockerTaskEngine::new(durable(dir.path()), Arc::new(fake.clone()));
    match second.init().await {
        Err(EngineError::Store(StoreError::Locked { dir: locked, .. })) => assert_eq!(locked, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    let message =
        EngineError::Store(StoreError::Locked { dir: dir.path().into(), lock: dir.path().join("lock") }).to_string();
    assert!(message.contains("in use by another berth"), "{message}");
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    second.init().await.unwrap_or_else(|e| panic!("after the first is gone: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_state_is_imported_by_a_new_engine() {
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let first = engine(&fake).await;
    let mut events = Watcher::new(first.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(PAIR, 3);
    let arn = t.arn.clone();
    first.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["db", "web"], ContainerStatus::Running).await;
    let json = first.marshal_json().await.unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&json);
    assert!(text.contains("\"SchemaVersion\""), "{text}");

    let mut second = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
    second.unmarshal_json(&json).await.unwrap_or_else(|e| panic!("{e}"));
    second.init().await.unwrap_or_else(|e| panic!("{e}"));
    let before = first.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    let after = second.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].arn, before[0].arn);
    assert_eq!(after[0].desired_status, TaskStatus::Running);
    for (a, b) in after[0].containers.iter().zip(&before[0].containers) {
        assert_eq!((&a.docker_id, a.known_status), (&b.docker_id, b.known_status));
    }
    // In memory the import is whole: the same change log comes out again.
    let again = second.marshal_json().await.unwrap_or_else(|e| panic!("{e}"));
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("{e}")),
        serde_json::from_slice(&again).unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(a["Changes"], b["Changes"], "the change log comes along");
    assert_eq!(a["NextSeq"], b["NextSeq"]);
    let garbage = second.unmarshal_json(b"{").await;
    assert!(matches!(garbage, Err(EngineError::AlreadyInitialized)));
    let mut third = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
    assert!(matches!(third.unmarshal_json(b"{\"SchemaVersion\": 99}").await, Err(EngineError::InvalidState(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_init_waits_for_docker_to_answer() {
    let fake = FakeDocker::new();
    fake.set_unreachable(true);
    let config = EngineConfig { init_backoff: std::time::Duration::from_millis(20), ..EngineConfig::default() };
    let mut engine = DockerTaskEngine::new(config, Arc::new(fake.clone()));
    assert!(matches!(engine.init().await, Err(EngineError::Docker(_))));
    let opener = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        opener.set_unreachable(false);
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), engine.must_init())
        .await
        .unwrap_or_else(|_| panic!("must_init never returned"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(engine.list_tasks().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_docker_name_is_saved_before_its_create_and_its_id_right_after() {
    let fake = fake();
    fake.delay(berth_testutils::Op::CreateContainer, std::time::Duration::from_millis(300));
    let saver = berth_store::MemorySaver::new();
    let mut engine = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
    engine.set_saver(Box::new(saver.clone())).unwrap_or_else(|e| panic!("{e}"));
    engine.init().await.unwrap_or_else(|e| panic!("{e}"));
    let t = task(r#"{"family": "wal", "containerDefinitions": [{"name": "app", "image": "busybox"}]}"#, 4);
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    // While the create call is in flight, the saved record already has the name.
    eventually("the create call is made", async || fake.calls(berth_testutils::Op::CreateContainer) == 1).await;
    assert!(fake.containers().is_empty(), "the create has not answered yet");
    let saved = saver.snapshot();
    let app = &saved.tasks[0].containers[0];
    let name = app.docker_name.clone().unwrap_or_else(|| panic!("the Docker name is saved before the create"));
    assert_eq!(app.applied_status, ContainerStatus::Created);
    assert!(app.docker_id.is_none());
    // Once it answers, the id is saved.
    eventually("the id is saved", async || saver.snapshot().tasks[0].containers[0].docker_id.is_some()).await;
    let id = fake.container(&name).map(|c| c.id).unwrap_or_default();
    assert_eq!(saver.snapshot().tasks[0].containers[0].docker_id.as_deref(), Some(id.as_str()));
}
