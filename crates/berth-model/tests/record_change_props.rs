//! Property test of the engine's change detection: `plan::apply_tracked` says "the record
//! did not change" only when nothing a crash must remember moved. From any container state
//! (reachable or not: every field drawn at random) and any feedback (every kind of
//! operation issued or ended with every kind of outcome, every observation, about a
//! container the task has or not), an answer of false must leave `Task::record_fingerprint`
//! (which covers every field of the record, destructured exhaustively) as it was, and
//! `apply_tracked` must change the task exactly as `apply` does.

use berth_model::container::{ApplyError, ContainerSpec, PendingRestart, PortBinding, Protocol, RestartPolicy};
use berth_model::plan::{self, Action, Feedback, Observation, Op, Outcome, PlanConfig, VolumeAction};
use berth_model::{Container, ContainerStatus, HealthStatus, Task, TaskStatus, Volume, VolumeKind};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date")
}

fn status() -> impl Strategy<Value = ContainerStatus> {
    prop::sample::select(ContainerStatus::ALL.to_vec())
}

fn health() -> impl Strategy<Value = HealthStatus> {
    prop::sample::select(vec![HealthStatus::Unknown, HealthStatus::Healthy, HealthStatus::Unhealthy])
}

/// A time near the epoch (some equal to `now`, some before, some after).
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (-3i64..4).prop_map(|s| epoch() + Duration::seconds(s * 10))
}

/// A few values each, so that an observation often says what berth already knows.
fn small_string(prefix: &'static str) -> impl Strategy<Value = Option<String>> {
    prop::option::of((0u8..2).prop_map(move |i| format!("{prefix}{i}")))
}

fn ports() -> impl Strategy<Value = Vec<PortBinding>> {
    prop::collection::vec(
        (0u16..2).prop_map(|p| PortBinding {
            container_port: 80 + p,
            host_port: 8080 + p,
            bind_ip: "0.0.0.0".into(),
            protocol: Protocol::Tcp,
        }),
        0..2,
    )
}

prop_compose! {
    fn container(i: usize)(
        (known_status, applied_status, desired_status, sent_status) in (status(), status(), status(), status()),
        (has_run, removed, in_flight, needs_inspect, inspect_after_flight) in
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (failures, restart_count) in (0u32..4, 0u32..3),
        (retry_at, started_at) in (prop::option::of(time()), prop::option::of(time())),
        (docker_id, docker_name, reason) in (small_string("id"), small_string("name"), small_string("why")),
        known_exit_code in prop::option::of(0i64..3),
        health in health(),
        known_port_bindings in ports(),
        applying_error in prop::option::of((small_string("err"), any::<bool>())),
        pending_restart in prop::option::of((0i64..3, any::<bool>())),
        (restarts, ignored_exit) in (any::<bool>(), prop::option::of(0i64..3)),
    ) -> Container {
        let spec = ContainerSpec {
            name: format!("c{i}"),
            image: "busybox".into(),
            essential: true,
            restart_policy: restarts.then(|| {
                Box::new(RestartPolicy {
                    ignored_exit_codes: ignored_exit.into_iter().collect(),
                    restart_attempt_period_secs: 10,
                })
            }),
            ..ContainerSpec::default()
        };
        let mut c = Container::new(spec);
        c.known_status = known_status;
        c.applied_status = applied_status;
        c.desired_status = desired_status;
        c.sent_status = sent_status;
        c.has_run = has_run;
        c.removed = removed;
        c.in_flight = in_flight;
        c.needs_inspect = needs_inspect;
        c.inspect_after_flight = inspect_after_flight;
        c.failures = failures;
        c.restart_count = restart_count;
        c.retry_at = retry_at;
        c.started_at = started_at;
        c.docker_id = docker_id;
        c.docker_name = docker_name;
        c.reason = reason;
        c.known_exit_code = known_exit_code;
        c.health = health;
        c.known_port_bindings = known_port_bindings;
        c.applying_error = applying_error.map(|(m, permanent)| ApplyError { message: m.unwrap_or_default(), permanent });
        c.pending_restart = pending_restart.map(|(exit_code, issued)| PendingRestart { exit_code, issued });
        c
    }
}

