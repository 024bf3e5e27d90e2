//! Pulls (SPEC 3): concurrent pulls of one image make one pull, and the four pull
//! behaviours, on the fake Docker.

mod common;

use berth_engine::{EngineConfig, PullBehavior, TaskEngine};
use berth_model::ContainerStatus;
use berth_testutils::{FakeDocker, Op};
use common::*;
use std::time::Duration;

fn one(image: &str) -> String {
    format!(
        r#"{{"family": "p", "containerDefinitions": [{{"name": "app", "image": "{image}", "command": ["exit", "0"]}}]}}"#
    )
}

async fn run_tasks(fake: &FakeDocker, behaviour: PullBehavior, images: &[&str]) -> Vec<berth_model::StateChange> {
    let config = EngineConfig { pull_behavior: behaviour, ..EngineConfig::default() };
    let engine = engine_with(fake, config).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let mut arns = Vec::new();
    for (n, image) in images.iter().enumerate() {
        let t = task(&one(image), n as u128 + 1);
        arns.push(t.arn.clone());
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    }
    until_tasks_stopped(&mut events, &arns).await;
    events.seen.clone()
}

/// Tasks whose container ran: reported RUNNING, or STOPPED with an exit code (a container
/// that exits at once may be seen started and exited in one round, and report only
/// STOPPED).
fn ran(changes: &[berth_model::StateChange]) -> usize {
    let ran: std::collections::HashSet<&str> = changes
        .iter()
        .filter(|c| {
            c.status == ContainerStatus::Running || (c.status == ContainerStatus::Stopped && c.exit_code.is_some())
        })
        .map(|c| c.task_arn.as_str())
        .collect();
    ran.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_make_one_pull() {
    let fake = fake();
    fake.add_registry_image("other:1");
    fake.delay(Op::PullImage, Duration::from_millis(300));
    let changes = run_tasks(&fake, PullBehavior::Default, &["busybox", "busybox", "busybox", "other:1"]).await;
    assert_eq!(ran(&changes), 4);
    assert_eq!(fake.pulls("busybox"), 1, "three tasks, one pull");
    assert_eq!(fake.pulls("other:1"), 1, "another image is pulled beside it, not after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_fails_when_the_pull_fails_even_with_the_image_present() {
    let fake = FakeDocker::new();
    fake.add_image("local-only:1");
    let changes = run_tasks(&fake, PullBehavior::Always, &["local-only:1"]).await;
    assert_eq!(ran(&changes), 0);
    let stopped =
        changes.iter().find(|c| c.status == ContainerStatus::Stopped).unwrap_or_else(|| panic!("{changes:?}"));
    assert!(stopped.reason.as_deref().unwrap_or_default().contains("pull image"), "{stopped:?}");
    // The default behaviour uses the local image.
    let fake = FakeDocker::new();
    fake.add_image("local-only:1");
    assert_eq!(ran(&run_tasks(&fake, PullBehavior::Default, &["local-only:1"]).await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_cached_pulls_only_what_is_missing() {
    let fake = fake();
    fake.add_image("busybox:latest");
    fake.add_registry_image("missing:1");
    let changes = run_tasks(&fake, PullBehavior::PreferCached, &["busybox", "missing:1"]).await;
    assert_eq!(ran(&changes), 2);
    assert_eq!(fake.pulls("busybox"), 0, "present: not pulled");
    assert_eq!(fake.pulls("missing:1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_pulls_the_first_time_only() {
    let fake = fake();
    let config = EngineConfig { pull_behavior: PullBehavior::Once, ..EngineConfig::default() };
    let engine = engine_with(&fake, config).await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    for n in 1..=3 {
        let t = task(&one("busybox"), n);
        let arn = t.arn.clone();
        engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
        until_task_stopped(&mut events, &arn).await;
    }
    assert_eq!(fake.pulls("busybox"), 1, "pulled for the first task only");
    // The default behaviour pulls every time.
    let other = common::fake();
    let default_engine = common::engine(&other).await;
    let mut events = Watcher::new(default_engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    for n in 1..=2 {
        let t = task(&one("busybox"), n);
        let arn = t.arn.clone();
        default_engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
        until_task_stopped(&mut events, &arn).await;
    }
    assert_eq!(other.pulls("busybox"), 2);
}
