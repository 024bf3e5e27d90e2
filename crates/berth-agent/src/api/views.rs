//! The JSON shapes of answers: the ECS introspection API's (`TaskResponse`,
//! `ContainerResponse`, ...) field by field, and berth's fuller task view with the same
//! field names.

use berth_model::container::PortBinding;
use berth_model::{Container, ContainerStatus, Task, TaskStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// `GET /v1/metadata`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetadataResponse {
    /// The configured cluster name.
    pub cluster: String,
    /// This berth's identity (from its instance id), as ECS's container instance arn.
    pub container_instance_arn: Option<String>,
    /// `berth vX.Y.Z`.
    pub version: String,
}

/// `GET /v1/tasks`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TasksResponse {
    /// Every task.
    pub tasks: Vec<TaskResponse>,
}

/// One task as ECS's introspection API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskResponse {
    /// The task's arn.
    pub arn: String,
    /// PENDING, RUNNING or STOPPED; absent where ECS leaves it out.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub desired_status: String,
    /// PENDING, RUNNING or STOPPED.
    pub known_status: String,
    /// Family.
    pub family: String,
    /// Version.
    pub version: String,
    /// Its containers (internal ones hidden).
    pub containers: Vec<ContainerResponse>,
}

/// One container as ECS's introspection API shows it.
#[derive(Debug, Serialize)]
pub struct ContainerResponse {
    /// Docker id (empty before create).
    #[serde(rename = "DockerId")]
    pub docker_id: String,
    /// Docker name (empty before create).
    #[serde(rename = "DockerName")]
    pub docker_name: String,
    /// Name in the task.
    #[serde(rename = "Name")]
    pub name: String,
    /// Bound ports, else the task definition's mappings.
    #[serde(rename = "Ports", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortResponse>,
    /// Restarts made by its restart policy; only when it has one.
    #[serde(rename = "RestartCount", skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
}

/// A port as ECS's introspection API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortResponse {
    /// Port in the container.
    #[serde(skip_serializing_if = "is_zero")]
    pub container_port: u16,
    /// tcp or udp.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Port on the host.
    #[serde(skip_serializing_if = "is_zero")]
    pub host_port: u16,
    /// Host address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// ECS's backend status of a task status: RUNNING, STOPPED, else PENDING.
fn backend(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "RUNNING",
        TaskStatus::Stopped => "STOPPED",
        TaskStatus::None | TaskStatus::Created => "PENDING",
    }
}

impl TaskResponse {
    /// The ECS shape of `task`. As ECS does, the desired status is left out when it says
    /// nothing useful (known STOPPED but desired not, or known RUNNING and desired PENDING).
    pub fn of(task: &Task) -> TaskResponse {
        let known = backend(task.known_status);
        let desired = backend(task.desired_status);
        let desired = if (known == "STOPPED" && desired != "STOPPED") || (known == "RUNNING" && desired == "PENDING") {
            ""
        } else {
            desired
        };
        TaskResponse {
            arn: task.arn.clone(),
            desired_status: desired.into(),
            known_status: known.into(),
            family: task.family.clone(),
            version: task.version.clone(),
            containers: task.containers.iter().filter(|c| !c.spec.internal).map(ContainerResponse::of).collect(),
        }
    }
}

impl ContainerResponse {
    fn of(c: &Container) -> ContainerResponse {
        let ports = if c.known_port_bindings.is_empty() {
            c.spec
                .port_mappings
                .iter()
                .map(|m| PortResponse {
                    container_port: m.container_port,
                    protocol: m.protocol.as_str().into(),
                    host_port: m.host_port,
                    host_ip: String::new(),
                })
                .collect()
        } else {
            c.known_port_bindings.iter().map(PortResponse::of).collect()
        };
        ContainerResponse {
            docker_id: c.docker_id.clone().unwrap_or_default(),
            docker_name: c.docker_name.clone().unwrap_or_default(),
            name: c.spec.name.clone(),
            ports,
            restart_count: c.shown_restart_count(),
        }
    }
}

impl PortResponse {
    fn of(b: &PortBinding) -> PortResponse {
        PortResponse {
            container_port: b.container_port,
            protocol: b.protocol.as_str().into(),
            host_port: b.host_port,
            host_ip: b.bind_ip.clone(),
        }
    }
}

