//! Host resource admission in the engine (`docs/resources.md`), on the fake Docker: a task
//! that does not fit waits, in submit order, with no Docker call for it, and starts as soon
//! as resources free; a static host port is never held by two tasks; a task that can never
//! fit is refused; the state survives a restart.

mod common;

use berth_docker::labels;
use berth_engine::{Engine, EngineConfig, EngineError, EngineHandle, TaskEngine};
use berth_model::admission::{HostCapacity, HostPort, Reserve};
use berth_model::container::Protocol;
use berth_model::{ContainerStatus, Task, TaskStatus};
use berth_testutils::FakeDocker;
use common::*;
use std::path::Path;
use std::sync::Arc;

/// A host of 2,048 CPU units and 1,000 MiB, port 22/tcp reserved.
fn capacity() -> HostCapacity {
    HostCapacity::new(
        2048,
        1000,
        &Reserve { ports: vec![HostPort { port: 22, protocol: Protocol::Tcp }], ..Reserve::default() },
    )
}

fn config(capacity: HostCapacity, dir: Option<&Path>) -> EngineConfig {
    EngineConfig { capacity: Some(capacity), data_dir: dir.map(Path::to_path_buf), ..EngineConfig::default() }
}

async fn start(fake: &FakeDocker, config: EngineConfig) -> EngineHandle {
    Engine::builder(config, Arc::new(fake.clone())).start().await.unwrap_or_else(|e| panic!("{e}"))
}

/// A task of one container of `image` (pullable on `fake`) reserving `memory` MiB and,
/// when given, static host port `port`; its command is `command`.
fn sized(fake: &FakeDocker, n: u128, memory: u64, port: Option<u16>, command: &str) -> Task {
    let image = format!("example/t{n}:latest");
    fake.add_registry_image(&image);
    let ports =
        port.map_or(String::new(), |p| format!(r#", "portMappings": [{{"containerPort": 80, "hostPort": {p}}}]"#));
    let json = format!(
        r#"{{"family": "t{n}", "containerDefinitions": [{{"name": "web", "image": "{image}", "memory": {memory},
            "command": ["{command}"]{ports}}}]}}"#
    );
    task(&json, n)
}

/// Docker calls made for `task`: its pulls and its containers.
fn docker_calls(fake: &FakeDocker, task: &Task) -> (u64, usize) {
    let image = &task.containers[0].spec.image;
    let containers =
        fake.containers().into_iter().filter(|c| c.labels.get(labels::TASK_ARN) == Some(&task.arn)).count();
    (fake.pulls(image), containers)
}

async fn add(engine: &EngineHandle, task: &Task) {
    engine.add_task(task.clone()).await.unwrap_or_else(|e| panic!("add {}: {e}", task.arn));
}

async fn held(engine: &EngineHandle, task: &Task) -> Task {
    engine.task(&task.arn).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{} is not held", task.arn))
}

