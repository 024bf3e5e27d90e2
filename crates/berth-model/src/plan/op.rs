//! The operations the planner decides and the engine performs.

use std::fmt;

/// A Docker call on one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Look at the container again: the outcome of an earlier call is unknown (timeout,
    /// restart), so nothing else happens to it until Docker has been asked.
    Inspect,
    /// Make the image present (pull, or the local image under the default behaviour).
    Pull,
    /// Create the container, with every setting.
    Create,
    /// Start it (never issued for a container that has ever run).
    Start,
    /// Stop it: SIGTERM, then SIGKILL after `timeout_secs`.
    Stop {
        /// Seconds between SIGTERM and SIGKILL.
        timeout_secs: u64,
    },
    /// Remove it (cleanup).
    Remove,
}

impl Action {
    /// The status the container reaches when the call succeeds (`None` for inspect and
    /// remove, which do not move a status).
    pub fn target(self) -> Option<crate::ContainerStatus> {
        use crate::ContainerStatus as S;
        match self {
            Action::Pull => Some(S::Pulled),
            Action::Create => Some(S::Created),
            Action::Start => Some(S::Running),
            Action::Stop { .. } => Some(S::Stopped),
            Action::Inspect | Action::Remove => None,
        }
    }
}

/// A Docker call on one task volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeAction {
    /// Make the Docker volume before the containers that mount it.
    Create,
    /// Remove it at cleanup.
    Remove,
}

/// One thing to do next for a task. Containers and volumes are named as in the task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// A Docker call on a container.
    Container {
        /// The container's name in the task.
        container: String,
        /// The call.
        action: Action,
    },
    /// A Docker call on a task volume.
    Volume {
        /// The volume's name in the task.
        volume: String,
        /// The call.
        action: VolumeAction,
    },
    /// Bookkeeping, no Docker call: a container that has never run and never will
    /// (its task is stopping) becomes STOPPED.
    MarkStopped {
        /// The container's name in the task.
        container: String,
        /// Why, when there is more to say than "its task stopped".
        reason: Option<String>,
    },
    /// Bookkeeping: raise the task's desired status to STOPPED, for this reason.
    StopTask {
        /// Why the task stops.
        reason: String,
    },
    /// Bookkeeping: the task is stopped and cleaned up; it leaves the state.
    Forget,
}

impl Op {
    /// A container call.
    pub fn container(container: &str, action: Action) -> Op {
        Op::Container { container: container.to_string(), action }
    }

    /// True for operations the engine applies to its state alone, without Docker.
    pub fn is_bookkeeping(&self) -> bool {
        matches!(self, Op::MarkStopped { .. } | Op::StopTask { .. } | Op::Forget)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Container { container, action } => match action {
                Action::Inspect => write!(f, "inspect {container}"),
                Action::Pull => write!(f, "pull {container}"),
                Action::Create => write!(f, "create {container}"),
                Action::Start => write!(f, "start {container}"),
                Action::Stop { timeout_secs } => write!(f, "stop {container} (timeout {timeout_secs}s)"),
                Action::Remove => write!(f, "remove {container}"),
            },
            Op::Volume { volume, action: VolumeAction::Create } => write!(f, "create volume {volume}"),
            Op::Volume { volume, action: VolumeAction::Remove } => write!(f, "remove volume {volume}"),
            Op::MarkStopped { container, reason: None } => write!(f, "mark {container} STOPPED"),
            Op::MarkStopped { container, reason: Some(r) } => write!(f, "mark {container} STOPPED: {r}"),
            Op::StopTask { reason } => write!(f, "stop task: {reason}"),
            Op::Forget => f.write_str("forget task"),
        }
    }
}
