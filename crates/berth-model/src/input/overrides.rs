//! Overrides at submit, in ECS RunTask's shape (`docs/overrides.md`): an `overrides` object
//! beside the task definition (`containerOverrides` with `name`, `command`, `environment`,
//! `cpu`, `memory`, `memoryReservation`; task-level `cpu` and `memory`), or the same made
//! by `berth run --env/--command` ([`ParseOptions::overrides`](super::ParseOptions)).
//!
//! They are applied to the definition as read, before it is validated (and so before the
//! daemon's host policy sees the task): an overridden value is checked as if the
//! definition had said it. An override naming a container the task does not have, or a
//! second override of one container, is an error at its path.

use super::ecs::{MAX_CPU_SHARES, MAX_MIB, read_command, read_environment_list, read_task_size};
use super::reader::{Obj, Sink, quote};
use super::{Issue, MAX_CONTAINERS};
use crate::container::ContainerSpec;
use std::collections::BTreeMap;

/// RunTask override fields berth accepts and does not act on.
const NOT_ACTED_ON: [&str; 5] =
    ["executionRoleArn", "taskRoleArn", "ephemeralStorage", "inferenceAcceleratorOverrides", "cpuArchitecture"];

/// Container override fields berth accepts and does not act on.
const CONTAINER_NOT_ACTED_ON: [&str; 2] = ["environmentFiles", "resourceRequirements"];

/// What a submission changes in its task definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Where they were given (`overrides`, `taskDefinition`'s sibling `overrides`, or a
    /// command line's flags), for errors.
    pub path: String,
    /// Per container, in the order given.
    pub containers: Vec<ContainerOverride>,
    /// Task-level CPU units, replacing the definition's.
    pub cpu: Option<u64>,
    /// Task-level memory in MiB, replacing the definition's.
    pub memory: Option<u64>,
}

/// What a submission changes in one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOverride {
    /// Where it was given, for errors (its `name` is at `<path>.name`).
    pub path: String,
    /// The container, by its name in the task definition.
    pub name: String,
    /// Replaces the container's `command`.
    pub command: Option<Vec<String>>,
    /// Added to the container's environment; a name it already has gets this value.
    pub environment: BTreeMap<String, String>,
    /// Replaces `cpu`.
    pub cpu: Option<u64>,
    /// Replaces `memory` (MiB).
    pub memory: Option<u64>,
    /// Replaces `memoryReservation` (MiB).
    pub memory_reservation: Option<u64>,
}

impl ContainerOverride {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.command.is_none()
            && self.environment.is_empty()
            && self.cpu.is_none()
            && self.memory.is_none()
            && self.memory_reservation.is_none()
    }
}

/// The `overrides` field of `o`, when present.
pub(crate) fn read(o: &mut Obj<'_>, s: &mut Sink) -> Option<Overrides> {
    let f = o.field("overrides")?;
    let mut ov = f.object(s)?;
    let mut overrides = Overrides { path: f.path.clone(), ..Overrides::default() };
    overrides.containers = ov.objects("containerOverrides", MAX_CONTAINERS, s, read_container);
    if let Some(f) = ov.field("cpu") {
        overrides.cpu = read_task_size(&f, "cpu", s);
    }
    if let Some(f) = ov.field("memory") {
        overrides.memory = read_task_size(&f, "memory", s);
    }
    for key in NOT_ACTED_ON {
        ov.not_acted_on(key, s);
    }
    ov.finish(s);
    Some(overrides)
}

/// One `containerOverrides` entry.
fn read_container(o: &mut Obj<'_>, s: &mut Sink) -> Option<ContainerOverride> {
    let name = o.required_string("name", s);
    // An empty list keeps the definition's command, as an absent one does.
    let command = Some(read_command(o, "command", s)).filter(|c| !c.is_empty());
    let c = ContainerOverride {
        path: o.path.clone(),
        name: name.clone().unwrap_or_default(),
        command,
        environment: read_environment_list(o, s),
        cpu: o.unsigned("cpu", 0, MAX_CPU_SHARES, s),
        memory: o.unsigned("memory", 0, MAX_MIB, s).filter(|&m| m > 0),
        memory_reservation: o.unsigned("memoryReservation", 0, MAX_MIB, s).filter(|&m| m > 0),
    };
    for key in CONTAINER_NOT_ACTED_ON {
        o.not_acted_on(key, s);
    }
    name.map(|_| c)
}

