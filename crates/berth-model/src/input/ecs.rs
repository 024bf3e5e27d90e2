//! The three ECS shapes (register-task-definition input, describe-task-definition output,
//! a bare `containerDefinitions` array), and the container and volume definitions that the
//! seed payload shares with them.
//!
//! Decisions where ECS and the SPEC leave room:
//! - `revision` is read in both object shapes (a describe output trimmed to its
//!   `taskDefinition` still carries it) and becomes the task's version; it is also reported
//!   as a read-only field berth does not otherwise act on.
//! - `memory` or `memoryReservation` of 0 means no limit, as Docker reads it.
//! - `cpu` is at most 262,144 shares (the kernel's maximum); sizes in MiB must fit Docker's
//!   byte counts; seconds (stopTimeout, health check times) fit 32 bits. Health-check
//!   times are not held to ECS's narrower ranges: Docker accepts them.
//! - A health check's command starts with `CMD`, `CMD-SHELL` or `NONE`, as Docker requires.
//! - Ulimit names are the ones ECS and Docker know; a soft limit above the hard limit is
//!   refused (Docker would refuse it at create). -1 means unlimited.
//! - An environment variable set twice: the last value wins, with a warning.
//! - `autoprovision` is only allowed on a `shared` Docker volume, as in ECS.
//! - A volume with `configuredAtLaunch: true` (an EBS volume) is an unsupported kind, like
//!   `efsVolumeConfiguration`.
//! - `startTimeout` is held to 2–120 s, the one range ECS states (Fargate's);
//!   `restartPolicy` to ECS's: `enabled` required, at most 50 `ignoredExitCodes` (32-bit
//!   integers, as ECS types them), `restartAttemptPeriod` 60–1,800 s (300 by default).

use super::image::image_problem;
use super::reader::{Field, MapLimits, Obj, Sink, index_path, key_path, quote};
use super::validate::check_name;
use super::{
    Draft, DraftContainer, DraftVolume, MAX_CAPABILITIES, MAX_COMMAND_BYTES, MAX_COMMAND_ITEMS, MAX_CONTAINERS,
    MAX_DEPENDS_ON, MAX_DEVICE_PERMISSIONS, MAX_DEVICES, MAX_DNS_ENTRIES, MAX_DRIVER_OPTIONS, MAX_ENVIRONMENT,
    MAX_ENVIRONMENT_FILES, MAX_EXTRA_HOSTS, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES, MAX_LABELS, MAX_LINKS,
    MAX_MOUNT_POINTS, MAX_PORT_MAPPINGS, MAX_SECRETS, MAX_SECURITY_OPTIONS, MAX_SYSTEM_CONTROLS, MAX_TMPFS,
    MAX_TMPFS_MOUNT_OPTIONS, MAX_ULIMITS, MAX_VOLUMES, MAX_VOLUMES_FROM,
};
use crate::container::{
    ContainerSpec, Dependency, DependencyCondition, Device, ExtraHost, HONOURED_LOG_DRIVERS, HealthCheck, Link,
    LinuxParameters, LogConfiguration, MountPoint, PortMapping, Protocol, RestartPolicy, Secret, Tmpfs, ULIMIT_NAMES,
    Ulimit, VolumeFrom,
};
use crate::status::ContainerStatus;
use crate::task::NetworkMode;
use crate::volume::{DockerVolumeConfiguration, Volume, VolumeKind, VolumeScope};
use std::collections::BTreeMap;

/// Most CPU shares the kernel takes.
pub(crate) const MAX_CPU_SHARES: u64 = 262_144;
/// Largest size in MiB whose byte count fits Docker's signed 64-bit fields.
pub(crate) const MAX_MIB: u64 = (i64::MAX as u64) >> 20;
/// Largest number of seconds (or retries) accepted.
const MAX_SECONDS: u64 = u32::MAX as u64;

/// `startTimeout`'s range in seconds (ECS states it for Fargate; berth holds every task to it).
const START_TIMEOUT_SECS: (u64, u64) = (2, 120);

/// `restartPolicy.restartAttemptPeriod`'s range in seconds (ECS's).
const RESTART_ATTEMPT_PERIOD_SECS: (u64, u64) = (60, 1800);

/// At most this many `restartPolicy.ignoredExitCodes` (ECS's limit).
const MAX_IGNORED_EXIT_CODES: usize = 50;

/// Task-level fields of the register and describe shapes that berth does not act on.
const TASK_NOT_ACTED_ON: [&str; 12] = [
    "executionRoleArn",
    "taskRoleArn",
    "requiresCompatibilities",
    "placementConstraints",
    "proxyConfiguration",
    "runtimePlatform",
    "ephemeralStorage",
    "pidMode",
    "ipcMode",
    "inferenceAccelerators",
    "tags",
    "enableFaultInjection",
];

/// Fields only `describe-task-definition` output has, which berth ignores.
const TASK_READ_ONLY: [&str; 7] = [
    "taskDefinitionArn",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

/// Container-level fields berth does not act on.
const CONTAINER_NOT_ACTED_ON: [&str; 5] =
    ["repositoryCredentials", "resourceRequirements", "credentialSpecs", "firelensConfiguration", "versionConsistency"];

/// Volume kinds berth accepts with a warning and refuses when the task runs.
const UNSUPPORTED_VOLUME_KINDS: [&str; 2] = ["efsVolumeConfiguration", "fsxWindowsFileServerVolumeConfiguration"];

/// The limits of `dockerLabels` (and of a Docker volume's `labels`).
const LABEL_LIMITS: MapLimits =
    MapLimits { entries: MAX_LABELS, key_bytes: MAX_LABEL_KEY_BYTES, value_bytes: MAX_LABEL_VALUE_BYTES };

/// How the container definitions of a shape differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// ECS: `environment` is `[{"name", "value"}]`; no `desiredStatus`.
    Ecs,
    /// The seed payload: `environment` is `{"KEY": "value"}`; `desiredStatus` allowed.
    Seed,
}

/// Shape 1: the `register-task-definition --cli-input-json` object.
pub(crate) fn read_register(o: Obj<'_>, s: &mut Sink) -> Draft {
    read_task_definition(o, s)
}

/// Shape 2: `{"taskDefinition": {...}}`, possibly with a sibling `tags`.
pub(crate) fn read_describe(mut root: Obj<'_>, s: &mut Sink) -> Draft {
    root.not_acted_on("tags", s);
    let inner = root.field("taskDefinition");
    let overrides = super::overrides::read(&mut root, s);
    root.finish(s);
    let mut unread = Draft::empty("taskDefinition.family", "taskDefinition.containerDefinitions");
    unread.containers_read = false;
    let Some(f) = inner else {
        s.error("taskDefinition", "required field is missing");
        return unread;
    };
    let mut d = match f.object(s) {
        Some(o) => read_task_definition(o, s),
        None => unread,
    };
    if overrides.is_some() {
        d.overrides = overrides;
    }
    d
}

/// Shape 3: a bare `containerDefinitions` array; the family comes from the caller.
pub(crate) fn read_bare(f: Field<'_>, s: &mut Sink) -> Draft {
    let mut d = Draft::empty("", "");
    read_containers(Some(f), Flavor::Ecs, &mut d, s);
    d
}

