//! Reading task definitions: the four JSON shapes people already have, turned into a
//! validated [`Task`], with a warning for each field berth does not act on.
//!
//! Shapes:
//! 1. ECS `register-task-definition --cli-input-json` (`family`, `containerDefinitions`, ...);
//! 2. `describe-task-definition` output, `{"taskDefinition": {...}}`;
//! 3. a bare `containerDefinitions` array (family from [`ParseOptions::family`]);
//! 4. the seed's task payload (`arn`, `family`, `version`, `desiredStatus`, `containers`).
//!
//! Everything is checked before anything starts; an invalid task yields every error found,
//! each naming its JSON path, and nothing else. `null` means absent.
//!
//! Decisions where the SPEC is silent (the rules of each part are documented with it:
//! the reader, the ECS shapes, the seed payload, image references, validation):
//! - a UTF-8 byte-order mark before the JSON is skipped;
//! - the family is the input's own, else [`ParseOptions::family`], for every shape; with
//!   neither, the input is refused;
//! - under awsvpc, berth adds an internal pause container ([`PAUSE_CONTAINER_NAME`](crate::container::PAUSE_CONTAINER_NAME)) first in
//!   the task, holding the shared network namespace and every port mapping of the task
//!   (the user containers keep theirs in their spec, for reporting; publishing them is the
//!   pause container's job).

mod ecs;
mod image;
mod reader;
mod seed;
mod validate;

use crate::container::{Container, ContainerSpec};
use crate::status::{ContainerStatus, TaskStatus};
use crate::task::{NetworkMode, Task, generated_arn};
use crate::volume::Volume;
use reader::{Field, Obj, Sink, describe};
use serde_json::Value;
use std::fmt;

/// Largest input accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;
/// Most containers in one task.
pub const MAX_CONTAINERS: usize = 100;
/// Longest container (and family) name.
pub const MAX_NAME_LEN: usize = 255;
/// Most environment entries in one container.
pub const MAX_ENVIRONMENT: usize = 1000;

/// What the caller knows beside the JSON itself.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// Family for a bare `containerDefinitions` array (from the file name or a flag); also
    /// overrides nothing when the input names its own family.
    pub family: Option<String>,
    /// 128 random bits for the arn of a task that comes without one (the model does no I/O).
    pub arn_random: u128,
}

/// A problem at a place in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// JSON path such as `containerDefinitions[1].memory`; empty for the whole input.
    pub path: String,
    /// What is wrong (or, for a warning, what berth does not act on).
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// A task definition berth accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The task, desired RUNNING unless the input says otherwise.
    pub task: Task,
    /// Fields berth does not act on, unknown keys, log drivers it replaces.
    pub warnings: Vec<Issue>,
    /// Where each container and volume of the task was in the input, so that a later check
    /// (the daemon's host policy) can name the path as the input spells it.
    pub paths: InputPaths,
}

/// The JSON paths of a task's parts as its input spelled them (`containerDefinitions[0]`,
/// `taskDefinition.containerDefinitions[0]`, `containers[0]`, `[0]` in a bare array).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputPaths {
    /// One per user container, in the task's order (internal containers have none).
    pub containers: Vec<String>,
    /// One per volume, in the task's order.
    pub volumes: Vec<String>,
}

impl InputPaths {
    /// The path of the `i`-th user container (counting only containers the input gave).
    pub fn container(&self, i: usize) -> String {
        self.containers.get(i).cloned().unwrap_or_else(|| format!("containerDefinitions[{i}]"))
    }

    /// The path of the `i`-th volume.
    pub fn volume(&self, i: usize) -> String {
        self.volumes.get(i).cloned().unwrap_or_else(|| format!("volumes[{i}]"))
    }
}

/// A task definition berth refused: every error found, plus the warnings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Rejected {
    /// What is wrong, each naming its path (invalid JSON: line and column).
    pub errors: Vec<Issue>,
    /// What berth would not have acted on.
    pub warnings: Vec<Issue>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "invalid task definition: {}", all.join("; "))
    }
}

