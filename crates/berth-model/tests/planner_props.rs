//! Property tests of the planner: random valid task graphs, driven on the simulated Docker
//! host with shuffled, delayed and duplicated outcomes and events and injected failures.
//! Following the planner always settles: every container at its desired status or STOPPED
//! (with a reason when a failure was permanent); statuses never go back; no container is
//! created or started twice; dependencies are honoured on create, start and stop; the
//! essential rule holds; a task known STOPPED has no container that is not STOPPED (checked
//! after every step); task changes come in the order CREATED, RUNNING, STOPPED, the task's
//! STOPPED after every container's STOPPED and its desired STOPPED said once, no later; and a
//! stopped task is cleaned up without leaving a Docker container or volume behind.

mod support;

use berth_model::container::{
    ContainerSpec, Dependency, DependencyCondition, HealthCheck, Link, MountPoint, VolumeFrom,
};
use berth_model::task::NetworkMode;
use berth_model::{Container, ContainerStatus, Task, TaskStatus, Volume, VolumeKind, task_completed};
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::{ActionKind, Behaviour, Fault, Scripted, World};

#[derive(Debug, Clone)]
struct GenContainer {
    essential: bool,
    exits: Option<(i64, i64)>,
    health: Option<i64>,
    edges: Vec<(usize, u8)>,
    mounts_volume: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    containers: Vec<GenContainer>,
    awsvpc: bool,
    faults: Vec<(usize, u8, u8)>,
    choices: Vec<u8>,
}

fn gen_container(i: usize) -> impl Strategy<Value = GenContainer> {
    let edges = if i == 0 { Just(Vec::new()).boxed() } else { prop::collection::vec((0..i, 0u8..6), 0..3).boxed() };
    (any::<bool>(), prop::option::of((0i64..20, 0i64..2)), prop::option::weighted(0.4, 0i64..10), edges, any::<bool>())
        .prop_map(|(essential, exits, health, edges, mounts_volume)| GenContainer {
            essential,
            exits,
            health,
            edges,
            mounts_volume,
        })
}

fn gen_scenario() -> impl Strategy<Value = Scenario> {
    (1usize..=6)
        .prop_flat_map(|n| {
            let containers: Vec<_> = (0..n).map(gen_container).collect();
            (
                containers,
                any::<bool>(),
                prop::collection::vec((0..n, 0u8..3, 0u8..4), 0..4),
                prop::collection::vec(any::<u8>(), 1..64),
            )
        })
        .prop_map(|(containers, awsvpc, faults, choices)| Scenario { containers, awsvpc, faults, choices })
}

/// Turn a scenario into a valid task (the rules the validator enforces) plus behaviours.
fn build(s: &Scenario) -> (Task, BTreeMap<String, Behaviour>) {
    let name = |i: usize| format!("c{i}");
    let mut specs: Vec<ContainerSpec> = Vec::new();
    let mut behaviour = BTreeMap::new();
    let any_essential = s.containers.iter().any(|c| c.essential);
    for (i, g) in s.containers.iter().enumerate() {
        let mut spec = ContainerSpec {
            name: name(i),
            image: "busybox".into(),
            essential: g.essential || (!any_essential && i == 0),
            ..ContainerSpec::default()
        };
        if g.health.is_some() {
            spec.health_check =
                Some(Box::new(HealthCheck { command: vec!["CMD".into(), "true".into()], ..Default::default() }));
        }
        if g.mounts_volume {
            spec.mount_points.push(MountPoint {
                source_volume: "data".into(),
                container_path: "/data".into(),
                read_only: false,
            });
        }
        behaviour.insert(name(i), Behaviour { exits: g.exits, healthy_after: g.health });
        specs.push(spec);
    }
    for (i, g) in s.containers.iter().enumerate() {
        for &(to, kind) in &g.edges {
            let target = &s.containers[to];
            let target_essential = specs[to].essential;
            let condition = match kind {
                0 | 1 => {
                    if !s.awsvpc && kind == 0 {
                        specs[i].links.push(Link { name: name(to), alias: None });
                    } else {
                        specs[i].volumes_from.push(VolumeFrom { source_container: name(to), read_only: kind == 1 });
                    }
                    continue;
                }
                // COMPLETE and SUCCESS only on a non-essential container that exits;
                // HEALTHY only on one with a health check that gets healthy.
                2 if !target_essential && target.exits.is_some() => DependencyCondition::Complete,
                3 if !target_essential && target.exits.is_some() => DependencyCondition::Success,
                4 if target.health.is_some() => DependencyCondition::Healthy,
                _ => DependencyCondition::Start,
            };
            specs[i].depends_on.push(Dependency { container_name: name(to), condition });
        }
    }
    let mut containers: Vec<Container> = specs.into_iter().map(Container::new).collect();
    if s.awsvpc {
        containers.insert(0, Container::new(ContainerSpec::pause(Vec::new())));
    }
    let mut task = Task::new(
        "arn:berth:task/prop".into(),
        "prop".into(),
        "1".into(),
        containers,
        vec![Volume::new("data", VolumeKind::Empty)],
    );
    if s.awsvpc {
        task.network_mode = NetworkMode::Awsvpc;
    }
    (task, behaviour)
}

fn fault(kind: u8) -> Fault {
    match kind {
        0 => Fault::Transient,
        1 => Fault::Permanent,
        2 => Fault::Timeout { done: false },
        _ => Fault::Timeout { done: true },
    }
}

