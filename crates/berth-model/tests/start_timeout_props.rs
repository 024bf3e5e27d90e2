//! Property test of `startTimeout` (docs/start-timeout.md): a dependency with a random
//! timeout that meets a random COMPLETE, SUCCESS or HEALTHY condition at a random time (or
//! never), driven on the simulated Docker host. Its dependent starts exactly when the
//! condition is met before the timeout passes; otherwise it never runs and the task stops.

mod support;

use berth_model::container::{ContainerSpec, Dependency, DependencyCondition, HealthCheck};
use berth_model::{Container, Task};
use chrono::Duration;
use proptest::prelude::*;
use std::collections::BTreeMap;
use support::{Behaviour, Scripted, World, epoch};

fn condition() -> impl Strategy<Value = DependencyCondition> {
    prop::sample::select(vec![
        DependencyCondition::Complete,
        DependencyCondition::Success,
        DependencyCondition::Healthy,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_dependent_starts_exactly_when_the_condition_is_met_in_time(
        // Odd timeouts, even event times: the condition is never met at the very moment
        // the timeout passes.
        timeout in (1u64..60).prop_map(|t| 2 * t + 1),
        exits in prop::option::of(((0i64..80).prop_map(|t| 2 * t), 0i64..2)),
        healthy_after in prop::option::of((0i64..80).prop_map(|t| 2 * t)),
        cond in condition(),
        choices in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let dep = ContainerSpec {
            name: "dep".into(),
            image: "busybox".into(),
            essential: false,
            start_timeout: Some(timeout),
            health_check: Some(Box::new(HealthCheck { command: vec!["CMD".into(), "true".into()], ..Default::default() })),
            ..ContainerSpec::default()
        };
        let app = ContainerSpec {
            name: "app".into(),
            image: "busybox".into(),
            essential: true,
            depends_on: vec![Dependency { container_name: "dep".into(), condition: cond }],
            ..ContainerSpec::default()
        };
        let task = Task::new(
            "arn:berth:task/st".into(), "st".into(), "1".into(),
            vec![Container::new(dep), Container::new(app)], vec![],
        );
        let behaviour = BTreeMap::from([
            ("dep".to_string(), Behaviour { exits, healthy_after }),
            ("app".to_string(), Behaviour::FOREVER),
        ]);
        let mut w = World::new(task, behaviour);
        w.stop_at = Some(epoch() + Duration::seconds(1001));
        let mut chooser = Scripted { choices, at: 0 };
        prop_assert!(w.run(&mut chooser, 20_000), "never settled\ntrace:\n{}", w.trace.join("\n"));
        prop_assert!(w.violations.is_empty(), "{:?}\ntrace:\n{}", w.violations, w.trace.join("\n"));
        // When the condition is met, seconds after the dependency's start (at 0).
        let healthy = healthy_after.filter(|&h| exits.is_none_or(|(after, _)| h < after));
        let met_at = match cond {
            DependencyCondition::Complete => exits.map(|(after, _)| after),
            DependencyCondition::Success => exits.filter(|&(_, code)| code == 0).map(|(after, _)| after),
            _ => healthy,
        };
        let in_time = met_at.is_some_and(|at| at < timeout as i64);
        let started = w.starts.get("app").copied().unwrap_or(0) > 0;
        prop_assert_eq!(started, in_time, "met at {:?}, timeout {}\ntrace:\n{}", met_at, timeout, w.trace.join("\n"));
        if !in_time {
            let reason = w.task.stop_reason.clone().unwrap_or_default();
            prop_assert!(!reason.is_empty(), "the task stopped with a reason");
            // Not met and not impossible before the timeout: the timeout is the reason.
            let impossible_early = cond == DependencyCondition::Success
                && exits.is_some_and(|(after, code)| code != 0 && after < timeout as i64);
            let dead_early = cond == DependencyCondition::Healthy && exits.is_some_and(|(after, _)| after < timeout as i64);
            if !impossible_early && !dead_early {
                prop_assert!(reason.contains("startTimeout"), "{}\ntrace:\n{}", reason, w.trace.join("\n"));
            }
        }
    }
}
