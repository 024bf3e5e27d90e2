//! A task's container: what the user asked for ([`ContainerSpec`], fixed once the task is
//! accepted) and what berth knows about it (the engine fields of [`Container`]).

use crate::status::{ContainerStatus, HealthStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The name berth gives the awsvpc pause container. `~` is not allowed in user container
/// names, so it can never clash with one.
pub const PAUSE_CONTAINER_NAME: &str = "~pause";

/// The image of the awsvpc pause container: made by berth itself on the host (imported,
/// never pulled), like the seed's emptyvolume image.
pub const PAUSE_IMAGE: &str = "berth/pause:1";

/// A container as the task definition describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique within its task.
    pub name: String,
    /// Image reference, as Docker's reference grammar accepts it.
    pub image: String,
    /// Replaces the image's `CMD`; empty keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Replaces the image's `ENTRYPOINT`; empty keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_point: Vec<String>,
    /// CPU shares; 0 means absent (sent to Docker as the kernel's minimum, 2).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub cpu: u64,
    /// Hard memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Soft memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u64>,
    /// When an essential container stops, the whole task stops. Default true, as in ECS.
    pub essential: bool,
    /// Environment variables, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Files of `KEY=value` lines, resolved from the local secret source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_files: Vec<String>,
    /// Environment variables whose values come from the local secret source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Legacy Docker links to other containers of the task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Containers whose volumes this one mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<VolumeFrom>,
    /// Task volumes mounted into this container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    /// Ports published on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// Labels the user puts on the Docker container (never under `berth.`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_labels: BTreeMap<String, String>,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// User (name, uid, or uid:gid) to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Seconds between SIGTERM and SIGKILL when berth stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// Docker health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Box<HealthCheck>>,
    /// `restartPolicy`, when enabled: berth starts the container again after it exits
    /// (see [`RestartPolicy`]). Absent when the definition has none or disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<Box<RestartPolicy>>,
    /// `startTimeout`: seconds from this container's start within which a COMPLETE, SUCCESS
    /// or HEALTHY dependency on it must be met, else the dependent never starts and the
    /// task stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<u64>,
    /// Containers that must reach a condition before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Dependency>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// Mount the root filesystem read-only.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub readonly_root_filesystem: bool,
    /// Extra `/etc/hosts` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<ExtraHost>,
    /// Container host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search_domains: Vec<String>,
    /// Linux-specific settings.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub linux_parameters: LinuxParameters,
    /// Run with every capability and every device.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub privileged: bool,
    /// No networking inside the container (`disableNetworking`, Docker's `NetworkDisabled`).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub disable_networking: bool,
    /// Keep its stdin open even when nothing is attached (`interactive`, Docker's
    /// `OpenStdin`); berth attaches nothing to it (`docs/terminal.md`).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub interactive: bool,
    /// Give it a pseudo-terminal (`pseudoTerminal`, Docker's `Tty`).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub pseudo_terminal: bool,
    /// Docker `--security-opt` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docker_security_options: Vec<String>,
    /// Namespaced kernel parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub system_controls: BTreeMap<String, String>,
    /// Docker log driver, when it is one berth honours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<Box<LogConfiguration>>,
    /// A container berth adds itself (the awsvpc pause container): planned like the others,
    /// hidden from state changes.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub internal: bool,
}

impl ContainerSpec {
    /// The awsvpc pause container: internal, essential, made from berth's own image, and
    /// publishing the task's port mappings for the namespace it holds.
    pub fn pause(port_mappings: Vec<PortMapping>) -> ContainerSpec {
        ContainerSpec {
            name: PAUSE_CONTAINER_NAME.to_string(),
            image: PAUSE_IMAGE.to_string(),
            essential: true,
            internal: true,
            port_mappings,
            ..ContainerSpec::default()
        }
    }
}

/// A secret or environment file reference, resolved from the local source at create.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Secret {
    /// Environment variable to set.
    pub name: String,
    /// Key in the local secret source.
    pub value_from: String,
}

