//! Reconciliation (SPEC 6) and Docker outages: a container that vanished while berth was
//! down is STOPPED with the reason; containers of this instance that no task owns are
//! removed after the grace period, and no other container is touched; while Docker does
//! not answer, tasks are accepted and kept, Docker calls wait without counting as failures,
//! and everything converges once Docker answers.

mod common;

use berth_docker::{ContainerConfig, DockerClient, labels};
use berth_engine::{DockerTaskEngine, EngineConfig, TaskEngine};
use berth_model::ContainerStatus;
use berth_testutils::{Behaviour, FakeDocker};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const ONE: &str = r#"{"family": "one", "containerDefinitions": [{"name": "web", "image": "busybox"}]}"#;

fn durable(dir: &Path) -> EngineConfig {
    EngineConfig { data_dir: Some(dir.to_path_buf()), ..EngineConfig::default() }
}

fn labelled(name: &str, instance: &str) -> ContainerConfig {
    let mut labels = BTreeMap::new();
    if !instance.is_empty() {
        labels.insert(labels::INSTANCE.to_string(), instance.to_string());
        labels.insert(labels::TASK_ARN.to_string(), "arn:berth:task/gone".to_string());
        labels.insert(labels::CONTAINER_NAME.to_string(), "web".to_string());
    }
    ContainerConfig { name: name.into(), image: "busybox:latest".into(), labels, ..ContainerConfig::default() }
}