/// The task-level fields of shapes 1 and 2.
fn read_task_definition(mut o: Obj<'_>, s: &mut Sink) -> Draft {
    let mut d = Draft::empty(&o.path_of("family"), &o.path_of("containerDefinitions"));
    if let Some(family) = o.non_empty_string("family", s) {
        check_name(&o.path_of("family"), &family, "family", s);
        d.family = Some(family);
    }
    if let Some(f) = o.field("revision") {
        if let Some(rev) = f.unsigned(1, i64::MAX.unsigned_abs(), s) {
            d.version = Some(rev.to_string());
        }
        s.warn(&f.path, "read-only field of describe-task-definition output; berth uses it only as the task's version");
    }
    d.network_mode = read_network_mode(&mut o, s);
    for key in ["cpu", "memory"] {
        if let Some(f) = o.field(key)
            && let Some(size) = read_task_size(&f, key, s)
        {
            if key == "cpu" {
                d.cpu = Some(size);
            } else {
                d.memory = Some(size);
            }
        }
    }
    d.overrides = super::overrides::read(&mut o, s);
    for key in TASK_NOT_ACTED_ON {
        o.not_acted_on(key, s);
    }
    for key in TASK_READ_ONLY {
        o.ignored(key, "read-only field of describe-task-definition output, ignored", s);
    }
    read_containers(o.field("containerDefinitions"), Flavor::Ecs, &mut d, s);
    read_volumes(o.field("volumes"), &mut d, s);
    o.finish(s);
    d
}

/// A task-level `cpu` or `memory` field (`key`), a string or a number read by
/// [`task_size`]; `None` (and an error when it is not empty) when it gives none.
pub(crate) fn read_task_size(f: &Field<'_>, key: &str, s: &mut Sink) -> Option<u64> {
    let size = match f.value {
        serde_json::Value::String(v) if v.trim().is_empty() => return None,
        serde_json::Value::Null => return None,
        serde_json::Value::String(v) => task_size(key, v),
        serde_json::Value::Number(n) => task_size(key, &n.to_string()),
        _ => {
            f.type_error("a string or a number", s);
            return None;
        }
    };
    size.map_err(|why| s.error(&f.path, why)).ok()
}

/// A task-level `cpu` or `memory` as ECS accepts it: `cpu` in CPU units ("256") or vCPUs
/// ("0.25 vCPU", 1,024 units each), `memory` in MiB ("512") or GB ("1 GB", "0.5GB", 1,024
/// MiB each). The result is a whole, positive number of units or MiB, at most the
/// container-level limits (262,144 units; Docker's byte counts for memory).
pub(crate) fn task_size(key: &str, text: &str) -> Result<u64, String> {
    let (unit, max, example) = if key == "cpu" {
        ("vcpu", MAX_CPU_SHARES, "CPU units such as \"256\" or vCPUs such as \"0.25 vCPU\"")
    } else {
        ("gb", MAX_MIB, "MiB such as \"512\" or GB such as \"1 GB\"")
    };
    let bad = || format!("expected {example}, found {}", quote(text));
    let lower = text.trim().to_ascii_lowercase();
    let (number, factor) = match lower.strip_suffix(unit) {
        Some(n) => (n.trim_end(), 1024_u64),
        None => (lower.as_str(), 1),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) || fraction.len() > 12 {
        return Err(bad());
    }
    // Exact decimal arithmetic: (whole.fraction) × factor, in units of the last digit (at
    // most 12 digits: 1/1024 of a vCPU or GB needs 10).
    let scale = 10_u64.pow(u32::try_from(fraction.len()).map_err(|_| bad())?);
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let fraction: u64 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| bad())? };
    let scaled = whole.checked_mul(scale).and_then(|w| w.checked_add(fraction)).and_then(|v| v.checked_mul(factor));
    let Some(scaled) = scaled else { return Err(format!("{} is more than the limit of {max}", quote(text))) };
    if scaled % scale != 0 {
        let what = if key == "cpu" { "CPU units" } else { "MiB" };
        return Err(format!("{} is not a whole number of {what}", quote(text)));
    }
    match scaled / scale {
        0 => Err(format!("expected more than zero, found {}", quote(text))),
        v if v > max => Err(format!("{} is more than the limit of {max}", quote(text))),
        v => Ok(v),
    }
}

/// `networkMode`: bridge (the default; also for `null`), host, none, awsvpc.
pub(crate) fn read_network_mode(o: &mut Obj<'_>, s: &mut Sink) -> NetworkMode {
    let Some(f) = o.field("networkMode") else { return NetworkMode::Bridge };
    match f.string(s) {
        Some("bridge") => NetworkMode::Bridge,
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        Some("awsvpc") => NetworkMode::Awsvpc,
        Some(other) => {
            s.error(&f.path, format!("unknown network mode {} (expected bridge, host, none or awsvpc)", quote(other)));
            NetworkMode::Bridge
        }
        None => NetworkMode::Bridge,
    }
}

/// The container array of any shape, into `d.containers` (`d.containers_read` false when
/// the array could not be read as a whole).
pub(crate) fn read_containers(f: Option<Field<'_>>, flavor: Flavor, d: &mut Draft, s: &mut Sink) {
    let Some(f) = f else {
        s.error(&d.containers_path, "required field is missing");
        d.containers_read = false;
        return;
    };
    let serde_json::Value::Array(items) = f.value else {
        f.type_error("an array", s);
        d.containers_read = false;
        return;
    };
    if items.len() > MAX_CONTAINERS {
        s.error(&f.path, format!("{} containers, more than the limit of {MAX_CONTAINERS}", items.len()));
        d.containers_read = false;
        return;
    }
    for item in f.array(MAX_CONTAINERS, s) {
        if let Some(c) = item.read_object(s, |o, s| read_container(o, flavor, s)) {
            d.containers.push(c);
        }
    }
}

