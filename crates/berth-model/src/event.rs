//! State changes: what `task_events()` yields and the change log keeps.
//!
//! Changes are derived, not stored twice: a container whose known status is above its
//! `sent_status` has a change to send. [`take_changes`] makes those changes and marks
//! them sent; the engine appends them to the durable log, which gives each its sequence
//! number at commit. After a crash, changes decided but never appended are found the
//! same way.

use crate::container::PortBinding;
use crate::status::{ContainerStatus, TaskStatus};
use crate::task::Task;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One state change of a container, and of its task when this change moved the task.
/// JSON names follow the seed (`TaskArn`, `ContainerName`, ...) plus `Seq` and `Time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateChange {
    /// Position in the change log; 0 until the change is committed.
    pub seq: u64,
    /// When the change was decided.
    pub time: DateTime<Utc>,
    /// The task.
    pub task_arn: String,
    /// The container, by its name in the task.
    pub container_name: String,
    /// Its new status.
    pub status: ContainerStatus,
    /// The applying error or an explicit reason.
    pub reason: Option<String>,
    /// Its exit code, on STOPPED.
    pub exit_code: Option<i64>,
    /// Ports Docker bound, on RUNNING.
    pub port_bindings: Vec<PortBinding>,
    /// The task's new status, or NONE when this change did not move the task.
    pub task_status: TaskStatus,
    /// STOPPED on the first change made after the task was told to stop (an essential
    /// container stopped, a dependency can no longer be met, a stop call), NONE otherwise:
    /// the task's known status becomes STOPPED only later, once every container has stopped.
    #[serde(default)]
    pub task_desired_status: TaskStatus,
}