async fn reason(engine: &EngineHandle, task: &Task) -> Option<String> {
    engine.waiting_reason(&task.arn).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_do_not_fit_wait_in_submit_order_and_start_as_soon_as_resources_free() {
    let fake = fake();
    let engine = start(&fake, config(capacity(), None)).await;
    let mut w = Watcher::new(engine.task_events());
    let a = sized(&fake, 1, 600, None, "sleep infinity");
    let b = sized(&fake, 2, 600, None, "sleep infinity");
    let c = sized(&fake, 3, 100, None, "sleep infinity");
    for t in [&a, &b, &c] {
        add(&engine, t).await;
    }
    until_all(&mut w, &a.arn, &["web"], ContainerStatus::Running).await;
    assert_eq!(reason(&engine, &a).await, None, "admitted");
    assert_eq!(reason(&engine, &b).await.as_deref(), Some("waiting for 600 MiB of memory: 400 free of 1000"));
    assert_eq!(
        reason(&engine, &c).await.as_deref(),
        Some("waiting for the tasks ahead of it to start, 1 task ahead"),
        "strict FIFO: c would fit, but b is ahead of it"
    );
    let waiting = engine.waiting_reasons().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(waiting.iter().map(|(arn, _)| arn.as_str()).collect::<Vec<_>>(), [&b.arn, &c.arn]);
    assert_eq!(docker_calls(&fake, &b), (0, 0), "no pull, no create while waiting");
    assert_eq!(docker_calls(&fake, &c), (0, 0));
    let b_held = held(&engine, &b).await;
    assert_eq!(b_held.known_status, TaskStatus::None);
    assert!(b_held.submitted > held(&engine, &a).await.submitted, "submit order recorded");

    engine.stop_task(&a.arn).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &b.arn, &["web"], ContainerStatus::Running).await;
    until_all(&mut w, &c.arn, &["web"], ContainerStatus::Running).await;
    let a_stopped = w.change(&a.arn, "web", ContainerStatus::Stopped).map(|c| c.seq);
    let b_created = w.change(&b.arn, "web", ContainerStatus::Created).map(|c| c.seq);
    assert!(a_stopped.is_some() && a_stopped < b_created, "b began only after a stopped: {:#?}", w.seen);
    assert!(engine.waiting_reasons().await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_host_port_is_never_held_by_two_tasks() {
    let fake = fake();
    let engine = start(&fake, config(capacity(), None)).await;
    let mut w = Watcher::new(engine.task_events());
    let a = sized(&fake, 1, 10, Some(8080), "sleep infinity");
    let b = sized(&fake, 2, 10, Some(8080), "sleep infinity");
    let other_port = sized(&fake, 3, 10, Some(8081), "sleep infinity");
    add(&engine, &a).await;
    add(&engine, &b).await;
    until_all(&mut w, &a.arn, &["web"], ContainerStatus::Running).await;
    assert_eq!(reason(&engine, &b).await.as_deref(), Some("waiting for host port 8080/tcp held by another task"));
    assert_eq!(docker_calls(&fake, &b), (0, 0));
    // a's container exits on its own: the task stops and its port passes to b.
    let a_id =
        held(&engine, &a).await.containers[0].docker_id.clone().unwrap_or_else(|| panic!("a's container has no id"));
    assert!(fake.exit(&a_id, 0));
    until_all(&mut w, &b.arn, &["web"], ContainerStatus::Running).await;
    let a_stopped = w.change(&a.arn, "web", ContainerStatus::Stopped).map(|c| c.seq);
    let b_created = w.change(&b.arn, "web", ContainerStatus::Created).map(|c| c.seq);
    assert!(a_stopped.is_some() && a_stopped < b_created, "8080 passed from a to b: {:#?}", w.seen);
    // Another port is another resource: it starts beside b.
    add(&engine, &other_port).await;
    until_all(&mut w, &other_port.arn, &["web"], ContainerStatus::Running).await;
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_can_never_fit_is_refused_and_nothing_is_done_for_it() {
    let fake = fake();
    let engine = start(&fake, config(capacity(), None)).await;
    let big = sized(&fake, 1, 1001, Some(22), "sleep infinity");
    match engine.add_task(big.clone()).await {
        Err(EngineError::NeverFits(e)) => assert_eq!(
            e.to_string(),
            "the task can never fit on this host: it reserves 1001 MiB of memory and the host has 1000 MiB; \
             host port 22/tcp is reserved on this host"
        ),
        other => panic!("not refused: {:?}", other.map(|o| o.created)),
    }
    assert!(engine.task(&big.arn).await.unwrap_or_else(|e| panic!("{e}")).is_none(), "not held");
    assert_eq!(docker_calls(&fake, &big), (0, 0));
    // The same task fits a host without a capacity.
    let unlimited = start(&fake, EngineConfig::default()).await;
    assert!(unlimited.add_task(big).await.is_ok());
    unlimited.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_operation_on_a_waiting_task_is_refused() {
    let fake = fake();
    let mut engine = engine_with(&fake, config(capacity(), None)).await;
    let a = sized(&fake, 1, 600, None, "sleep infinity");
    let b = sized(&fake, 2, 600, None, "sleep infinity");
    for t in [&a, &b] {
        engine.add_task(t.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    match engine.pull_container(&b.arn, "web").await {
        Err(EngineError::Operation(why)) => {
            assert_eq!(why, format!("task {} is waiting for 600 MiB of memory: 400 free of 1000", b.arn));
        }
        other => panic!("not refused: {other:?}"),
    }
    assert!(engine.create_container(&b.arn, "web").await.is_err());
    assert_eq!(docker_calls(&fake, &b), (0, 0));
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_task_stopped_leaves_the_queue_without_a_docker_call() {
    let fake = fake();
    let engine = start(&fake, config(capacity(), None)).await;
    let mut w = Watcher::new(engine.task_events());
    let a = sized(&fake, 1, 600, None, "sleep infinity");
    let b = sized(&fake, 2, 600, None, "sleep infinity");
    let c = sized(&fake, 3, 300, None, "sleep infinity");
    for t in [&a, &b, &c] {
        add(&engine, t).await;
    }
    until_all(&mut w, &a.arn, &["web"], ContainerStatus::Running).await;
    engine.stop_task(&b.arn).await.unwrap_or_else(|e| panic!("{e}"));
    until_task_stopped(&mut w, &b.arn).await;
    until_all(&mut w, &c.arn, &["web"], ContainerStatus::Running).await;
    assert_eq!(docker_calls(&fake, &b), (0, 0), "b never began");
    assert_eq!(docker_calls(&fake, &c).1, 1, "c, behind b, started beside a");
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admission_state_survives_a_restart_with_the_store() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    let first = start(&fake, config(capacity(), Some(dir.path()))).await;
    let mut w = Watcher::new(first.task_events());
    let a = sized(&fake, 1, 600, Some(8080), "sleep infinity");
    let b = sized(&fake, 2, 600, None, "sleep infinity");
    let c = sized(&fake, 3, 10, Some(8080), "sleep infinity");
    let d = sized(&fake, 4, 900, None, "sleep infinity");
    for t in [&a, &b, &c, &d] {
        add(&first, t).await;
    }
    until_all(&mut w, &a.arn, &["web"], ContainerStatus::Running).await;
    let before = first.waiting_reasons().await.unwrap_or_else(|e| panic!("{e}"));
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // The same capacity: a holds again at once, b, c and d wait in the same order for the same.
    let second = start(&fake, config(capacity(), Some(dir.path()))).await;
    assert_eq!(second.waiting_reasons().await.unwrap_or_else(|e| panic!("{e}")), before);
    assert_eq!(before.len(), 3);
    assert_eq!(docker_calls(&fake, &c), (0, 0));
    second.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // A smaller host: d can no longer ever fit and is stopped, with why; a still holds
    // (it runs), so b still waits behind it.
    let smaller = HostCapacity::new(2048, 800, &Reserve::default());
    let third = start(&fake, config(smaller, Some(dir.path()))).await;
    let mut w = Watcher::new(third.task_events());
    until_task_stopped(&mut w, &d.arn).await;
    let d_now = held(&third, &d).await;
    assert_eq!(
        d_now.stop_reason.as_deref(),
        Some("the task can never fit on this host: it reserves 900 MiB of memory and the host has 800 MiB")
    );
    assert_eq!(
        third.waiting_reason(&b.arn).await.unwrap_or_else(|e| panic!("{e}")).as_deref(),
        Some("waiting for 600 MiB of memory: 200 free of 800")
    );
    // Once a stops, b and then c (its port free again) start.
    third.stop_task(&a.arn).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &b.arn, &["web"], ContainerStatus::Running).await;
    until_all(&mut w, &c.arn, &["web"], ContainerStatus::Running).await;
    assert_eq!(docker_calls(&fake, &d), (0, 0), "d never began");
    third.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_submit_place_get_one_at_load_in_arn_order() {
    let fake = fake();
    let first = start(&fake, EngineConfig::default()).await;
    let (x, y) = (sized(&fake, 9, 10, None, "sleep infinity"), sized(&fake, 5, 10, None, "sleep infinity"));
    add(&first, &x).await;
    add(&first, &y).await;
    let exported = first.export_json().await.unwrap_or_else(|e| panic!("{e}"));
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    // The records as an earlier berth wrote them: no submit place.
    let mut json: serde_json::Value = serde_json::from_slice(&exported).unwrap_or_else(|e| panic!("{e}"));
    let tasks = json.get_mut("Tasks").and_then(|t| t.as_array_mut()).unwrap_or_else(|| panic!("no Tasks"));
    for t in tasks.iter_mut() {
        assert!(t.as_object_mut().and_then(|o| o.remove("submitted")).is_some(), "exported with its place");
    }
    let old = serde_json::to_vec(&json).unwrap_or_else(|e| panic!("{e}"));
    let second = Engine::builder(EngineConfig::default(), Arc::new(fake.clone()))
        .import(&old)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let places: Vec<(String, Option<u64>)> =
        second.list_tasks().await.unwrap_or_else(|e| panic!("{e}")).into_iter().map(|t| (t.arn, t.submitted)).collect();
    let mut arns = [x.arn.clone(), y.arn.clone()];
    arns.sort();
    assert_eq!(places, vec![(arns[0].clone(), Some(0)), (arns[1].clone(), Some(1))]);
    second.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}
