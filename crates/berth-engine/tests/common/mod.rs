//! What the engine's tests share: an engine on a fake Docker, tasks from JSON, and waiting
//! for state changes.

#![allow(dead_code)]

use berth_engine::{ChangeReader, DockerTaskEngine, EngineConfig, LogItem, TaskEngine};
use berth_model::input::{ParseOptions, parse};
use berth_model::{ContainerStatus, StateChange, Task, TaskStatus};
use berth_testutils::FakeDocker;
use std::sync::Arc;
use std::time::Duration;

/// A fake Docker with busybox pullable and present.
pub fn fake() -> FakeDocker {
    let fake = FakeDocker::new();
    fake.add_registry_image("busybox:latest");
    fake
}

/// A started engine on `fake`, state in memory.
pub async fn engine(fake: &FakeDocker) -> DockerTaskEngine {
    engine_with(fake, EngineConfig::default()).await
}

/// A started engine on `fake` with `config`.
pub async fn engine_with(fake: &FakeDocker, config: EngineConfig) -> DockerTaskEngine {
    let mut engine = DockerTaskEngine::new(config, Arc::new(fake.clone()));
    engine.init().await.unwrap_or_else(|e| panic!("init: {e}"));
    engine
}

/// The task a JSON task definition describes, with the arn given by `n`.
pub fn task(json: &str, n: u128) -> Task {
    parse(json.as_bytes(), &ParseOptions { family: Some("test".into()), arn_random: n })
        .map(|a| a.task)
        .unwrap_or_else(|r| panic!("{r}"))
}

/// Changes read until `done` holds for the last one (panics after 10 s).
pub async fn read_until(reader: &mut ChangeReader, done: impl Fn(&StateChange) -> bool) -> Vec<StateChange> {
    let mut seen = Vec::new();
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = reader.next().await {
            if let LogItem::Change(c) = item {
                let stop = done(&c);
                seen.push(c);
                if stop {
                    return;
                }
            }
        }
    })
    .await;
    if result.is_err() {
        panic!("timed out; seen: {seen:#?}");
    }
    seen
}

/// Read until task `arn` is STOPPED.
pub async fn until_task_stopped(reader: &mut ChangeReader, arn: &str) -> Vec<StateChange> {
    read_until(reader, |c| c.task_arn == arn && c.task_status == TaskStatus::Stopped).await
}

/// Read until every container of `arn` named in `names` has a change to `status`.
pub async fn until_all(
    reader: &mut ChangeReader,
    arn: &str,
    names: &[&str],
    status: ContainerStatus,
) -> Vec<StateChange> {
    let mut seen: Vec<StateChange> = Vec::new();
    let mut left: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    while !left.is_empty() {
        let more =
            read_until(reader, |c| c.task_arn == arn && c.status == status && left.contains(&c.container_name)).await;
        if let Some(last) = more.last() {
            left.retain(|n| *n != last.container_name);
        }
        seen.extend(more);
    }
    seen
}

/// Poll `f` until it holds (panics after 10 s).
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..1000 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

/// Read until every task of `arns` is STOPPED (in any order).
pub async fn until_tasks_stopped(reader: &mut ChangeReader, arns: &[String]) -> Vec<StateChange> {
    let mut left: std::collections::HashSet<&String> = arns.iter().collect();
    let mut seen = Vec::new();
    while !left.is_empty() {
        let more = read_until(reader, |c| c.task_status == TaskStatus::Stopped && left.contains(&c.task_arn)).await;
        if let Some(last) = more.last() {
            left.remove(&last.task_arn);
        }
        seen.extend(more);
    }
    seen
}

/// A file of the task-definition corpus (`shared/ecs-taskdefs` beside an ancestor of this
/// crate; a missing corpus fails the test).
pub fn corpus(file: &str) -> String {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = here
        .ancestors()
        .map(|a| a.join("shared/ecs-taskdefs").join(file))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no shared/ecs-taskdefs/{file} beside any ancestor of {}", here.display()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
