//! Transitions: how what happened (an operation issued, its outcome, a Docker event)
//! changes a task. The one place a container's engine fields move, so the engine and the
//! simulations in tests share every rule:
//!
//! - a known status only rises; an event that would lower it is ignored;
//! - a pull, create or start that fails transiently (timeout, connection, 5xx) is retried
//!   after a backoff, [`RetryPolicy::attempts`](super::RetryPolicy) in all; a permanent
//!   failure, or the last attempt, sets `applying_error` and moves the container to STOPPED;
//! - an outcome that is unknown (a timeout: Docker may have done the work) counts as a
//!   failed attempt and makes the container wait for an inspect before anything else;
//! - stops and removals are never given up: they are retried with backoff until they
//!   succeed, since giving up would leave a container behind;
//! - an exit its restart policy restarts leaves the container RUNNING with a pending
//!   restart; issuing the restart counts it; a restart that fails for good is a normal stop
//!   (see [`super::restart`]).
//! - the task's pull times: issuing its first pull of a non-internal container sets when
//!   pulling started; every end of such a pull (success or failure, not a call that never
//!   reached Docker) sets when it stopped.

use super::restart;
use super::{Action, Op, PlanConfig, VolumeAction};
use crate::container::{ApplyError, Container, PortBinding};
use crate::status::{ContainerStatus, HealthStatus, TaskStatus};
use crate::task::Task;
use chrono::{DateTime, Utc};

/// What Docker says about a container (an event, or an inspect).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// The status it shows; NONE when it says nothing about the status (`kill`, `oom`).
    pub status: ContainerStatus,
    /// Exit code, for an exited container.
    pub exit_code: Option<i64>,
    /// Health, when reported.
    pub health: Option<HealthStatus>,
    /// Bound ports, when read (on RUNNING).
    pub port_bindings: Option<Vec<PortBinding>>,
    /// It has run at some time (`State.StartedAt` later than the zero time, or a `die`).
    pub has_run: bool,
    /// Its Docker id, when the observation found it (by name after an unknown create).
    pub docker_id: Option<String>,
    /// Why it changed ("removed outside berth", "killed by signal 9", "out of memory").
    pub reason: Option<String>,
    /// Docker no longer has it.
    pub removed: bool,
    /// It is an inspect's answer (Docker's state now), not an event (which may be an old
    /// one, replayed after a restart of berth).
    pub inspected: bool,
}

/// The outcome of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It worked (Docker's "already done" answers count).
    Ok,
    /// A create worked: the new container's Docker id.
    Created(String),
    /// It failed; the error says whether retrying can help.
    Failed(ApplyError),
    /// Nobody knows: it timed out, and Docker may have done the work.
    Unknown(String),
    /// An inspect answered.
    Inspected(Observation),
    /// Docker could not be reached: the call never got there and did nothing. No attempt
    /// is counted; the operation is planned again (the engine holds Docker calls until
    /// Docker answers).
    NotDone(String),
}

/// Something that happened to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// The engine is about to perform this operation.
    Issued(Op),
    /// The operation ended (bookkeeping operations go straight here, without `Issued`).
    Done(Op, Outcome),
    /// Docker reported something about a container, outside any operation.
    Observed {
        /// The container's name in the task.
        container: String,
        /// What Docker said.
        observation: Observation,
    },
}

/// Apply what happened to `task`, then bring its known status up to date. Feedback about a
/// container or volume the task does not have is ignored.
pub fn apply(task: &mut Task, feedback: Feedback, now: DateTime<Utc>, cfg: &PlanConfig) {
    apply_inner(task, feedback, now, cfg);
}

/// [`apply`], telling whether the task's record may have changed: false only when nothing
/// a crash must remember moved (every field [`Task::record_fingerprint`] covers is as it
/// was), so saving the task again is not needed.
///
/// Exact for what Docker says (an event, an inspect issued or answered): those move only
/// the named container and the task's derived status, so the container's record is
/// compared with a copy taken before ([`Container::same_record`]) and the status step is
/// reported by [`Task::update_known_status`]. An inspect that finds what berth knew (the
/// steady-state check of every running container) is then not saved again. Every other
/// feedback (operations issued, their outcomes, bookkeeping) answers true without looking:
/// they are the steps a crash must remember, and a needless save costs one record.
pub fn apply_tracked(task: &mut Task, feedback: Feedback, now: DateTime<Utc>, cfg: &PlanConfig) -> bool {
    let observed = match &feedback {
        Feedback::Observed { container, .. }
        | Feedback::Issued(Op::Container { container, action: Action::Inspect })
        | Feedback::Done(Op::Container { container, action: Action::Inspect }, _) => task.container_index(container),
        _ => None,
    };
    let Some(i) = observed else {
        apply_inner(task, feedback, now, cfg);
        return true;
    };
    let before = task.containers[i].clone();
    let status_moved = apply_inner(task, feedback, now, cfg);
    status_moved || !task.containers[i].same_record(&before)
}

