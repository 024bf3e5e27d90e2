//! Reading task definitions: the four JSON shapes people already have, turned into a
//! validated [`Task`], with a warning for each field berth does not act on.
//!
//! Shapes:
//! 1. ECS `register-task-definition --cli-input-json` (`family`, `containerDefinitions`, ...);
//! 2. `describe-task-definition` output, `{"taskDefinition": {...}}`;
//! 3. a bare `containerDefinitions` array (family from [`ParseOptions::family`]);
//! 4. the seed's task payload (`arn`, `family`, `version`, `desiredStatus`, `containers`).
//!
//! Everything is checked before anything starts; an invalid task yields the errors found
//! (the first [`MAX_ERRORS`], and how many more), each naming its JSON path, and nothing
//! else. `null` means absent. Every list and string has a limit (the `MAX_*` constants
//! below).
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
pub mod overrides;
pub(crate) mod reader;
mod seed;
mod validate;

pub use validate::EVENT_ATTRIBUTES;

use crate::container::{Container, ContainerSpec};
use crate::status::{ContainerStatus, TaskStatus};
use crate::task::{NetworkMode, Task, generated_arn};
use crate::volume::Volume;
use reader::{Field, Obj, Sink, describe};
use serde_json::Value;
use std::fmt;

// Limits. Every list and string of a task definition has one, checked while reading: a
// list over its limit is one error naming the list's path (its items are not read, so the
// work and the errors stay bounded), a string over its limit one error naming the
// string's path. The values are far above what real task definitions use and bound what
// one task can make berth hold and pass on to Docker.

/// Largest input accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;
/// Most containers in one task.
pub const MAX_CONTAINERS: usize = 100;
/// Most volumes in one task (as many as containers: each is a name and a few settings).
pub const MAX_VOLUMES: usize = 100;
/// Longest container (and family, and volume) name.
pub const MAX_NAME_LEN: usize = 255;
/// Longest string anywhere a tighter limit does not apply (image, paths, environment
/// values, hostnames, map keys, ...), in bytes.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Most environment entries in one container.
pub const MAX_ENVIRONMENT: usize = 1000;
/// Most `environmentFiles` of one container (ECS's own limit).
pub const MAX_ENVIRONMENT_FILES: usize = 10;
/// Most `secrets` of one container.
pub const MAX_SECRETS: usize = 1000;
/// Most items of a container's `command` or `entryPoint`, or of a health check's
/// `command`.
pub const MAX_COMMAND_ITEMS: usize = 1000;
/// Most bytes of a `command`, `entryPoint` or health-check `command`, all items together
/// (Linux refuses a single argument over 128 KiB).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Most `portMappings` of one container.
pub const MAX_PORT_MAPPINGS: usize = 100;
/// Most `mountPoints` of one container.
pub const MAX_MOUNT_POINTS: usize = 100;
/// Most `volumesFrom` entries of one container.
pub const MAX_VOLUMES_FROM: usize = 100;
/// Most `links` of one container.
pub const MAX_LINKS: usize = 100;
/// Most `dependsOn` entries of one container.
pub const MAX_DEPENDS_ON: usize = 100;
/// Most `dockerLabels` of one container (and labels of one Docker volume).
pub const MAX_LABELS: usize = 1000;
/// Longest label key, in bytes.
pub const MAX_LABEL_KEY_BYTES: usize = 1024;
/// Longest label value, in bytes. Docker copies every label into every event of the
/// container, so labels are kept small.
pub const MAX_LABEL_VALUE_BYTES: usize = 4096;
/// Most `ulimits` of one container (there are 15 names).
pub const MAX_ULIMITS: usize = 50;
/// Most `extraHosts` of one container.
pub const MAX_EXTRA_HOSTS: usize = 100;
/// Most `dnsServers`, and most `dnsSearchDomains`, of one container.
pub const MAX_DNS_ENTRIES: usize = 20;
/// Most `dockerSecurityOptions` of one container.
pub const MAX_SECURITY_OPTIONS: usize = 20;
/// Most `systemControls` of one container.
pub const MAX_SYSTEM_CONTROLS: usize = 100;
/// Most capabilities in `linuxParameters.capabilities.add`, and in `drop`.
pub const MAX_CAPABILITIES: usize = 100;
/// Most `linuxParameters.devices` of one container.
pub const MAX_DEVICES: usize = 100;
/// Most `permissions` of one device (there are three).
pub const MAX_DEVICE_PERMISSIONS: usize = 10;
/// Most `linuxParameters.tmpfs` mounts of one container.
pub const MAX_TMPFS: usize = 100;
/// Most `mountOptions` of one tmpfs mount (ECS knows about 40).
pub const MAX_TMPFS_MOUNT_OPTIONS: usize = 50;
/// Most `logConfiguration.options` of one container, and `driverOpts` of one Docker
/// volume.
pub const MAX_DRIVER_OPTIONS: usize = 100;
/// Most errors a rejection lists; the rest are counted ([`Rejected::omitted_errors`]).
pub const MAX_ERRORS: usize = 100;
/// Most warnings listed; the rest are counted (`omitted_warnings`).
pub const MAX_WARNINGS: usize = 100;

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
    /// Fields berth does not act on, unknown keys, log drivers it replaces: the first
    /// [`MAX_WARNINGS`].
    pub warnings: Vec<Issue>,
    /// How many warnings there were beyond those listed.
    pub omitted_warnings: usize,
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