/// Read a task definition in any of the four shapes, check it, and build the task.
///
/// Shape detection: a top-level array is a bare `containerDefinitions` array; an object with
/// `taskDefinition` is describe output; one with `containerDefinitions` is register input;
/// one with `containers` is the seed payload. Anything else is refused with one error.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Accepted, Rejected> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(Rejected {
            errors: vec![Issue {
                path: String::new(),
                message: format!("input is {} bytes, more than the limit of {MAX_INPUT_BYTES}", input.len()),
            }],
            warnings: Vec::new(),
        });
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let value: Value = serde_json::from_slice(input).map_err(|e| Rejected {
        errors: vec![Issue { path: String::new(), message: json_error_message(&e) }],
        warnings: Vec::new(),
    })?;
    let mut s = Sink::default();
    let draft = match &value {
        Value::Array(_) => Some(ecs::read_bare(Field::new(String::new(), &value), &mut s)),
        Value::Object(map) => {
            let o = Obj::new(String::new(), map);
            if map.contains_key("taskDefinition") {
                Some(ecs::read_describe(o, &mut s))
            } else if map.contains_key("containerDefinitions") {
                Some(ecs::read_register(o, &mut s))
            } else if map.contains_key("containers") {
                Some(seed::read_seed(o, &mut s))
            } else {
                s.error(
                    "",
                    "not a task definition: expected an object with \"containerDefinitions\", \"taskDefinition\" \
                     or \"containers\", or an array of container definitions",
                );
                None
            }
        }
        other => {
            s.error("", format!("not a task definition: expected an object or an array, found {}", describe(other)));
            None
        }
    };
    let Some(draft) = draft else {
        return Err(Rejected { errors: s.errors, warnings: s.warnings });
    };
    validate::check_draft(&draft, &mut s);
    let paths = InputPaths {
        containers: draft.containers.iter().map(|c| c.path.clone()).collect(),
        volumes: draft.volumes.iter().map(|v| v.path.clone()).collect(),
    };
    let task = draft.into_task(opts, &mut s);
    validate::check_graph(&task, &mut s);
    if s.errors.is_empty() {
        Ok(Accepted { task, warnings: s.warnings, paths })
    } else {
        Err(Rejected { errors: s.errors, warnings: s.warnings })
    }
}

/// serde_json's message with the place spelled out: `invalid JSON at line 31, column 20:
/// expected `,` or `}``.
fn json_error_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let what = full.strip_suffix(&suffix).unwrap_or(&full);
    format!("invalid JSON at line {}, column {}: {what}", e.line(), e.column())
}

/// A task definition as read, before it becomes a [`Task`]: what the rules of
/// [`validate`] look at, with the JSON path of each part.
#[derive(Debug)]
pub(crate) struct Draft {
    /// The input's family, if it gives one.
    pub family: Option<String>,
    /// Where a family would be, for the error when there is none.
    pub family_path: String,
    /// `version` or `revision`.
    pub version: Option<String>,
    /// The seed payload's `arn`.
    pub arn: Option<String>,
    /// The task's network mode.
    pub network_mode: NetworkMode,
    /// The seed payload's `desiredStatus` (RUNNING otherwise).
    pub desired_status: TaskStatus,
    /// Where the container definitions are.
    pub containers_path: String,
    /// False when the container array could not be read as a whole (so the rules about
    /// containers would only add noise).
    pub containers_read: bool,
    /// The containers read, in order.
    pub containers: Vec<DraftContainer>,
    /// The volumes read, in order.
    pub volumes: Vec<DraftVolume>,
}

/// A container as read.
#[derive(Debug)]
pub(crate) struct DraftContainer {
    /// Its JSON path.
    pub path: String,
    /// Its settings.
    pub spec: ContainerSpec,
    /// The seed payload's per-container `desiredStatus` (RUNNING otherwise).
    pub desired_status: ContainerStatus,
    /// The path of each entry of `spec.depends_on`, in the same order.
    pub depends_on_paths: Vec<String>,
}

/// A volume as read.
#[derive(Debug)]
pub(crate) struct DraftVolume {
    /// Its JSON path.
    pub path: String,
    /// The volume.
    pub volume: Volume,
}

impl Draft {
    /// Nothing read yet.
    pub fn empty(family_path: &str, containers_path: &str) -> Draft {
        Draft {
            family: None,
            family_path: family_path.to_string(),
            version: None,
            arn: None,
            network_mode: NetworkMode::Bridge,
            desired_status: TaskStatus::Running,
            containers_path: containers_path.to_string(),
            containers_read: true,
            containers: Vec::new(),
            volumes: Vec::new(),
        }
    }

    /// The task: identity (arn given or generated, family, version), containers with their
    /// desired statuses, volumes, network mode, and under awsvpc the pause container first.
    fn into_task(self, opts: &ParseOptions, s: &mut Sink) -> Task {
        let family = match (self.family, &opts.family) {
            (Some(f), _) => f,
            (None, Some(f)) => {
                validate::check_name("", f, "family (given by the caller)", s);
                f.clone()
            }
            (None, None) if self.family_path.is_empty() => {
                s.error("", "a bare containerDefinitions array takes its family from the caller, and none was given");
                String::new()
            }
            (None, None) => {
                s.error(&self.family_path, "required field is missing");
                String::new()
            }
        };
        let arn = self.arn.unwrap_or_else(|| generated_arn(opts.arn_random));
        let version = self.version.unwrap_or_else(|| "1".to_string());
        let mut containers = Vec::with_capacity(self.containers.len() + 1);
        if self.network_mode == NetworkMode::Awsvpc {
            let port_mappings = self.containers.iter().flat_map(|c| c.spec.port_mappings.iter().cloned()).collect();
            containers.push(Container::new(ContainerSpec::pause(port_mappings)));
        }
        for c in self.containers {
            let mut container = Container::new(c.spec);
            container.desired_status = c.desired_status;
            containers.push(container);
        }
        let volumes = self
            .volumes
            .into_iter()
            .map(|v| {
                let mut volume = v.volume;
                if volume.managed_by_task() {
                    volume.docker_name = Some(crate::task::task_volume_name(&arn, &volume.name));
                }
                volume
            })
            .collect();
        let mut task = Task::new(arn, family, version, containers, volumes);
        task.network_mode = self.network_mode;
        task.raise_desired_status(self.desired_status);
        task
    }
}

