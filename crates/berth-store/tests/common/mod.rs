//! Tasks and changes for the store's tests.
#![allow(dead_code)]

use berth_model::container::{PortBinding, Protocol};
use berth_model::input::{ParseOptions, parse};
use berth_model::{ApplyError, Container, ContainerSpec, ContainerStatus, HealthStatus, StateChange, Task, TaskStatus};
use chrono::{TimeZone, Utc};

/// A task of three containers; `n` shows in its version, so records can be told apart.
pub fn task(arn: &str, n: u64) -> Task {
    let containers = ["web", "db", "sidecar"]
        .iter()
        .map(|name| {
            Container::new(ContainerSpec {
                name: (*name).into(),
                image: format!("registry.example/{name}:1.2"),
                essential: true,
                ..ContainerSpec::default()
            })
        })
        .collect();
    Task::new(arn.into(), "family".into(), n.to_string(), containers, vec![])
}

/// A state change of `container` in task `arn` (its seq is given at commit).
pub fn change(arn: &str, container: &str) -> StateChange {
    StateChange {
        seq: 0,
        time: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid time"),
        task_arn: arn.into(),
        container_name: container.into(),
        status: ContainerStatus::Running,
        reason: None,
        exit_code: None,
        port_bindings: vec![],
        task_status: TaskStatus::None,
        task_desired_status: TaskStatus::None,
    }
}

/// A task with much of the model filled in: parsed from a rich task definition, then
/// engine fields set as a run would.
pub fn rich_task(arn_random: u128) -> Task {
    let json = br#"{
      "family": "rich",
      "networkMode": "bridge",
      "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data"}}, {"name": "scratch"}],
      "containerDefinitions": [
        {"name": "web", "image": "nginx:1.27", "cpu": 128, "memory": 256, "memoryReservation": 128,
         "essential": true, "links": ["db:database"], "command": ["nginx", "-g", "daemon off;"],
         "environment": [{"name": "MODE", "value": "prod \u00e9 \"quoted\""}],
         "portMappings": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "udp"}],
         "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}],
         "dockerLabels": {"a": "b"}, "workingDirectory": "/srv", "user": "nobody", "stopTimeout": 7,
         "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 5, "timeout": 2, "retries": 3},
         "volumesFrom": [{"sourceContainer": "db", "readOnly": false}],
         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]},
        {"name": "db", "image": "postgres:16", "memory": 512, "essential": false,
         "healthCheck": {"command": ["CMD", "pg_isready"]},
         "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/s"}]}
      ]
    }"#;
    let accepted = match parse(json, &ParseOptions { family: None, arn_random }) {
        Ok(accepted) => accepted,
        Err(rejected) => panic!("test task definition rejected: {rejected}"),
    };
    let mut task = accepted.task;
    let now = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).single().expect("valid time");
    let web = &mut task.containers[0];
    web.known_status = ContainerStatus::Running;
    web.applied_status = ContainerStatus::Running;
    web.sent_status = ContainerStatus::Created;
    web.docker_id = Some("0123abcd".into());
    web.docker_name = Some("berth-rich-web".into());
    web.health = HealthStatus::Healthy;
    web.known_port_bindings =
        vec![PortBinding { container_port: 80, host_port: 8080, bind_ip: "0.0.0.0".into(), protocol: Protocol::Tcp }];
    web.has_run = true;
    let db = &mut task.containers[1];
    db.known_status = ContainerStatus::Stopped;
    db.known_exit_code = Some(-9);
    db.applying_error = Some(ApplyError { message: "pull failed: no such image".into(), permanent: true });
    db.failures = 3;
    db.retry_at = Some(now);
    db.needs_inspect = true;
    task.known_status = TaskStatus::Running;
    task.known_time = Some(now);
    task.stop_reason = Some("essential container exited".into());
    task
}
