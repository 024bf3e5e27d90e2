//! The restart policy's rules (docs/restart-policy.md): which exit is restarted, and how a
//! restart's issue and outcome move the container's engine fields. Called from
//! [`super::apply`], still the one place those fields move.
//!
//! - An exit of a container with a restart policy that should run is acted on once an
//!   inspect shows it: an exit event may be an old one (Docker's event stream is reopened
//!   with a look-back after a restart of berth, and a restarted container has died before),
//!   so it only makes the container wait for an inspect.
//! - An exit is restarted when the container has a restart policy, should run (its desired
//!   status is RUNNING, so never while it or its task is stopping), exited with a known code
//!   that is not ignored, was not removed, and has run at least the restart period since
//!   berth saw it start or restarted it. It then stays RUNNING (statuses only rise; a
//!   restart is not a stop, so its task's derived status does not move) with a
//!   [`PendingRestart`], which the planner answers with [`Action::Restart`](super::Action).
//! - Issuing the restart counts it and restarts the period (write-ahead: the engine commits
//!   this before the start reaches Docker).
//! - From then on, the restart is done when Docker shows the container running again; an exit
//!   seen before that is never restarted again (the start may have run it already: a crash
//!   mid-restart never starts it twice), it is a normal stop.
//! - A restart that fails for good (a permanent error, or the last attempt) is a normal
//!   stop, with the exit code of the exit it answered.

use super::PlanConfig;
use super::apply::{Observation, Outcome, give_up_if_exhausted, later, observe};
use crate::container::{ApplyError, Container, PendingRestart};
use crate::status::ContainerStatus;
use chrono::{DateTime, Utc};

/// Whether an exit with `exit_code` (`removed`: the container is gone), observed at `now`,
/// is restarted.
pub(super) fn restarts(c: &Container, exit_code: Option<i64>, removed: bool, now: DateTime<Utc>) -> bool {
    let Some(policy) = &c.spec.restart_policy else { return false };
    let Some(code) = exit_code else { return false };
    let ran_long_enough =
        c.started_at.is_some_and(|since| now >= super::seconds_after(since, policy.restart_attempt_period_secs));
    c.desired_status == ContainerStatus::Running
        && c.known_status == ContainerStatus::Running
        && c.pending_restart.is_none()
        && !removed
        && !policy.ignored_exit_codes.contains(&code)
        && ran_long_enough
}

/// The restart policy's part of an observation; true when it takes the observation whole
/// (an exit that becomes, or already is, a pending restart), so that it stops nothing.
pub(super) fn folds(c: &mut Container, o: &Observation, now: DateTime<Utc>) -> bool {
    let restartable = c.spec.restart_policy.is_some()
        && c.desired_status == ContainerStatus::Running
        && c.known_status == ContainerStatus::Running;
    if restartable && o.status == ContainerStatus::Stopped && !o.inspected && !o.removed {
        c.needs_inspect = true;
        // The answer of an operation in flight may predate the exit: look again after it.
        c.inspect_after_flight |= c.in_flight;
        return true;
    }
    match (o.status, c.pending_restart) {
        // The same exit reported again (`die`, then `stop`, or an inspect), while the
        // restart is still wanted; once the container is to stop, the exit stops it.
        (ContainerStatus::Stopped, Some(PendingRestart { issued: false, .. })) => {
            !o.removed && c.desired_status == ContainerStatus::Running
        }
        (ContainerStatus::Stopped, None) if restarts(c, o.exit_code, o.removed, now) => {
            let exit_code = o.exit_code.unwrap_or_default();
            c.pending_restart = Some(PendingRestart { exit_code, issued: false });
            true
        }
        // Running again after the restart was issued: it is done.
        (ContainerStatus::Running, Some(PendingRestart { issued: true, .. })) => {
            confirmed(c);
            false
        }
        _ => false,
    }
}

/// The restart is issued: counted once, and the period counts from now.
pub(super) fn issued(c: &mut Container, now: DateTime<Utc>) {
    if let Some(pending) = &mut c.pending_restart
        && !pending.issued
    {
        pending.issued = true;
        c.restart_count = c.restart_count.saturating_add(1);
        c.started_at = Some(now);
        // What explained the exit ("killed by signal 9 outside berth") is over.
        c.reason = None;
    }
}

/// The outcome of a restart.
pub(super) fn done(c: &mut Container, outcome: Outcome, now: DateTime<Utc>, cfg: &PlanConfig) {
    match outcome {
        Outcome::Ok | Outcome::Created(_) => confirmed(c),
        // The start worked (or the container is gone): what Docker shows now decides.
        Outcome::Inspected(o) => {
            c.needs_inspect = false;
            if c.pending_restart.is_some() && !o.removed {
                confirmed(c);
            }
            observe(c, o, now);
            give_up_if_exhausted(c, cfg, now);
        }
        Outcome::NotDone(_) => {}
        Outcome::Failed(err) => failed(c, err, now, cfg),
        Outcome::Unknown(message) => {
            c.needs_inspect = true;
            failed(c, ApplyError { message, permanent: false }, now, cfg);
        }
    }
}

/// Docker shows it running again: nothing is pending, nothing failed.
fn confirmed(c: &mut Container) {
    c.pending_restart = None;
    c.failures = 0;
    c.retry_at = None;
    c.applying_error = None;
}

/// A failed restart: retried after a backoff, or, after the last attempt (or a permanent
/// error, once any unknown outcome has been inspected), a normal stop with the exit code of
/// the exit it answered.
fn failed(c: &mut Container, err: ApplyError, now: DateTime<Utc>, cfg: &PlanConfig) {
    let Some(pending) = c.pending_restart else { return };
    c.failures += 1;
    if err.permanent {
        c.failures = c.failures.max(cfg.retry.attempts);
    }
    c.retry_at = Some(later(now, cfg.retry.backoff(c.failures)));
    c.applying_error = Some(ApplyError { message: format!("restart failed: {}", err.message), ..err });
    if c.failures >= cfg.retry.attempts && !c.needs_inspect {
        c.known_exit_code = Some(pending.exit_code);
        give_up_if_exhausted(c, cfg, now);
    }
}

/// The container is STOPPED: no restart is pending any more.
pub(super) fn end(c: &mut Container) {
    c.pending_restart = None;
}