/// A task definition berth refused: the errors found, plus the warnings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Rejected {
    /// What is wrong, each naming its path (invalid JSON: line and column): the first
    /// [`MAX_ERRORS`].
    pub errors: Vec<Issue>,
    /// How many errors there were beyond those listed.
    pub omitted_errors: usize,
    /// What berth would not have acted on: the first [`MAX_WARNINGS`].
    pub warnings: Vec<Issue>,
    /// How many warnings there were beyond those listed.
    pub omitted_warnings: usize,
}

impl Rejected {
    /// A rejection with one error and nothing else.
    fn one(path: &str, message: String) -> Rejected {
        Rejected {
            errors: vec![Issue { path: path.to_string(), message }],
            omitted_errors: 0,
            warnings: Vec::new(),
            omitted_warnings: 0,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, "invalid task definition: {}", all.join("; "))?;
        if self.omitted_errors > 0 {
            write!(f, "; and {} more", self.omitted_errors)?;
        }
        Ok(())
    }
}

/// Read a task definition in any of the four shapes, check it, and build the task.
///
/// Shape detection: a top-level array is a bare `containerDefinitions` array; an object with
/// `taskDefinition` is describe output; one with `containerDefinitions` is register input;
/// one with `containers` is the seed payload. Anything else is refused with one error.
pub fn parse(input: &[u8], opts: &ParseOptions) -> Result<Accepted, Rejected> {
    parse_with_overrides(input, opts, None)
}

