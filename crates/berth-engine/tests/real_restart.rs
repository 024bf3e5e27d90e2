//! The restart policy and `startTimeout` on the real Docker daemon (docs/restart-policy.md,
//! docs/start-timeout.md). Containers really exit and are really started again; the restart
//! period is measured on the engine's clock, here a manual one the tests move past the
//! period (60 s at least) while the container runs, so that no test waits a minute. (The
//! crash test of the binary, `crates/berth/tests/crash/restart.rs`, waits the real period.)
//! Docker's own event record, followed from each test's start, says how often each
//! container was started. Needs the test
//! environment (`scripts/test-env.sh`); a missing piece fails, never skips.

mod common;

use berth_engine::{DockerTaskEngine, ManualClock, TaskEngine};
use berth_model::{ContainerStatus, Task, TaskStatus};
use berth_testutils::real::StartRecord;
use chrono::{TimeZone, Utc};
use common::real::*;
use common::*;
use std::sync::Arc;

/// How long Docker's events may take to arrive.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A started engine on the real daemon whose clock moves only when the test says, and the
/// guard that removes its containers.
async fn real_manual() -> (DockerTaskEngine, Cleanup, ManualClock) {
    let docker = docker().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now));
    let mut engine = DockerTaskEngine::new(real_config(), Arc::new(docker.clone())).with_clock(Arc::new(clock.clone()));
    engine.init().await.unwrap_or_else(|e| panic!("init: {e}"));
    let instance = engine.instance_id().map(str::to_string).unwrap_or_default();
    (engine, Cleanup { docker, instance }, clock)
}

/// A one-container task, `app`, running `script` with `restart_policy` (JSON).
fn restarting_task(family: &str, script: &str, restart_policy: &str, n: u128) -> Task {
    task(
        &format!(
            r#"{{"family": "{family}", "containerDefinitions": [{{"name": "app", "image": "busybox:latest",
                "command": ["sh", "-c", "{script}"], "restartPolicy": {restart_policy}}}]}}"#
        ),
        n,
    )
}

async fn the_task(engine: &DockerTaskEngine, arn: &str) -> Task {
    engine.task(arn).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("task {arn} is held"))
}

/// Restarted after the period (the same Docker container, started again, counted), then,
/// exiting again before the period has passed since the restart, not restarted: its task
/// stops for that exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_after_the_period_is_restarted_and_one_before_it_is_not() {
    let (engine, cleanup, clock) = real_manual().await;
    let record = StartRecord::follow(&cleanup.instance);
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = restarting_task("restart-period", "sleep 3; exit 1", r#"{"enabled": true, "restartAttemptPeriod": 60}"#, 1);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["app"], ContainerStatus::Running).await;
    // The container has been running for 61 s on the engine's clock when it exits.
    clock.advance(chrono::Duration::seconds(61));
    eventually("app restarted once", async || the_task(&engine, &arn).await.containers[0].restart_count == 1).await;
    let id = cleanup.info("app").await.id;
    // It exits again 3 s after the restart, well before the period: the task stops.
    let changes = until_task_stopped(&mut events, &arn).await;
    let stopped = changes.iter().find(|c| c.container_name == "app" && c.status == ContainerStatus::Stopped);
    assert_eq!(stopped.and_then(|c| c.exit_code), Some(1), "{changes:#?}");
    let statuses: Vec<ContainerStatus> = changes.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [ContainerStatus::Pulled, ContainerStatus::Created, ContainerStatus::Running, ContainerStatus::Stopped],
        "the restart is no state change"
    );
    let t = the_task(&engine, &arn).await;
    assert_eq!(t.containers[0].restart_count, 1);
    assert_eq!(t.stop_reason.as_deref(), Some(r#"essential container "app" exited with code 1"#));
    assert_eq!(cleanup.containers_of(&arn).await.len(), 1, "restarted in place: no second container");
    assert_eq!(cleanup.info("app").await.id, id);
    assert_eq!(
        tokio::task::block_in_place(|| record.settled_starts("app", 2, WAIT)),
        2,
        "started, then restarted once"
    );
}

/// An exit with an ignored code is not restarted, whatever the period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_exit_code_is_not_restarted() {
    let (engine, cleanup, clock) = real_manual().await;
    let record = StartRecord::follow(&cleanup.instance);
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let policy = r#"{"enabled": true, "ignoredExitCodes": [3], "restartAttemptPeriod": 60}"#;
    let t = restarting_task("restart-ignored", "sleep 3; exit 3", policy, 2);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["app"], ContainerStatus::Running).await;
    clock.advance(chrono::Duration::seconds(61));
    until_task_stopped(&mut events, &arn).await;
    let t = the_task(&engine, &arn).await;
    assert_eq!((t.containers[0].restart_count, t.containers[0].known_exit_code), (0, Some(3)));
    assert_eq!(tokio::task::block_in_place(|| record.settled_starts("app", 1, WAIT)), 1);
}

/// A container of a task being stopped exits (berth stops it) after the period: it is not
/// restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_of_a_stopping_task_is_not_restarted() {
    let (engine, cleanup, clock) = real_manual().await;
    let record = StartRecord::follow(&cleanup.instance);
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = restarting_task("restart-stopping", "sleep 600", r#"{"enabled": true, "restartAttemptPeriod": 60}"#, 3);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["app"], ContainerStatus::Running).await;
    clock.advance(chrono::Duration::seconds(61));
    engine.stop_task(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    until_task_stopped(&mut events, &arn).await;
    let t = the_task(&engine, &arn).await;
    assert_eq!(t.desired_status, TaskStatus::Stopped);
    assert_eq!(t.containers[0].restart_count, 0);
    assert!(matches!(t.containers[0].known_exit_code, Some(137 | 143)), "{:?}", t.containers[0].known_exit_code);
    assert_eq!(tokio::task::block_in_place(|| record.settled_starts("app", 1, WAIT)), 1);
}

/// A SUCCESS dependency that runs longer than its startTimeout: the dependent never runs and
/// the task stops, saying why. (The engine's own clock, the system's: the timeout is 2 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_slower_than_its_start_timeout_stops_the_task_and_the_dependent_never_runs() {
    let (engine, cleanup) = real().await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = r#"{"family": "start-timeout", "containerDefinitions": [
        {"name": "migrate", "image": "busybox:latest", "essential": false, "startTimeout": 2,
         "command": ["sh", "-c", "sleep 30; exit 0"]},
        {"name": "app", "image": "busybox:latest", "command": ["echo", "ran"],
         "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]}]}"#;
    let t = task(json, 4);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    let t = the_task(&engine, &arn).await;
    assert_eq!(
        t.stop_reason.as_deref(),
        Some(r#"dependency (SUCCESS) of "app" on "migrate" not met within its startTimeout of 2 s"#)
    );
    assert!(!changes.iter().any(|c| c.container_name == "app" && c.status == ContainerStatus::Running), "{changes:#?}");
    let app = t.container("app").unwrap_or_else(|| panic!("app"));
    assert!(!app.has_run);
    // Docker agrees: created (its create came before the wait), never started.
    assert!(!cleanup.info("app").await.has_run(), "app never ran");
    // The dependency is stopped by berth, not left to finish.
    let changes = until_all(&mut events, &arn, &["migrate"], ContainerStatus::Stopped).await;
    let migrate = changes.iter().find(|c| c.container_name == "migrate" && c.status == ContainerStatus::Stopped);
    assert!(matches!(migrate.and_then(|c| c.exit_code), Some(137 | 143)), "{changes:#?}");
}