/// A link to another container of the task, `name[:alias]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Link {
    /// The linked container's name in the task.
    pub name: String,
    /// The host name the linking container sees it by (the name when absent).
    pub alias: Option<String>,
}

/// Mount the volumes of another container of the task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct VolumeFrom {
    /// The container whose volumes are mounted.
    pub source_container: String,
    /// Mount them read-only.
    pub read_only: bool,
}

/// Mount a task volume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct MountPoint {
    /// Name of a volume of the task.
    pub source_volume: String,
    /// Where it appears in the container (not judged by the host's path rules).
    pub container_path: String,
    /// Mount it read-only.
    pub read_only: bool,
}

/// Transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The lower-case name Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Publish a container port on the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port inside the container.
    pub container_port: u16,
    /// Port on the host; 0 lets Docker pick one.
    pub host_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

/// A port Docker actually bound, reported on RUNNING. JSON names are PascalCase like the
/// rest of a state change (`ContainerPort`, `HostPort`, `BindIp`, `Protocol`); the
/// snake_case names of earlier stores are still read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// Port inside the container.
    #[serde(alias = "container_port")]
    pub container_port: u16,
    /// Port on the host.
    #[serde(alias = "host_port")]
    pub host_port: u16,
    /// Host address it is bound to.
    #[serde(alias = "bind_ip")]
    pub bind_ip: String,
    /// tcp or udp.
    #[serde(alias = "protocol")]
    pub protocol: Protocol,
}

/// Docker health check settings (seconds, as ECS gives them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub command: Vec<String>,
    /// Seconds between checks.
    pub interval: Option<u64>,
    /// Seconds a check may take.
    pub timeout: Option<u64>,
    /// Failures in a row before unhealthy.
    pub retries: Option<u64>,
    /// Seconds of grace after start.
    pub start_period: Option<u64>,
}

/// The default of `restartAttemptPeriod`, in seconds (ECS's).
pub const DEFAULT_RESTART_ATTEMPT_PERIOD_SECS: u64 = 300;

/// `restartPolicy` (enabled): a container that exits with a code not ignored, after running
/// at least `restart_attempt_period_secs` since its start or last restart, while it should
/// run, is started again in place (docs/restart-policy.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Exit codes after which it is not restarted (at most 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_exit_codes: Vec<i64>,
    /// Seconds it must have run since its start or last restart (60 to 1,800).
    pub restart_attempt_period_secs: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            ignored_exit_codes: Vec::new(),
            restart_attempt_period_secs: DEFAULT_RESTART_ATTEMPT_PERIOD_SECS,
        }
    }
}

/// When a dependency counts as met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DependencyCondition {
    /// The dependency has started (RUNNING, or later having run).
    Start,
    /// The dependency has exited, with any code.
    Complete,
    /// The dependency has exited with code 0.
    Success,
    /// The dependency's health check reports healthy.
    Healthy,
}

impl DependencyCondition {
    /// The upper-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyCondition::Start => "START",
            DependencyCondition::Complete => "COMPLETE",
            DependencyCondition::Success => "SUCCESS",
            DependencyCondition::Healthy => "HEALTHY",
        }
    }
}

impl fmt::Display for DependencyCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `dependsOn`: start only once another container meets a condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    /// The container depended on.
    pub container_name: String,
    /// What it must reach.
    pub condition: DependencyCondition,
}

/// Ulimit names Docker and ECS know.
pub const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// A resource limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Ulimit {
    /// Limit name (`nofile`, ...).
    pub name: String,
    /// Soft limit.
    pub soft_limit: i64,
    /// Hard limit.
    pub hard_limit: i64,
}

/// An extra `/etc/hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ExtraHost {
    /// Host name.
    pub hostname: String,
    /// Its address.
    pub ip_address: String,
}

/// `linuxParameters`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LinuxParameters {
    /// Capabilities to add.
    pub capabilities_add: Vec<String>,
    /// Capabilities to drop.
    pub capabilities_drop: Vec<String>,
    /// Run an init process as PID 1.
    pub init_process_enabled: bool,
    /// tmpfs mounts.
    pub tmpfs: Vec<Tmpfs>,
    /// Host devices.
    pub devices: Vec<Device>,
    /// `/dev/shm` size in MiB.
    pub shared_memory_size: Option<u64>,
}

