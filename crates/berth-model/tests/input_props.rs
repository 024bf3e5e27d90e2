//! Property tests of `input::parse`: no input makes it panic, and what it accepts is a
//! task the rest of berth can rely on (unique names, a dependency graph that builds, an
//! essential container, the pause container first under awsvpc).

use berth_model::graph::DependencyGraph;
use berth_model::input::{ParseOptions, parse};
use berth_model::task::NetworkMode;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// Keys and string values that the reader knows, so that random documents reach deep.
const WORDS: &[&str] = &[
    "family",
    "containerDefinitions",
    "taskDefinition",
    "containers",
    "revision",
    "version",
    "arn",
    "desiredStatus",
    "networkMode",
    "volumes",
    "name",
    "image",
    "essential",
    "links",
    "volumesFrom",
    "sourceContainer",
    "dependsOn",
    "containerName",
    "condition",
    "mountPoints",
    "sourceVolume",
    "containerPath",
    "portMappings",
    "containerPort",
    "hostPort",
    "protocol",
    "healthCheck",
    "command",
    "memory",
    "memoryReservation",
    "cpu",
    "environment",
    "value",
    "host",
    "sourcePath",
    "dockerVolumeConfiguration",
    "scope",
    "efsVolumeConfiguration",
    "logConfiguration",
    "logDriver",
    "ulimits",
    "softLimit",
    "hardLimit",
    "linuxParameters",
    "tmpfs",
    "size",
    "dockerLabels",
    "berth.x",
    "a",
    "b",
    "c",
    "awsvpc",
    "bridge",
    "START",
    "COMPLETE",
    "SUCCESS",
    "HEALTHY",
    "RUNNING",
    "STOPPED",
    "CMD",
    "busybox",
    "tcp",
    "udp",
    "json-file",
    "awslogs",
    "task",
    "shared",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(WORDS).prop_map(str::to_string), 1 => "[ -~]{0,8}"]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-2i64..70_000).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        word().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// A container definition: a valid core, then random keys on top.
fn container() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["a", "b", "c", "d"][..]),
        prop::collection::vec((prop::sample::select(WORDS), value()), 0..6),
    )
        .prop_map(|(name, extra)| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            c.insert("image".into(), json!("busybox"));
            for (k, v) in extra {
                c.insert(k.to_string(), v);
            }
            Value::Object(c)
        })
}

/// A document in one of the four shapes, or anything at all.
fn document() -> impl Strategy<Value = Value> {
    let containers = prop::collection::vec(container(), 0..5);
    let extra = prop::collection::vec((prop::sample::select(WORDS), value()), 0..4);
    (0..5u8, containers, extra, value()).prop_map(|(shape, containers, extra, any)| {
        let mut top = Map::new();
        for (k, v) in extra {
            top.insert(k.to_string(), v);
        }
        match shape {
            0 => {
                top.insert("family".into(), json!("f"));
                top.insert("containerDefinitions".into(), Value::Array(containers));
                Value::Object(top)
            }
            1 => {
                top.insert("containerDefinitions".into(), Value::Array(containers));
                json!({"taskDefinition": top, "tags": []})
            }
            2 => Value::Array(containers),
            3 => {
                top.insert("containers".into(), Value::Array(containers));
                Value::Object(top)
            }
            _ => any,
        }
    })
}

fn opts() -> ParseOptions {
    ParseOptions { family: Some("fam".into()), arn_random: 42 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_tasks_are_sound(doc in document()) {
        let text = doc.to_string();
        if let Ok(a) = parse(text.as_bytes(), &opts()) {
            let t = &a.task;
            let names: HashSet<&str> = t.containers.iter().map(|c| c.name()).collect();
            prop_assert_eq!(names.len(), t.containers.len());
            prop_assert!(DependencyGraph::build(t).is_ok());
            prop_assert!(t.containers.iter().any(|c| c.spec.essential && !c.spec.internal));
            let internal: Vec<usize> =
                t.containers.iter().enumerate().filter(|(_, c)| c.spec.internal).map(|(i, _)| i).collect();
            if t.network_mode == NetworkMode::Awsvpc {
                prop_assert_eq!(internal, vec![0]);
            } else {
                prop_assert!(internal.is_empty());
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes, &opts());
    }

    #[test]
    fn truncated_documents_give_line_and_column(doc in document(), cut in any::<prop::sample::Index>()) {
        let text = doc.to_string();
        let end = cut.index(text.len().max(1));
        if let Some(prefix) = text.get(..end)
            && let Err(r) = parse(prefix.as_bytes(), &opts()) {
                prop_assert!(!r.errors.is_empty());
            }
    }
}

/// The generator is worth something only if it reaches accepted tasks too.
#[test]
fn generated_documents_are_sometimes_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let mut accepted = 0;
    for _ in 0..1000 {
        let doc = strategy.new_tree(&mut runner).map(|t| t.current()).unwrap_or(Value::Null);
        if parse(doc.to_string().as_bytes(), &opts()).is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted >= 50, "only {accepted} of 1000 generated documents were accepted");
}
