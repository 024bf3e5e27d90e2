//! One test per planner rule (SPEC 3), and the seed's behaviours at the model level.

mod support;

use berth_model::container::{
    ContainerSpec, Dependency, DependencyCondition, HealthCheck, Link, MountPoint, PAUSE_CONTAINER_NAME, VolumeFrom,
};
use berth_model::graph::DependencyGraph;
use berth_model::plan::{self, Action, Feedback, Observation, Op, Outcome, Plan, PlanConfig, VolumeAction};
use berth_model::task::NetworkMode;
use berth_model::{
    ApplyError, Container, ContainerStatus, HealthStatus, Task, TaskStatus, Volume, VolumeKind, task_completed,
};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use support::{ActionKind, Behaviour, Fault, First, World, epoch};

fn spec(name: &str, essential: bool) -> ContainerSpec {
    ContainerSpec { name: name.into(), image: "busybox".into(), essential, ..ContainerSpec::default() }
}

fn task(specs: Vec<ContainerSpec>) -> Task {
    Task::new(
        "arn:berth:task/rules".into(),
        "rules".into(),
        "1".into(),
        specs.into_iter().map(Container::new).collect(),
        vec![],
    )
}

fn plan_of(t: &Task) -> Plan {
    plan_at(t, epoch())
}

fn plan_at(t: &Task, now: DateTime<Utc>) -> Plan {
    let g = DependencyGraph::build(t).expect("valid graph");
    plan::plan(t, &g, now, &PlanConfig::default())
}

fn ops(t: &Task) -> Vec<String> {
    plan_of(t).ops.iter().map(ToString::to_string).collect()
}

fn set<'t>(t: &'t mut Task, name: &str, status: ContainerStatus) -> &'t mut Container {
    let i = t.container_index(name).expect("container exists");
    let c = &mut t.containers[i];
    c.known_status = status;
    if status >= ContainerStatus::Created {
        c.docker_id = Some(format!("id-{name}"));
        c.applied_status = c.applied_status.max(ContainerStatus::Created);
    }
    if status >= ContainerStatus::Running {
        c.has_run = true;
    }
    c
}

fn behaviours(list: &[(&str, Behaviour)]) -> BTreeMap<String, Behaviour> {
    list.iter().map(|(n, b)| (n.to_string(), *b)).collect()
}

#[test]
fn a_new_container_is_pulled_first_and_pulls_are_not_gated() {
    let mut b = spec("b", true);
    b.links.push(Link { name: "a".into(), alias: None });
    let t = task(vec![spec("a", true), b]);
    assert_eq!(ops(&t), ["pull a", "pull b"]);
}

#[test]
fn links_gate_create_on_created_and_start_on_running() {
    let mut b = spec("b", true);
    b.links.push(Link { name: "a".into(), alias: Some("db".into()) });
    let mut t = task(vec![spec("a", true), b]);
    set(&mut t, "a", ContainerStatus::Pulled);
    set(&mut t, "b", ContainerStatus::Pulled);
    assert_eq!(ops(&t), ["create a"], "b waits for a to exist");
    set(&mut t, "a", ContainerStatus::Created);
    assert_eq!(ops(&t), ["start a", "create b"]);
    set(&mut t, "b", ContainerStatus::Created);
    assert_eq!(ops(&t), ["start a"], "b waits for a to run");
    set(&mut t, "a", ContainerStatus::Running);
    assert_eq!(ops(&t), ["start b"]);
}

#[test]
fn volumes_from_gates_create_only_and_a_stopped_source_counts() {
    let mut b = spec("b", true);
    b.volumes_from.push(VolumeFrom { source_container: "data".into(), read_only: true });
    let mut t = task(vec![spec("data", false), b]);
    set(&mut t, "data", ContainerStatus::Pulled);
    set(&mut t, "b", ContainerStatus::Pulled);
    assert_eq!(ops(&t), ["create data"]);
    set(&mut t, "data", ContainerStatus::Stopped).known_exit_code = Some(0);
    assert_eq!(ops(&t), ["create b"]);
    set(&mut t, "b", ContainerStatus::Created);
    assert_eq!(ops(&t), ["start b"], "volumesFrom does not gate start");
}