/// A tmpfs mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Tmpfs {
    /// Where it is mounted.
    pub container_path: String,
    /// Size in MiB.
    pub size: u64,
    /// Mount options.
    pub mount_options: Vec<String>,
}

/// A host device exposed to the container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Device {
    /// Path on the host.
    pub host_path: String,
    /// Path in the container (the host path when absent).
    pub container_path: Option<String>,
    /// `read`, `write`, `mknod`.
    pub permissions: Vec<String>,
}

/// Log drivers berth passes to Docker; every other driver falls back to Docker's default.
pub const HONOURED_LOG_DRIVERS: [&str; 5] = ["json-file", "local", "journald", "syslog", "none"];

/// A log driver berth honours, with its options.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LogConfiguration {
    /// One of [`HONOURED_LOG_DRIVERS`].
    pub log_driver: String,
    /// Driver options.
    pub options: BTreeMap<String, String>,
}

/// Why an operation on a container failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyError {
    /// What failed, on what (never a credential).
    pub message: String,
    /// True when retrying cannot help (no such image, unauthorized, invalid settings).
    pub permanent: bool,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A container of a task: its spec plus what the engine knows and has done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// What the task definition asked for; fixed once the task is accepted, so shared by
    /// every copy of the task (serialized exactly as the spec itself).
    #[serde(with = "shared_spec")]
    pub spec: Arc<ContainerSpec>,
    /// The status berth drives the container to.
    pub desired_status: ContainerStatus,
    /// The status berth last observed; only rises.
    pub known_status: ContainerStatus,
    /// The highest status berth has issued an operation for.
    pub applied_status: ContainerStatus,
    /// The last failure of an operation, carried as the reason of its STOPPED change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applying_error: Option<ApplyError>,
    /// An explicit reason for the last status change ("removed outside berth", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Exit code, once the container has exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_exit_code: Option<i64>,
    /// Ports Docker bound, read on RUNNING.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_port_bindings: Vec<PortBinding>,
    /// Last reported health.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub health: HealthStatus,
    /// Docker's id, durable right after create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    /// Docker's name, durable before create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_name: Option<String>,
    /// The highest status already appended to the change log.
    pub sent_status: ContainerStatus,
    /// True once the container has ever run: berth never starts it again.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub has_run: bool,
    /// An operation is in flight; the planner issues nothing more for this container.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub in_flight: bool,
    /// The outcome of an operation is unknown (timeout, restart): inspect before acting.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub needs_inspect: bool,
    /// Failed attempts at the current step.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub failures: u32,
    /// Do not retry before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    /// The Docker container has been removed (cleanup).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub removed: bool,
    /// The random id of its task metadata endpoint paths (`/v4/<id>`): the only key to
    /// them. Chosen by the engine when the task enters its state, never by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_id: Option<String>,
    /// When berth last saw it start or decided to restart it, on the engine's clock: where
    /// its restart period and a `startTimeout` on it count from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Restarts berth has made under its restart policy (counted when decided, before the
    /// start is sent).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub restart_count: u32,
    /// An exit its restart policy restarts, not yet done: the container stays RUNNING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart: Option<PendingRestart>,
    /// An exit event came while an operation was in flight, whose answer may predate it:
    /// inspect again once that operation is done. Memory only (a restart inspects anyway).
    #[serde(skip)]
    pub inspect_after_flight: bool,
}

/// An exit that the restart policy answers with a restart (docs/restart-policy.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingRestart {
    /// The exit code it exited with: its exit code if the restart fails.
    pub exit_code: i64,
    /// The restart has been issued (and counted): its start may have reached Docker, so
    /// another exit seen before the restart is confirmed is never restarted again.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub issued: bool,
}