/// [`apply`]; returns whether the task's known status moved.
fn apply_inner(task: &mut Task, feedback: Feedback, now: DateTime<Utc>, cfg: &PlanConfig) -> bool {
    match feedback {
        Feedback::Issued(op) => issued(task, &op, now),
        Feedback::Done(op, outcome) => done(task, op, outcome, now, cfg),
        Feedback::Observed { container, observation } => {
            if let Some(c) = container_mut(task, &container) {
                observe(c, observation, now);
            }
        }
    }
    task.update_known_status(now)
}

fn container_mut<'t>(task: &'t mut Task, name: &str) -> Option<&'t mut Container> {
    task.containers.iter_mut().find(|c| c.spec.name == name)
}

/// Whether this container's pulls are the task's pulls: an internal container's image is
/// made locally, not pulled (as the ECS agent, which keeps its pause image out of the task's
/// pull times).
fn counts_for_pull_times(task: &Task, container: &str) -> bool {
    task.container(container).is_some_and(|c| !c.spec.internal)
}

fn issued(task: &mut Task, op: &Op, now: DateTime<Utc>) {
    match op {
        Op::Container { container, action } => {
            if *action == Action::Pull && counts_for_pull_times(task, container) && task.pull_started_at.is_none() {
                task.pull_started_at = Some(now);
            }
            if let Some(c) = container_mut(task, container) {
                c.in_flight = true;
                if *action == Action::Restart {
                    restart::issued(c, now);
                }
                if let Some(target) = action.target() {
                    c.applied_status = c.applied_status.max(target);
                }
                // berth stops it: an earlier signal sent from outside (SIGUSR1, SIGHUP), which
                // the container lived through, no longer explains the exit to come.
                if matches!(action, Action::Stop { .. }) {
                    c.reason = None;
                }
            }
        }
        Op::Volume { volume, action } => {
            let arn = task.arn.clone();
            if let Some(v) = task.volumes.iter_mut().find(|v| &v.name == volume) {
                v.in_flight = true;
                // Named before the create is sent (and saved with the round), as containers are.
                if *action == VolumeAction::Create && v.managed_by_task() && v.docker_name.is_none() {
                    v.docker_name = Some(crate::task::task_volume_name(&arn, &v.name));
                }
            }
        }
        Op::MarkStopped { .. } | Op::StopTask { .. } | Op::Forget => {}
    }
}

fn done(task: &mut Task, op: Op, outcome: Outcome, now: DateTime<Utc>, cfg: &PlanConfig) {
    match op {
        Op::Container { container, action } => {
            if action == Action::Pull
                && !matches!(outcome, Outcome::NotDone(_))
                && counts_for_pull_times(task, &container)
            {
                task.pull_stopped_at = Some(now);
            }
            if let Some(c) = container_mut(task, &container) {
                c.in_flight = false;
                let look_again = std::mem::take(&mut c.inspect_after_flight);
                container_done(c, action, outcome, now, cfg);
                if look_again && c.known_status < ContainerStatus::Stopped {
                    c.needs_inspect = true;
                }
            }
        }
        Op::Volume { volume, action } => {
            if let Some(v) = task.volumes.iter_mut().find(|v| v.name == volume) {
                v.in_flight = false;
                match (action, outcome) {
                    (_, Outcome::NotDone(_)) => {}
                    (VolumeAction::Create, Outcome::Failed(err)) => v.error = Some(err.message),
                    (VolumeAction::Create, Outcome::Unknown(msg)) => v.error = Some(msg),
                    (VolumeAction::Create, _) => v.created = true,
                    (VolumeAction::Remove, Outcome::Failed(_) | Outcome::Unknown(_)) => {
                        v.failures += 1;
                        v.retry_at = Some(later(now, cfg.retry.backoff(v.failures)));
                    }
                    (VolumeAction::Remove, _) => v.removed = true,
                }
            }
        }
        Op::MarkStopped { container, reason } => {
            if let Some(c) = container_mut(task, &container) {
                advance(c, ContainerStatus::Stopped, now);
                if reason.is_some() {
                    c.reason = reason;
                }
            }
        }
        Op::StopTask { reason } => {
            if task.desired_status < TaskStatus::Stopped {
                task.stop_reason = Some(reason);
                task.raise_desired_status(TaskStatus::Stopped);
            }
        }
        Op::Forget => {}
    }
}