fn depends(condition: DependencyCondition) -> Task {
    let mut app = spec("app", true);
    app.depends_on.push(Dependency { container_name: "dep".into(), condition });
    let mut dep = spec("dep", false);
    dep.health_check = Some(Box::new(HealthCheck { command: vec!["CMD".into(), "true".into()], ..Default::default() }));
    let mut t = task(vec![dep, app]);
    set(&mut t, "dep", ContainerStatus::Created);
    set(&mut t, "app", ContainerStatus::Pulled);
    t
}

#[test]
fn depends_on_does_not_gate_create() {
    let t = depends(DependencyCondition::Success);
    assert_eq!(ops(&t), ["start dep", "create app"]);
}

#[test]
fn depends_on_start_waits_for_the_dependency_to_run() {
    let mut t = depends(DependencyCondition::Start);
    set(&mut t, "app", ContainerStatus::Created);
    assert_eq!(ops(&t), ["start dep"]);
    set(&mut t, "dep", ContainerStatus::Running);
    assert_eq!(ops(&t), ["start app"]);
}

#[test]
fn depends_on_complete_and_success_wait_for_the_exit() {
    for (condition, code, starts) in [
        (DependencyCondition::Complete, 3, true),
        (DependencyCondition::Success, 0, true),
        (DependencyCondition::Success, 1, false),
    ] {
        let mut t = depends(condition);
        set(&mut t, "app", ContainerStatus::Created);
        set(&mut t, "dep", ContainerStatus::Running);
        assert!(ops(&t).is_empty(), "{condition}: waits while dep runs");
        set(&mut t, "dep", ContainerStatus::Stopped).known_exit_code = Some(code);
        let got = ops(&t);
        if starts {
            assert_eq!(got, ["start app"], "{condition} exit {code}");
        } else {
            assert_eq!(
                got,
                [r#"stop task: dependency (SUCCESS) of "app" on "dep" can no longer be met: it exited with code 1"#]
            );
        }
    }
}

#[test]
fn depends_on_healthy_waits_for_healthy_and_fails_when_it_stops_first() {
    let mut t = depends(DependencyCondition::Healthy);
    set(&mut t, "app", ContainerStatus::Created);
    set(&mut t, "dep", ContainerStatus::Running);
    assert!(ops(&t).is_empty());
    t.containers[0].health = HealthStatus::Unhealthy;
    assert!(ops(&t).is_empty(), "unhealthy may still become healthy");
    t.containers[0].health = HealthStatus::Healthy;
    assert_eq!(ops(&t), ["start app"]);

    let mut t = depends(DependencyCondition::Healthy);
    set(&mut t, "dep", ContainerStatus::Stopped).known_exit_code = Some(0);
    assert_eq!(
        ops(&t),
        [
            r#"stop task: dependency (HEALTHY) of "app" on "dep" can no longer be met: it stopped before it was healthy (it exited with code 0)"#
        ]
    );
}

#[test]
fn a_link_target_that_stopped_before_the_start_is_an_unmet_dependency() {
    let mut b = spec("b", true);
    b.links.push(Link { name: "a".into(), alias: None });
    let mut t = task(vec![spec("a", false), b]);
    set(&mut t, "a", ContainerStatus::Stopped).known_exit_code = Some(0);
    set(&mut t, "b", ContainerStatus::Created);
    assert_eq!(ops(&t), [r#"stop task: links of "b" on "a" can no longer be met: it exited with code 0"#]);
}

#[test]
fn a_container_that_has_run_is_never_started_again() {
    let mut t = task(vec![spec("a", true)]);
    // Inspect after a restart found it CREATED-looking but with a start time: it ran.
    set(&mut t, "a", ContainerStatus::Created).has_run = true;
    assert!(ops(&t).iter().all(|op| !op.starts_with("start")), "{:?}", ops(&t));
}

#[test]
fn an_unknown_outcome_is_inspected_before_anything_else() {
    let mut t = task(vec![spec("a", true)]);
    set(&mut t, "a", ContainerStatus::Created);
    let cfg = PlanConfig::default();
    let start = Op::container("a", Action::Start);
    plan::apply(&mut t, Feedback::Issued(start.clone()), epoch(), &cfg);
    assert!(ops(&t).is_empty(), "nothing new while the start is in flight");
    plan::apply(&mut t, Feedback::Done(start, Outcome::Unknown("timed out".into())), epoch(), &cfg);
    assert_eq!(ops(&t), ["inspect a"]);
    let running = Observation { status: ContainerStatus::Running, has_run: true, ..Default::default() };
    plan::apply(
        &mut t,
        Feedback::Done(Op::container("a", Action::Inspect), Outcome::Inspected(running)),
        epoch(),
        &cfg,
    );
    assert_eq!(t.containers[0].known_status, ContainerStatus::Running);
    assert!(t.containers[0].applying_error.is_none(), "it did start after all");
    assert!(ops(&t).is_empty());
}

#[test]
fn a_running_container_that_needs_an_inspect_gets_one_a_stopped_one_does_not() {
    let mut t = task(vec![spec("a", true), spec("b", false)]);
    set(&mut t, "a", ContainerStatus::Running).needs_inspect = true;
    set(&mut t, "b", ContainerStatus::Stopped).needs_inspect = true;
    assert_eq!(ops(&t), ["inspect a"]);
}

#[test]
fn transient_failures_are_retried_with_backoff_then_the_container_stops_with_the_error() {
    let mut t = task(vec![spec("a", true), spec("b", true)]);
    let cfg = PlanConfig::default();
    let pull = Op::container("a", Action::Pull);
    let err = ApplyError { message: "pull a: connection reset".into(), permanent: false };
    let mut now = epoch();
    for attempt in 1..=3 {
        plan::apply(&mut t, Feedback::Issued(pull.clone()), now, &cfg);
        plan::apply(&mut t, Feedback::Done(pull.clone(), Outcome::Failed(err.clone())), now, &cfg);
        let p = plan_at(&t, now);
        if attempt < 3 {
            assert_eq!(t.containers[0].known_status, ContainerStatus::None);
            let wait = cfg.retry.backoff(attempt);
            assert_eq!(p.wake_at, Some(now + wait), "attempt {attempt}");
            assert!(!p.ops.contains(&pull), "no retry before the backoff ends");
            now += wait;
            assert!(plan_at(&t, now).ops.contains(&pull), "retry once it ends");
        }
    }
    assert_eq!(cfg.retry.backoff(1), Duration::seconds(1));
    assert_eq!(cfg.retry.backoff(2), Duration::seconds(2));
    assert_eq!(cfg.retry.backoff(20), Duration::seconds(30), "capped");
    let a = &t.containers[0];
    assert_eq!(a.known_status, ContainerStatus::Stopped);
    assert_eq!(a.change_reason().as_deref(), Some("pull a: connection reset"));
    assert_eq!(ops(&t), [r#"stop task: essential container "a" failed: pull a: connection reset"#]);
}

#[test]
fn a_permanent_failure_is_not_retried() {
    let mut t = task(vec![spec("a", true), spec("side", false)]);
    let cfg = PlanConfig::default();
    let pull = Op::container("side", Action::Pull);
    let err = ApplyError { message: "no such image: nope:latest".into(), permanent: true };
    plan::apply(&mut t, Feedback::Issued(pull.clone()), epoch(), &cfg);
    plan::apply(&mut t, Feedback::Done(pull, Outcome::Failed(err)), epoch(), &cfg);
    let side = &t.containers[1];
    assert_eq!(side.known_status, ContainerStatus::Stopped);
    assert_eq!(side.change_reason().as_deref(), Some("no such image: nope:latest"));
    // Non-essential: the task goes on.
    assert_eq!(ops(&t), ["pull a"]);
}

#[test]
fn an_essential_exit_stops_the_others_a_non_essential_one_does_not() {
    let mut t = task(vec![spec("main", true), spec("side", false), spec("other", true)]);
    for n in ["main", "side", "other"] {
        set(&mut t, n, ContainerStatus::Running);
    }
    t.update_known_status(epoch());
    set(&mut t, "side", ContainerStatus::Stopped).known_exit_code = Some(1);
    assert!(ops(&t).is_empty(), "a non-essential exit changes nothing");
    assert_eq!(t.derived_status(), TaskStatus::Running);
    set(&mut t, "main", ContainerStatus::Stopped).known_exit_code = Some(42);
    assert_eq!(ops(&t), [r#"stop task: essential container "main" exited with code 42"#]);
    let cfg = PlanConfig::default();
    plan::apply(&mut t, Feedback::Done(Op::StopTask { reason: "x".into() }, Outcome::Ok), epoch(), &cfg);
    assert_eq!(t.desired_status, TaskStatus::Stopped);
    assert_eq!(ops(&t), ["stop other (timeout 30s)"]);
}

#[test]
fn stops_go_in_reverse_dependency_order_and_never_run_containers_are_marked() {
    let mut web = spec("web", true);
    web.links.push(Link { name: "db".into(), alias: None });
    let mut sidecar = spec("sidecar", true);
    sidecar.depends_on.push(Dependency { container_name: "web".into(), condition: DependencyCondition::Start });
    sidecar.stop_timeout = Some(2);
    let mut t = task(vec![spec("db", true), web, sidecar, spec("late", true)]);
    for n in ["db", "web", "sidecar"] {
        set(&mut t, n, ContainerStatus::Running);
    }
    set(&mut t, "late", ContainerStatus::Pulled);
    t.raise_desired_status(TaskStatus::Stopped);
    assert_eq!(ops(&t), ["mark late STOPPED", "stop sidecar (timeout 2s)"]);
    set(&mut t, "sidecar", ContainerStatus::Stopped);
    assert_eq!(ops(&t), ["mark late STOPPED", "stop web (timeout 30s)"]);
    set(&mut t, "web", ContainerStatus::Stopped);
    set(&mut t, "late", ContainerStatus::Stopped);
    assert_eq!(ops(&t), ["stop db (timeout 30s)"]);
}

#[test]
fn a_stopped_task_is_cleaned_up_after_the_wait_then_forgotten() {
    let mut a = spec("a", true);
    a.mount_points.push(MountPoint { source_volume: "scratch".into(), container_path: "/s".into(), read_only: false });
    let mut t = task(vec![a]);
    t.volumes.push(Volume::new("scratch", VolumeKind::Empty));
    t.volumes[0].created = true;
    set(&mut t, "a", ContainerStatus::Stopped);
    t.raise_desired_status(TaskStatus::Stopped);
    t.update_known_status(epoch());
    let cfg = PlanConfig::default();
    let g = DependencyGraph::build(&t).expect("graph");
    let p = plan::plan(&t, &g, epoch(), &cfg);
    assert!(p.ops.is_empty());
    assert_eq!(p.wake_at, Some(epoch() + Duration::hours(3)));
    let later = epoch() + Duration::hours(3);
    assert_eq!(plan::plan(&t, &g, later, &cfg).ops, [Op::container("a", Action::Remove)]);
    plan::apply(&mut t, Feedback::Done(Op::container("a", Action::Remove), Outcome::Ok), later, &cfg);
    let remove_volume = Op::Volume { volume: "scratch".into(), action: VolumeAction::Remove };
    assert_eq!(plan::plan(&t, &g, later, &cfg).ops, std::slice::from_ref(&remove_volume));
    plan::apply(&mut t, Feedback::Done(remove_volume, Outcome::Ok), later, &cfg);
    assert_eq!(plan::plan(&t, &g, later, &cfg).ops, [Op::Forget]);
}

#[test]
fn task_volumes_are_made_before_the_containers_that_mount_them() {
    let mut a = spec("a", true);
    a.mount_points.push(MountPoint { source_volume: "scratch".into(), container_path: "/s".into(), read_only: false });
    let mut t = task(vec![a]);
    t.volumes.push(Volume::new("scratch", VolumeKind::Empty));
    t.volumes.push(Volume::new("host", VolumeKind::Host { source_path: "/tmp".into() }));
    set(&mut t, "a", ContainerStatus::Pulled);
    assert_eq!(ops(&t), ["create volume scratch"]);
    t.volumes[0].created = true;
    assert_eq!(ops(&t), ["create a"]);
}

#[test]
fn an_unsupported_volume_stops_the_task_with_a_reason() {
    let mut t = task(vec![spec("a", true)]);
    t.volumes.push(Volume::new("efs", VolumeKind::Unsupported { kind: "efsVolumeConfiguration".into() }));
    assert_eq!(ops(&t), [r#"stop task: volume "efs": efsVolumeConfiguration is not supported by berth"#]);
}

#[test]
fn awsvpc_containers_wait_for_the_pause_container_which_stops_last_and_stops_the_task() {
    let mut t = task(vec![ContainerSpec::pause(Vec::new()), spec("app", true)]);
    t.network_mode = NetworkMode::Awsvpc;
    let mut w = World::new(t, BTreeMap::new());
    assert!(w.run(&mut First, 1000));
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert!(task_completed(&w.task));
    w.stop_task();
    assert!(w.run(&mut First, 1000));
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    // Hidden but for its last change, which alone makes the task STOPPED and carries that.
    let (last, before) = w.changes.split_last().expect("changes were made");
    assert!(before.iter().all(|ch| ch.container_name == "app"), "the pause container is hidden");
    assert_eq!((last.container_name.as_str(), last.task_status), ("~pause", TaskStatus::Stopped));
    let trace = w.trace.join("\n");
    let stop_app = trace.find("stop app").expect("app stopped");
    let stop_pause = trace.find("stop ~pause").expect("pause stopped");
    assert!(stop_app < stop_pause, "{trace}");
}

#[test]
fn the_pause_container_stopping_stops_the_task() {
    let mut t = task(vec![ContainerSpec::pause(Vec::new()), spec("app", true)]);
    t.network_mode = NetworkMode::Awsvpc;
    set(&mut t, PAUSE_CONTAINER_NAME, ContainerStatus::Stopped);
    set(&mut t, "app", ContainerStatus::Running);
    assert_eq!(ops(&t), [r#"stop task: internal container "~pause" stopped"#]);
}

#[test]
fn seed_task_changes_come_in_order_created_running_stopped() {
    let t = task(vec![spec("a", true)]);
    let mut w = World::new(t, behaviours(&[("a", Behaviour::exits(5, 0))]));
    assert!(w.run(&mut First, 1000));
    let steps: Vec<TaskStatus> = w.changes.iter().map(|c| c.task_status).filter(|s| *s != TaskStatus::None).collect();
    assert_eq!(steps, [TaskStatus::Created, TaskStatus::Running, TaskStatus::Stopped]);
    let statuses: Vec<ContainerStatus> = w.changes.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [ContainerStatus::Pulled, ContainerStatus::Created, ContainerStatus::Running, ContainerStatus::Stopped]
    );
    assert!(w.forgotten);
}

#[test]
fn seed_failure_after_the_retries_stops_the_container_with_the_error_as_reason() {
    let t = task(vec![spec("a", true)]);
    let mut w = World::new(t, BTreeMap::new());
    w.faults.insert(("a".into(), ActionKind::Create), [Fault::Transient; 3].into_iter().collect());
    assert!(w.run(&mut First, 1000));
    let stopped = w.changes.iter().find(|c| c.status == ContainerStatus::Stopped).expect("a STOPPED change");
    assert_eq!(stopped.reason.as_deref(), Some("injected failure of a"));
    assert_eq!(w.creates.get("a"), None, "three failed attempts, no container");
}

#[test]
fn seed_desired_status_only_rises() {
    let mut t = task(vec![spec("a", true)]);
    assert!(t.raise_desired_status(TaskStatus::Stopped));
    assert!(!t.raise_desired_status(TaskStatus::Running));
    assert_eq!(t.desired_status, TaskStatus::Stopped);
    assert_eq!(t.containers[0].desired_status, ContainerStatus::Stopped);
}

/// Issue 14 item 13: a state may hold any time; a STOPPED task known near the end of time
/// waits (the cleanup is due at the end of time) instead of overflowing.
#[test]
fn a_known_time_near_the_end_of_time_saturates_instead_of_panicking() {
    let mut t = task(vec![spec("a", true)]);
    set(&mut t, "a", ContainerStatus::Stopped);
    t.desired_status = TaskStatus::Stopped;
    t.known_status = TaskStatus::Stopped;
    t.known_time = Some(DateTime::<Utc>::MAX_UTC - chrono::Duration::seconds(1));
    let p = plan_at(&t, epoch());
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert_eq!(p.wake_at, Some(DateTime::<Utc>::MAX_UTC));
}

/// Issue 14 item 13: a container that lived through a signal sent from outside (a `kill`
/// event with SIGUSR1 sets the reason) and is later stopped by berth is reported as what it
/// is: its STOPPED change does not quote the earlier signal.
#[test]
fn berths_own_stop_does_not_quote_an_earlier_harmless_signal() {
    let cfg = PlanConfig::default();
    let mut t = task(vec![spec("a", true)]);
    set(&mut t, "a", ContainerStatus::Running).reason = Some("killed by signal 10 outside berth".into());
    let stop = Op::container("a", Action::Stop { timeout_secs: 30 });
    plan::apply(&mut t, Feedback::Issued(stop.clone()), epoch(), &cfg);
    let stopped = Observation { status: ContainerStatus::Stopped, exit_code: Some(143), ..Observation::default() };
    plan::apply(&mut t, Feedback::Done(stop, Outcome::Inspected(stopped)), epoch(), &cfg);
    let changes = berth_model::event::take_changes(&mut t, epoch());
    let change = changes.iter().find(|c| c.status == ContainerStatus::Stopped).expect("a STOPPED change");
    assert_eq!(change.reason, None, "{change:?}");
}

#[test]
fn pull_times_run_from_the_first_pull_issued_to_the_last_pull_ended() {
    let mut pause = spec(PAUSE_CONTAINER_NAME, false);
    pause.internal = true;
    let mut t = task(vec![pause, spec("a", true), spec("b", true)]);
    let cfg = PlanConfig::default();
    let pull = |name: &str| Op::Container { container: name.into(), action: Action::Pull };
    let at = |s: i64| epoch() + Duration::seconds(s);

    plan::apply(&mut t, Feedback::Issued(pull(PAUSE_CONTAINER_NAME)), at(1), &cfg);
    plan::apply(&mut t, Feedback::Done(pull(PAUSE_CONTAINER_NAME), Outcome::Ok), at(2), &cfg);
    assert_eq!((t.pull_started_at, t.pull_stopped_at), (None, None), "the pause image is not pulled");

    plan::apply(&mut t, Feedback::Issued(pull("a")), at(3), &cfg);
    plan::apply(&mut t, Feedback::Done(pull("a"), Outcome::NotDone("docker down".into())), at(4), &cfg);
    assert_eq!((t.pull_started_at, t.pull_stopped_at), (Some(at(3)), None), "a call that never reached Docker");

    plan::apply(&mut t, Feedback::Issued(pull("a")), at(5), &cfg);
    plan::apply(&mut t, Feedback::Issued(pull("b")), at(6), &cfg);
    plan::apply(&mut t, Feedback::Done(pull("b"), Outcome::Ok), at(7), &cfg);
    assert_eq!((t.pull_started_at, t.pull_stopped_at), (Some(at(3)), Some(at(7))));
    let failed = Outcome::Failed(ApplyError { message: "manifest unknown".into(), permanent: true });
    plan::apply(&mut t, Feedback::Done(pull("a"), failed), at(9), &cfg);
    assert_eq!((t.pull_started_at, t.pull_stopped_at), (Some(at(3)), Some(at(9))), "a failed pull ended too");

    let before = t.record_fingerprint();
    t.pull_stopped_at = Some(at(10));
    assert_ne!(t.record_fingerprint(), before, "pull times are saved with the record");
}
