//! Every Docker call is bounded and counted, and nothing the engine must do waits behind
//! unrelated work (issue 14, item 6).

mod common;

use berth_engine::{DockerTaskEngine, EngineConfig, TaskEngine};
use berth_store::MemorySaver;
use common::*;
use std::sync::Arc;
use std::time::Duration;

const FOREVER: &str =
    r#"{"family": "f", "containerDefinitions": [{"name": "web", "image": "busybox", "command": ["httpd", "-f"]}]}"#;

/// The group commit has its own thread: with every blocking thread of the runtime taken
/// (as credential helpers that hang would take them), a task is still saved.
#[test]
fn the_group_commit_never_waits_behind_blocking_work() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let fake = fake();
        let mut engine = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
        engine.set_saver(Box::new(MemorySaver::new())).unwrap_or_else(|e| panic!("{e}"));
        engine.init().await.unwrap_or_else(|e| panic!("{e}"));

        // The runtime's one blocking thread, taken until the end of the test.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (taken, is_taken) = tokio::sync::oneshot::channel();
        let hog = tokio::task::spawn_blocking(move || {
            let _ = taken.send(());
            let _ = held.recv();
        });
        is_taken.await.unwrap_or_else(|e| panic!("{e}"));

        // A hang guard, not a speed limit: the old commit waited for the blocking thread.
        let added = tokio::time::timeout(Duration::from_secs(30), engine.add_task(task(FOREVER, 1))).await;
        let _ = release.send(());
        let _ = hog.await;
        match added {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("add_task: {e}"),
            Err(_) => panic!("the task's commit waited behind the runtime's blocking work"),
        }
        let _ = engine.shutdown().await;
    });
}

const WITH_PORT: &str = r#"{"family": "f", "containerDefinitions": [{"name": "web", "image": "busybox",
    "command": ["httpd", "-f"], "portMappings": [{"containerPort": 80}]}]}"#;

/// The container calls that wait for one of the `docker_concurrency` places.
const GATED: [berth_testutils::Op; 8] = [
    berth_testutils::Op::CreateContainer,
    berth_testutils::Op::StartContainer,
    berth_testutils::Op::StopContainer,
    berth_testutils::Op::RemoveContainer,
    berth_testutils::Op::InspectContainer,
    berth_testutils::Op::CreateVolume,
    berth_testutils::Op::RemoveVolume,
    berth_testutils::Op::InspectVolume,
];

/// The inspects that Docker's `start` events of containers with port mappings ask for wait
/// for a place as every other call: with inspects held by Docker, many such containers
/// starting at once never have more than `docker_concurrency` calls with Docker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_inspects_wait_for_one_of_the_docker_concurrency_places() {
    let fake = fake();
    fake.track_in_flight(&GATED);
    // Docker holds every inspect until the test lets the waiting ones go, every 20 ms: the
    // inspects an event asked for pile up at Docker unless the gate holds them back.
    fake.hold(berth_testutils::Op::InspectContainer);
    let releaser = {
        let fake = fake.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                fake.release_held(berth_testutils::Op::InspectContainer);
            }
        })
    };
    let mut engine = engine_with(&fake, EngineConfig { docker_concurrency: 2, ..EngineConfig::default() }).await;
    let mut w = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let mut arns = Vec::new();
    for n in 0..12 {
        let t = task(WITH_PORT, 200 + n);
        arns.push(t.arn.clone());
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // RUNNING carries the ports an event's inspect read.
    for arn in &arns {
        let changes = until_all(&mut w, arn, &["web"], berth_model::ContainerStatus::Running).await;
        let running = changes.iter().find(|c| c.status == berth_model::ContainerStatus::Running);
        assert!(running.is_some_and(|c| !c.port_bindings.is_empty()), "{changes:?}");
    }
    // Every container is inspected by its start and by its `start` event: 24 held inspects.
    eventually("every event's inspect answered", async || {
        fake.calls(berth_testutils::Op::InspectContainer) >= 24
            && fake.in_flight(berth_testutils::Op::InspectContainer) == 0
    })
    .await;
    releaser.abort();
    fake.stop_holding(berth_testutils::Op::InspectContainer);
    assert_eq!(
        fake.max_in_flight(),
        2,
        "at most docker_concurrency calls with Docker at once, and the test filled them"
    );
    let _ = engine.shutdown().await;
}