fn action(kind: u8) -> ActionKind {
    match kind {
        0 => ActionKind::Pull,
        1 => ActionKind::Create,
        _ => ActionKind::Start,
    }
}

/// The checks that hold whenever the world has settled.
fn check_settled(w: &World) -> Result<(), TestCaseError> {
    prop_assert!(w.violations.is_empty(), "violations: {:?}\ntrace:\n{}", w.violations, w.trace.join("\n"));
    for c in &w.task.containers {
        if c.applying_error.is_some() {
            prop_assert_eq!(c.known_status, ContainerStatus::Stopped, "{} failed but is not STOPPED", c.name());
        }
        prop_assert!(
            c.reached_desired(),
            "{} is {} but should be {}\ntrace:\n{}",
            c.name(),
            c.known_status,
            c.desired_status,
            w.trace.join("\n")
        );
    }
    // The essential rule: an essential container stopped means the whole task is told to
    // stop, and it is STOPPED once everything of it has stopped.
    let essential_stopped =
        w.task.containers.iter().any(|c| c.spec.essential && c.known_status == ContainerStatus::Stopped);
    if essential_stopped {
        prop_assert_eq!(w.task.desired_status, TaskStatus::Stopped);
        prop_assert_eq!(w.task.known_status, TaskStatus::Stopped);
        prop_assert!(w.task.containers.iter().all(|c| c.known_status == ContainerStatus::Stopped));
    }
    if w.task.desired_status == TaskStatus::Stopped {
        prop_assert!(w.forgotten, "a stopped task is cleaned up and forgotten\ntrace:\n{}", w.trace.join("\n"));
        prop_assert_eq!(w.docker_containers(), 0, "no container left behind");
        prop_assert_eq!(w.docker_volumes(), 0, "no volume left behind");
    } else {
        prop_assert!(task_completed(&w.task));
        prop_assert!(!w.running().is_empty() || w.task.containers.iter().all(|c| !c.spec.essential));
    }
    Ok(())
}

/// Task changes ride on container changes in the order CREATED, RUNNING, STOPPED, and every
/// visible container sends exactly one change per status it reached.
fn check_changes(w: &World) -> Result<(), TestCaseError> {
    let task_steps: Vec<TaskStatus> =
        w.changes.iter().map(|ch| ch.task_status).filter(|s| *s != TaskStatus::None).collect();
    prop_assert!(task_steps.windows(2).all(|p| p[0] < p[1]), "task changes out of order: {:?}", task_steps);
    // The task's STOPPED comes with or after the last container's STOPPED change; its
    // desired STOPPED is said once, no later than that.
    let at = |pred: &dyn Fn(&berth_model::StateChange) -> bool| w.changes.iter().position(pred);
    if let Some(stopped) = at(&|ch| ch.task_status == TaskStatus::Stopped) {
        let last_container_stop = w.changes.iter().rposition(|ch| ch.status == ContainerStatus::Stopped);
        prop_assert_eq!(last_container_stop, Some(stopped), "the task stops with its last container");
        let told: Vec<usize> = w
            .changes
            .iter()
            .enumerate()
            .filter(|(_, ch)| ch.task_desired_status == TaskStatus::Stopped)
            .map(|(i, _)| i)
            .collect();
        prop_assert!(told.len() <= 1, "desired STOPPED said {} times", told.len());
        prop_assert!(told.iter().all(|&i| i <= stopped), "desired STOPPED said after the task stopped");
    }
    for c in w.task.containers.iter().filter(|c| !c.spec.internal) {
        let statuses: Vec<ContainerStatus> =
            w.changes.iter().filter(|ch| ch.container_name == c.name()).map(|ch| ch.status).collect();
        prop_assert!(statuses.windows(2).all(|p| p[0] < p[1]), "{} changes out of order: {:?}", c.name(), statuses);
        if c.known_status == ContainerStatus::Stopped {
            prop_assert_eq!(statuses.last(), Some(&ContainerStatus::Stopped));
        }
        if let Some(err) = &c.applying_error {
            let stopped =
                w.changes.iter().find(|ch| ch.container_name == c.name() && ch.status == ContainerStatus::Stopped);
            prop_assert_eq!(stopped.and_then(|ch| ch.reason.clone()), Some(err.message.clone()), "reason travels");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn following_the_planner_always_settles_safely(s in gen_scenario()) {
        let (task, behaviour) = build(&s);
        let mut w = World::new(task, behaviour);
        for &(i, a, f) in &s.faults {
            let name = format!("c{i}");
            w.faults.entry((name, action(a))).or_default().push_back(fault(f));
        }
        let mut chooser = Scripted { choices: s.choices.clone(), at: 0 };
        prop_assert!(w.run(&mut chooser, 20_000), "never settled\ntrace:\n{}", w.trace.join("\n"));
        check_settled(&w)?;
        // Then a user stops it: everything stops in reverse order and is cleaned up.
        w.stop_task();
        prop_assert!(w.run(&mut chooser, 20_000), "never settled after stop\ntrace:\n{}", w.trace.join("\n"));
        check_settled(&w)?;
        check_changes(&w)?;
        for (name, n) in w.creates.iter().chain(w.starts.iter()) {
            prop_assert!(*n <= 1, "{}: {} creates or starts", name, n);
        }
    }
}