/// [`parse`], with `extra` overrides (`berth run --env/--command`) applied after the
/// input's own `overrides`, before validation.
pub fn parse_with_overrides(
    input: &[u8],
    opts: &ParseOptions,
    extra: Option<&overrides::Overrides>,
) -> Result<Accepted, Rejected> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(Rejected::one(
            "",
            format!("input is {} bytes, more than the limit of {MAX_INPUT_BYTES}", input.len()),
        ));
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let value: Value = serde_json::from_slice(input).map_err(|e| Rejected::one("", json_error_message(&e)))?;
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
    let Some(mut draft) = draft else {
        return Err(s.into_rejected());
    };
    let given = draft.overrides.take();
    // With the containers unread, "no such container" would only add noise.
    if draft.containers_read {
        for o in given.iter().chain(extra) {
            draft.apply_overrides(o, &mut s);
        }
    }
    validate::check_draft(&draft, &mut s);
    let paths = InputPaths {
        containers: draft.containers.iter().map(|c| c.path.clone()).collect(),
        volumes: draft.volumes.iter().map(|v| v.path.clone()).collect(),
    };
    let task = draft.into_task(opts, &mut s);
    validate::check_graph(&task, &mut s);
    if s.has_errors() {
        Err(s.into_rejected())
    } else {
        Ok(Accepted { task, warnings: s.warnings, omitted_warnings: s.omitted_warnings, paths })
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
    /// Task-level `cpu`, in CPU units.
    pub cpu: Option<u64>,
    /// Task-level `memory`, in MiB.
    pub memory: Option<u64>,
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
    /// False when the volume array could not be read as a whole (so mount points naming
    /// its volumes are not reported as dangling).
    pub volumes_read: bool,
    /// The input's own `overrides`, applied before validation.
    pub overrides: Option<overrides::Overrides>,
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
            cpu: None,
            memory: None,
            desired_status: TaskStatus::Running,
            containers_path: containers_path.to_string(),
            containers_read: true,
            containers: Vec::new(),
            volumes: Vec::new(),
            volumes_read: true,
            overrides: None,
        }
    }

    /// Apply `o` to the containers and task-level sizes as read ([`overrides::apply`]).
    fn apply_overrides(&mut self, o: &overrides::Overrides, s: &mut Sink) {
        let mut specs: Vec<ContainerSpec> = self.containers.iter_mut().map(|c| std::mem::take(&mut c.spec)).collect();
        let errors = overrides::apply(o, &mut specs, &mut self.cpu, &mut self.memory);
        for (c, spec) in self.containers.iter_mut().zip(specs) {
            c.spec = spec;
        }
        for e in errors {
            s.error(&e.path, e.message);
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
        task.cpu = self.cpu;
        task.memory = self.memory;
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

/// The limits of every list, map and string, and the caps on errors and warnings.
#[cfg(test)]
mod limit_tests {
    use super::testing::{accept, opts, reject};
    use super::*;
    use serde_json::{Map, json};

    /// A valid register-shape task whose first container gets `extra`; a second container
    /// "data" and a volume "v" are there for it to refer to.
    fn with(extra: Value) -> Value {
        let mut a = json!({"name": "a", "image": "busybox"});
        if let (Value::Object(a), Value::Object(extra)) = (&mut a, extra) {
            a.extend(extra);
        }
        json!({"family": "f", "volumes": [{"name": "v"}],
               "containerDefinitions": [a, {"name": "data", "image": "busybox", "essential": false}]})
    }

    /// `n` items made by `item`.
    fn list(n: usize, item: impl Fn(usize) -> Value) -> Value {
        Value::Array((0..n).map(item).collect())
    }

    /// An object of `n` distinct keys `k0`... with string values.
    fn map(n: usize) -> Value {
        Value::Object((0..n).map(|i| (format!("k{i}"), json!("x"))).collect::<Map<_, _>>())
    }

    /// A string of `n` bytes.
    fn text(n: usize) -> String {
        "x".repeat(n)
    }

    type Build = Box<dyn Fn(usize) -> Value>;

    /// Every list and map limit: (the path of the list, its limit, the task with a list of
    /// n entries there).
    fn list_cases() -> Vec<(&'static str, usize, Build)> {
        vec![
            (
                "containerDefinitions",
                MAX_CONTAINERS,
                Box::new(
                    |n| json!({"family": "f", "containerDefinitions": list(n, |i| json!({"name": format!("c{i}"), "image": "busybox"}))}),
                ),
            ),
            (
                "volumes",
                MAX_VOLUMES,
                Box::new(|n| {
                    let mut t = with(json!({}));
                    t["volumes"] = list(n, |i| json!({"name": format!("v{i}")}));
                    t
                }),
            ),
            (
                "containerDefinitions[0].environment",
                MAX_ENVIRONMENT,
                Box::new(|n| with(json!({"environment": list(n, |i| json!({"name": format!("V{i}"), "value": "x"}))}))),
            ),
            (
                "containerDefinitions[0].environmentFiles",
                MAX_ENVIRONMENT_FILES,
                Box::new(|n| {
                    with(
                        json!({"environmentFiles": list(n, |_| json!({"value": "arn:aws:s3:::b/x.env", "type": "s3"}))}),
                    )
                }),
            ),
            (
                "containerDefinitions[0].secrets",
                MAX_SECRETS,
                Box::new(|n| {
                    with(json!({"secrets": list(n, |i| json!({"name": format!("S{i}"), "valueFrom": "arn:x"}))}))
                }),
            ),
            (
                "containerDefinitions[0].command",
                MAX_COMMAND_ITEMS,
                Box::new(|n| with(json!({"command": list(n, |_| json!("x"))}))),
            ),
            (
                "containerDefinitions[0].entryPoint",
                MAX_COMMAND_ITEMS,
                Box::new(|n| with(json!({"entryPoint": list(n, |_| json!("x"))}))),
            ),
            (
                "containerDefinitions[0].healthCheck.command",
                MAX_COMMAND_ITEMS,
                Box::new(|n| with(json!({"healthCheck": {"command": list(n, |_| json!("CMD"))}}))),
            ),
            (
                "containerDefinitions[0].portMappings",
                MAX_PORT_MAPPINGS,
                Box::new(|n| with(json!({"portMappings": list(n, |i| json!({"containerPort": 1 + i}))}))),
            ),
            (
                "containerDefinitions[0].mountPoints",
                MAX_MOUNT_POINTS,
                Box::new(|n| {
                    with(
                        json!({"mountPoints": list(n, |i| json!({"sourceVolume": "v", "containerPath": format!("/m{i}")}))}),
                    )
                }),
            ),
            (
                "containerDefinitions[0].volumesFrom",
                MAX_VOLUMES_FROM,
                Box::new(|n| with(json!({"volumesFrom": list(n, |_| json!({"sourceContainer": "data"}))}))),
            ),
            (
                "containerDefinitions[0].links",
                MAX_LINKS,
                Box::new(|n| with(json!({"links": list(n, |i| json!(format!("data:alias{i}")))}))),
            ),
            (
                "containerDefinitions[0].dependsOn",
                MAX_DEPENDS_ON,
                Box::new(|n| {
                    with(json!({"dependsOn": list(n, |_| json!({"containerName": "data", "condition": "START"}))}))
                }),
            ),
            ("containerDefinitions[0].dockerLabels", MAX_LABELS, Box::new(|n| with(json!({"dockerLabels": map(n)})))),
            (
                "containerDefinitions[0].ulimits",
                MAX_ULIMITS,
                Box::new(|n| {
                    with(json!({"ulimits": list(n, |_| json!({"name": "nofile", "softLimit": 1, "hardLimit": 2}))}))
                }),
            ),
            (
                "containerDefinitions[0].extraHosts",
                MAX_EXTRA_HOSTS,
                Box::new(|n| {
                    with(
                        json!({"extraHosts": list(n, |i| json!({"hostname": format!("h{i}"), "ipAddress": "10.0.0.1"}))}),
                    )
                }),
            ),
            (
                "containerDefinitions[0].dnsServers",
                MAX_DNS_ENTRIES,
                Box::new(|n| with(json!({"dnsServers": list(n, |_| json!("10.0.0.2"))}))),
            ),
            (
                "containerDefinitions[0].dnsSearchDomains",
                MAX_DNS_ENTRIES,
                Box::new(|n| with(json!({"dnsSearchDomains": list(n, |_| json!("example.com"))}))),
            ),
            (
                "containerDefinitions[0].dockerSecurityOptions",
                MAX_SECURITY_OPTIONS,
                Box::new(|n| with(json!({"dockerSecurityOptions": list(n, |_| json!("no-new-privileges"))}))),
            ),
            (
                "containerDefinitions[0].systemControls",
                MAX_SYSTEM_CONTROLS,
                Box::new(|n| {
                    with(
                        json!({"systemControls": list(n, |i| json!({"namespace": format!("net.x{i}"), "value": "1"}))}),
                    )
                }),
            ),
            (
                "containerDefinitions[0].linuxParameters.capabilities.add",
                MAX_CAPABILITIES,
                Box::new(|n| {
                    with(json!({"linuxParameters": {"capabilities": {"add": list(n, |_| json!("NET_ADMIN"))}}}))
                }),
            ),
            (
                "containerDefinitions[0].linuxParameters.capabilities.drop",
                MAX_CAPABILITIES,
                Box::new(|n| {
                    with(json!({"linuxParameters": {"capabilities": {"drop": list(n, |_| json!("NET_RAW"))}}}))
                }),
            ),
            (
                "containerDefinitions[0].linuxParameters.devices",
                MAX_DEVICES,
                Box::new(|n| {
                    with(json!({"linuxParameters": {"devices": list(n, |_| json!({"hostPath": "/dev/null"}))}}))
                }),
            ),
            (
                "containerDefinitions[0].linuxParameters.devices[0].permissions",
                MAX_DEVICE_PERMISSIONS,
                Box::new(|n| {
                    with(
                        json!({"linuxParameters": {"devices": [{"hostPath": "/dev/null", "permissions": list(n, |_| json!("read"))}]}}),
                    )
                }),
            ),
            (
                "containerDefinitions[0].linuxParameters.tmpfs",
                MAX_TMPFS,
                Box::new(|n| {
                    with(
                        json!({"linuxParameters": {"tmpfs": list(n, |i| json!({"containerPath": format!("/t{i}"), "size": 1}))}}),
                    )
                }),
            ),
            (
                "containerDefinitions[0].linuxParameters.tmpfs[0].mountOptions",
                MAX_TMPFS_MOUNT_OPTIONS,
                Box::new(|n| {
                    with(
                        json!({"linuxParameters": {"tmpfs": [{"containerPath": "/t", "size": 1, "mountOptions": list(n, |_| json!("rw"))}]}}),
                    )
                }),
            ),
            (
                "containerDefinitions[0].logConfiguration.options",
                MAX_DRIVER_OPTIONS,
                Box::new(|n| with(json!({"logConfiguration": {"logDriver": "json-file", "options": map(n)}}))),
            ),
            (
                "volumes[0].dockerVolumeConfiguration.driverOpts",
                MAX_DRIVER_OPTIONS,
                Box::new(|n| {
                    let mut t = with(json!({}));
                    t["volumes"] = json!([{"name": "v", "dockerVolumeConfiguration": {"driverOpts": map(n)}}]);
                    t
                }),
            ),
            (
                "volumes[0].dockerVolumeConfiguration.labels",
                MAX_LABELS,
                Box::new(|n| {
                    let mut t = with(json!({}));
                    t["volumes"] = json!([{"name": "v", "dockerVolumeConfiguration": {"labels": map(n)}}]);
                    t
                }),
            ),
            (
                "containers",
                MAX_CONTAINERS,
                Box::new(
                    |n| json!({"family": "f", "containers": list(n, |i| json!({"name": format!("c{i}"), "image": "busybox"}))}),
                ),
            ),
            (
                "containers[0].environment",
                MAX_ENVIRONMENT,
                Box::new(
                    |n| json!({"family": "f", "containers": [{"name": "a", "image": "busybox", "environment": map(n)}]}),
                ),
            ),
            (
                "containers[0].portMappings",
                MAX_PORT_MAPPINGS,
                Box::new(|n| {
                    json!({"family": "f", "containers": [{"name": "a", "image": "busybox",
                       "portMappings": list(n, |i| json!({"containerPort": 1 + i}))}]})
                }),
            ),
        ]
    }

    #[test]
    fn every_list_at_its_limit_is_read_and_one_over_is_one_error_naming_it() {
        for (path, limit, build) in list_cases() {
            let at = accept(&build(limit));
            assert_eq!(at.omitted_warnings, 0, "{path}");
            let over = limit + 1;
            let noun = if path == "containerDefinitions" || path == "containers" { "containers" } else { "entries" };
            assert_eq!(
                reject(&build(over)),
                [format!("{path}: {over} {noun}, more than the limit of {limit}")],
                "{path}"
            );
        }
    }

    /// Every string limit: (the path of the string, its limit in bytes, whether it is a
    /// key, the task with a string of n bytes there).
    fn string_cases() -> Vec<(&'static str, usize, bool, Build)> {
        vec![
            (
                "containerDefinitions[0].hostname",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"hostname": text(n)}))),
            ),
            (
                "containerDefinitions[0].workingDirectory",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"workingDirectory": text(n)}))),
            ),
            ("containerDefinitions[0].user", MAX_STRING_BYTES, false, Box::new(|n| with(json!({"user": text(n)})))),
            (
                "containerDefinitions[0].command[0]",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"command": [text(n)]}))),
            ),
            (
                "containerDefinitions[0].environment[0].value",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"environment": [{"name": "A", "value": text(n)}]}))),
            ),
            (
                "containerDefinitions[0].secrets[0].valueFrom",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"secrets": [{"name": "A", "valueFrom": text(n)}]}))),
            ),
            (
                "containerDefinitions[0].mountPoints[0].containerPath",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"mountPoints": [{"sourceVolume": "v", "containerPath": text(n)}]}))),
            ),
            (
                "containerDefinitions[0].extraHosts[0].hostname",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"extraHosts": [{"hostname": text(n), "ipAddress": "10.0.0.1"}]}))),
            ),
            (
                "containerDefinitions[0].logConfiguration.options.k",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| with(json!({"logConfiguration": {"logDriver": "json-file", "options": {"k": text(n)}}}))),
            ),
            (
                "containerDefinitions[0].dockerLabels.k",
                MAX_LABEL_VALUE_BYTES,
                false,
                Box::new(|n| with(json!({"dockerLabels": {"k": text(n)}}))),
            ),
            (
                "containerDefinitions[0].dockerLabels",
                MAX_LABEL_KEY_BYTES,
                true,
                Box::new(|n| with(json!({"dockerLabels": {text(n): "v"}}))),
            ),
            (
                "volumes[0].host.sourcePath",
                MAX_STRING_BYTES,
                false,
                Box::new(|n| {
                    let mut t = with(json!({}));
                    t["volumes"] = json!([{"name": "v", "host": {"sourcePath": text(n)}}]);
                    t
                }),
            ),
            (
                "containers[0].environment",
                MAX_STRING_BYTES,
                true,
                Box::new(
                    |n| json!({"family": "f", "containers": [{"name": "a", "image": "busybox", "environment": {text(n): "v"}}]}),
                ),
            ),
        ]
    }

    #[test]
    fn every_string_at_its_limit_is_read_and_one_byte_over_is_one_error_naming_it() {
        for (path, limit, is_key, build) in string_cases() {
            accept(&build(limit));
            let over = limit + 1;
            let expected = if is_key {
                // The key is in the path, quoted and cut.
                format!("{path}[{:?}...]: key of {over} bytes, more than the limit of {limit}", text(60))
            } else {
                format!("{path}: {over} bytes, more than the limit of {limit}")
            };
            assert_eq!(reject(&build(over)), [expected], "{path}");
        }
        // An image reference too long for any string is refused by that limit alone.
        assert_eq!(
            reject(&with(json!({"image": text(70_000)}))),
            ["containerDefinitions[0].image: 70000 bytes, more than the limit of 65536"]
        );
    }

    #[test]
    fn a_command_is_limited_in_total_too() {
        let half = MAX_COMMAND_BYTES / 2;
        for key in ["command", "entryPoint"] {
            accept(&with(json!({ key: [text(half), text(half)] })));
            assert_eq!(
                reject(&with(json!({ key: [text(half), text(half + 1)] }))),
                [format!("containerDefinitions[0].{key}: 65537 bytes in all, more than the limit of 65536")]
            );
        }
        assert_eq!(
            reject(&with(json!({"healthCheck": {"command": ["CMD-SHELL", text(MAX_COMMAND_BYTES)]}}))),
            ["containerDefinitions[0].healthCheck.command: 65545 bytes in all, more than the limit of 65536"]
        );
    }

    #[test]
    fn a_list_over_its_limit_is_not_read() {
        // 1,001 wrong entries: one error for the list, none for its entries.
        let t = with(json!({"portMappings": list(1001, |_| json!({"containerPort": "x"}))}));
        assert_eq!(reject(&t), ["containerDefinitions[0].portMappings: 1001 entries, more than the limit of 100"]);
    }

    #[test]
    fn mount_points_are_not_checked_against_volumes_that_were_not_read() {
        let mut t = with(json!({"mountPoints": [{"sourceVolume": "v0", "containerPath": "/d"}]}));
        t["volumes"] = list(MAX_VOLUMES + 1, |i| json!({"name": format!("v{i}")}));
        assert_eq!(reject(&t), ["volumes: 101 entries, more than the limit of 100"]);
    }

    /// 50 containers with 1,000 environment entries each, every name invalid: 50,000
    /// errors.
    fn fifty_thousand_errors() -> Value {
        let containers = list(
            50,
            |i| json!({"name": format!("c{i}"), "image": "busybox", "environment": list(1000, |_| json!({"name": "="}))}),
        );
        json!({"family": "f", "containerDefinitions": containers})
    }

    #[test]
    fn errors_beyond_the_first_hundred_are_counted_not_kept() {
        let text = fifty_thousand_errors().to_string();
        let Err(r) = parse(text.as_bytes(), &opts()) else { panic!("accepted") };
        assert_eq!(r.errors.len(), MAX_ERRORS);
        assert_eq!(r.omitted_errors, 50_000 - MAX_ERRORS);
        assert_eq!(
            r.errors[0].to_string(),
            r#"containerDefinitions[0].environment[0].name: "=" is not a valid environment variable name"#
        );
        assert_eq!(r.errors[99].path, "containerDefinitions[0].environment[99].name");
        let shown = r.to_string();
        assert!(shown.ends_with("; and 49900 more"), "{}", &shown[shown.len() - 100..]);
        assert_eq!(shown.matches("is not a valid environment variable name").count(), MAX_ERRORS);
    }

    #[test]
    fn warnings_beyond_the_first_hundred_are_counted_not_kept() {
        let extra: Map<String, Value> = (0..50_000).map(|i| (format!("unknown{i}"), json!(1))).collect();
        let a = accept(&with(Value::Object(extra.clone())));
        assert_eq!(a.warnings.len(), MAX_WARNINGS);
        assert_eq!(a.omitted_warnings, 50_000 - MAX_WARNINGS);
        assert!(a.warnings.iter().all(|w| w.message == "unknown key, ignored"));
        // And when the task is refused, its warnings are capped the same way.
        let mut bad = with(Value::Object(extra));
        bad["containerDefinitions"][0]["cpu"] = json!("x");
        let Err(r) = parse(bad.to_string().as_bytes(), &opts()) else { panic!("accepted") };
        assert_eq!((r.errors.len(), r.omitted_errors), (1, 0));
        assert_eq!((r.warnings.len(), r.omitted_warnings), (MAX_WARNINGS, 50_000 - MAX_WARNINGS));
    }
}