/// berth's own view of a task (`GET /v1/tasks/{arn}`, `POST /v1/tasks`): ECS's names, with
/// berth's statuses and everything a person debugging it wants.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskView {
    /// The task's arn.
    pub arn: String,
    /// Family.
    pub family: String,
    /// Version.
    pub version: String,
    /// NONE, CREATED, RUNNING or STOPPED.
    pub desired_status: TaskStatus,
    /// NONE, CREATED, RUNNING or STOPPED.
    pub known_status: TaskStatus,
    /// When the known status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_status_time: Option<DateTime<Utc>>,
    /// Why it stopped, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// Why it has not begun, while it waits for host resources (`docs/resources.md`):
    /// `waiting for 512 MiB of memory: 256 free of 1024, 2 tasks ahead`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    /// bridge, host, none or awsvpc.
    pub network_mode: &'static str,
    /// Its containers (internal ones hidden).
    pub containers: Vec<ContainerView>,
}

/// berth's own view of a container.
#[derive(Debug, Serialize)]
pub struct ContainerView {
    /// Name in the task.
    #[serde(rename = "Name")]
    pub name: String,
    /// Image reference.
    #[serde(rename = "Image")]
    pub image: String,
    /// Docker id, once created.
    #[serde(rename = "DockerId", skip_serializing_if = "Option::is_none")]
    pub docker_id: Option<String>,
    /// Docker name, once chosen.
    #[serde(rename = "DockerName", skip_serializing_if = "Option::is_none")]
    pub docker_name: Option<String>,
    /// Desired status.
    #[serde(rename = "DesiredStatus")]
    pub desired_status: ContainerStatus,
    /// Known status.
    #[serde(rename = "KnownStatus")]
    pub known_status: ContainerStatus,
    /// Exit code, once stopped.
    #[serde(rename = "ExitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it is where it is (an applying error or an explicit reason).
    #[serde(rename = "Reason", skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether its stopping stops the task.
    #[serde(rename = "Essential")]
    pub essential: bool,
    /// Ports Docker bound.
    #[serde(rename = "Ports", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortResponse>,
    /// UNKNOWN, HEALTHY or UNHEALTHY.
    #[serde(rename = "Health")]
    pub health: berth_model::HealthStatus,
    /// Restarts made by its restart policy; only when it has one.
    #[serde(rename = "RestartCount", skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
}

impl TaskView {
    /// berth's view of `task`.
    pub fn of(task: &Task) -> TaskView {
        TaskView {
            arn: task.arn.clone(),
            family: task.family.clone(),
            version: task.version.clone(),
            desired_status: task.desired_status,
            known_status: task.known_status,
            known_status_time: task.known_time,
            stopped_reason: task.stop_reason.clone(),
            waiting_reason: None,
            network_mode: task.network_mode.as_str(),
            containers: task
                .containers
                .iter()
                .filter(|c| !c.spec.internal)
                .map(|c| ContainerView {
                    name: c.spec.name.clone(),
                    image: c.spec.image.clone(),
                    docker_id: c.docker_id.clone(),
                    docker_name: c.docker_name.clone(),
                    desired_status: c.desired_status,
                    known_status: c.known_status,
                    exit_code: c.known_exit_code,
                    reason: c.applying_error.as_ref().map(|e| e.message.clone()).or_else(|| c.reason.clone()),
                    essential: c.spec.essential,
                    ports: c.known_port_bindings.iter().map(PortResponse::of).collect(),
                    health: c.health,
                    restart_count: c.shown_restart_count(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::container::{ContainerSpec, RestartPolicy};

    fn container(name: &str, policy: bool, restarts: u32) -> Container {
        let mut c = Container::new(ContainerSpec {
            name: name.into(),
            image: "busybox".into(),
            essential: true,
            restart_policy: policy.then(|| Box::new(RestartPolicy::default())),
            ..ContainerSpec::default()
        });
        c.restart_count = restarts;
        c
    }

    /// `RestartCount` shows on a container with a restart policy (0 included), in both the
    /// introspection shape and berth's view, and is left out without one.
    #[test]
    fn the_restart_count_shows_only_with_a_restart_policy() {
        let task = Task::new(
            "arn:berth:task/v".into(),
            "v".into(),
            "1".into(),
            vec![container("kept", true, 2), container("fresh", true, 0), container("plain", false, 0)],
            vec![],
        );
        for json in [
            serde_json::to_value(TaskResponse::of(&task)).unwrap_or_default(),
            serde_json::to_value(TaskView::of(&task)).unwrap_or_default(),
        ] {
            let counts: Vec<&serde_json::Value> = (0..3).map(|i| &json["Containers"][i]["RestartCount"]).collect();
            assert_eq!(counts, [&serde_json::json!(2), &serde_json::json!(0), &serde_json::Value::Null], "{json}");
            assert!(json["Containers"][2].get("RestartCount").is_none(), "{json}");
        }
    }
}
