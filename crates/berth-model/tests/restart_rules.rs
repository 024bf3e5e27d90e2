//! One test per rule of the restart policy and of `startTimeout` (docs/restart-policy.md,
//! docs/start-timeout.md), at the model level: the planner's decisions and how `apply`
//! moves the engine fields.

mod support;

use berth_model::container::{ContainerSpec, Dependency, DependencyCondition, PendingRestart, RestartPolicy};
use berth_model::graph::DependencyGraph;
use berth_model::plan::{self, Action, Cause, Feedback, Observation, Op, Outcome, Plan, PlanConfig};
use berth_model::{ApplyError, Container, ContainerStatus, Task, TaskStatus};
use chrono::{DateTime, Duration, Utc};
use support::epoch;

fn restarting(name: &str, period: u64, ignored: Vec<i64>) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "busybox".into(),
        essential: true,
        restart_policy: Some(Box::new(RestartPolicy {
            ignored_exit_codes: ignored,
            restart_attempt_period_secs: period,
        })),
        ..ContainerSpec::default()
    }
}

fn task(specs: Vec<ContainerSpec>) -> Task {
    Task::new(
        "arn:berth:task/r".into(),
        "r".into(),
        "1".into(),
        specs.into_iter().map(Container::new).collect(),
        vec![],
    )
}

fn at(secs: i64) -> DateTime<Utc> {
    epoch() + Duration::seconds(secs)
}

fn plan_at(t: &Task, now: DateTime<Utc>) -> Plan {
    let g = DependencyGraph::build(t).expect("valid graph");
    plan::plan(t, &g, now, &PlanConfig::default())
}

fn ops_at(t: &Task, now: DateTime<Utc>) -> Vec<String> {
    plan_at(t, now).ops.iter().map(ToString::to_string).collect()
}

fn feed(t: &mut Task, fb: Feedback, now: DateTime<Utc>) {
    plan::apply(t, fb, now, &PlanConfig::default());
}

/// Drive container `name` of `t` from nothing to RUNNING, its start seen at `now`.
fn run(t: &mut Task, name: &str, now: DateTime<Utc>) {
    for action in [Action::Pull, Action::Create, Action::Start] {
        let op = Op::container(name, action);
        feed(t, Feedback::Issued(op.clone()), now);
        let outcome = if action == Action::Create { Outcome::Created(format!("id-{name}")) } else { Outcome::Ok };
        feed(t, Feedback::Done(op, outcome), now);
    }
    t.update_known_status(now);
}

/// An inspect showing the container exited with `code`.
fn exit(code: i64) -> Observation {
    Observation {
        status: ContainerStatus::Stopped,
        exit_code: Some(code),
        has_run: true,
        inspected: true,
        ..Default::default()
    }
}

fn observe(t: &mut Task, name: &str, o: Observation, now: DateTime<Utc>) {
    feed(t, Feedback::Observed { container: name.into(), observation: o }, now);
}

fn restart_op() -> Op {
    Op::container("a", Action::Restart)
}

#[test]
fn an_exit_after_the_period_is_restarted_in_place_counted_and_stops_nothing() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    berth_model::event::take_changes(&mut t, at(0));
    observe(&mut t, "a", exit(1), at(60));
    let a = &t.containers[0];
    assert_eq!(a.known_status, ContainerStatus::Running, "a restart is not a stop");
    assert_eq!(a.pending_restart, Some(PendingRestart { exit_code: 1, issued: false }));
    assert_eq!(t.known_status, TaskStatus::Running);
    assert!(berth_model::event::take_changes(&mut t, at(60)).is_empty(), "no state change for the exit");
    let p = plan_at(&t, at(60));
    assert_eq!(p.ops, [restart_op()], "the same container, no create");
    assert_eq!(p.causes, [Cause::RestartDue]);
    feed(&mut t, Feedback::Issued(restart_op()), at(61));
    let a = &t.containers[0];
    assert_eq!((a.restart_count, a.started_at), (1, Some(at(61))), "counted when decided; the period restarts");
    assert!(ops_at(&t, at(61)).is_empty(), "nothing more while it is in flight");
    feed(&mut t, Feedback::Done(restart_op(), Outcome::Ok), at(61));
    let a = &t.containers[0];
    assert_eq!((a.known_status, a.pending_restart, a.restart_count), (ContainerStatus::Running, None, 1));
    assert_eq!(t.desired_status, TaskStatus::Running);
    assert!(ops_at(&t, at(62)).is_empty());
}