/// Helpers for the tests of this module and its parts.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Accepted, ParseOptions, parse};

    /// A register-shape task with these containers (and more top-level fields).
    pub fn task(containers: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
        let mut t = serde_json::json!({"family": "f", "containerDefinitions": containers});
        if let (serde_json::Value::Object(t), serde_json::Value::Object(extra)) = (&mut t, extra) {
            t.extend(extra);
        }
        t
    }

    /// Options with a fixed family and arn randomness.
    pub fn opts() -> ParseOptions {
        ParseOptions { family: Some("from-caller".into()), arn_random: 0xabc }
    }

    /// Parse a JSON value that must be accepted.
    pub fn accept(v: &serde_json::Value) -> Accepted {
        let text = v.to_string();
        parse(text.as_bytes(), &opts()).unwrap_or_else(|r| panic!("rejected: {:#?}", r.errors))
    }

    /// The warnings of an accepted JSON value, as displayed.
    pub fn warnings(v: &serde_json::Value) -> Vec<String> {
        accept(v).warnings.iter().map(ToString::to_string).collect()
    }

    /// The errors of JSON text that must be rejected, as displayed.
    pub fn reject_text(text: &str) -> Vec<String> {
        match parse(text.as_bytes(), &opts()) {
            Ok(a) => panic!("accepted, with warnings {:?}", a.warnings),
            Err(r) => r.errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// The errors of a JSON value that must be rejected, as displayed.
    pub fn reject(v: &serde_json::Value) -> Vec<String> {
        reject_text(&v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{accept, opts, reject, reject_text, warnings};
    use super::*;
    use crate::container::{PAUSE_CONTAINER_NAME, PAUSE_IMAGE};
    use crate::container::{PortMapping, Protocol};
    use serde_json::json;

    fn one(name: &str) -> serde_json::Value {
        json!({"name": name, "image": "busybox"})
    }

    #[test]
    fn invalid_json_gives_line_and_column() {
        assert_eq!(reject_text("{\n  \"family\": $NAME\n}"), ["invalid JSON at line 2, column 13: expected value"]);
        assert_eq!(reject_text("{\"a\": 1,}"), ["invalid JSON at line 1, column 9: trailing comma"]);
        assert_eq!(reject_text(""), ["invalid JSON at line 1, column 0: EOF while parsing a value"]);
        assert_eq!(reject_text("[] []"), ["invalid JSON at line 1, column 4: trailing characters"]);
    }

    #[test]
    fn deep_nesting_stops_at_the_recursion_limit() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let errs = reject_text(&deep);
        assert_eq!(errs, ["invalid JSON at line 1, column 128: recursion limit exceeded"]);
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = vec![b' '; MAX_INPUT_BYTES + 1];
        let Err(r) = parse(&big, &opts()) else { panic!("accepted") };
        assert_eq!(r.errors[0].message, "input is 4194305 bytes, more than the limit of 4194304");
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let text = format!("\u{feff}{}", json!({"family": "f", "containerDefinitions": [one("a")]}));
        assert!(parse(text.as_bytes(), &opts()).is_ok());
    }

    #[test]
    fn shapes_are_detected() {
        let register = accept(&json!({"family": "reg", "containerDefinitions": [one("a")]}));
        assert_eq!(register.task.family, "reg");
        let describe = accept(&json!({"taskDefinition": {"family": "desc", "containerDefinitions": [one("a")]}}));
        assert_eq!(describe.task.family, "desc");
        let bare = accept(&json!([one("a")]));
        assert_eq!(bare.task.family, "from-caller");
        let seed = accept(&json!({"family": "seed", "containers": [one("a")]}));
        assert_eq!(seed.task.family, "seed");
        assert_eq!(
            reject(&json!({"family": "x"})),
            ["not a task definition: expected an object with \"containerDefinitions\", \"taskDefinition\" or \
                 \"containers\", or an array of container definitions"]
        );
        assert_eq!(
            reject(&json!("hello")),
            [r#"not a task definition: expected an object or an array, found the string "hello""#]
        );
    }

    #[test]
    fn describe_wrapper_checks_its_own_keys() {
        let inner = json!({"family": "f", "containerDefinitions": [one("a")]});
        assert!(warnings(&json!({"taskDefinition": inner, "tags": []})).is_empty());
        assert_eq!(
            warnings(&json!({"taskDefinition": inner, "tags": [{"key": "k", "value": "v"}], "extra": 1})),
            ["tags: accepted but not acted on by berth", "extra: unknown key, ignored"]
        );
        assert_eq!(reject(&json!({"taskDefinition": []})), ["taskDefinition: expected an object, found an array"]);
        assert_eq!(reject(&json!({"taskDefinition": null})), ["taskDefinition: required field is missing"]);
    }

    #[test]
    fn family_comes_from_the_input_else_the_caller() {
        let no_family = json!({"containerDefinitions": [one("a")]});
        assert_eq!(accept(&no_family).task.family, "from-caller");
        let none = ParseOptions { family: None, arn_random: 1 };
        let Err(r) = parse(no_family.to_string().as_bytes(), &none) else { panic!("accepted") };
        assert_eq!(r.errors[0].to_string(), "family: required field is missing");
        let Err(r) = parse(json!([one("a")]).to_string().as_bytes(), &none) else { panic!("accepted") };
        assert_eq!(
            r.errors[0].to_string(),
            "a bare containerDefinitions array takes its family from the caller, and none was given"
        );
        let bad = ParseOptions { family: Some("my.file".into()), arn_random: 1 };
        let Err(r) = parse(json!([one("a")]).to_string().as_bytes(), &bad) else { panic!("accepted") };
        assert_eq!(
            r.errors[0].to_string(),
            r#""my.file" is not a valid family (given by the caller): use 1 to 255 letters, digits, hyphens and underscores"#
        );
    }

    #[test]
    fn identity_version_and_arn() {
        let t = accept(&json!({"family": "f", "containerDefinitions": [one("a")]})).task;
        assert_eq!(t.version, "1");
        assert_eq!(t.arn, "arn:berth:task/00000000000000000000000000000abc");
        let t = accept(&json!({"taskDefinition": {
            "family": "f", "revision": 7, "containerDefinitions": [one("a")],
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/f:7"
        }}))
        .task;
        assert_eq!(t.version, "7");
        assert_eq!(t.arn, "arn:berth:task/00000000000000000000000000000abc", "taskDefinitionArn is never a task arn");
        assert_eq!(
            reject(&json!({"family": "f", "revision": "7", "containerDefinitions": [one("a")]})),
            [r#"revision: expected an integer, found the string "7""#]
        );
    }

    #[test]
    fn awsvpc_adds_the_pause_container_first_with_every_port() {
        let t = accept(&json!({"family": "f", "networkMode": "awsvpc", "containerDefinitions": [
            {"name": "web", "image": "nginx", "portMappings": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "dns", "image": "coredns/coredns", "portMappings": [{"containerPort": 53, "protocol": "udp"}]},
        ]}))
        .task;
        assert_eq!(t.network_mode, NetworkMode::Awsvpc);
        let names: Vec<&str> = t.containers.iter().map(Container::name).collect();
        assert_eq!(names, [PAUSE_CONTAINER_NAME, "web", "dns"]);
        let pause = &t.containers[0].spec;
        assert!(pause.internal && pause.essential);
        assert_eq!(pause.image, PAUSE_IMAGE);
        assert_eq!(
            pause.port_mappings,
            [
                PortMapping { container_port: 80, host_port: 8080, protocol: Protocol::Tcp },
                PortMapping { container_port: 53, host_port: 0, protocol: Protocol::Udp },
            ]
        );
        let bridge = accept(&json!({"family": "f", "networkMode": null, "containerDefinitions": [one("a")]})).task;
        assert_eq!(bridge.network_mode, NetworkMode::Bridge);
        assert_eq!(bridge.containers.len(), 1);
    }

    #[test]
    fn every_error_is_collected() {
        let errs = reject(&json!({"family": "f", "containerDefinitions": [
            {"name": "a", "image": "busybox", "memory": "${MEM}", "cpu": "1"},
            {"name": "b", "image": "<IMAGE>", "links": ["zzz"]},
        ]}));
        assert_eq!(
            errs,
            [
                r#"containerDefinitions[0].cpu: expected an integer, found the string "1""#,
                r#"containerDefinitions[0].memory: expected an integer, found the string "${MEM}""#,
                r#"containerDefinitions[1].image: "<IMAGE>" is not a valid image reference (invalid reference format)"#,
                r#"links of "b": no container named "zzz""#,
            ]
        );
    }
}
