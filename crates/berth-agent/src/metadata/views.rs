//! The answers' shapes, as the ECS agent's task metadata endpoint gives them (its v2
//! container and task responses, extended by v3 with networks and by v4 with the log
//! driver, the container ARN and the task's always-present `FaultInjectionEnabled`): the
//! same keys, types and omissions. Built from the engine's task and Docker's inspect.

use berth_docker::ContainerInfo;
use berth_model::container::{Container, PortBinding};
use berth_model::task::{NetworkMode, Task};
use berth_model::volume::VolumeKind;
use berth_model::{HealthStatus, TaskStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The endpoint's version: v3 leaves out what v4 added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `/v3/...`.
    V3,
    /// `/v4/...`.
    V4,
}

impl Version {
    /// The version's name in ECS's error messages (`V4`).
    pub fn name(self) -> &'static str {
        match self {
            Version::V3 => "V3",
            Version::V4 => "V4",
        }
    }
}

/// `LaunchType` of every berth task: ECS's word for tasks on capacity it does not manage.
pub const LAUNCH_TYPE: &str = "EXTERNAL";

/// A container, as `/v4/<id>` and each entry of `/task`'s `Containers` give it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerView {
    /// Docker's id (empty before its create).
    pub docker_id: String,
    /// Its name in the task definition.
    pub name: String,
    /// Docker's name.
    pub docker_name: String,
    /// The image reference of the task definition.
    pub image: String,
    /// The id of the image it runs (`sha256:...`), from inspect.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// The ports Docker bound.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortView>,
    /// Its Docker labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The status berth drives it to.
    pub desired_status: &'static str,
    /// The status berth last saw.
    pub known_status: &'static str,
    /// Its exit code, once it exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Its cpu units and hard memory limit in MiB (always both).
    pub limits: ContainerLimitsView,
    /// When Docker created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When it last started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it last exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// `NORMAL`, or `CNI_PAUSE` for the awsvpc pause container.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// Its networks with its addresses, from inspect.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkView>,
    /// Its health, when it has a health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthView>,
    /// The task volumes it mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeView>,
    /// Its log driver (v4, when the task definition names one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    /// The log driver's options (v4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_options: Option<BTreeMap<String, String>>,
    /// `<task ARN>/<name>` (v4).
    #[serde(rename = "ContainerARN", skip_serializing_if = "Option::is_none")]
    pub container_arn: Option<String>,
    /// Restarts under its restart policy (v4, only when a policy is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
}

/// A bound port.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortView {
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// The port on the host.
    pub host_port: u16,
    /// The host address it is bound to (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// A container's limits: both always present.
#[derive(Debug, Serialize)]
pub struct ContainerLimitsView {
    /// Cpu units (a number, as ECS's float).
    #[serde(rename = "CPU")]
    pub cpu: f64,
    /// Hard memory limit in MiB (0 when the definition sets none).
    #[serde(rename = "Memory")]
    pub memory: u64,
}

/// A task's limits: task-level cpu (in vCPU) and memory, each only when set.
#[derive(Debug, Serialize)]
pub struct TaskLimitsView {
    /// vCPU (cpu units / 1024).
    #[serde(rename = "CPU", skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// MiB.
    #[serde(rename = "Memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
}

/// A network the container is on.
#[derive(Debug, Serialize)]
pub struct NetworkView {
    /// `bridge`, `host`, `awsvpc`, or a network's name.
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
    /// Its IPv4 addresses there.
    #[serde(rename = "IPv4Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<String>,
    /// Its IPv6 addresses there.
    #[serde(rename = "IPv6Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv6_addresses: Vec<String>,
}