/// One container definition.
fn read_container(o: &mut Obj<'_>, flavor: Flavor, s: &mut Sink) -> DraftContainer {
    let mut spec = ContainerSpec { essential: true, ..ContainerSpec::default() };
    if let Some(name) = o.required_string("name", s) {
        check_name(&o.path_of("name"), &name, "container name", s);
        spec.name = name;
    }
    if let Some(image) = o.required_string("image", s) {
        if let Some(why) = image_problem(&image) {
            s.error(&o.path_of("image"), format!("{} is not a valid image reference ({why})", quote(&image)));
        }
        spec.image = image;
    }
    spec.command = read_command(o, "command", s);
    spec.entry_point = read_command(o, "entryPoint", s);
    spec.cpu = o.unsigned("cpu", 0, MAX_CPU_SHARES, s).unwrap_or(0);
    spec.memory = o.unsigned("memory", 0, MAX_MIB, s).filter(|&m| m > 0);
    spec.memory_reservation = o.unsigned("memoryReservation", 0, MAX_MIB, s).filter(|&m| m > 0);
    spec.essential = o.boolean("essential", s).unwrap_or(true);
    spec.environment = match flavor {
        Flavor::Ecs => read_environment_list(o, s),
        Flavor::Seed => read_environment_map(o, s),
    };
    spec.environment_files = o.objects("environmentFiles", MAX_ENVIRONMENT_FILES, s, read_environment_file);
    spec.secrets = o.objects("secrets", MAX_SECRETS, s, read_secret);
    spec.links = o.array("links", MAX_LINKS, s).iter().filter_map(|f| read_link(f, s)).collect();
    spec.volumes_from = o.objects("volumesFrom", MAX_VOLUMES_FROM, s, read_volume_from);
    spec.mount_points = o.objects("mountPoints", MAX_MOUNT_POINTS, s, read_mount_point);
    spec.port_mappings = o.objects("portMappings", MAX_PORT_MAPPINGS, s, read_port_mapping);
    spec.docker_labels = o.string_map("dockerLabels", LABEL_LIMITS, s);
    spec.working_directory = o.non_empty_string("workingDirectory", s);
    spec.user = o.non_empty_string("user", s);
    spec.hostname = o.non_empty_string("hostname", s);
    spec.stop_timeout = o.unsigned("stopTimeout", 0, MAX_SECONDS, s);
    spec.health_check = o.object("healthCheck", s).map(|h| Box::new(read_health_check(h, s)));
    spec.start_timeout = o.unsigned("startTimeout", START_TIMEOUT_SECS.0, START_TIMEOUT_SECS.1, s);
    spec.restart_policy = o.object("restartPolicy", s).and_then(|r| read_restart_policy(r, s)).map(Box::new);
    let mut depends_on_paths = Vec::new();
    for f in o.array("dependsOn", MAX_DEPENDS_ON, s) {
        if let Some(dep) = f.read_object(s, read_dependency).flatten() {
            spec.depends_on.push(dep);
            depends_on_paths.push(f.path);
        }
    }
    spec.ulimits = o.objects("ulimits", MAX_ULIMITS, s, read_ulimit);
    spec.readonly_root_filesystem = o.boolean("readonlyRootFilesystem", s).unwrap_or(false);
    spec.extra_hosts = o.objects("extraHosts", MAX_EXTRA_HOSTS, s, read_extra_host);
    spec.dns_servers = o.strings("dnsServers", MAX_DNS_ENTRIES, s);
    spec.dns_search_domains = o.strings("dnsSearchDomains", MAX_DNS_ENTRIES, s);
    spec.linux_parameters = o.object("linuxParameters", s).map(|l| read_linux_parameters(l, s)).unwrap_or_default();
    spec.privileged = o.boolean("privileged", s).unwrap_or(false);
    spec.disable_networking = o.boolean("disableNetworking", s).unwrap_or(false);
    if spec.disable_networking && !spec.port_mappings.is_empty() {
        s.error(&o.path_of("disableNetworking"), "networking is disabled, but portMappings publish ports".to_string());
    }
    spec.interactive = o.boolean("interactive", s).unwrap_or(false);
    spec.pseudo_terminal = o.boolean("pseudoTerminal", s).unwrap_or(false);
    spec.docker_security_options = o.strings("dockerSecurityOptions", MAX_SECURITY_OPTIONS, s);
    spec.system_controls = o.objects("systemControls", MAX_SYSTEM_CONTROLS, s, read_system_control);
    spec.log_configuration = o.object("logConfiguration", s).and_then(|l| read_log_configuration(l, s)).map(Box::new);
    let mut desired_status = ContainerStatus::Running;
    if flavor == Flavor::Seed
        && let Some(f) = o.field("desiredStatus")
    {
        match f.string(s) {
            Some("RUNNING") => {}
            Some("STOPPED") => desired_status = ContainerStatus::Stopped,
            Some(other) => s.error(&f.path, format!("expected \"RUNNING\" or \"STOPPED\", found {}", quote(other))),
            None => {}
        }
    }
    for key in CONTAINER_NOT_ACTED_ON {
        o.not_acted_on(key, s);
    }
    DraftContainer { path: o.path.clone(), spec, desired_status, depends_on_paths }
}

/// An `environmentFiles` entry: its `value` (the file's ARN).
fn read_environment_file(e: &mut Obj<'_>, s: &mut Sink) -> Option<String> {
    let value = e.required_string("value", s);
    e.string("type", s);
    value
}

/// A `secrets` entry.
fn read_secret(e: &mut Obj<'_>, s: &mut Sink) -> Option<Secret> {
    let name = e.required_string("name", s);
    let value_from = e.required_string("valueFrom", s);
    Some(Secret { name: name?, value_from: value_from? })
}

/// A `volumesFrom` entry.
fn read_volume_from(e: &mut Obj<'_>, s: &mut Sink) -> Option<VolumeFrom> {
    let source = e.required_string("sourceContainer", s);
    let read_only = e.boolean("readOnly", s).unwrap_or(false);
    Some(VolumeFrom { source_container: source?, read_only })
}

/// A `mountPoints` entry.
fn read_mount_point(e: &mut Obj<'_>, s: &mut Sink) -> Option<MountPoint> {
    let source = e.required_string("sourceVolume", s);
    let path = e.required_string("containerPath", s);
    let read_only = e.boolean("readOnly", s).unwrap_or(false);
    Some(MountPoint { source_volume: source?, container_path: path?, read_only })
}

/// An `extraHosts` entry.
fn read_extra_host(e: &mut Obj<'_>, s: &mut Sink) -> Option<ExtraHost> {
    let hostname = e.required_string("hostname", s);
    let ip_address = e.required_string("ipAddress", s);
    Some(ExtraHost { hostname: hostname?, ip_address: ip_address? })
}

/// A `systemControls` entry, as the namespace and its value.
fn read_system_control(e: &mut Obj<'_>, s: &mut Sink) -> Option<(String, String)> {
    let namespace = e.required_string("namespace", s);
    let value = e.required_string("value", s);
    Some((namespace?, value?))
}

/// ECS `environment`: `[{"name": ..., "value": ...}]`, a `null` or absent value being "".
pub(crate) fn read_environment_list(o: &mut Obj<'_>, s: &mut Sink) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(f) = o.field("environment") else { return env };
    for item in f.array(MAX_ENVIRONMENT, s) {
        let read = |e: &mut Obj<'_>, s: &mut Sink| {
            (e.required_string("name", s), e.string("value", s).unwrap_or_default(), e.path_of("name"))
        };
        let Some((name, value, name_path)) = item.read_object(s, read) else { continue };
        if let Some(name) = name
            && env_name_ok(&name_path, &name, s)
            && env.insert(name, value).is_some()
        {
            s.warn(&name_path, "set more than once; the last value wins");
        }
    }
    env
}

/// Seed `environment`: `{"KEY": "value"}`.
fn read_environment_map(o: &mut Obj<'_>, s: &mut Sink) -> BTreeMap<String, String> {
    let Some(f) = o.field("environment") else { return BTreeMap::new() };
    let mut env = f.string_map(MapLimits::entries(MAX_ENVIRONMENT), s);
    env.retain(|name, _| env_name_ok(&key_path(&f.path, name), name, s));
    env
}

/// An environment variable name Docker can pass on: not empty, no `=`, no NUL.
fn env_name_ok(path: &str, name: &str, s: &mut Sink) -> bool {
    let ok = !name.is_empty() && !name.contains(['=', '\0']);
    if !ok {
        s.error(path, format!("{} is not a valid environment variable name", quote(name)));
    }
    ok
}

/// A `command`, `entryPoint` or health-check `command`: at most [`MAX_COMMAND_ITEMS`]
/// strings of at most [`MAX_COMMAND_BYTES`] together (empty when over).
pub(crate) fn read_command(o: &mut Obj<'_>, key: &str, s: &mut Sink) -> Vec<String> {
    let items = o.strings(key, MAX_COMMAND_ITEMS, s);
    let total: usize = items.iter().map(String::len).sum();
    if total > MAX_COMMAND_BYTES {
        s.error(&o.path_of(key), format!("{total} bytes in all, more than the limit of {MAX_COMMAND_BYTES}"));
        return Vec::new();
    }
    items
}

/// A `links` entry, `name[:alias]`.
fn read_link(f: &Field<'_>, s: &mut Sink) -> Option<Link> {
    let text = f.string(s)?;
    let (name, alias) = match text.split_once(':') {
        Some((name, alias)) => (name, Some(alias)),
        None => (text, None),
    };
    if name.is_empty() || alias.is_some_and(|a| a.is_empty() || a.contains(':')) {
        s.error(&f.path, format!("{} is not a link: expected name or name:alias", quote(text)));
        return None;
    }
    Some(Link { name: name.to_string(), alias: alias.map(str::to_string) })
}