/// Docker's `die` event may be an old one (replayed after a restart of berth, from before
/// the last restart): it only makes the container wait for an inspect, which decides.
#[test]
fn an_exit_event_is_acted_on_once_an_inspect_shows_it() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", Observation { inspected: false, ..exit(1) }, at(60));
    let a = &t.containers[0];
    assert_eq!((a.known_status, a.pending_restart, a.needs_inspect), (ContainerStatus::Running, None, true));
    let inspect = Op::container("a", Action::Inspect);
    assert_eq!(plan_at(&t, at(60)).ops, std::slice::from_ref(&inspect));
    // Still running (the event was an old one): nothing happens.
    let running =
        Observation { status: ContainerStatus::Running, has_run: true, inspected: true, ..Default::default() };
    feed(&mut t, Feedback::Issued(inspect.clone()), at(60));
    feed(&mut t, Feedback::Done(inspect.clone(), Outcome::Inspected(running)), at(60));
    assert_eq!((t.containers[0].known_status, t.containers[0].pending_restart), (ContainerStatus::Running, None));
    assert!(ops_at(&t, at(60)).is_empty());
    // Exited indeed: restarted.
    observe(&mut t, "a", Observation { inspected: false, ..exit(1) }, at(61));
    feed(&mut t, Feedback::Issued(inspect.clone()), at(61));
    feed(&mut t, Feedback::Done(inspect, Outcome::Inspected(exit(1))), at(61));
    assert_eq!(t.containers[0].pending_restart, Some(PendingRestart { exit_code: 1, issued: false }));
    assert_eq!(plan_at(&t, at(61)).ops, [restart_op()]);
}

/// An exit event that comes while an inspect is in flight: that inspect may have looked
/// before the exit, so another follows it.
#[test]
fn an_exit_event_during_an_inspect_in_flight_is_looked_at_again() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    t.containers[0].needs_inspect = true;
    let inspect = Op::container("a", Action::Inspect);
    feed(&mut t, Feedback::Issued(inspect.clone()), at(70));
    observe(&mut t, "a", Observation { inspected: false, ..exit(1) }, at(70));
    let running =
        Observation { status: ContainerStatus::Running, has_run: true, inspected: true, ..Default::default() };
    feed(&mut t, Feedback::Done(inspect.clone(), Outcome::Inspected(running)), at(70));
    assert!(t.containers[0].needs_inspect, "the answer predates the exit");
    assert_eq!(plan_at(&t, at(70)).ops, std::slice::from_ref(&inspect));
    feed(&mut t, Feedback::Issued(inspect.clone()), at(71));
    feed(&mut t, Feedback::Done(inspect, Outcome::Inspected(exit(1))), at(71));
    assert_eq!(plan_at(&t, at(71)).ops, [restart_op()]);
}

#[test]
fn an_exit_before_the_period_is_a_normal_stop() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", exit(1), at(59));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped);
    assert_eq!(t.containers[0].known_exit_code, Some(1));
    assert_eq!(ops_at(&t, at(59)), [r#"stop task: essential container "a" exited with code 1"#]);
}

#[test]
fn the_period_counts_from_the_last_restart() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", exit(1), at(100));
    feed(&mut t, Feedback::Issued(restart_op()), at(100));
    feed(&mut t, Feedback::Done(restart_op(), Outcome::Ok), at(100));
    observe(&mut t, "a", exit(1), at(159));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped, "59 s after the restart: too early");
    assert_eq!(t.containers[0].restart_count, 1);
}