/// Health, with ECS's lower-case keys.
#[derive(Debug, Serialize)]
pub struct HealthView {
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN`.
    pub status: &'static str,
}

/// A mounted task volume.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeView {
    /// The Docker volume's name (task-scoped and Docker volumes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub docker_name: String,
    /// The host path (host volumes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Where it is mounted in the container.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination: String,
}

/// The task, as `/v4/<id>/task` gives it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskView {
    /// The cluster name of the host's configuration.
    pub cluster: String,
    /// The task's ARN.
    #[serde(rename = "TaskARN")]
    pub task_arn: String,
    /// Its family.
    pub family: String,
    /// Its revision, a string.
    pub revision: String,
    /// The status berth drives it to.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub desired_status: &'static str,
    /// Its status as berth knows it.
    pub known_status: &'static str,
    /// Every container of it Docker has (internal ones included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerView>,
    /// Task-level limits, when it sets any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<TaskLimitsView>,
    /// When its first image pull started (omitted until one did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<String>,
    /// When its last image pull ended (omitted until one did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<String>,
    /// When it stopped (once it is STOPPED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<String>,
    /// Always `EXTERNAL`.
    pub launch_type: &'static str,
    /// Always false, always present (v4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_injection_enabled: Option<bool>,
}

/// What Docker says of a container, when inspect answered.
pub type Inspected<'a> = Option<&'a ContainerInfo>;

/// RFC 3339 in UTC with nanoseconds, as ECS writes times.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The container's view. `pause` is the task's pause container and what inspect says of it
/// (awsvpc: its ports and networks are the task's).
pub fn container(
    version: Version,
    task: &Task,
    c: &Container,
    info: Inspected<'_>,
    pause: Option<(&Container, Inspected<'_>)>,
) -> ContainerView {
    let spec = &c.spec;
    let awsvpc_member = task.network_mode == NetworkMode::Awsvpc && !spec.internal;
    let ports: Vec<PortView> = if awsvpc_member {
        let own: Vec<u16> = spec.port_mappings.iter().map(|p| p.container_port).collect();
        pause.map_or_else(Vec::new, |(p, _)| {
            p.known_port_bindings.iter().filter(|b| own.contains(&b.container_port)).map(port).collect()
        })
    } else {
        c.known_port_bindings.iter().map(port).collect()
    };
    let networks = if awsvpc_member {
        pause.and_then(|(_, i)| i).map_or_else(Vec::new, |i| networks(i, Some("awsvpc")))
    } else if spec.internal && task.network_mode == NetworkMode::Awsvpc {
        info.map_or_else(Vec::new, |i| networks(i, Some("awsvpc")))
    } else {
        info.map_or_else(Vec::new, |i| networks(i, None))
    };
    let v4 = version == Version::V4;
    ContainerView {
        docker_id: c.docker_id.clone().unwrap_or_default(),
        name: spec.name.clone(),
        docker_name: c.docker_name.clone().unwrap_or_default(),
        image: spec.image.clone(),
        image_id: info.map(|i| i.image_id.clone()).unwrap_or_default(),
        ports,
        labels: info.map_or_else(|| spec.docker_labels.clone(), |i| i.labels.clone()),
        desired_status: c.desired_status.as_str(),
        known_status: c.known_status.as_str(),
        exit_code: c.known_exit_code,
        limits: ContainerLimitsView { cpu: spec.cpu as f64, memory: spec.memory.unwrap_or(0) },
        created_at: info.and_then(|i| i.created_at).map(time),
        started_at: info.and_then(|i| i.state.started_at).map(time),
        finished_at: info.and_then(|i| i.state.finished_at).map(time),
        kind: if spec.internal { "CNI_PAUSE" } else { "NORMAL" },
        networks,
        health: spec.health_check.as_ref().map(|_| HealthView {
            status: match c.health {
                HealthStatus::Healthy => "HEALTHY",
                HealthStatus::Unhealthy => "UNHEALTHY",
                HealthStatus::Unknown => "UNKNOWN",
            },
        }),
        volumes: volumes(task, c),
        log_driver: spec.log_configuration.as_ref().filter(|_| v4).map(|l| l.log_driver.clone()),
        log_options: spec.log_configuration.as_ref().filter(|l| v4 && !l.options.is_empty()).map(|l| l.options.clone()),
        container_arn: v4.then(|| format!("{}/{}", task.arn, spec.name)),
        restart_count: c.shown_restart_count().filter(|_| v4),
    }
}

/// The task's view with `containers` (already built).
pub fn task(version: Version, cluster: &str, task: &Task, containers: Vec<ContainerView>) -> TaskView {
    let limits = (task.cpu.is_some() || task.memory.is_some())
        .then(|| TaskLimitsView { cpu: task.cpu.map(|c| c as f64 / 1024.0), memory: task.memory });
    TaskView {
        cluster: cluster.to_string(),
        task_arn: task.arn.clone(),
        family: task.family.clone(),
        revision: task.version.clone(),
        desired_status: task.desired_status.as_str(),
        known_status: task.known_status.as_str(),
        containers,
        limits,
        pull_started_at: task.pull_started_at.map(time),
        pull_stopped_at: task.pull_stopped_at.map(time),
        execution_stopped_at: (task.known_status == TaskStatus::Stopped).then_some(task.known_time).flatten().map(time),
        launch_type: LAUNCH_TYPE,
        fault_injection_enabled: (version == Version::V4).then_some(false),
    }
}

fn port(b: &PortBinding) -> PortView {
    PortView {
        container_port: b.container_port,
        protocol: b.protocol.as_str(),
        host_port: b.host_port,
        host_ip: b.bind_ip.clone(),
    }
}

/// Inspect's networks; `mode` names them all (awsvpc) instead of each network's name.
fn networks(info: &ContainerInfo, mode: Option<&str>) -> Vec<NetworkView> {
    info.networks
        .iter()
        .map(|n| NetworkView {
            network_mode: mode.unwrap_or(&n.network).to_string(),
            ipv4_addresses: n.ipv4.iter().cloned().collect(),
            ipv6_addresses: n.ipv6.iter().cloned().collect(),
        })
        .collect()
}

fn volumes(task: &Task, c: &Container) -> Vec<VolumeView> {
    c.spec
        .mount_points
        .iter()
        .filter_map(|m| {
            let volume = task.volume(&m.source_volume)?;
            let (docker_name, source) = match &volume.kind {
                VolumeKind::Host { source_path } => (String::new(), source_path.clone()),
                VolumeKind::Empty | VolumeKind::Docker(_) => (task.docker_volume_name(volume), String::new()),
                VolumeKind::Unsupported { .. } => return None,
            };
            Some(VolumeView { docker_name, source, destination: m.container_path.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_times_are_left_out_until_set_and_then_written_as_ecs_writes_times() {
        let mut t = Task::new("arn:berth:task/p".into(), "p".into(), "1".into(), vec![], vec![]);
        let view = serde_json::to_value(task(Version::V4, "c", &t, vec![])).expect("json");
        assert!(view.get("PullStartedAt").is_none() && view.get("PullStoppedAt").is_none(), "{view:#}");
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.5Z").expect("time").to_utc();
        t.pull_started_at = Some(started);
        let view = serde_json::to_value(task(Version::V3, "c", &t, vec![])).expect("json");
        assert_eq!(view["PullStartedAt"], "2026-01-02T03:04:05.500000000Z");
        assert!(view.get("PullStoppedAt").is_none(), "a pull still running: {view:#}");
    }
}
