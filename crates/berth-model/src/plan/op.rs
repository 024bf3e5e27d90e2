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
    /// Start the same container again after an exit its restart policy restarts (the only
    /// start of a container that has run; no new create).
    Restart,
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
            // A restarted container is RUNNING all along: its status does not move.
            Action::Inspect | Action::Remove | Action::Restart => None,
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
                Action::Restart => write!(f, "restart {container}"),
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

/// Why the planner chose an operation: a short phrase printed after it in golden plans, as
/// compose's plan gives a reason for each action. A small value with no
/// allocation; what the operation itself carries (a stop task's reason) is not repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The container is not known to be STOPPED and the outcome of an earlier call on it is
    /// unknown (berth restarted, the event stream reopened, a call timed out).
    Uncertain,
    /// The container has a restart policy and should run, and its state is uncertain (an exit
    /// event, which may be an old one, or berth restarted): an exit is acted on only once an
    /// inspect shows it.
    ExitUnconfirmed,
    /// The task should run and one of its containers mounts this task volume, not yet made.
    VolumeNeeded,
    /// The container should run and its image is not pulled yet.
    NotPulled,
    /// Pulled, and what it waited for before its create is there.
    CreateReady(Waited),
    /// Created, never run, and what it waited for before its start is there.
    StartReady(Waited),
    /// The task should run but no longer can (the operation says why).
    TaskCannotRun,
    /// A dependency on a container with a `startTimeout` was not met in time (the
    /// operation says which).
    StartTimedOut,
    /// The container exited with a code its restart policy restarts, after running its
    /// restart period, while it should run.
    RestartDue,
    /// The container is to stop (`task`: because its task is) and has not run: nothing to
    /// stop.
    NotRunning {
        /// Whether the task, not only the container, is desired STOPPED.
        task: bool,
    },
    /// The container is to stop (`task`: because its task is); `dependents`: the containers
    /// that need it have stopped (else none needs it).
    StopReady {
        /// Whether the task, not only the container, is desired STOPPED.
        task: bool,
        /// Whether other containers needed it (and have stopped).
        dependents: bool,
    },
    /// The task is STOPPED and its cleanup wait is over.
    CleanupDue,
    /// The task is STOPPED and its containers are removed.
    ContainersRemoved,
    /// The task is STOPPED and its containers and task volumes are removed.
    CleanedUp,
}

/// What a container waited for before its create or start (every kind it has, now met):
/// for a create, the containers it links to, the pause container, its volumesFrom sources
/// (created) and its task volumes (made); for a start, its links and the pause container
/// (RUNNING) and its dependsOn conditions (met).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Waited {
    /// links.
    pub links: bool,
    /// The awsvpc pause container.
    pub pause: bool,
    /// volumesFrom sources (create only).
    pub volumes_from: bool,
    /// Task volumes it mounts (create only).
    pub task_volumes: bool,
    /// dependsOn conditions, in the order START, COMPLETE, SUCCESS, HEALTHY (start only).
    pub depends_on: [bool; 4],
}

impl Cause {
    /// How [`Cause::CreateReady`] and [`Cause::StartReady`] read: `state` ("pulled",
    /// "created"), then what was waited for and is now there, or that nothing was.
    fn ready(f: &mut fmt::Formatter<'_>, state: &str, ready: &str, w: &Waited) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if w.links {
            parts.push(format!("links {ready}"));
        }
        if w.pause {
            parts.push(format!("pause container {ready}"));
        }
        if w.volumes_from {
            parts.push(format!("volumesFrom sources {ready}"));
        }
        if w.task_volumes {
            parts.push("task volumes made".into());
        }
        let conditions: Vec<&str> = ["START", "COMPLETE", "SUCCESS", "HEALTHY"]
            .into_iter()
            .zip(w.depends_on)
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
        if !conditions.is_empty() {
            parts.push(format!("dependsOn {} met", conditions.join(", ")));
        }
        if parts.is_empty() {
            write!(f, "{state}, nothing to wait for")
        } else {
            write!(f, "{state}; {}", parts.join("; "))
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let desired = |task: bool| if task { "task desired STOPPED" } else { "container desired STOPPED" };
        match self {
            Cause::Uncertain => f.write_str("outcome of an earlier call unknown: look before anything else"),
            Cause::ExitUnconfirmed => {
                f.write_str("restart policy on, state uncertain (an exit event may be old): look before acting")
            }
            Cause::VolumeNeeded => f.write_str("task desired RUNNING, a container mounts it"),
            Cause::NotPulled => f.write_str("desired RUNNING, image not pulled"),
            Cause::CreateReady(w) => Cause::ready(f, "pulled", "created", w),
            Cause::StartReady(w) => Cause::ready(f, "created", "RUNNING", w),
            Cause::TaskCannotRun => f.write_str("task desired RUNNING but can no longer run"),
            Cause::StartTimedOut => f.write_str("task desired RUNNING, a startTimeout passed"),
            Cause::RestartDue => f.write_str("desired RUNNING, exited after its restart period, code not ignored"),
            Cause::NotRunning { task } => write!(f, "{}, never ran", desired(*task)),
            Cause::StopReady { task, dependents: true } => {
                write!(f, "{}, the containers that need it stopped", desired(*task))
            }
            Cause::StopReady { task, dependents: false } => write!(f, "{}, no container needs it", desired(*task)),
            Cause::CleanupDue => f.write_str("task STOPPED, cleanup wait over"),
            Cause::ContainersRemoved => f.write_str("task STOPPED, its containers removed"),
            Cause::CleanedUp => f.write_str("task STOPPED, cleaned up"),
        }
    }
}