/// A `portMappings` entry.
fn read_port_mapping(e: &mut Obj<'_>, s: &mut Sink) -> Option<PortMapping> {
    let container_port = e.unsigned("containerPort", 1, 65535, s);
    let host_port = e.unsigned("hostPort", 0, 65535, s).unwrap_or(0);
    let protocol = match e.field("protocol") {
        None => Some(Protocol::Tcp),
        Some(p) => match p.string(s) {
            Some("tcp") => Some(Protocol::Tcp),
            Some("udp") => Some(Protocol::Udp),
            Some(other) => {
                s.error(&p.path, format!("expected \"tcp\" or \"udp\", found {}", quote(other)));
                None
            }
            None => None,
        },
    };
    let range_only = !e.has("containerPort") && e.has_content("containerPortRange");
    if !e.has("containerPort") && !range_only {
        s.error(&e.path_of("containerPort"), "required field is missing");
    }
    for key in ["name", "appProtocol", "containerPortRange"] {
        e.not_acted_on(key, s);
    }
    Some(PortMapping {
        container_port: u16::try_from(container_port?).ok()?,
        host_port: u16::try_from(host_port).ok()?,
        protocol: protocol?,
    })
}

/// `healthCheck`.
fn read_health_check(mut o: Obj<'_>, s: &mut Sink) -> HealthCheck {
    let command = read_command(&mut o, "command", s);
    let command_path = o.path_of("command");
    let check = HealthCheck {
        interval: o.unsigned("interval", 0, MAX_SECONDS, s),
        timeout: o.unsigned("timeout", 0, MAX_SECONDS, s),
        retries: o.unsigned("retries", 0, MAX_SECONDS, s),
        start_period: o.unsigned("startPeriod", 0, MAX_SECONDS, s),
        command,
    };
    match check.command.first().map(String::as_str) {
        Some("CMD" | "CMD-SHELL" | "NONE") => {}
        Some(other) => s.error(
            &index_path(&command_path, 0),
            format!("expected \"CMD\", \"CMD-SHELL\" or \"NONE\", found {}", quote(other)),
        ),
        None => {
            if !o.has_content("command") {
                s.error(&command_path, "required field is missing");
            }
        }
    }
    o.finish(s);
    // Kept even when wrong (the error is recorded), so that a HEALTHY dependency on it is
    // not also reported as having no health check.
    check
}

/// `restartPolicy`: the policy when it is enabled (every field is checked either way).
fn read_restart_policy(mut o: Obj<'_>, s: &mut Sink) -> Option<RestartPolicy> {
    let enabled = match o.field("enabled") {
        Some(f) => f.boolean(s),
        None => {
            s.error(&o.path_of("enabled"), "required field is missing");
            None
        }
    };
    let ignored_exit_codes = o
        .array("ignoredExitCodes", MAX_IGNORED_EXIT_CODES, s)
        .iter()
        .filter_map(|f| f.integer(i32::MIN.into(), i32::MAX.into(), s))
        .collect();
    let (min, max) = RESTART_ATTEMPT_PERIOD_SECS;
    let period = o.unsigned("restartAttemptPeriod", min, max, s);
    o.finish(s);
    enabled.filter(|&on| on)?;
    Some(RestartPolicy {
        ignored_exit_codes,
        restart_attempt_period_secs: period.unwrap_or(crate::container::DEFAULT_RESTART_ATTEMPT_PERIOD_SECS),
    })
}

/// A `dependsOn` entry.
fn read_dependency(e: &mut Obj<'_>, s: &mut Sink) -> Option<Dependency> {
    let name = e.required_string("containerName", s);
    let condition_path = e.path_of("condition");
    let condition = match e.required_string("condition", s).as_deref() {
        Some("START") => Some(DependencyCondition::Start),
        Some("COMPLETE") => Some(DependencyCondition::Complete),
        Some("SUCCESS") => Some(DependencyCondition::Success),
        Some("HEALTHY") => Some(DependencyCondition::Healthy),
        Some(other) => {
            s.error(
                &condition_path,
                format!("unknown condition {} (expected START, COMPLETE, SUCCESS or HEALTHY)", quote(other)),
            );
            None
        }
        None => None,
    };
    Some(Dependency { container_name: name?, condition: condition? })
}

/// A `ulimits` entry.
fn read_ulimit(e: &mut Obj<'_>, s: &mut Sink) -> Option<Ulimit> {
    let name_path = e.path_of("name");
    let name = e.required_string("name", s);
    if let Some(n) = &name
        && !ULIMIT_NAMES.contains(&n.as_str())
    {
        s.error(&name_path, format!("unknown ulimit {}", quote(n)));
    }
    let limit = |e: &mut Obj<'_>, key: &str, s: &mut Sink| {
        let v = e.field(key).and_then(|f| f.integer(-1, i64::MAX, s));
        if !e.has(key) {
            s.error(&e.path_of(key), "required field is missing");
        }
        v
    };
    let soft = limit(e, "softLimit", s);
    let hard = limit(e, "hardLimit", s);
    if let (Some(soft), Some(hard)) = (soft, hard) {
        let unlimited = |v: i64| if v < 0 { i64::MAX } else { v };
        if unlimited(soft) > unlimited(hard) {
            s.error(&e.path, format!("softLimit {soft} is above hardLimit {hard}"));
        }
    }
    Some(Ulimit { name: name?, soft_limit: soft?, hard_limit: hard? })
}

/// `linuxParameters`.
fn read_linux_parameters(mut o: Obj<'_>, s: &mut Sink) -> LinuxParameters {
    let mut lp = LinuxParameters::default();
    if let Some(mut caps) = o.object("capabilities", s) {
        lp.capabilities_add = caps.strings("add", MAX_CAPABILITIES, s);
        lp.capabilities_drop = caps.strings("drop", MAX_CAPABILITIES, s);
        caps.finish(s);
    }
    lp.init_process_enabled = o.boolean("initProcessEnabled", s).unwrap_or(false);
    lp.shared_memory_size = o.unsigned("sharedMemorySize", 0, MAX_MIB, s);
    lp.tmpfs = o.objects("tmpfs", MAX_TMPFS, s, read_tmpfs);
    lp.devices = o.objects("devices", MAX_DEVICES, s, read_device);
    o.not_acted_on("maxSwap", s);
    o.not_acted_on("swappiness", s);
    o.finish(s);
    lp
}

/// A `linuxParameters.tmpfs` entry.
fn read_tmpfs(e: &mut Obj<'_>, s: &mut Sink) -> Option<Tmpfs> {
    let path = e.required_string("containerPath", s);
    let size = e.unsigned("size", 1, MAX_MIB, s);
    if !e.has("size") {
        s.error(&e.path_of("size"), "required field is missing");
    }
    let mount_options = e.strings("mountOptions", MAX_TMPFS_MOUNT_OPTIONS, s);
    Some(Tmpfs { container_path: path?, size: size?, mount_options })
}

/// A `linuxParameters.devices` entry.
fn read_device(e: &mut Obj<'_>, s: &mut Sink) -> Option<Device> {
    let host_path = e.required_string("hostPath", s);
    let container_path = e.non_empty_string("containerPath", s);
    let permissions_path = e.path_of("permissions");
    let permissions = e.strings("permissions", MAX_DEVICE_PERMISSIONS, s);
    for (i, p) in permissions.iter().enumerate() {
        if !matches!(p.as_str(), "read" | "write" | "mknod") {
            s.error(
                &index_path(&permissions_path, i),
                format!("expected \"read\", \"write\" or \"mknod\", found {}", quote(p)),
            );
        }
    }
    Some(Device { host_path: host_path?, container_path, permissions })
}

/// `logConfiguration`: kept for the drivers berth honours, otherwise a warning and `None`
/// (Docker's default driver is used).
fn read_log_configuration(mut o: Obj<'_>, s: &mut Sink) -> Option<LogConfiguration> {
    let driver_path = o.path_of("logDriver");
    let driver = o.required_string("logDriver", s);
    let options = o.string_map("options", MapLimits::entries(MAX_DRIVER_OPTIONS), s);
    o.ignored("secretOptions", "log driver secrets are not acted on by berth", s);
    o.finish(s);
    let driver = driver?;
    if HONOURED_LOG_DRIVERS.contains(&driver.as_str()) {
        Some(LogConfiguration { log_driver: driver, options })
    } else {
        s.warn(
            &driver_path,
            format!("log driver {} is not supported by berth; Docker's default log driver is used", quote(&driver)),
        );
        None
    }
}