fn task() -> impl Strategy<Value = Task> {
    (
        (1usize..=3).prop_flat_map(|n| (0..n).map(container).collect::<Vec<_>>()),
        prop::sample::select(vec![TaskStatus::None, TaskStatus::Created, TaskStatus::Running, TaskStatus::Stopped]),
        prop::sample::select(vec![TaskStatus::Running, TaskStatus::Stopped]),
        (prop::option::of(time()), prop::option::of(time()), prop::option::of(time())),
        (any::<bool>(), any::<bool>(), small_string("err")),
    )
        .prop_map(
            |(
                containers,
                known,
                desired,
                (known_time, pull_started_at, pull_stopped_at),
                (created, removed, error),
            )| {
                let mut volume = Volume::new("data", VolumeKind::Empty);
                (volume.created, volume.removed, volume.error) = (created, removed, error);
                let mut t = Task::new("arn:t".into(), "fam".into(), "1".into(), containers, vec![volume]);
                (t.known_status, t.desired_status, t.known_time) = (known, desired, known_time);
                (t.pull_started_at, t.pull_stopped_at) = (pull_started_at, pull_stopped_at);
                t
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(vec![
        Action::Inspect,
        Action::Pull,
        Action::Create,
        Action::Start,
        Action::Restart,
        Action::Stop { timeout_secs: 10 },
        Action::Remove,
    ])
}

/// A container of the task (c0..c2, which may not all exist) or one it does not have.
fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["c0", "c1", "c2", "zz"]).prop_map(String::from)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (name(), action()).prop_map(|(container, action)| Op::Container { container, action }),
        1 => prop::sample::select(vec![VolumeAction::Create, VolumeAction::Remove])
            .prop_map(|action| Op::Volume { volume: "data".into(), action }),
        1 => (name(), small_string("why")).prop_map(|(container, reason)| Op::MarkStopped { container, reason }),
        1 => Just(Op::StopTask { reason: "essential container exited".into() }),
        1 => Just(Op::Forget),
    ]
}

prop_compose! {
    fn observation()(
        status in status(),
        exit_code in prop::option::of(0i64..3),
        health in prop::option::of(health()),
        port_bindings in prop::option::of(ports()),
        (has_run, removed, inspected) in (any::<bool>(), any::<bool>(), any::<bool>()),
        (docker_id, reason) in (small_string("id"), small_string("why")),
    ) -> Observation {
        Observation { status, exit_code, health, port_bindings, has_run, docker_id, reason, removed, inspected }
    }
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        1 => Just(Outcome::Ok),
        1 => small_string("id").prop_map(|id| Outcome::Created(id.unwrap_or_default())),
        1 => any::<bool>().prop_map(|permanent| Outcome::Failed(ApplyError { message: "boom".into(), permanent })),
        1 => Just(Outcome::Unknown("timed out".into())),
        3 => observation().prop_map(Outcome::Inspected),
        1 => Just(Outcome::NotDone("no Docker".into())),
    ]
}

fn feedback() -> impl Strategy<Value = Feedback> {
    prop_oneof![
        op().prop_map(Feedback::Issued),
        // Inspects weighed up: they are the feedback whose answer may be "unchanged".
        (name(), outcome()).prop_map(|(c, o)| Feedback::Done(Op::container(&c, Action::Inspect), o)),
        (op(), outcome()).prop_map(|(op, o)| Feedback::Done(op, o)),
        (name(), observation()).prop_map(|(container, observation)| Feedback::Observed { container, observation }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn an_unchanged_answer_means_the_record_did_not_move(
        task in task(),
        feedbacks in prop::collection::vec(feedback(), 1..6),
        step in 0i64..3,
    ) {
        let cfg = PlanConfig::default();
        let (mut tracked, mut plain) = (task.clone(), task);
        for (i, fb) in feedbacks.into_iter().enumerate() {
            let now = epoch() + Duration::seconds(step * i as i64);
            let before = tracked.record_fingerprint();
            let changed = plan::apply_tracked(&mut tracked, fb.clone(), now, &cfg);
            plan::apply(&mut plain, fb.clone(), now, &cfg);
            prop_assert_eq!(&tracked, &plain, "apply_tracked changes the task as apply does ({:?})", fb);
            if !changed {
                prop_assert_eq!(
                    before,
                    tracked.record_fingerprint(),
                    "{:?} moved the record but was answered unchanged",
                    fb
                );
            }
        }
    }
}

/// The answers that spare a save: an inspect issued, and one that finds what berth knew.
#[test]
fn an_inspect_that_finds_what_berth_knew_is_unchanged() {
    let cfg = PlanConfig::default();
    let mut c = Container::new(ContainerSpec { name: "c0".into(), image: "busybox".into(), ..Default::default() });
    (c.known_status, c.applied_status, c.has_run) = (ContainerStatus::Running, ContainerStatus::Running, true);
    c.docker_id = Some("id0".into());
    c.needs_inspect = true;
    let mut t = Task::new("arn:t".into(), "fam".into(), "1".into(), vec![c], vec![]);
    t.known_status = TaskStatus::Running;
    let inspect = Op::container("c0", Action::Inspect);
    assert!(!plan::apply_tracked(&mut t, Feedback::Issued(inspect.clone()), epoch(), &cfg));
    let same = Observation {
        status: ContainerStatus::Running,
        has_run: true,
        docker_id: Some("id0".into()),
        inspected: true,
        ..Observation::default()
    };
    assert!(!plan::apply_tracked(&mut t, Feedback::Done(inspect.clone(), Outcome::Inspected(same)), epoch(), &cfg));
    assert!(!t.containers[0].needs_inspect && !t.containers[0].in_flight);
    let exited = Observation {
        status: ContainerStatus::Stopped,
        exit_code: Some(0),
        has_run: true,
        inspected: true,
        ..Observation::default()
    };
    assert!(plan::apply_tracked(&mut t, Feedback::Done(inspect, Outcome::Inspected(exited)), epoch(), &cfg));
    assert_eq!(t.containers[0].known_status, ContainerStatus::Stopped);
}
