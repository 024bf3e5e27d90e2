//! What the engine's tests share: an engine on a fake Docker, tasks from JSON, and waiting
//! for state changes; [`real`] has the same for the real Docker daemon.

#![allow(dead_code)]

pub mod real;

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

/// A reader that keeps every change it has read, so that waiting for one thing never
/// loses the changes of another.
pub struct Watcher {
    reader: ChangeReader,
    /// Every change read so far, in order.
    pub seen: Vec<StateChange>,
}

impl Watcher {
    /// Keep what `reader` reads.
    pub fn new(reader: ChangeReader) -> Watcher {
        Watcher { reader, seen: Vec::new() }
    }

    /// Read until `done` holds over everything read (panics after 10 s).
    pub async fn until(&mut self, what: &str, done: impl Fn(&[StateChange]) -> bool) {
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            while !done(&self.seen) {
                match self.reader.next().await {
                    Some(LogItem::Change(c)) => self.seen.push(c),
                    Some(LogItem::Gap { .. }) => {}
                    None => return,
                }
            }
        })
        .await;
        if result.is_err() || !done(&self.seen) {
            panic!("never: {what}; seen: {:#?}", self.seen);
        }
    }

    /// The changes of task `arn` read so far.
    pub fn of(&self, arn: &str) -> Vec<StateChange> {
        self.seen.iter().filter(|c| c.task_arn == arn).cloned().collect()
    }

    /// The change of `container` of `arn` to `status`, once read.
    pub fn change(&self, arn: &str, container: &str, status: ContainerStatus) -> Option<StateChange> {
        self.seen.iter().find(|c| c.task_arn == arn && c.container_name == container && c.status == status).cloned()
    }
}

/// Read until task `arn` is STOPPED; its changes so far.
pub async fn until_task_stopped(w: &mut Watcher, arn: &str) -> Vec<StateChange> {
    until_tasks_stopped(w, &[arn.to_string()]).await;
    w.of(arn)
}

/// Read until every task of `arns` is STOPPED (in any order).
pub async fn until_tasks_stopped(w: &mut Watcher, arns: &[String]) {
    w.until("tasks STOPPED", |seen| {
        arns.iter().all(|arn| seen.iter().any(|c| &c.task_arn == arn && c.task_status == TaskStatus::Stopped))
    })
    .await;
}

/// Read until every container of `arn` named in `names` has a change to `status`; the
/// task's changes so far.
pub async fn until_all(w: &mut Watcher, arn: &str, names: &[&str], status: ContainerStatus) -> Vec<StateChange> {
    w.until(&format!("{names:?} of {arn} {status}"), |seen| {
        names.iter().all(|n| seen.iter().any(|c| c.task_arn == arn && c.container_name == *n && c.status == status))
    })
    .await;
    w.of(arn)
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