#[test]
fn an_ignored_exit_code_is_not_restarted() {
    let mut t = task(vec![restarting("a", 60, vec![0, 3])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", exit(3), at(600));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped);
    assert_eq!(t.containers[0].restart_count, 0);
}

#[test]
fn an_exit_without_a_policy_or_a_code_or_of_a_removed_container_is_not_restarted() {
    let mut plain =
        task(vec![ContainerSpec { name: "a".into(), image: "busybox".into(), essential: true, ..Default::default() }]);
    run(&mut plain, "a", at(0));
    observe(&mut plain, "a", exit(1), at(600));
    assert_eq!(plain.containers[0].known_status, ContainerStatus::Stopped);

    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", Observation { exit_code: None, ..exit(0) }, at(600));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped, "no exit code");

    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", Observation { removed: true, ..exit(137) }, at(600));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped, "removed outside berth");
}

#[test]
fn a_stopping_task_never_restarts() {
    // The exit comes while the task is stopping: a normal stop.
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    t.raise_desired_status(TaskStatus::Stopped);
    observe(&mut t, "a", exit(143), at(600));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped);

    // The task is stopped after the exit, before the restart: it is stopped, not restarted.
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", exit(1), at(600));
    t.raise_desired_status(TaskStatus::Stopped);
    let p = plan_at(&t, at(600));
    assert!(p.ops.iter().all(|op| *op != restart_op()), "{:?}", p.ops);
    assert_eq!(p.ops, [Op::container("a", Action::Stop { timeout_secs: 30 })]);
    let stop = p.ops[0].clone();
    feed(&mut t, Feedback::Issued(stop.clone()), at(600));
    feed(&mut t, Feedback::Done(stop, Outcome::Inspected(exit(1))), at(600));
    let a = &t.containers[0];
    assert_eq!((a.known_status, a.known_exit_code, a.pending_restart), (ContainerStatus::Stopped, Some(1), None));
    assert_eq!(a.restart_count, 0);
}

#[test]
fn a_restart_that_fails_for_good_is_a_normal_stop() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", exit(2), at(60));
    feed(&mut t, Feedback::Issued(restart_op()), at(60));
    let err = ApplyError { message: "no such container".into(), permanent: true };
    feed(&mut t, Feedback::Done(restart_op(), Outcome::Failed(err)), at(60));
    let a = &t.containers[0];
    assert_eq!(a.known_status, ContainerStatus::Stopped);
    assert_eq!(a.known_exit_code, Some(2), "the exit it answered");
    assert_eq!(a.change_reason().as_deref(), Some("restart failed: no such container"));
    assert_eq!(a.pending_restart, None);
    assert_eq!(ops_at(&t, at(60)), [r#"stop task: essential container "a" failed: restart failed: no such container"#]);
}

#[test]
fn a_transient_restart_failure_is_retried_after_a_backoff_and_counted_once() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", exit(1), at(60));
    feed(&mut t, Feedback::Issued(restart_op()), at(60));
    let err = ApplyError { message: "daemon busy".into(), permanent: false };
    feed(&mut t, Feedback::Done(restart_op(), Outcome::Failed(err)), at(60));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Running);
    let p = plan_at(&t, at(60));
    assert!(p.ops.is_empty());
    assert_eq!(p.wake_at, Some(at(61)));
    assert_eq!(plan_at(&t, at(61)).ops, [restart_op()]);
    feed(&mut t, Feedback::Issued(restart_op()), at(61));
    feed(&mut t, Feedback::Done(restart_op(), Outcome::Ok), at(61));
    let a = &t.containers[0];
    assert_eq!((a.restart_count, a.failures, a.pending_restart), (1, 0, None));
    assert!(a.applying_error.is_none());
}

/// A crash after the restart was committed (and maybe sent): the container is inspected
/// first; found running, the restart is done; found exited, it is never restarted again
/// for that exit (the start may have run it already): a normal stop.
#[test]
fn after_a_crash_mid_restart_the_container_is_never_started_twice() {
    let crashed = || {
        let mut t = task(vec![restarting("a", 60, vec![])]);
        run(&mut t, "a", at(0));
        observe(&mut t, "a", exit(1), at(60));
        feed(&mut t, Feedback::Issued(restart_op()), at(60));
        // What a restart loads: the record as committed, in_flight cleared, inspect first.
        let json = serde_json::to_string(&t).expect("serializes");
        let mut t: Task = serde_json::from_str(&json).expect("loads");
        let a = &mut t.containers[0];
        assert_eq!(a.pending_restart, Some(PendingRestart { exit_code: 1, issued: true }), "durable");
        assert_eq!(a.restart_count, 1, "durable");
        a.in_flight = false;
        a.needs_inspect = true;
        t
    };
    let inspect = Op::container("a", Action::Inspect);

    let mut t = crashed();
    assert_eq!(plan_at(&t, at(70)).ops, std::slice::from_ref(&inspect));
    let running = Observation { status: ContainerStatus::Running, has_run: true, ..Default::default() };
    feed(&mut t, Feedback::Done(inspect.clone(), Outcome::Inspected(running)), at(70));
    let a = &t.containers[0];
    assert_eq!((a.known_status, a.pending_restart, a.restart_count), (ContainerStatus::Running, None, 1));
    assert!(ops_at(&t, at(70)).is_empty(), "nothing more to do");

    let mut t = crashed();
    feed(&mut t, Feedback::Done(inspect, Outcome::Inspected(exit(1))), at(500));
    let a = &t.containers[0];
    assert_eq!((a.known_status, a.known_exit_code, a.restart_count), (ContainerStatus::Stopped, Some(1), 1));
    assert!(ops_at(&t, at(500)).iter().all(|op| op.starts_with("stop task")), "{:?}", ops_at(&t, at(500)));
}