/// An engine on `dir` that has brought task ONE (n = 1) to `status`: the engine, a watcher
/// of its changes, the task's arn.
async fn one_task_at(fake: &FakeDocker, dir: &Path, status: ContainerStatus) -> (DockerTaskEngine, Watcher, String) {
    let engine = engine_with(fake, durable(dir)).await;
    let t = task(ONE, 1);
    let arn = t.arn.clone();
    let mut w = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &arn, &["web"], status).await;
    (engine, w, arn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_vanished_while_berth_was_down_is_stopped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let (mut first, _, arn) = one_task_at(&fake, dir.path(), ContainerStatus::Running).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let id = fake.containers()[0].id.clone();
    fake.remove_container(&id).await.unwrap_or_else(|e| panic!("{e}"));

    let second = engine_with(&fake, durable(dir.path())).await;
    let mut w = Watcher::new(second.task_events_from(1).unwrap_or_else(|e| panic!("{e}")));
    let stopped = until_all(&mut w, &arn, &["web"], ContainerStatus::Stopped).await;
    let change = stopped.iter().find(|c| c.status == ContainerStatus::Stopped).expect("a STOPPED change");
    assert_eq!(change.reason.as_deref(), Some("container vanished while berth was down"));
    assert_eq!(fake.calls(berth_testutils::Op::CreateContainer), 1, "not created again");
    assert!(fake.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_no_task_owns_are_removed_after_the_grace_period_and_no_other_is_touched() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.add_image("busybox:latest");
    fake.set_behaviour(|_| Behaviour::forever());
    let config = || EngineConfig { orphan_grace: Duration::from_millis(400), ..durable(dir.path()) };
    let mut first = engine_with(&fake, config()).await;
    let instance = first.instance_id().unwrap_or_default().to_string();
    let t = task(ONE, 2);
    let arn = t.arn.clone();
    let mut w = Watcher::new(first.task_events().unwrap_or_else(|e| panic!("{e}")));
    first.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &arn, &["web"], ContainerStatus::Running).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    // While berth is down: a container of this instance that no task owns (a duplicate, or
    // one of a task whose record is gone), one of another berth, one of nobody.
    let orphan = fake.create_container(&labelled("orphan", &instance)).await.unwrap_or_else(|e| panic!("{e}"));
    let other = fake.create_container(&labelled("other", "another-berth")).await.unwrap_or_else(|e| panic!("{e}"));
    let plain = fake.create_container(&labelled("plain", "")).await.unwrap_or_else(|e| panic!("{e}"));

    let second = engine_with(&fake, config()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.container(&orphan).is_some(), "left alone during the grace period");
    eventually("the orphan is removed", async || fake.container(&orphan).is_none()).await;
    assert!(fake.container(&other).is_some(), "another berth's container is never touched");
    assert!(fake.container(&plain).is_some(), "a container of nobody is never touched");
    let tasks = second.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    let id = tasks[0].containers[0].docker_id.clone().expect("the task's container");
    assert!(
        fake.container(&id).is_some_and(|c| c.state == berth_testutils::RunState::Running),
        "the task's own container is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_docker_does_not_answer_tasks_wait_and_converge_once_it_does() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    fake.set_unreachable(true);
    let mut engine = DockerTaskEngine::new(durable(dir.path()), Arc::new(fake.clone()));
    engine.init_without_docker().await.unwrap_or_else(|e| panic!("starts without Docker: {e}"));
    let mut w = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(ONE, 3);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("accepted while Docker is down: {e}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    let c = &tasks[0].containers[0];
    assert_eq!((c.failures, c.applying_error.is_none()), (0, true), "waiting is no failure: {c:?}");
    assert_eq!(fake.calls(berth_testutils::Op::CreateContainer), 0);

    fake.set_unreachable(false);
    until_all(&mut w, &arn, &["web"], ContainerStatus::Running).await;
    assert_eq!(fake.calls(berth_testutils::Op::CreateContainer), 1);
    assert_eq!(fake.calls(berth_testutils::Op::StartContainer), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_while_running_loses_nothing_and_runs_nothing_twice() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let engine = engine_with(&fake, durable(dir.path())).await;
    let mut w = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let a = task(ONE, 4);
    let arn_a = a.arn.clone();
    engine.add_task(a).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &arn_a, &["web"], ContainerStatus::Running).await;

    fake.set_unreachable(true);
    let b = task(ONE, 5);
    let arn_b = b.arn.clone();
    engine.add_task(b).await.unwrap_or_else(|e| panic!("{e}"));
    engine.stop_task(&arn_a).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.set_unreachable(false);

    until_task_stopped(&mut w, &arn_a).await;
    until_all(&mut w, &arn_b, &["web"], ContainerStatus::Running).await;
    let tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    for t in &tasks {
        assert!(t.containers.iter().all(|c| c.applying_error.is_none()), "{t:?}");
    }
    assert_eq!(fake.calls(berth_testutils::Op::StartContainer), 2, "one start per container");
    assert_eq!(fake.calls(berth_testutils::Op::CreateContainer), 2, "one create per container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_still_fails_at_once_when_docker_does_not_answer() {
    let fake = FakeDocker::new();
    fake.set_unreachable(true);
    let mut engine = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
    assert!(engine.init().await.is_err(), "the seed's init reaches Docker first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_inspects_its_containers_a_bounded_number_at_a_time() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let config = || EngineConfig { docker_concurrency: 3, ..durable(dir.path()) };
    let mut first = engine_with(&fake, config()).await;
    let mut w = Watcher::new(first.task_events().unwrap_or_else(|e| panic!("{e}")));
    let mut arns = Vec::new();
    for n in 0..10 {
        let t = task(ONE, 100 + n);
        arns.push(t.arn.clone());
        first.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    for arn in &arns {
        until_all(&mut w, arn, &["web"], ContainerStatus::Running).await;
    }
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // Each inspect now takes 400 ms; counted as it begins.
    fake.delay(berth_testutils::Op::InspectContainer, Duration::from_millis(400));
    let before = fake.calls(berth_testutils::Op::InspectContainer);
    let second = engine_with(&fake, config()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.calls(berth_testutils::Op::InspectContainer) - before, 3, "three at a time, not ten");
    eventually("every container inspected", async || {
        second.status().await.is_ok_and(|s| s.reconciling == 0 && s.docker_up)
    })
    .await;
    assert_eq!(fake.calls(berth_testutils::Op::InspectContainer) - before, 10);
}

/// A start that Docker does after berth holds the container STOPPED (a killed berth's start
/// that reached Docker late) never leaves it running: seen by its event while berth runs,
/// and by the listing when berth starts again, the container is stopped again, and berth
/// tells no second STOPPED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_start_of_a_container_berth_holds_stopped_is_stopped_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let (mut first, mut w, arn) = one_task_at(&fake, dir.path(), ContainerStatus::Running).await;
    first.stop_task(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &arn, &["web"], ContainerStatus::Stopped).await;
    let id = fake.containers()[0].id.clone();
    let running = |fake: &FakeDocker| fake.container(&id).is_some_and(|c| c.state.as_str() == "running");

    // While berth runs: the start event.
    fake.start_container(&id).await.unwrap_or_else(|e| panic!("{e}"));
    eventually("stopped again after its start event", async || !running(&fake)).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // While berth is down: the listing of the next start.
    fake.start_container(&id).await.unwrap_or_else(|e| panic!("{e}"));
    let mut second = engine_with(&fake, durable(dir.path())).await;
    eventually("stopped again when berth starts", async || !running(&fake)).await;
    let mut w = Watcher::new(second.task_events_from(1).unwrap_or_else(|e| panic!("{e}")));
    until_all(&mut w, &arn, &["web"], ContainerStatus::Stopped).await;
    let stopped = w.of(&arn).iter().filter(|c| c.status == ContainerStatus::Stopped).count();
    assert_eq!(stopped, 1, "one STOPPED change: {:?}", w.of(&arn));
    assert_eq!(fake.calls(berth_testutils::Op::CreateContainer), 1, "not created again");
    second.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

/// The same for a container that never ran (its start failed for good, so berth holds it
/// STOPPED without a start): a late start while berth is down is stopped at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_start_of_a_container_that_never_ran_is_stopped_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    fake.fail_next(berth_testutils::Op::StartContainer, None, 10, berth_docker::ErrorKind::Permanent);
    let (mut first, _, _) = one_task_at(&fake, dir.path(), ContainerStatus::Stopped).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    fake.clear_faults();
    let id = fake.containers()[0].id.clone();
    fake.start_container(&id).await.unwrap_or_else(|e| panic!("{e}"));
    let running = |fake: &FakeDocker| fake.container(&id).is_some_and(|c| c.state.as_str() == "running");
    assert!(running(&fake));
    let mut second = engine_with(&fake, durable(dir.path())).await;
    eventually("stopped again when berth starts", async || !running(&fake)).await;
    second.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Docker lists a container before it can be inspected (a create still in flight when berth
/// starts): an inspect that does not find a listed container looks again after the retry
/// wait instead of calling it vanished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_container_not_found_by_its_first_inspect_has_not_vanished() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let (mut first, _, arn) = one_task_at(&fake, dir.path(), ContainerStatus::Running).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let id = fake.containers()[0].id.clone();
    fake.fail_next(berth_testutils::Op::InspectContainer, Some(&id), 1, berth_docker::ErrorKind::NotFound);

    let second = engine_with(&fake, durable(dir.path())).await;
    let name = fake.containers()[0].name.clone();
    eventually("inspected again", async || fake.calls_on(berth_testutils::Op::InspectContainer, &name) >= 2).await;
    eventually("reconciled", async || second.status().await.is_ok_and(|s| s.reconciling == 0)).await;
    let view = second.task(&arn).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("task"));
    assert_eq!(view.containers[0].known_status, ContainerStatus::Running, "{:?}", view.containers[0].reason);
}