/// The task's volumes (every shape), into `d.volumes` (`d.volumes_read` false when the
/// array could not be read as a whole).
pub(crate) fn read_volumes(f: Option<Field<'_>>, d: &mut Draft, s: &mut Sink) {
    let Some(f) = f else { return };
    d.volumes_read = matches!(f.value, serde_json::Value::Array(items) if items.len() <= MAX_VOLUMES);
    d.volumes = f.array(MAX_VOLUMES, s).iter().filter_map(|f| f.read_object(s, read_volume)).collect();
}

/// One task volume.
fn read_volume(o: &mut Obj<'_>, s: &mut Sink) -> DraftVolume {
    let name = o.required_string("name", s).unwrap_or_default();
    if !name.is_empty() {
        check_name(&o.path_of("name"), &name, "volume name", s);
    }
    let mut kinds: Vec<&str> = ["host", "dockerVolumeConfiguration"]
        .into_iter()
        .chain(UNSUPPORTED_VOLUME_KINDS)
        .filter(|k| o.has_content(k))
        .collect();
    let host_path = o.object("host", s).and_then(|mut host| {
        let path = host.non_empty_string("sourcePath", s);
        host.finish(s);
        path
    });
    let docker = o.object("dockerVolumeConfiguration", s).and_then(|cfg| read_docker_volume(cfg, s));
    for k in UNSUPPORTED_VOLUME_KINDS {
        o.ignored(k, "volume kind not supported by berth; the task will be refused when it runs", s);
    }
    if let Some(f) = o.field("configuredAtLaunch")
        && f.boolean(s) == Some(true)
    {
        s.warn(
            &f.path,
            "volumes configured at launch are not supported by berth; the task will be refused when it runs",
        );
        kinds.push("configuredAtLaunch");
    }
    if kinds.len() > 1 {
        s.error(&o.path, format!("more than one volume kind given: {}", kinds.join(", ")));
    }
    let kind = match kinds.first().copied() {
        Some("host") => host_path.map_or(VolumeKind::Empty, |source_path| VolumeKind::Host { source_path }),
        Some("dockerVolumeConfiguration") | None => docker.map_or(VolumeKind::Empty, VolumeKind::Docker),
        Some(other) => VolumeKind::Unsupported { kind: other.to_string() },
    };
    DraftVolume { path: o.path.clone(), volume: Volume::new(name, kind) }
}