impl Container {
    /// A container that nothing has happened to yet.
    pub fn new(spec: ContainerSpec) -> Container {
        Container {
            spec: Arc::new(spec),
            desired_status: ContainerStatus::Running,
            known_status: ContainerStatus::None,
            applied_status: ContainerStatus::None,
            applying_error: None,
            reason: None,
            known_exit_code: None,
            known_port_bindings: Vec::new(),
            health: HealthStatus::Unknown,
            docker_id: None,
            docker_name: None,
            sent_status: ContainerStatus::None,
            has_run: false,
            in_flight: false,
            needs_inspect: false,
            failures: 0,
            retry_at: None,
            removed: false,
            metadata_id: None,
            started_at: None,
            restart_count: 0,
            pending_restart: None,
            inspect_after_flight: false,
        }
    }

    /// Whether `other` holds the same record of this container: every field a crash must
    /// remember is equal (the fields of [`crate::Task::record_fingerprint`]'s containers;
    /// `in_flight`, `needs_inspect` and `inspect_after_flight`, which only memory needs, are
    /// not compared). The spec is compared by name: nothing changes a held container's spec.
    /// The destructuring is exhaustive: a new field must be placed on one side or the other.
    pub fn same_record(&self, other: &Container) -> bool {
        let Container {
            spec,
            desired_status,
            known_status,
            applied_status,
            applying_error,
            reason,
            known_exit_code,
            known_port_bindings,
            health,
            docker_id,
            docker_name,
            sent_status,
            has_run,
            in_flight: _,
            needs_inspect: _,
            failures,
            retry_at,
            removed,
            metadata_id,
            started_at,
            restart_count,
            pending_restart,
            inspect_after_flight: _,
        } = self;
        (*known_status, *applied_status, *desired_status, *sent_status)
            == (other.known_status, other.applied_status, other.desired_status, other.sent_status)
            && (*has_run, *removed, *failures, *restart_count, *health)
                == (other.has_run, other.removed, other.failures, other.restart_count, other.health)
            && (*retry_at, *started_at, *known_exit_code, *pending_restart)
                == (other.retry_at, other.started_at, other.known_exit_code, other.pending_restart)
            && *applying_error == other.applying_error
            && *reason == other.reason
            && *docker_id == other.docker_id
            && *docker_name == other.docker_name
            && *metadata_id == other.metadata_id
            && *known_port_bindings == other.known_port_bindings
            && spec.name == other.spec.name
    }

    /// The container's name in its task.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Known status has reached the desired one.
    pub fn reached_desired(&self) -> bool {
        self.known_status >= self.desired_status
    }

    /// Seconds berth waits between SIGTERM and SIGKILL when stopping it.
    pub fn stop_timeout(&self, default_secs: u64) -> u64 {
        self.spec.stop_timeout.unwrap_or(default_secs)
    }

    /// Its restart count as ECS shows it (`RestartCount`): only when a restart policy is on.
    pub fn shown_restart_count(&self) -> Option<u32> {
        self.spec.restart_policy.as_ref().map(|_| self.restart_count)
    }

    /// The reason its state changes carry: the applying error, else the explicit reason.
    pub fn change_reason(&self) -> Option<String> {
        self.applying_error.as_ref().map(|e| e.message.clone()).or_else(|| self.reason.clone())
    }
}

/// Serde for the shared spec: the same form as the spec itself.
mod shared_spec {
    use super::ContainerSpec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(spec: &Arc<ContainerSpec>, serializer: S) -> Result<S::Ok, S::Error> {
        ContainerSpec::serialize(spec, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<ContainerSpec>, D::Error> {
        ContainerSpec::deserialize(deserializer).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine keeps one spec per distinct container (30,000 in the engine benchmark's
    /// `--distinct` run): the rarely set health check and log configuration are boxed.
    /// 728 bytes on 64-bit targets (848 with the two inline). Its lists are plain `Vec`s:
    /// thin vectors (440 bytes) made no difference the engine benchmark needed (issue 15).
    #[test]
    fn a_spec_stays_small() {
        let size = std::mem::size_of::<ContainerSpec>();
        assert!(size <= 760, "ContainerSpec is {size} bytes");
    }
}