fn container_done(c: &mut Container, action: Action, outcome: Outcome, now: DateTime<Utc>, cfg: &PlanConfig) {
    // A failure or timeout of a step that Docker's events already showed done is no failure.
    let shown_done = action.target().is_some_and(|t| c.known_status >= t);
    let outcome = match outcome {
        Outcome::Failed(_) | Outcome::Unknown(_) if shown_done => Outcome::Ok,
        other => other,
    };
    if action == Action::Restart {
        return restart::done(c, outcome, now, cfg);
    }
    match outcome {
        Outcome::Ok => {
            match action {
                Action::Remove => c.removed = true,
                Action::Inspect => c.needs_inspect = false,
                _ => {}
            }
            if let Some(target) = action.target() {
                advance(c, target, now);
            }
            if action == Action::Start {
                c.has_run = true;
            }
            c.failures = 0;
            c.retry_at = None;
        }
        Outcome::Created(id) => {
            c.docker_id = Some(id);
            container_done(c, action, Outcome::Ok, now, cfg);
        }
        Outcome::Inspected(observation) => {
            c.needs_inspect = false;
            observe(c, observation, now);
            give_up_if_exhausted(c, cfg, now);
        }
        Outcome::Failed(err) => failed(c, action, err, now, cfg),
        Outcome::NotDone(_) => {}
        Outcome::Unknown(message) => {
            c.needs_inspect = true;
            failed(c, action, ApplyError { message, permanent: false }, now, cfg);
        }
    }
}

/// A failed attempt: retry after a backoff, or give up (pull, create, start only).
fn failed(c: &mut Container, action: Action, err: ApplyError, now: DateTime<Utc>, cfg: &PlanConfig) {
    c.failures += 1;
    c.retry_at = Some(later(now, cfg.retry.backoff(c.failures)));
    match action {
        Action::Pull | Action::Create | Action::Start => {
            if err.permanent {
                c.failures = c.failures.max(cfg.retry.attempts);
            }
            c.applying_error = Some(err);
            give_up_if_exhausted(c, cfg, now);
        }
        // Never given up: the retry goes on with the backoff (capped). (A restart's
        // failures are [`restart::done`]'s.)
        Action::Stop { .. } | Action::Remove | Action::Inspect | Action::Restart => {}
    }
}

/// After the last attempt (and once any unknown outcome has been inspected), the container
/// is STOPPED with its applying error as the reason.
pub(super) fn give_up_if_exhausted(c: &mut Container, cfg: &PlanConfig, now: DateTime<Utc>) {
    if c.failures >= cfg.retry.attempts && !c.needs_inspect && c.applying_error.is_some() {
        c.retry_at = None;
        advance(c, ContainerStatus::Stopped, now);
    }
}

/// Raise the known status; a status below it is ignored. Progress clears the failures;
/// reaching RUNNING records when it started; reaching STOPPED ends any pending restart.
fn advance(c: &mut Container, status: ContainerStatus, now: DateTime<Utc>) -> bool {
    if status <= c.known_status {
        return false;
    }
    c.known_status = status;
    match status {
        ContainerStatus::Running => c.started_at = Some(now),
        ContainerStatus::Stopped => restart::end(c),
        _ => {}
    }
    if status < ContainerStatus::Stopped {
        c.failures = 0;
        c.retry_at = None;
        c.applying_error = None;
    }
    true
}

/// Fold what Docker said into the container. An exit its restart policy restarts does not
/// stop it: it stays RUNNING with a pending restart.
pub(super) fn observe(c: &mut Container, o: Observation, now: DateTime<Utc>) {
    if let (Some(id), None) = (&o.docker_id, &c.docker_id) {
        c.docker_id = Some(id.clone());
    }
    c.has_run |= o.has_run || o.status == ContainerStatus::Running;
    if o.removed {
        c.removed = true;
    }
    if restart::folds(c, &o, now) {
        return;
    }
    let was_stopped = c.known_status == ContainerStatus::Stopped;
    let moved = advance(c, o.status, now);
    if o.reason.is_some() && !was_stopped {
        c.reason = o.reason;
    }
    if moved && c.known_status == ContainerStatus::Stopped {
        c.retry_at = None;
    }
    if o.exit_code.is_some() && c.known_status == ContainerStatus::Stopped && c.known_exit_code.is_none() {
        c.known_exit_code = o.exit_code;
    }
    if let Some(h) = o.health {
        c.health = h;
    }
    if let Some(ports) = o.port_bindings.filter(|_| c.known_status == ContainerStatus::Running) {
        c.known_port_bindings = ports;
    }
}

/// `t + d`, saturating at the end of time instead of panicking.
pub(super) fn later(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
