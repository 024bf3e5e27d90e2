//! Property test of overrides at submit (`input::overrides::apply`): an override changes
//! the container it names, only in the fields it gives, and never another container; one
//! naming no container of the task is an error and changes nothing.

use berth_model::container::ContainerSpec;
use berth_model::input::overrides::{self, ContainerOverride, Overrides};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn gen_spec(i: usize) -> impl Strategy<Value = ContainerSpec> {
    (
        prop::collection::vec("[a-z]{1,4}", 0..3),
        prop::collection::btree_map("[A-C]", "[a-z]{0,2}", 0..3),
        0u64..2048,
        prop::option::of(6u64..512),
    )
        .prop_map(move |(command, environment, cpu, memory)| ContainerSpec {
            name: format!("c{i}"),
            image: "busybox".into(),
            command,
            environment,
            cpu,
            memory,
            ..ContainerSpec::default()
        })
}

fn gen_override(n: usize) -> impl Strategy<Value = ContainerOverride> {
    (
        0..n + 1,
        prop::option::of(prop::collection::vec("[a-z]{1,4}", 1..3)),
        prop::collection::btree_map("[A-D]", "[a-z]{0,2}", 0..3),
        prop::option::of(0u64..2048),
        prop::option::of(6u64..512),
    )
        .prop_map(|(target, command, environment, cpu, memory)| ContainerOverride {
            path: "overrides.containerOverrides[0]".into(),
            // `n` names no container of the task.
            name: format!("c{target}"),
            command,
            environment,
            cpu,
            memory,
            ..ContainerOverride::default()
        })
}

proptest! {
    #[test]
    fn an_override_changes_only_what_it_names(
        (specs, ov) in (1usize..5).prop_flat_map(|n| {
            ((0..n).map(gen_spec).collect::<Vec<_>>(), gen_override(n))
        })
    ) {
        let before = specs.clone();
        let mut after = specs;
        let overrides = Overrides { path: "overrides".into(), containers: vec![ov.clone()], ..Overrides::default() };
        let (mut cpu, mut memory) = (Some(1), None);
        let errors = overrides::apply(&overrides, &mut after, &mut cpu, &mut memory);
        prop_assert_eq!((cpu, memory), (Some(1), None), "no task-level override given");
        let target = before.iter().position(|s| s.name == ov.name);
        prop_assert_eq!(errors.is_empty(), target.is_some(), "an unknown name is the one error: {:?}", errors);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            if Some(i) != target {
                prop_assert_eq!(b, a, "another container changed");
                continue;
            }
            prop_assert_eq!(&a.command, ov.command.as_ref().unwrap_or(&b.command));
            prop_assert_eq!(a.cpu, ov.cpu.unwrap_or(b.cpu));
            prop_assert_eq!(a.memory, ov.memory.or(b.memory));
            let mut env: BTreeMap<String, String> = b.environment.clone();
            env.extend(ov.environment.clone());
            prop_assert_eq!(&a.environment, &env);
            let unchanged = ContainerSpec {
                command: b.command.clone(),
                environment: b.environment.clone(),
                cpu: b.cpu,
                memory: b.memory,
                ..a.clone()
            };
            prop_assert_eq!(&unchanged, b, "no field it does not name");
        }
    }
}