/// The changes of `task` not yet sent, in container order, each marked sent.
///
/// Internal containers produce no change (they are marked sent silently), but one: when the
/// task's status moves and no other container changed (the awsvpc pause container, stopped
/// last, is what makes the task STOPPED), the internal container's change is made to carry
/// it. A task status change rides on the first change whose container status maps to the
/// new task status, else on the last change made; with no change at all it waits for the
/// next one. The task's desired status STOPPED rides the same way on the first change made
/// once it is set (in the engine, a round that stops a task for its essential container
/// takes the changes after the stop: that container's STOPPED change carries it).
pub fn take_changes(task: &mut Task, now: DateTime<Utc>) -> Vec<StateChange> {
    let mut changes = Vec::new();
    let mut hidden = None;
    for c in &mut task.containers {
        if c.known_status <= c.sent_status {
            continue;
        }
        c.sent_status = c.known_status;
        let change = StateChange {
            seq: 0,
            time: now,
            task_arn: task.arn.clone(),
            container_name: c.spec.name.clone(),
            status: c.known_status,
            reason: if c.known_status == ContainerStatus::Stopped { c.change_reason() } else { None },
            exit_code: if c.known_status == ContainerStatus::Stopped { c.known_exit_code } else { None },
            port_bindings: if c.known_status == ContainerStatus::Running {
                c.known_port_bindings.clone()
            } else {
                Vec::new()
            },
            task_status: TaskStatus::None,
            task_desired_status: TaskStatus::None,
        };
        if c.spec.internal {
            hidden = Some(change);
        } else {
            changes.push(change);
        }
    }
    if task.known_status > task.sent_status {
        if changes.is_empty()
            && let Some(change) = hidden
        {
            changes.push(change);
        }
        if !changes.is_empty() {
            let carrier =
                changes.iter().position(|ch| ch.status.task_status() == task.known_status).unwrap_or(changes.len() - 1);
            changes[carrier].task_status = task.known_status;
            task.sent_status = task.known_status;
        }
    }
    if task.desired_status == TaskStatus::Stopped
        && !task.stop_sent
        && let Some(first) = changes.first_mut()
    {
        first.task_desired_status = TaskStatus::Stopped;
        task.stop_sent = true;
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{Container, ContainerSpec};

    fn task(names: &[(&str, bool)]) -> Task {
        let containers = names
            .iter()
            .map(|(n, internal)| {
                Container::new(ContainerSpec {
                    name: (*n).into(),
                    image: "busybox".into(),
                    essential: true,
                    internal: *internal,
                    ..ContainerSpec::default()
                })
            })
            .collect();
        Task::new("arn:berth:task/t".into(), "f".into(), "1".into(), containers, vec![])
    }

    #[test]
    fn change_is_made_once_and_carries_the_task_status() {
        let mut t = task(&[("a", false)]);
        let now = Utc::now();
        t.containers[0].known_status = ContainerStatus::Created;
        t.update_known_status(now);
        let ch = take_changes(&mut t, now);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].status, ContainerStatus::Created);
        assert_eq!(ch[0].task_status, TaskStatus::Created);
        assert!(take_changes(&mut t, now).is_empty(), "already sent");
    }

    #[test]
    fn internal_containers_are_hidden() {
        let mut t = task(&[("~pause", true), ("a", false)]);
        let now = Utc::now();
        t.containers[0].known_status = ContainerStatus::Running;
        assert!(take_changes(&mut t, now).is_empty());
        assert_eq!(t.containers[0].sent_status, ContainerStatus::Running);
    }

    #[test]
    fn the_internal_container_that_stops_the_task_last_carries_the_task_status() {
        let mut t = task(&[("~pause", true), ("a", false)]);
        let now = Utc::now();
        t.containers[0].known_status = ContainerStatus::Running;
        t.containers[1].known_status = ContainerStatus::Stopped;
        t.update_known_status(now);
        let ch = take_changes(&mut t, now);
        assert_eq!(ch.len(), 1);
        assert_eq!((ch[0].container_name.as_str(), ch[0].task_status), ("a", TaskStatus::None));
        t.containers[0].known_status = ContainerStatus::Stopped;
        t.update_known_status(now);
        let ch = take_changes(&mut t, now);
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!((ch[0].container_name.as_str(), ch[0].task_status), ("~pause", TaskStatus::Stopped));
        assert_eq!(t.sent_status, TaskStatus::Stopped);
    }

    #[test]
    fn stopped_change_carries_reason_and_exit_code() {
        let mut t = task(&[("a", false)]);
        let now = Utc::now();
        let c = &mut t.containers[0];
        c.known_status = ContainerStatus::Stopped;
        c.known_exit_code = Some(42);
        c.reason = Some("removed outside berth".into());
        t.update_known_status(now);
        let ch = take_changes(&mut t, now);
        assert_eq!(ch[0].exit_code, Some(42));
        assert_eq!(ch[0].reason.as_deref(), Some("removed outside berth"));
        assert_eq!(ch[0].task_status, TaskStatus::Stopped);
    }

    #[test]
    fn the_stop_rides_once_on_the_first_change_and_the_task_stops_with_its_last_container() {
        let mut t = task(&[("a", false), ("b", false)]);
        let now = Utc::now();
        for c in &mut t.containers {
            c.known_status = ContainerStatus::Running;
        }
        t.update_known_status(now);
        take_changes(&mut t, now);
        // `a` exits; the planner's StopTask raises the desired status in the same round.
        t.containers[0].known_status = ContainerStatus::Stopped;
        t.raise_desired_status(TaskStatus::Stopped);
        t.update_known_status(now);
        let ch = take_changes(&mut t, now);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].task_desired_status, TaskStatus::Stopped);
        assert_eq!(ch[0].task_status, TaskStatus::None, "b still runs: the task is not STOPPED yet");
        assert_eq!(t.known_status, TaskStatus::Running);
        t.containers[1].known_status = ContainerStatus::Stopped;
        t.update_known_status(now);
        let ch = take_changes(&mut t, now);
        assert_eq!(ch[0].task_desired_status, TaskStatus::None, "said once");
        assert_eq!(ch[0].task_status, TaskStatus::Stopped);
    }

    #[test]
    fn json_uses_the_seed_names() {
        let mut t = task(&[("a", false)]);
        let now = Utc::now();
        t.containers[0].known_status = ContainerStatus::Running;
        let ch = take_changes(&mut t, now);
        let v = serde_json::to_value(&ch[0]).unwrap();
        for key in [
            "Seq",
            "Time",
            "TaskArn",
            "ContainerName",
            "Status",
            "Reason",
            "ExitCode",
            "PortBindings",
            "TaskStatus",
            "TaskDesiredStatus",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["Status"], "RUNNING");
    }
}
