//! Statuses. Their order is the state machine: a known status only ever rises.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a container is in its life. Ordered: `NONE < PULLED < CREATED < RUNNING < STOPPED`.
///
/// There is no DEAD status (the seed's DEAD made tasks with a data-only container hang):
/// Docker's `die` and `stop` both end in [`ContainerStatus::Stopped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContainerStatus {
    /// Nothing has happened yet.
    #[default]
    None,
    /// The image is present on the host.
    Pulled,
    /// Docker has the container; it has not run.
    Created,
    /// The container is running.
    Running,
    /// The container has stopped (exited, was stopped, or never will run).
    Stopped,
}

/// Where a task is in its life. Ordered: `NONE < CREATED < RUNNING < STOPPED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    /// Nothing has happened yet (its containers may be pulled).
    #[default]
    None,
    /// Its essential containers exist.
    Created,
    /// Its essential containers run.
    Running,
    /// An essential container stopped, or the task was stopped.
    Stopped,
}

/// A container's health, as Docker's health check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    /// No report yet, or the container has no health check.
    #[default]
    Unknown,
    /// The last checks passed.
    Healthy,
    /// The checks failed their retries.
    Unhealthy,
}

impl ContainerStatus {
    /// Every status in order, lowest first.
    pub const ALL: [ContainerStatus; 5] = [
        ContainerStatus::None,
        ContainerStatus::Pulled,
        ContainerStatus::Created,
        ContainerStatus::Running,
        ContainerStatus::Stopped,
    ];

    /// The task status this container status stands for: PULLED maps to task NONE.
    pub fn task_status(self) -> TaskStatus {
        match self {
            ContainerStatus::None | ContainerStatus::Pulled => TaskStatus::None,
            ContainerStatus::Created => TaskStatus::Created,
            ContainerStatus::Running => TaskStatus::Running,
            ContainerStatus::Stopped => TaskStatus::Stopped,
        }
    }

    /// The upper-case name used in JSON and in rendered plans.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::None => "NONE",
            ContainerStatus::Pulled => "PULLED",
            ContainerStatus::Created => "CREATED",
            ContainerStatus::Running => "RUNNING",
            ContainerStatus::Stopped => "STOPPED",
        }
    }
}

impl TaskStatus {
    /// The container status a task status asks of its containers.
    pub fn container_status(self) -> ContainerStatus {
        match self {
            TaskStatus::None => ContainerStatus::None,
            TaskStatus::Created => ContainerStatus::Created,
            TaskStatus::Running => ContainerStatus::Running,
            TaskStatus::Stopped => ContainerStatus::Stopped,
        }
    }

    /// The upper-case name used in JSON and in rendered plans.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::None => "NONE",
            TaskStatus::Created => "CREATED",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Stopped => "STOPPED",
        }
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_statuses_are_ordered_as_the_state_machine() {
        for pair in ContainerStatus::ALL.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn pulled_maps_to_task_none_and_others_to_their_namesake() {
        assert_eq!(ContainerStatus::Pulled.task_status(), TaskStatus::None);
        for s in ContainerStatus::ALL {
            assert_eq!(s.task_status().as_str(), if s == ContainerStatus::Pulled { "NONE" } else { s.as_str() });
        }
    }

    #[test]
    fn json_names_are_upper_case() {
        let json = serde_json::to_string(&ContainerStatus::ALL).unwrap();
        assert_eq!(json, r#"["NONE","PULLED","CREATED","RUNNING","STOPPED"]"#);
        let back: TaskStatus = serde_json::from_str(r#""RUNNING""#).unwrap();
        assert_eq!(back, TaskStatus::Running);
        assert!(serde_json::from_str::<ContainerStatus>(r#""DEAD""#).is_err());
    }
}
