//! The engine's death is loud (issue 14, item 1) and its shutdown holds Docker calls
//! (item 5): a store commit that fails stops the loop; every change reader ends once it
//! has read what was committed, saying why; calls after that get the failure; no Docker
//! call starts after the failure or after shutdown began.

mod common;

use berth_engine::{DockerTaskEngine, EngineConfig, EngineError, EngineExit, LogItem, TaskEngine};
use berth_model::ContainerStatus;
use berth_store::{MemorySaver, StoreError};
use berth_testutils::Op;
use common::*;
use std::sync::Arc;
use std::time::Duration;

const FOREVER: &str =
    r#"{"family": "f", "containerDefinitions": [{"name": "web", "image": "busybox", "command": ["httpd", "-f"]}]}"#;

/// The calls a task's containers cause, by kind.
fn task_calls(fake: &berth_testutils::FakeDocker) -> Vec<u64> {
    [Op::PullImage, Op::ImageExists, Op::CreateContainer, Op::StartContainer, Op::InspectContainer]
        .into_iter()
        .map(|op| fake.calls(op))
        .collect()
}

/// Read until the reader ends, within a bound: the changes read.
async fn read_to_end(reader: &mut berth_engine::ChangeReader) -> Vec<LogItem> {
    let mut items = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return items,
            Err(_) => {
                panic!("the reader did not end within 10 s after the engine stopped ({} items read)", items.len())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_stops_the_engine_ends_every_reader_and_says_why() {
    let fake = fake();
    let store = MemorySaver::new();
    let mut engine = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
    engine.set_saver(Box::new(store.clone())).unwrap_or_else(|e| panic!("{e}"));
    engine.init().await.unwrap_or_else(|e| panic!("{e}"));
    let mut from_start = engine.task_events_from(1).unwrap_or_else(|e| panic!("{e}"));
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let first = task(FOREVER, 1);
    let first_arn = first.arn.clone();
    engine.add_task(first).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &first_arn, &["web"], ContainerStatus::Running).await;
    assert_eq!(engine.exit().map(|e| e.to_string()), None, "running");

    // The disk fails: the next commit (this task's) fails, and the loop stops.
    store.set_failing(true);
    let second = task(FOREVER, 2);
    let second_arn = second.arn.clone();
    match engine.add_task(second).await {
        Err(EngineError::Stopped(e)) => {
            assert!(matches!(&*e, EngineError::Store(StoreError::Io { .. })), "{e:?}");
            assert!(e.to_string().contains("injected failure"), "names the cause: {e}");
        }
        other => panic!("expected the engine's failure, got {other:?}"),
    }
    let exit = tokio::time::timeout(Duration::from_secs(10), engine.stopped()).await.expect("the loop ends");
    // What was in flight at the failure (the first task's start and its inspect) ends.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = task_calls(&fake);
    assert!(matches!(&exit, EngineExit::Failed(e) if e.to_string().contains("injected failure")), "{exit}");

    // Every reader ends once it has read what was committed, and can say why.
    let items = read_to_end(&mut from_start).await;
    let committed: Vec<u64> = items
        .iter()
        .map(|i| match i {
            LogItem::Change(c) => c.seq,
            gap => panic!("{gap:?}"),
        })
        .collect();
    assert_eq!(committed, (1..=committed.len() as u64).collect::<Vec<_>>(), "every committed change, in order");
    assert!(committed.len() >= 3, "the first task's changes: {committed:?}");
    assert!(matches!(from_start.end(), Some(EngineExit::Failed(_))));
    let mut late = engine.task_events().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), late.next()).await.expect("ends at once"), None);

    // Calls after the death get the failure; no Docker call was made for the task that was
    // never durable.
    match engine.list_tasks().await {
        Err(EngineError::Stopped(e)) => assert!(e.to_string().contains("injected failure")),
        other => panic!("expected the engine's failure, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(task_calls(&fake), before, "no Docker call after the engine stopped");
    let second_containers =
        fake.containers().into_iter().filter(|c| c.labels.get(berth_docker::labels::TASK_ARN) == Some(&second_arn));
    assert_eq!(second_containers.count(), 0, "nothing made for the task whose commit failed");
    match engine.shutdown().await {
        Err(EngineError::Stopped(_)) => {}
        other => panic!("shutdown says the engine had failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_a_shut_down_engine_ends() {
    let fake = fake();
    let engine = engine(&fake).await;
    let mut reader = engine.task_events().unwrap_or_else(|e| panic!("{e}"));
    let waiting = tokio::spawn(async move {
        let item = reader.next().await;
        (item, reader.end())
    });
    engine.stop().await.unwrap_or_else(|e| panic!("{e}"));
    let (item, end) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting reader ends")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(item, None);
    assert!(matches!(end, Some(EngineExit::Shutdown)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_docker_call_starts_once_shutdown_has_begun_and_the_next_start_makes_them() {
    let fake = fake();
    // Slow creates, one at a time: most tasks' creates wait in the queue at shutdown.
    fake.delay(Op::CreateContainer, Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = EngineConfig { data_dir: Some(dir.path().into()), docker_concurrency: 1, ..EngineConfig::default() };
    let engine = engine_with(&fake, config.clone()).await;
    let mut arns = Vec::new();
    for n in 0..20 {
        let t = task(FOREVER, 100 + n);
        arns.push(t.arn.clone());
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    engine.begin_shutdown().await;
    // Calls that had started may still end; none starts from here on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let creates = fake.calls(Op::CreateContainer);
    assert!(creates < 20, "most creates were still queued: {creates}");
    // A task added now is durable, and its calls wait for the next start.
    let late = task(FOREVER, 999);
    arns.push(late.arn.clone());
    engine.add_task(late).await.unwrap_or_else(|e| panic!("{e}"));
    let calls = task_calls(&fake);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.calls(Op::CreateContainer), creates, "no create started after shutdown began");
    assert_eq!(task_calls(&fake), calls, "no Docker call started after shutdown began");
    engine.stop().await.unwrap_or_else(|e| panic!("{e}"));
    let after = task_calls(&fake);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(task_calls(&fake), after, "no call after stop");
    drop(engine);

    // The next start (the data directory released by `stop`) makes them: every task runs,
    // each container created once.
    fake.delay(Op::CreateContainer, Duration::ZERO);
    let next = engine_with(&fake, config).await;
    let tasks = next.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks.len(), arns.len(), "every task was durable");
    eventually("every task running", async || {
        next.list_tasks()
            .await
            .is_ok_and(|ts| ts.iter().all(|t| t.containers.iter().all(|c| c.known_status == ContainerStatus::Running)))
    })
    .await;
    for arn in &arns {
        let ours = fake.containers().into_iter().filter(|c| c.labels.get(berth_docker::labels::TASK_ARN) == Some(arn));
        assert_eq!(ours.count(), 1, "{arn}: one container");
    }
    next.stop().await.unwrap_or_else(|e| panic!("{e}"));
}