fn waits_on(name: &str, on: &str, condition: DependencyCondition) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "busybox".into(),
        essential: true,
        depends_on: vec![Dependency { container_name: on.into(), condition }],
        ..ContainerSpec::default()
    }
}

fn timed(name: &str, secs: u64) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "busybox".into(),
        essential: false,
        start_timeout: Some(secs),
        ..ContainerSpec::default()
    }
}

#[test]
fn a_dependency_not_met_within_its_start_timeout_stops_the_task_and_the_dependent_never_starts() {
    for condition in [DependencyCondition::Complete, DependencyCondition::Success, DependencyCondition::Healthy] {
        let mut t = task(vec![timed("dep", 5), waits_on("app", "dep", condition)]);
        run(&mut t, "dep", at(10));
        let p = plan_at(&t, at(14));
        assert!(!p.ops.iter().any(|op| matches!(op, Op::StopTask { .. })), "{condition}: not yet");
        assert_eq!(p.wake_at, Some(at(15)), "{condition}: looks again when it passes");
        let p = plan_at(&t, at(15));
        let want = format!(r#"dependency ({condition}) of "app" on "dep" not met within its startTimeout of 5 s"#);
        assert_eq!(p.ops, [Op::StopTask { reason: want }], "{condition}");
        assert_eq!(p.causes, [Cause::StartTimedOut]);
    }
}

#[test]
fn a_start_timeout_does_not_apply_once_the_condition_is_met_nor_to_start() {
    let mut t = task(vec![timed("dep", 5), waits_on("app", "dep", DependencyCondition::Success)]);
    run(&mut t, "dep", at(0));
    observe(&mut t, "dep", exit(0), at(3));
    let p = plan_at(&t, at(100));
    assert!(p.ops.iter().all(|op| !matches!(op, Op::StopTask { .. })), "{:?}", p.ops);

    let mut t = task(vec![timed("dep", 5), waits_on("app", "dep", DependencyCondition::Start)]);
    run(&mut t, "dep", at(0));
    let p = plan_at(&t, at(100));
    assert!(p.ops.iter().all(|op| !matches!(op, Op::StopTask { .. })), "{:?}", p.ops);

    // Counted from the dependency's start: one that has not started has no deadline.
    let t = task(vec![timed("dep", 5), waits_on("app", "dep", DependencyCondition::Success)]);
    let p = plan_at(&t, at(100));
    assert!(p.ops.iter().all(|op| !matches!(op, Op::StopTask { .. })), "{:?}", p.ops);
}

#[test]
fn the_restart_fields_are_part_of_the_record() {
    let mut t = task(vec![restarting("a", 60, vec![])]);
    run(&mut t, "a", at(0));
    let before = t.record_fingerprint();
    observe(&mut t, "a", exit(1), at(60));
    let pending = t.record_fingerprint();
    assert_ne!(before, pending, "a pending restart is saved");
    feed(&mut t, Feedback::Issued(restart_op()), at(61));
    assert_ne!(pending, t.record_fingerprint(), "the count and issue are saved before the start is sent");
    let back: Task = serde_json::from_str(&serde_json::to_string(&t).expect("serializes")).expect("loads");
    assert_eq!(back.containers[0].restart_count, 1);
    assert_eq!(back.containers[0].started_at, Some(at(61)));
    assert_eq!(back.containers[0].spec.restart_policy, t.containers[0].spec.restart_policy);
}

/// A record may hold any value (the input holds them to ECS's ranges): the largest wait
/// forever rather than overflow.
#[test]
fn periods_and_timeouts_beyond_any_date_never_pass() {
    let mut t = task(vec![restarting("a", u64::MAX, vec![])]);
    run(&mut t, "a", at(0));
    observe(&mut t, "a", exit(1), at(1_000_000_000));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped, "not restarted");

    let mut t = task(vec![timed("dep", u64::MAX), waits_on("app", "dep", DependencyCondition::Success)]);
    run(&mut t, "dep", at(0));
    let p = plan_at(&t, at(1_000_000_000));
    assert!(p.ops.iter().all(|op| !matches!(op, Op::StopTask { .. })), "{:?}", p.ops);
}
