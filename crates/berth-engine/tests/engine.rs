//! The seed's engine behaviours, on the fake Docker.

mod common;

use berth_docker::{ErrorKind, labels};
use berth_engine::{ContainerNotFound, EngineError, TaskEngine};
use berth_model::{ContainerStatus, TaskStatus};
use berth_testutils::{Behaviour, Op};
use common::*;
use std::time::Duration;

const ONE: &str = r#"{"family": "one", "containerDefinitions": [
    {"name": "sleeper", "image": "busybox", "command": ["sh", "-c", "sleep 1; exit 0"]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_changes_ride_on_container_changes_in_order_created_running_stopped() {
    let fake = fake();
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(ONE, 1);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    let task_steps: Vec<TaskStatus> =
        changes.iter().map(|c| c.task_status).filter(|s| *s != TaskStatus::None).collect();
    assert_eq!(task_steps, [TaskStatus::Created, TaskStatus::Running, TaskStatus::Stopped]);
    let statuses: Vec<ContainerStatus> = changes.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [ContainerStatus::Pulled, ContainerStatus::Created, ContainerStatus::Running, ContainerStatus::Stopped]
    );
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive sequence numbers: {seqs:?}");
    assert_eq!(changes.last().and_then(|c| c.exit_code), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_arn_with_desired_stopped_stops_the_task_and_repeats_are_harmless() {
    let fake = fake();
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let forever =
        r#"{"family": "f", "containerDefinitions": [{"name": "web", "image": "busybox", "command": ["httpd", "-f"]}]}"#;
    let t = task(forever, 2);
    let arn = t.arn.clone();
    engine.add_task(t.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    engine.add_task(t.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["web"], ContainerStatus::Running).await;
    let mut stop = t.clone();
    stop.raise_desired_status(TaskStatus::Stopped);
    engine.add_task(stop.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    engine.add_task(stop.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    assert_eq!(changes.last().map(|c| c.status), Some(ContainerStatus::Stopped));
    // Adding it with desired RUNNING again does not bring it back.
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].desired_status, TaskStatus::Stopped);
    let ours: Vec<_> = fake.containers().into_iter().filter(|c| c.labels.get(labels::TASK_ARN) == Some(&arn)).collect();
    assert_eq!(ours.len(), 1, "one container, created once");
    assert_eq!(ours[0].times_started, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_essential_exit_stops_the_others_a_non_essential_one_does_not() {
    let fake = fake();
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = r#"{"family": "ess", "containerDefinitions": [
        {"name": "main", "image": "busybox", "command": ["httpd", "-f"]},
        {"name": "side", "image": "busybox", "essential": false, "command": ["httpd", "-f"]},
        {"name": "other", "image": "busybox", "command": ["httpd", "-f"]}]}"#;
    let t = task(json, 3);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["main", "side", "other"], ContainerStatus::Running).await;
    let name_of = |c: &str| {
        fake.containers()
            .into_iter()
            .find(|s| {
                s.labels.get(labels::TASK_ARN) == Some(&arn)
                    && s.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some(c)
            })
            .map(|s| s.name)
            .unwrap_or_else(|| panic!("{c} exists"))
    };
    assert!(fake.exit(&name_of("side"), 3));
    until_all(&mut events, &arn, &["side"], ContainerStatus::Stopped).await;
    let side = events.change(&arn, "side", ContainerStatus::Stopped).unwrap_or_else(|| panic!("side stopped"));
    assert_eq!((side.exit_code, side.task_status), (Some(3), TaskStatus::None), "a non-essential exit moves no task");
    assert!(fake.kill(&name_of("main"), 137));
    until_all(&mut events, &arn, &["main", "other"], ContainerStatus::Stopped).await;
    let main = events.change(&arn, "main", ContainerStatus::Stopped).unwrap_or_else(|| panic!("main stopped"));
    assert_eq!(main.exit_code, Some(137));
    assert_eq!(main.reason.as_deref(), Some("killed by signal 9 outside berth"));
    // As ECS reports it: the essential exit tells the task to stop at once (its own change
    // says so), but the task is STOPPED only once "other" has stopped too.
    assert_eq!(main.task_desired_status, TaskStatus::Stopped, "the essential exit tells the task to stop");
    assert_eq!(main.task_status, TaskStatus::None, "\"other\" still runs: the task is not STOPPED yet");
    let other = events.change(&arn, "other", ContainerStatus::Stopped).unwrap_or_else(|| panic!("other stopped"));
    assert_eq!(other.exit_code, Some(143), "stopped by berth");
    assert!(other.seq > main.seq);
    assert_eq!((other.task_status, other.task_desired_status), (TaskStatus::Stopped, TaskStatus::None));
    let task = engine.task(&arn).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{arn} held"));
    assert_eq!(task.known_status, TaskStatus::Stopped);
    assert!(task.containers.iter().all(|c| c.known_status == ContainerStatus::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_port_bindings_are_in_the_changes() {
    let fake = fake();
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = r#"{"family": "ports", "containerDefinitions": [
        {"name": "web", "image": "busybox", "command": ["sh", "-c", "sleep 1; exit 7"],
         "portMappings": [{"containerPort": 80}, {"containerPort": 53, "hostPort": 5353, "protocol": "udp"}]}]}"#;
    let t = task(json, 4);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    let running =
        changes.iter().find(|c| c.status == ContainerStatus::Running).unwrap_or_else(|| panic!("{changes:?}"));
    assert_eq!(running.port_bindings.len(), 2, "{running:?}");
    let dynamic = running.port_bindings.iter().find(|p| p.container_port == 80).unwrap_or_else(|| panic!("80 bound"));
    assert!(dynamic.host_port >= 32768, "Docker picked a host port: {dynamic:?}");
    assert!(running.port_bindings.iter().any(|p| p.container_port == 53 && p.host_port == 5353));
    assert_eq!(changes.last().and_then(|c| c.exit_code), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pull_with_the_image_present_proceeds() {
    let fake = berth_testutils::FakeDocker::new();
    fake.add_image("local-only:1"); // present, but no registry has it
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(
        r#"{"family": "l", "containerDefinitions": [{"name": "app", "image": "local-only:1", "command": ["exit", "0"]}]}"#,
        5,
    );
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    // An instant exit seen within one round reports STOPPED with its exit code and no
    // RUNNING before it (README: instant exits); either shows the container ran.
    let ran = changes.iter().any(|c| {
        c.status == ContainerStatus::Running || (c.status == ContainerStatus::Stopped && c.exit_code == Some(0))
    });
    assert!(ran, "it ran: {changes:?}");
    assert_eq!(fake.pulls("local-only:1"), 1, "one pull, failed, no retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_stops_the_container_with_a_reason() {
    let fake = fake();
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(r#"{"family": "m", "containerDefinitions": [{"name": "app", "image": "nowhere/missing:1"}]}"#, 6);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    let stopped = changes.last().unwrap_or_else(|| panic!("a change"));
    assert_eq!(stopped.status, ContainerStatus::Stopped);
    let reason = stopped.reason.clone().unwrap_or_default();
    assert!(reason.contains("pull image") && reason.contains("nowhere/missing:1"), "{reason}");
    assert_eq!(fake.pulls("nowhere/missing:1"), 1, "permanent: not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_then_succeed() {
    let fake = fake();
    fake.fail_next(Op::CreateContainer, None, 2, ErrorKind::Transient);
    let mut config = berth_engine::EngineConfig::default();
    config.plan.retry.initial_backoff = chrono::Duration::milliseconds(10);
    let engine = engine_with(&fake, config).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(ONE, 7);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    assert!(changes.iter().any(|c| c.status == ContainerStatus::Running), "{changes:?}");
    assert_eq!(fake.calls(Op::CreateContainer), 3, "two failures, then the create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_order_is_kept_under_concurrency() {
    let fake = fake();
    // Slow Docker calls, so that anything not gated would overtake.
    fake.delay(Op::StartContainer, Duration::from_millis(20));
    fake.delay(Op::CreateContainer, Duration::from_millis(20));
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = corpus("02-agent-network-link-2-2015.json");
    let mut tasks = Vec::new();
    for n in 0..5 {
        let t = task(&json, 100 + n);
        tasks.push(t.arn.clone());
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    until_tasks_stopped(&mut events, &tasks).await;
    let history = fake.events();
    let at = |arn: &str, name: &str, action: &str| {
        history
            .iter()
            .position(|e| {
                e.action == action
                    && e.attributes.get(labels::TASK_ARN).map(String::as_str) == Some(arn)
                    && e.attributes.get(labels::CONTAINER_NAME).map(String::as_str) == Some(name)
            })
            .unwrap_or_else(|| panic!("{name} {action} in {arn}"))
    };
    for arn in &tasks {
        // links: created after and started after their target; volumesFrom: created after.
        for (dependent, dependency) in
            [("b", "a"), ("bb", "a"), ("c", "a"), ("c", "bb"), ("c", "b"), ("d", "c"), ("exit", "d")]
        {
            assert!(
                at(arn, dependency, "create") < at(arn, dependent, "create"),
                "{dependent} created after {dependency}"
            );
        }
        for (dependent, dependency) in [("b", "a"), ("bb", "a"), ("c", "bb"), ("exit", "d")] {
            assert!(
                at(arn, dependency, "start") < at(arn, dependent, "start"),
                "{dependent} started after {dependency}"
            );
        }
    }
    assert_eq!(fake.restarts_of_exited(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_operations_and_container_not_found() {
    let fake = fake();
    let engine = engine(&fake).await;
    let t = task(r#"{"family": "d", "containerDefinitions": [{"name": "app", "image": "busybox"}], "x": 1}"#, 8);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    match engine.start_container(&arn, "nope").await {
        Err(EngineError::ContainerNotFound(ContainerNotFound { container, .. })) => assert_eq!(container, "nope"),
        other => panic!("expected ContainerNotFound, got {other:?}"),
    }
    assert!(matches!(engine.pull_container("arn:none", "app").await, Err(EngineError::TaskNotFound(_))));
    let state = engine.state().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(state.tasks.contains_key(&arn));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_does_not_stall_the_engine() {
    let fake = fake();
    let engine = engine(&fake).await;
    let _idle = engine.task_events().unwrap_or_else(|e| panic!("{e}"));
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let mut arns = Vec::new();
    for n in 0..200 {
        let t = task(ONE.replace("sleep 1; ", "").as_str(), 1000 + n);
        arns.push(t.arn.clone());
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    until_tasks_stopped(&mut events, &arns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_event_stream_is_reopened_and_what_it_missed_is_found() {
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let engine = engine(&fake).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(r#"{"family": "cut", "containerDefinitions": [{"name": "app", "image": "busybox"}]}"#, 9);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["app"], ContainerStatus::Running).await;
    let name = fake.containers().into_iter().map(|c| c.name).next().unwrap_or_default();
    // The exit's events are lost, and the stream is cut.
    fake.drop_events(10);
    assert!(fake.exit(&name, 4));
    fake.cut_event_streams();
    let changes = until_task_stopped(&mut events, &arn).await;
    assert_eq!(changes.last().and_then(|c| c.exit_code), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_finds_an_exit_whose_events_were_lost() {
    let fake = fake();
    fake.set_behaviour(|_| Behaviour::forever());
    let config = berth_engine::EngineConfig { steady_state_check: Duration::from_millis(100), ..Default::default() };
    let engine = engine_with(&fake, config).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let t = task(r#"{"family": "lost", "containerDefinitions": [{"name": "app", "image": "busybox"}]}"#, 10);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["app"], ContainerStatus::Running).await;
    let name = fake.containers().into_iter().map(|c| c.name).next().unwrap_or_default();
    // The exit's events never reach berth, and the stream stays open.
    fake.drop_events(10);
    assert!(fake.exit(&name, 6));
    let changes = until_task_stopped(&mut events, &arn).await;
    assert_eq!(changes.last().and_then(|c| c.exit_code), Some(6));
}

/// Counts the task records and commits the store was handed.
#[derive(Debug, Default)]
struct Writes {
    records: std::sync::atomic::AtomicUsize,
    checks: std::sync::atomic::AtomicUsize,
}

impl berth_engine::Telemetry for Writes {
    fn record(&self, event: &berth_engine::EngineTelemetry<'_>) {
        use std::sync::atomic::Ordering::SeqCst;
        match event {
            berth_engine::EngineTelemetry::StoreCommitted { tasks, .. } => {
                self.records.fetch_add(*tasks, SeqCst);
            }
            berth_engine::EngineTelemetry::SteadyStateCheck => {
                self.checks.fetch_add(1, SeqCst);
            }
            _ => {}
        }
    }
}

/// Issue 14 item 10: the periodic steady-state check inspects every running container,
/// but an inspect that finds what berth knew writes no task record (before, each check
/// rewrote every running task's record twice: once marked, once answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_steady_state_check_of_running_tasks_writes_nothing() {
    use std::sync::atomic::Ordering::SeqCst;
    let fake = fake();
    let writes = std::sync::Arc::new(Writes::default());
    let config = berth_engine::EngineConfig {
        steady_state_check: Duration::from_millis(100),
        telemetry: writes.clone(),
        ..berth_engine::EngineConfig::default()
    };
    let engine = engine_with(&fake, config).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let forever =
        r#"{"family": "q", "containerDefinitions": [{"name": "web", "image": "busybox", "command": ["httpd", "-f"]}]}"#;
    let mut arns = Vec::new();
    for n in 0..20 {
        let t = task(forever, 1000 + n);
        arns.push(t.arn.clone());
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    for arn in &arns {
        until_all(&mut events, arn, &["web"], ContainerStatus::Running).await;
    }
    // Let the last RUNNING rounds settle, then count over several checks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (records, checks, inspects) =
        (writes.records.load(SeqCst), writes.checks.load(SeqCst), fake.calls(Op::InspectContainer));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(writes.checks.load(SeqCst) >= checks + 3, "the check ran");
    assert!(fake.calls(Op::InspectContainer) >= inspects + 3 * 20, "it inspected every running container");
    assert_eq!(writes.records.load(SeqCst), records, "and wrote no task record");
}

/// Issue 14 item 6: the connector's calls are bounded (the inspect timeout): a daemon that
/// accepts a ping and never answers it is tried again, not waited for (bollard's own limit
/// is three hours). Time is tokio's, paused: it jumps to the next timer when all is idle.
#[tokio::test(start_paused = true)]
async fn a_ping_that_never_answers_is_tried_again_not_waited_for() {
    let fake = fake();
    fake.delay(Op::Ping, Duration::from_secs(100 * 365 * 24 * 3600));
    let mut engine =
        berth_engine::DockerTaskEngine::new(berth_engine::EngineConfig::default(), std::sync::Arc::new(fake.clone()));
    engine.init_without_docker().await.unwrap_or_else(|e| panic!("{e}"));
    let begun = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    fake.delay(Op::Ping, Duration::ZERO); // Docker answers from now on
    let mut up = false;
    for _ in 0..1200 {
        if engine.status().await.is_ok_and(|s| s.docker_up) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "connected within {:?} of (paused) time", begun.elapsed());
    assert!(begun.elapsed() < Duration::from_secs(120), "{:?}", begun.elapsed());
}
