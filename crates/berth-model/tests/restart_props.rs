//! Property tests of the restart policy (docs/restart-policy.md): tasks whose containers
//! have random restart policies and exit at random times with random codes, driven on the
//! simulated Docker host (outcomes and events shuffled and duplicated, restarts failing)
//! until the user stops them at a random time. The simulated host checks every restart as
//! it happens: only of an exited container, of an exit whose code is not ignored, after
//! running at least the period, while the task and the container are desired RUNNING
//! (never while stopping). The world checks that statuses never go back and that the
//! restart count only grows; these tests check the count against what Docker did, that a
//! single container gets every restart its policy asks for, and that a restart never stops
//! its task.

mod support;

use berth_model::container::{ContainerSpec, RestartPolicy};
use berth_model::{Container, ContainerStatus, Task};
use chrono::Duration;
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::{ActionKind, Behaviour, Fault, Scripted, World, epoch};

#[derive(Debug, Clone)]
struct GenContainer {
    essential: bool,
    policy: Option<(u64, Vec<i64>)>,
    exits: Option<(i64, i64)>,
}

fn gen_container() -> impl Strategy<Value = GenContainer> {
    let policy = prop::option::weighted(
        0.8,
        (prop::sample::select(vec![60u64, 120, 300]), prop::collection::vec(0i64..3, 0..3)),
    );
    // Even exit times: with the user's stop at an odd second, no exit happens at the moment
    // of the stop (which would make "desired RUNNING when it exited" a matter of ordering).
    let exits = prop::option::weighted(0.9, ((0i64..350).prop_map(|t| 2 * t), 0i64..3));
    (any::<bool>(), policy, exits).prop_map(|(essential, policy, exits)| GenContainer { essential, policy, exits })
}

fn build(containers: &[GenContainer]) -> (Task, BTreeMap<String, Behaviour>) {
    let mut behaviour = BTreeMap::new();
    let mut list = Vec::new();
    for (i, g) in containers.iter().enumerate() {
        let name = format!("c{i}");
        let spec = ContainerSpec {
            name: name.clone(),
            image: "busybox".into(),
            essential: g.essential || i == 0,
            restart_policy: g.policy.clone().map(|(period, ignored)| {
                Box::new(RestartPolicy { ignored_exit_codes: ignored, restart_attempt_period_secs: period })
            }),
            ..ContainerSpec::default()
        };
        behaviour.insert(name, g.exits.map_or(Behaviour::FOREVER, |(after, code)| Behaviour::exits(after, code)));
        list.push(Container::new(spec));
    }
    (Task::new("arn:berth:task/restart".into(), "restart".into(), "1".into(), list, vec![]), behaviour)
}

fn restart_fault(kind: u8) -> Fault {
    match kind {
        0 => Fault::Transient,
        1 => Fault::Permanent,
        2 => Fault::Timeout { done: true },
        _ => Fault::Timeout { done: false },
    }
}

/// Run to the end: the user stops the task at `stop_at` seconds; it must settle, cleaned up,
/// with no rule broken.
fn run_to_end(w: &mut World, choices: Vec<u8>, stop_at: i64) -> Result<(), TestCaseError> {
    w.stop_at = Some(epoch() + Duration::seconds(stop_at));
    let mut chooser = Scripted { choices, at: 0 };
    prop_assert!(w.run(&mut chooser, 50_000), "never settled\ntrace:\n{}", w.trace.join("\n"));
    prop_assert!(w.violations.is_empty(), "violations: {:?}\ntrace:\n{}", w.violations, w.trace.join("\n"));
    prop_assert!(w.forgotten, "stopped and cleaned up\ntrace:\n{}", w.trace.join("\n"));
    prop_assert_eq!(w.docker_containers(), 0);
    for c in &w.task.containers {
        prop_assert_eq!(c.known_status, ContainerStatus::Stopped);
        prop_assert!(c.pending_restart.is_none(), "{}: a STOPPED container has no pending restart", c.name());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Several containers, restarts failing in every way: every restart is one the policy
    /// allows (checked by the simulated host), the count only grows and is never below the
    /// restarts Docker saw, nor above them without a restart whose outcome was lost or
    /// that failed.
    #[test]
    fn restarts_follow_the_policy(
        containers in prop::collection::vec(gen_container(), 1..=3),
        faults in prop::collection::vec((0usize..3, 0u8..4), 0..3),
        stop_at in (0i64..1000).prop_map(|t| 2 * t + 1),
        choices in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let (task, behaviour) = build(&containers);
        let mut w = World::new(task, behaviour);
        let mut faulted: BTreeMap<String, u32> = BTreeMap::new();
        for &(i, f) in faults.iter().filter(|(i, _)| *i < containers.len()) {
            let name = format!("c{i}");
            w.faults.entry((name.clone(), ActionKind::Restart)).or_default().push_back(restart_fault(f));
            *faulted.entry(name).or_default() += 1;
        }
        run_to_end(&mut w, choices, stop_at)?;
        for c in &w.task.containers {
            let done = w.restarts.get(c.name()).copied().unwrap_or(0);
            let faults = faulted.get(c.name()).copied().unwrap_or(0);
            prop_assert!(c.restart_count >= done, "{}: count {} < {} restarts", c.name(), c.restart_count, done);
            prop_assert!(
                c.restart_count <= done + faults,
                "{}: count {} > {} restarts + {} faults\ntrace:\n{}", c.name(), c.restart_count, done, faults,
                w.trace.join("\n")
            );
            if c.spec.restart_policy.is_none() {
                prop_assert_eq!(c.restart_count, 0);
            }
        }
    }

    /// One container, nothing failing: every exit its policy restarts is restarted, the
    /// count is exactly Docker's restarts, and the task stops only by the user or by an exit
    /// that is not restarted (never by a restart).
    #[test]
    fn a_lone_container_gets_every_restart_its_policy_asks_for(
        g in gen_container(),
        stop_at in (0i64..1000).prop_map(|t| 2 * t + 1),
        choices in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let (task, behaviour) = build(std::slice::from_ref(&g));
        let mut w = World::new(task, behaviour);
        run_to_end(&mut w, choices, stop_at)?;
        let restarts = w.restarts.get("c0").copied().unwrap_or(0);
        let restartable = w.restartable_exits.get("c0").copied().unwrap_or(0);
        prop_assert_eq!(restarts, restartable, "trace:\n{}", w.trace.join("\n"));
        prop_assert_eq!(w.task.containers[0].restart_count, restarts);
        let c = &w.task.containers[0];
        match &w.task.stop_reason {
            // An exit stopped the task: the one not restarted, the last one.
            Some(reason) => {
                let code = g.exits.map(|(_, code)| code);
                prop_assert_eq!(c.known_exit_code, code, "{}", reason);
                prop_assert!(reason.contains("exited with code"), "{}", reason);
            }
            None => prop_assert!(w.trace.iter().any(|l| l.starts_with("-- the user stops")), "stopped by the user"),
        }
    }
}