/// Apply `overrides` to the containers `specs` (the task definition's, in order) and the
/// task-level `cpu` and `memory`; the errors, each at its override's path. Nothing but
/// what an override names changes: no other container, no other field.
pub fn apply(
    overrides: &Overrides,
    specs: &mut [ContainerSpec],
    cpu: &mut Option<u64>,
    memory: &mut Option<u64>,
) -> Vec<Issue> {
    let mut errors = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for c in &overrides.containers {
        let name_path = format!("{}.name", c.path);
        if seen.contains(&c.name.as_str()) {
            errors.push(Issue { path: name_path, message: format!("{} is overridden twice", quote(&c.name)) });
            continue;
        }
        seen.push(&c.name);
        let Some(spec) = specs.iter_mut().find(|spec| spec.name == c.name) else {
            errors
                .push(Issue { path: name_path, message: format!("no container named {} in the task", quote(&c.name)) });
            continue;
        };
        if let Some(command) = &c.command {
            spec.command = command.clone();
        }
        for (name, value) in &c.environment {
            spec.environment.insert(name.clone(), value.clone());
        }
        if let Some(v) = c.cpu {
            spec.cpu = v;
        }
        if let Some(v) = c.memory {
            spec.memory = Some(v);
        }
        if let Some(v) = c.memory_reservation {
            spec.memory_reservation = Some(v);
        }
    }
    if let Some(v) = overrides.cpu {
        *cpu = Some(v);
    }
    if let Some(v) = overrides.memory {
        *memory = Some(v);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accept, reject, task, warnings};
    use serde_json::json;

    fn two() -> serde_json::Value {
        json!([
            {"name": "web", "image": "busybox", "command": ["httpd"], "memory": 64,
             "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "busybox", "command": ["sleep", "9"], "memory": 32}
        ])
    }

    #[test]
    fn container_and_task_overrides_are_applied_and_the_rest_is_kept() {
        let overrides = json!({"containerOverrides": [{"name": "web", "command": ["sh", "-c", "echo hi"],
            "environment": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
            "cpu": 256, "memory": 128, "memoryReservation": 96}], "cpu": "0.5 vCPU", "memory": "1 GB"});
        let t = accept(&task(two(), json!({"overrides": overrides}))).task;
        let web = &t.containers[0].spec;
        assert_eq!(web.command, ["sh", "-c", "echo hi"]);
        let env: Vec<(&str, &str)> = web.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("A", "1"), ("B", "two"), ("C", "3")], "added to, and over, the definition's");
        assert_eq!((web.cpu, web.memory, web.memory_reservation), (256, Some(128), Some(96)));
        assert_eq!((t.cpu, t.memory), (Some(512), Some(1024)));
        let side = &t.containers[1].spec;
        assert_eq!(
            (side.command.as_slice(), side.memory),
            (["sleep".to_string(), "9".to_string()].as_slice(), Some(32))
        );
    }

    #[test]
    fn describe_output_takes_overrides_beside_task_definition_and_the_seed_at_its_top() {
        let describe = json!({"taskDefinition": {"family": "f", "containerDefinitions": two()},
            "overrides": {"containerOverrides": [{"name": "side", "command": ["true"]}]}});
        assert_eq!(accept(&describe).task.containers[1].spec.command, ["true"]);
        let seed = json!({"arn": "arn:x:task/1", "family": "f", "containers": [{"name": "a", "image": "busybox"}],
            "overrides": {"containerOverrides": [{"name": "a", "environment": [{"name": "X", "value": "y"}]}]}});
        assert_eq!(accept(&seed).task.containers[0].spec.environment.get("X").map(String::as_str), Some("y"));
    }

    #[test]
    fn overrides_are_validated_as_the_definition_is_and_name_their_paths() {
        let unknown = json!({"containerOverrides": [{"name": "web"}, {"name": "nope"}, {"name": "web"}]});
        assert_eq!(
            reject(&task(two(), json!({"overrides": unknown}))),
            [
                "overrides.containerOverrides[1].name: no container named \"nope\" in the task",
                "overrides.containerOverrides[2].name: \"web\" is overridden twice",
            ]
        );
        // Applied before validation: the overridden reservation is above the limit.
        let over = json!({"containerOverrides": [{"name": "side", "memoryReservation": 64}]});
        let errors = reject(&task(two(), json!({"overrides": over})));
        assert!(errors.iter().any(|e| e.starts_with("containerDefinitions[1].memoryReservation")), "{errors:?}");
        let typed = json!({"containerOverrides": [{"name": "web", "cpu": "x", "command": "sh"}], "memory": true});
        let errors = reject(&task(two(), json!({"overrides": typed})));
        for path in
            ["overrides.containerOverrides[0].cpu", "overrides.containerOverrides[0].command", "overrides.memory"]
        {
            assert!(errors.iter().any(|e| e.starts_with(path)), "{path}: {errors:?}");
        }
    }

    #[test]
    fn run_task_fields_berth_does_not_act_on_warn() {
        let o = json!({"taskRoleArn": "arn:r", "containerOverrides": [{"name": "web", "resourceRequirements": [{}]}],
            "surprise": 1});
        assert_eq!(
            warnings(&task(two(), json!({"overrides": o}))),
            [
                "overrides.containerOverrides[0].resourceRequirements: accepted but not acted on by berth",
                "overrides.taskRoleArn: accepted but not acted on by berth",
                "overrides.surprise: unknown key, ignored",
            ]
        );
    }
}