/// `dockerVolumeConfiguration`.
fn read_docker_volume(mut o: Obj<'_>, s: &mut Sink) -> Option<DockerVolumeConfiguration> {
    let mut ok = true;
    let scope = match o.field("scope") {
        None => VolumeScope::Task,
        Some(f) => match f.string(s) {
            Some("task") => VolumeScope::Task,
            Some("shared") => VolumeScope::Shared,
            Some(other) => {
                s.error(&f.path, format!("expected \"task\" or \"shared\", found {}", quote(other)));
                ok = false;
                VolumeScope::Task
            }
            None => {
                ok = false;
                VolumeScope::Task
            }
        },
    };
    let autoprovision_path = o.path_of("autoprovision");
    let autoprovision = o.boolean("autoprovision", s).unwrap_or(false);
    if autoprovision && scope == VolumeScope::Task {
        s.error(&autoprovision_path, "only allowed with scope \"shared\"");
    }
    let cfg = DockerVolumeConfiguration {
        scope,
        autoprovision,
        driver: o.non_empty_string("driver", s),
        driver_opts: o.string_map("driverOpts", MapLimits::entries(MAX_DRIVER_OPTIONS), s),
        labels: o.string_map("labels", LABEL_LIMITS, s),
    };
    o.finish(s);
    ok.then_some(cfg)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accept, reject, task, warnings};
    use super::*;
    use serde_json::{Value, json};

    /// The spec of `container`, read in a valid task that also has a container "data" and a
    /// volume "v" for it to refer to.
    fn spec_of(container: Value) -> ContainerSpec {
        let data = json!({"name": "data", "image": "busybox", "essential": false});
        let t = accept(&task(json!([container, data]), json!({"volumes": [{"name": "v"}]}))).task;
        t.containers
            .into_iter()
            .next()
            .map(|c| std::sync::Arc::unwrap_or_clone(c.spec))
            .unwrap_or_else(|| panic!("no container"))
    }

    #[test]
    fn every_container_setting_is_mapped() {
        let spec = spec_of(json!({
            "name": "app", "image": "nginx:1.25",
            "command": ["nginx", "-g", "daemon off;"], "entryPoint": ["/docker-entrypoint.sh"],
            "cpu": 512, "memory": 256, "memoryReservation": 128, "essential": true,
            "environment": [{"name": "A", "value": "1"}, {"name": "EMPTY", "value": null}, {"name": "NONE"}],
            "environmentFiles": [{"value": "arn:aws:s3:::b/app.env", "type": "s3"}],
            "secrets": [{"name": "PASSWORD", "valueFrom": "/app/password"}],
            "links": ["data", "data:store"],
            "volumesFrom": [{"sourceContainer": "data", "readOnly": true}],
            "mountPoints": [{"sourceVolume": "v", "containerPath": "C:/data/", "readOnly": null}],
            "portMappings": [{"containerPort": 80}, {"containerPort": 53, "hostPort": 5353, "protocol": "udp"}],
            "dockerLabels": {"team": "web"},
            "workingDirectory": "/srv", "user": "1000:1000", "hostname": "web",
            "stopTimeout": 20,
            "healthCheck": {"command": ["CMD-SHELL", "curl -f localhost"], "interval": 5, "timeout": 2,
                            "retries": 3, "startPeriod": 10},
            "startTimeout": 30,
            "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 90},
            "dependsOn": [{"containerName": "data", "condition": "START"}],
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            "readonlyRootFilesystem": true,
            "extraHosts": [{"hostname": "db.local", "ipAddress": "10.0.0.2"}],
            "dnsServers": ["10.0.0.53"], "dnsSearchDomains": ["example.com"],
            "linuxParameters": {
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "initProcessEnabled": true,
                "tmpfs": [{"containerPath": "/tmp", "size": 64, "mountOptions": ["noexec"]}],
                "devices": [{"hostPath": "/dev/fuse", "permissions": ["read", "write"]}],
                "sharedMemorySize": 128
            },
            "privileged": false, "disableNetworking": false, "interactive": true, "pseudoTerminal": true,
            "dockerSecurityOptions": ["no-new-privileges"],
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "10m"}}
        }));
        let want = ContainerSpec {
            name: "app".into(),
            image: "nginx:1.25".into(),
            command: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            entry_point: vec!["/docker-entrypoint.sh".into()],
            cpu: 512,
            memory: Some(256),
            memory_reservation: Some(128),
            essential: true,
            environment: [("A", "1"), ("EMPTY", ""), ("NONE", "")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            environment_files: vec!["arn:aws:s3:::b/app.env".into()],
            secrets: vec![Secret { name: "PASSWORD".into(), value_from: "/app/password".into() }],
            links: vec![
                Link { name: "data".into(), alias: None },
                Link { name: "data".into(), alias: Some("store".into()) },
            ],
            volumes_from: vec![VolumeFrom { source_container: "data".into(), read_only: true }],
            mount_points: vec![MountPoint {
                source_volume: "v".into(),
                container_path: "C:/data/".into(),
                read_only: false,
            }],
            port_mappings: vec![
                PortMapping { container_port: 80, host_port: 0, protocol: Protocol::Tcp },
                PortMapping { container_port: 53, host_port: 5353, protocol: Protocol::Udp },
            ],
            docker_labels: [("team".to_string(), "web".to_string())].into_iter().collect(),
            working_directory: Some("/srv".into()),
            user: Some("1000:1000".into()),
            stop_timeout: Some(20),
            health_check: Some(Box::new(HealthCheck {
                command: vec!["CMD-SHELL".into(), "curl -f localhost".into()],
                interval: Some(5),
                timeout: Some(2),
                retries: Some(3),
                start_period: Some(10),
            })),
            restart_policy: Some(Box::new(RestartPolicy {
                ignored_exit_codes: vec![0],
                restart_attempt_period_secs: 90,
            })),
            start_timeout: Some(30),
            depends_on: vec![Dependency { container_name: "data".into(), condition: DependencyCondition::Start }],
            ulimits: vec![Ulimit { name: "nofile".into(), soft_limit: 1024, hard_limit: 4096 }],
            readonly_root_filesystem: true,
            extra_hosts: vec![ExtraHost { hostname: "db.local".into(), ip_address: "10.0.0.2".into() }],
            hostname: Some("web".into()),
            dns_servers: vec!["10.0.0.53".into()],
            dns_search_domains: vec!["example.com".into()],
            linux_parameters: LinuxParameters {
                capabilities_add: vec!["NET_ADMIN".into()],
                capabilities_drop: vec!["ALL".into()],
                init_process_enabled: true,
                tmpfs: vec![Tmpfs { container_path: "/tmp".into(), size: 64, mount_options: vec!["noexec".into()] }],
                devices: vec![Device {
                    host_path: "/dev/fuse".into(),
                    container_path: None,
                    permissions: vec!["read".into(), "write".into()],
                }],
                shared_memory_size: Some(128),
            },
            privileged: false,
            disable_networking: false,
            interactive: true,
            pseudo_terminal: true,
            docker_security_options: vec!["no-new-privileges".into()],
            system_controls: [("net.core.somaxconn".to_string(), "1024".to_string())].into_iter().collect(),
            log_configuration: Some(Box::new(LogConfiguration {
                log_driver: "json-file".into(),
                options: [("max-size".to_string(), "10m".to_string())].into_iter().collect(),
            })),
            internal: false,
        };
        assert_eq!(spec, want);
    }

    fn one() -> Value {
        json!({"name": "a", "image": "busybox"})
    }

    fn with(extra: Value) -> Value {
        let mut c = one();
        if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
            c.extend(extra);
        }
        c
    }

    #[test]
    fn fields_not_acted_on_warn_once_each_unless_empty() {
        let t = task(
            json!([with(json!({
                "repositoryCredentials": {"credentialsParameter": "arn:x"},
                "resourceRequirements": [{"type": "GPU", "value": "1"}],
                "startTimeout": 30, "pseudoTerminal": true, "interactive": false,
                "disableNetworking": null, "credentialSpecs": [], "firelensConfiguration": {"type": "fluentbit"},
                "portMappings": [{"containerPort": 80, "name": "web", "appProtocol": "http"}],
                "linuxParameters": {"maxSwap": 0, "swappiness": null}
            }))]),
            json!({
                "executionRoleArn": "arn:role", "taskRoleArn": "", "requiresCompatibilities": ["FARGATE"],
                "placementConstraints": [], "pidMode": "host", "ipcMode": null, "tags": [],
                "status": "ACTIVE", "compatibilities": ["EC2"], "registeredAt": "2025-03-17T19:00:35Z",
                "enableFaultInjection": false
            }),
        );
        assert_eq!(
            warnings(&t),
            [
                "executionRoleArn: accepted but not acted on by berth",
                "requiresCompatibilities: accepted but not acted on by berth",
                "pidMode: accepted but not acted on by berth",
                "enableFaultInjection: accepted but not acted on by berth",
                "status: read-only field of describe-task-definition output, ignored",
                "compatibilities: read-only field of describe-task-definition output, ignored",
                "registeredAt: read-only field of describe-task-definition output, ignored",
                "containerDefinitions[0].portMappings[0].name: accepted but not acted on by berth",
                "containerDefinitions[0].portMappings[0].appProtocol: accepted but not acted on by berth",
                "containerDefinitions[0].linuxParameters.maxSwap: accepted but not acted on by berth",
                "containerDefinitions[0].repositoryCredentials: accepted but not acted on by berth",
                "containerDefinitions[0].resourceRequirements: accepted but not acted on by berth",
                "containerDefinitions[0].firelensConfiguration: accepted but not acted on by berth",
            ]
        );
    }

    #[test]
    fn disable_networking_interactive_and_pseudo_terminal_are_read_and_refused_with_published_ports() {
        let acted = with(json!({"disableNetworking": true, "interactive": true, "pseudoTerminal": true}));
        let plain = json!({"name": "b", "image": "busybox", "disableNetworking": null, "interactive": false});
        let t = task(json!([acted, plain]), json!({}));
        assert!(warnings(&t).is_empty(), "{:?}", warnings(&t));
        let accepted = accept(&t).task;
        let (a, b) = (&accepted.containers[0].spec, &accepted.containers[1].spec);
        assert!(a.disable_networking && a.interactive && a.pseudo_terminal);
        assert!(!b.disable_networking && !b.interactive && !b.pseudo_terminal);
        let published = with(json!({"disableNetworking": true, "portMappings": [{"containerPort": 80}]}));
        assert_eq!(
            reject(&task(json!([published]), json!({}))),
            ["containerDefinitions[0].disableNetworking: networking is disabled, but portMappings publish ports"]
        );
    }

    #[test]
    fn unknown_keys_warn_at_every_level() {
        let t = task(
            json!([with(json!({
                "portBindings": [{"containerPort": 80}],
                "healthCheck": {"command": ["CMD", "true"], "intervall": 5},
                "unused": null, "empty": []
            }))]),
            json!({"volumes": [{"name": "v", "host": {"sourcePath": "/x", "mode": "rw"}}], "extra": {"a": 1}}),
        );
        assert_eq!(
            warnings(&t),
            [
                "containerDefinitions[0].healthCheck.intervall: unknown key, ignored",
                "containerDefinitions[0].portBindings: unknown key, ignored",
                "volumes[0].host.mode: unknown key, ignored",
                "extra: unknown key, ignored",
            ]
        );
    }

    #[test]
    fn task_level_sizes_are_accepted_without_a_warning() {
        // They are the task's reservation on the host (`crate::admission`).
        let t = task(json!([one()]), json!({"cpu": "0.5 vCPU", "memory": 1024}));
        assert!(warnings(&t).is_empty(), "{:?}", warnings(&t));
        assert!(warnings(&task(json!([one()]), json!({"cpu": "", "memory": null}))).is_empty());
        assert_eq!(
            reject(&task(json!([one()]), json!({"cpu": true}))),
            ["cpu: expected a string or a number, found the boolean true"]
        );
    }

    #[test]
    fn task_level_sizes_are_read_as_ecs_writes_them() {
        let sizes = |extra: Value| {
            let t = accept(&task(json!([one()]), extra)).task;
            (t.cpu, t.memory)
        };
        assert_eq!(sizes(json!({"cpu": "0.5 vCPU", "memory": 1024})), (Some(512), Some(1024)));
        assert_eq!(sizes(json!({"cpu": "256", "memory": "512"})), (Some(256), Some(512)));
        assert_eq!(sizes(json!({"cpu": "1 vCPU", "memory": "1 GB"})), (Some(1024), Some(1024)));
        assert_eq!(sizes(json!({"cpu": ".25 vcpu", "memory": "0.5GB"})), (Some(256), Some(512)));
        assert_eq!(sizes(json!({"cpu": 2048, "memory": "2gb"})), (Some(2048), Some(2048)));
        assert_eq!(sizes(json!({})), (None, None));
        assert_eq!(sizes(json!({"cpu": "", "memory": null})), (None, None));

        // Every whole number of units or MiB, written exactly in vCPUs or GB, reads back.
        for k in 1..=8192_u64 {
            let exact = format!("{}.{:010}", k / 1024, (k % 1024) * 9_765_625);
            assert_eq!(task_size("cpu", &format!("{exact} vCPU")), Ok(k), "{exact}");
            assert_eq!(task_size("memory", &format!("{exact}GB")), Ok(k), "{exact}");
            assert_eq!(task_size("cpu", &k.to_string()), Ok(k));
        }
        assert_eq!(task_size("cpu", "0.0001 vCPU"), Err(r#""0.0001 vCPU" is not a whole number of CPU units"#.into()));
        assert_eq!(task_size("memory", "1.5"), Err(r#""1.5" is not a whole number of MiB"#.into()));
        assert_eq!(task_size("cpu", "0"), Err(r#"expected more than zero, found "0""#.into()));
        assert_eq!(task_size("cpu", "300 vCPU"), Err(r#""300 vCPU" is more than the limit of 262144"#.into()));
        for bad in ["abc", "1e3", "-1", "1 GB", ".", "1..2", "1 vCPUs", "{{cpu}}"] {
            assert_eq!(
                task_size("cpu", bad),
                Err(format!(r#"expected CPU units such as "256" or vCPUs such as "0.25 vCPU", found "{bad}""#)),
                "{bad}"
            );
        }
        assert_eq!(
            reject(&task(json!([one()]), json!({"memory": "1 TB"}))),
            [r#"memory: expected MiB such as "512" or GB such as "1 GB", found "1 TB""#]
        );
    }

    #[test]
    fn log_drivers_berth_does_not_honour_fall_back_with_a_warning() {
        for driver in HONOURED_LOG_DRIVERS {
            let t = accept(&task(json!([with(json!({"logConfiguration": {"logDriver": driver}}))]), json!({}))).task;
            let log = t.containers[0].spec.log_configuration.as_ref().map(|l| l.log_driver.as_str());
            assert_eq!(log, Some(driver));
        }
        let t = task(
            json!([with(json!({"logConfiguration": {
                "logDriver": "awslogs", "options": {"awslogs-group": "g"},
                "secretOptions": [{"name": "k", "valueFrom": "v"}]
            }}))]),
            json!({}),
        );
        let accepted = accept(&t);
        assert_eq!(accepted.task.containers[0].spec.log_configuration, None);
        let msgs: Vec<String> = accepted.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "containerDefinitions[0].logConfiguration.secretOptions: log driver secrets are not acted on by berth",
                r#"containerDefinitions[0].logConfiguration.logDriver: log driver "awslogs" is not supported by berth; Docker's default log driver is used"#,
            ]
        );
        assert_eq!(
            reject(&task(json!([with(json!({"logConfiguration": {"options": {}}}))]), json!({}))),
            ["containerDefinitions[0].logConfiguration.logDriver: required field is missing"]
        );
    }

    #[test]
    fn volume_kinds() {
        let t = accept(&task(
            json!([one()]),
            json!({"volumes": [
                {"name": "bind", "host": {"sourcePath": "\\\\.\\pipe\\docker_engine"}},
                {"name": "empty", "host": {}},
                {"name": "bare"},
                {"name": "dv", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true,
                    "driver": "local", "driverOpts": {"type": "tmpfs"}, "labels": {"a": "b"}}},
                {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}},
                {"name": "fsx", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-2"}},
                {"name": "ebs", "configuredAtLaunch": true},
            ]}),
        ));
        let kinds: Vec<&VolumeKind> = accept_kinds(&t.task.volumes);
        assert_eq!(kinds[0], &VolumeKind::Host { source_path: "\\\\.\\pipe\\docker_engine".into() });
        assert_eq!(kinds[1], &VolumeKind::Empty);
        assert_eq!(kinds[2], &VolumeKind::Empty);
        assert_eq!(
            kinds[3],
            &VolumeKind::Docker(DockerVolumeConfiguration {
                scope: VolumeScope::Shared,
                autoprovision: true,
                driver: Some("local".into()),
                driver_opts: [("type".to_string(), "tmpfs".to_string())].into_iter().collect(),
                labels: [("a".to_string(), "b".to_string())].into_iter().collect(),
            })
        );
        assert_eq!(kinds[4], &VolumeKind::Unsupported { kind: "efsVolumeConfiguration".into() });
        assert_eq!(kinds[5], &VolumeKind::Unsupported { kind: "fsxWindowsFileServerVolumeConfiguration".into() });
        assert_eq!(kinds[6], &VolumeKind::Unsupported { kind: "configuredAtLaunch".into() });
        let msgs: Vec<String> = t.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "volumes[4].efsVolumeConfiguration: volume kind not supported by berth; the task will be refused when it runs",
                "volumes[5].fsxWindowsFileServerVolumeConfiguration: volume kind not supported by berth; the task will be refused when it runs",
                "volumes[6].configuredAtLaunch: volumes configured at launch are not supported by berth; the task will be refused when it runs",
            ]
        );
    }

    fn accept_kinds(volumes: &[Volume]) -> Vec<&VolumeKind> {
        volumes.iter().map(|v| &v.kind).collect()
    }

    #[test]
    fn volume_errors() {
        let t = task(
            json!([one()]),
            json!({"volumes": [
                {"name": "two", "host": {"sourcePath": "/x"}, "dockerVolumeConfiguration": {"scope": "task"}},
                {"name": "auto", "dockerVolumeConfiguration": {"autoprovision": true}},
                {"name": "scope", "dockerVolumeConfiguration": {"scope": "global"}},
                {"host": {}},
                {"name": "bad name"},
            ]}),
        );
        assert_eq!(
            reject(&t),
            [
                "volumes[0]: more than one volume kind given: host, dockerVolumeConfiguration",
                r#"volumes[1].dockerVolumeConfiguration.autoprovision: only allowed with scope "shared""#,
                r#"volumes[2].dockerVolumeConfiguration.scope: expected "task" or "shared", found "global""#,
                "volumes[3].name: required field is missing",
                r#"volumes[4].name: "bad name" is not a valid volume name: use 1 to 255 letters, digits, hyphens and underscores"#,
            ]
        );
    }

    #[test]
    fn restart_policy_and_start_timeout_are_read_without_warnings() {
        let a = accept(&task(
            json!([
                with(json!({"startTimeout": 2,
                    "restartPolicy": {"enabled": true, "ignoredExitCodes": [0, 137], "restartAttemptPeriod": 60}})),
                {"name": "b", "image": "busybox", "startTimeout": 120, "restartPolicy": {"enabled": true}},
                {"name": "c", "image": "busybox",
                 "restartPolicy": {"enabled": false, "ignoredExitCodes": [1], "restartAttemptPeriod": 1800}},
                {"name": "d", "image": "busybox", "startTimeout": null, "restartPolicy": null},
            ]),
            json!({}),
        ));
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        let specs: Vec<&ContainerSpec> = a.task.containers.iter().map(|c| &*c.spec).collect();
        assert_eq!(specs[0].start_timeout, Some(2));
        assert_eq!(
            specs[0].restart_policy.as_deref(),
            Some(&RestartPolicy { ignored_exit_codes: vec![0, 137], restart_attempt_period_secs: 60 })
        );
        assert_eq!(specs[1].start_timeout, Some(120));
        assert_eq!(specs[1].restart_policy.as_deref(), Some(&RestartPolicy::default()), "period 300 by default");
        assert_eq!(specs[1].restart_policy.as_ref().map(|p| p.restart_attempt_period_secs), Some(300));
        assert_eq!(specs[2].restart_policy, None, "disabled is no policy");
        assert_eq!((specs[3].start_timeout, &specs[3].restart_policy), (None, &None));
    }

    #[test]
    fn restart_policy_and_start_timeout_out_of_range_are_refused_at_their_paths() {
        let codes: Vec<i64> = (0..51).collect();
        let t = task(
            json!([
                with(json!({"startTimeout": 1,
                    "restartPolicy": {"ignoredExitCodes": codes, "restartAttemptPeriod": 59}})),
                {"name": "b", "image": "busybox", "startTimeout": 121,
                 "restartPolicy": {"enabled": "yes", "ignoredExitCodes": [1, "2", 4294967296_i64],
                                   "restartAttemptPeriod": 1801, "period": 5}},
                {"name": "c", "image": "busybox", "restartPolicy": []},
            ]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [
                "containerDefinitions[0].startTimeout: expected an integer from 2 to 120, found 1",
                "containerDefinitions[0].restartPolicy.enabled: required field is missing",
                "containerDefinitions[0].restartPolicy.ignoredExitCodes: 51 entries, more than the limit of 50",
                "containerDefinitions[0].restartPolicy.restartAttemptPeriod: expected an integer from 60 to 1800, found 59",
                "containerDefinitions[1].startTimeout: expected an integer from 2 to 120, found 121",
                r#"containerDefinitions[1].restartPolicy.enabled: expected a boolean, found the string "yes""#,
                r#"containerDefinitions[1].restartPolicy.ignoredExitCodes[1]: expected an integer, found the string "2""#,
                "containerDefinitions[1].restartPolicy.ignoredExitCodes[2]: expected an integer from -2147483648 to 2147483647, found 4294967296",
                "containerDefinitions[1].restartPolicy.restartAttemptPeriod: expected an integer from 60 to 1800, found 1801",
                "containerDefinitions[2].restartPolicy: expected an object, found an array",
            ]
        );
        let unknown = task(json!([with(json!({"restartPolicy": {"enabled": true, "period": 5}}))]), json!({}));
        assert_eq!(warnings(&unknown), ["containerDefinitions[0].restartPolicy.period: unknown key, ignored"]);
    }

    #[test]
    fn container_numbers_are_integers_in_range() {
        let t = task(
            json!([with(json!({
                "cpu": 262145, "memory": -1, "memoryReservation": 1.5, "stopTimeout": "10",
                "portMappings": [{"containerPort": 0}, {"containerPort": 65536, "hostPort": -1}, {"hostPort": 80}],
                "healthCheck": {"command": ["CMD", "true"], "interval": "5", "retries": -1},
                "ulimits": [{"name": "nofile", "softLimit": "1", "hardLimit": 2}],
                "linuxParameters": {"sharedMemorySize": "64", "tmpfs": [{"containerPath": "/t", "size": 0}]}
            }))]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [
                "containerDefinitions[0].cpu: expected an integer from 0 to 262144, found 262145",
                "containerDefinitions[0].memory: expected an integer from 0 to 8796093022207, found -1",
                "containerDefinitions[0].memoryReservation: expected an integer, found the number 1.5",
                "containerDefinitions[0].portMappings[0].containerPort: expected an integer from 1 to 65535, found 0",
                "containerDefinitions[0].portMappings[1].containerPort: expected an integer from 1 to 65535, found 65536",
                "containerDefinitions[0].portMappings[1].hostPort: expected an integer from 0 to 65535, found -1",
                "containerDefinitions[0].portMappings[2].containerPort: required field is missing",
                r#"containerDefinitions[0].stopTimeout: expected an integer, found the string "10""#,
                r#"containerDefinitions[0].healthCheck.interval: expected an integer, found the string "5""#,
                "containerDefinitions[0].healthCheck.retries: expected an integer from 0 to 4294967295, found -1",
                r#"containerDefinitions[0].ulimits[0].softLimit: expected an integer, found the string "1""#,
                r#"containerDefinitions[0].linuxParameters.sharedMemorySize: expected an integer, found the string "64""#,
                "containerDefinitions[0].linuxParameters.tmpfs[0].size: expected an integer from 1 to 8796093022207, found 0",
            ]
        );
    }

    #[test]
    fn environment_entries() {
        let t = task(
            json!([with(json!({"environment": [
                {"name": "A", "value": "1"}, {"name": "A", "value": "2"}, {"name": "B=C", "value": "x"},
                {"value": "orphan"}, {"name": "N", "value": 5}
            ]}))]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [
                r#"containerDefinitions[0].environment[2].name: "B=C" is not a valid environment variable name"#,
                "containerDefinitions[0].environment[3].name: required field is missing",
                "containerDefinitions[0].environment[4].value: expected a string, found the number 5",
            ]
        );
        let dup = task(
            json!([with(json!({"environment": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}))]),
            json!({}),
        );
        let a = accept(&dup);
        assert_eq!(a.task.containers[0].spec.environment.get("A").map(String::as_str), Some("2"));
        let msgs: Vec<String> = a.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(msgs, ["containerDefinitions[0].environment[1].name: set more than once; the last value wins"]);
    }

    #[test]
    fn links_health_checks_and_ulimits_are_checked() {
        let t = task(
            json!([
                with(json!({
                    "links": ["", "b:", "b:c:d", 3],
                    "healthCheck": {"command": ["curl", "localhost"]},
                    "ulimits": [{"name": "files", "softLimit": 1, "hardLimit": 2},
                                {"name": "nofile", "softLimit": 10, "hardLimit": 2},
                                {"name": "memlock", "softLimit": -1, "hardLimit": 1024},
                                {"name": "core"}]
                })),
                {"name": "b", "image": "busybox", "healthCheck": {"interval": 5},
                 "linuxParameters": {"devices": [{"hostPath": "/dev/x", "permissions": ["rw"]}]}},
            ]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [
                r#"containerDefinitions[0].links[0]: "" is not a link: expected name or name:alias"#,
                r#"containerDefinitions[0].links[1]: "b:" is not a link: expected name or name:alias"#,
                r#"containerDefinitions[0].links[2]: "b:c:d" is not a link: expected name or name:alias"#,
                "containerDefinitions[0].links[3]: expected a string, found the number 3",
                r#"containerDefinitions[0].healthCheck.command[0]: expected "CMD", "CMD-SHELL" or "NONE", found "curl""#,
                r#"containerDefinitions[0].ulimits[0].name: unknown ulimit "files""#,
                "containerDefinitions[0].ulimits[1]: softLimit 10 is above hardLimit 2",
                "containerDefinitions[0].ulimits[2]: softLimit -1 is above hardLimit 1024",
                "containerDefinitions[0].ulimits[3].softLimit: required field is missing",
                "containerDefinitions[0].ulimits[3].hardLimit: required field is missing",
                "containerDefinitions[1].healthCheck.command: required field is missing",
                r#"containerDefinitions[1].linuxParameters.devices[0].permissions[0]: expected "read", "write" or "mknod", found "rw""#,
            ]
        );
    }

    #[test]
    fn required_container_fields() {
        let t = task(json!([{"cpu": 1}, "busybox", null, {"name": "a", "image": ""}]), json!({}));
        assert_eq!(
            reject(&t),
            [
                "containerDefinitions[0].name: required field is missing",
                "containerDefinitions[0].image: required field is missing",
                r#"containerDefinitions[1]: expected an object, found the string "busybox""#,
                "containerDefinitions[2]: expected an object, found null",
                "containerDefinitions[3].image: required field is missing",
            ]
        );
        assert_eq!(
            reject(&json!({"family": "f", "containerDefinitions": {}})),
            ["containerDefinitions: expected an array, found an object"]
        );
        assert_eq!(
            reject(&json!({"family": "f", "containerDefinitions": null})),
            ["containerDefinitions: required field is missing"]
        );
    }
}
