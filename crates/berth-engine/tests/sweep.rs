//! The task sweep (SPEC 7), on the fake Docker with a clock the test moves: a STOPPED
//! task's containers and task volumes are removed once the cleanup wait is over, then the
//! task leaves the state.

mod common;

use berth_docker::labels;
use berth_engine::{DockerTaskEngine, EngineConfig, ManualClock, TaskEngine};
use berth_model::ContainerStatus;
use chrono::{TimeZone, Utc};
use common::*;
use std::sync::Arc;

const WITH_VOLUME: &str = r#"{"family": "sweep", "volumes": [{"name": "scratch", "host": {}}], "containerDefinitions": [
    {"name": "job", "image": "busybox", "command": ["exit", "0"],
     "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/s"}]}]}"#;

async fn setup(wait_secs: i64) -> (berth_testutils::FakeDocker, ManualClock, DockerTaskEngine) {
    let fake = fake();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now));
    let mut config = EngineConfig::default();
    config.plan.cleanup_wait = chrono::Duration::seconds(wait_secs);
    let mut engine = DockerTaskEngine::new(config, Arc::new(fake.clone())).with_clock(Arc::new(clock.clone()));
    engine.init().await.unwrap_or_else(|e| panic!("{e}"));
    (fake, clock, engine)
}

fn containers_of(fake: &berth_testutils::FakeDocker, arn: &str) -> usize {
    fake.containers().iter().filter(|c| c.labels.get(labels::TASK_ARN).map(String::as_str) == Some(arn)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_task_is_swept_after_the_wait_and_not_before() {
    let (fake, clock, engine) = setup(60).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(WITH_VOLUME, 1);
    let arn = t.arn.clone();
    let volume = t.docker_volume_name(t.volume("scratch").unwrap_or_else(|| panic!("scratch")));
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["job"], ContainerStatus::Stopped).await;
    assert_eq!(containers_of(&fake, &arn), 1);
    assert!(fake.has_volume(&volume));

    clock.advance(chrono::Duration::seconds(59));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(containers_of(&fake, &arn), 1, "not swept before the wait is over");
    assert_eq!(engine.list_tasks().await.map(|t| t.len()).unwrap_or_default(), 1);

    clock.advance(chrono::Duration::seconds(1));
    eventually("the container and volume are removed and the task forgotten", async || {
        containers_of(&fake, &arn) == 0
            && !fake.has_volume(&volume)
            && engine.list_tasks().await.map(|t| t.is_empty()).unwrap_or(false)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_wait_works_and_running_tasks_are_never_swept() {
    let (fake, clock, engine) = setup(1).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let done = task(WITH_VOLUME, 2);
    let running = task(
        r#"{"family": "r", "containerDefinitions": [{"name": "srv", "image": "busybox", "command": ["httpd", "-f"]}]}"#,
        3,
    );
    let (done_arn, running_arn) = (done.arn.clone(), running.arn.clone());
    engine.add_task(done).await.unwrap_or_else(|e| panic!("{e}"));
    engine.add_task(running).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &done_arn, &["job"], ContainerStatus::Stopped).await;
    until_all(&mut events, &running_arn, &["srv"], ContainerStatus::Running).await;
    clock.advance(chrono::Duration::hours(5));
    // The sweep removes the containers, then the volume, then forgets the task: wait for all.
    eventually("the stopped task is swept", async || {
        containers_of(&fake, &done_arn) == 0
            && engine.list_tasks().await.is_ok_and(|tasks| tasks.iter().all(|t| t.arn != done_arn))
    })
    .await;
    let tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks.iter().map(|t| t.arn.as_str()).collect::<Vec<_>>(), [running_arn.as_str()]);
    assert_eq!(containers_of(&fake, &running_arn), 1);
}
