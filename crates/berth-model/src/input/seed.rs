//! Shape 4: the seed's own task payload.
//!
//! ```json
//! {"arn": "...", "family": "web", "version": "3", "desiredStatus": "RUNNING",
//!  "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data"}}],
//!  "containers": [{"name": "web", "image": "nginx", "environment": {"KEY": "value"},
//!                  "desiredStatus": "RUNNING", ...}]}
//! ```
//!
//! Decisions where the SPEC leaves room:
//! - the containers take every ECS container field as well (the seed's fields are a subset
//!   of them), except that `environment` is a `{"KEY": "value"}` map and `desiredStatus`
//!   is allowed;
//! - `networkMode` is accepted at task level, as in the ECS shapes;
//! - `desiredStatus` (task or container) is `RUNNING` (the default) or `STOPPED`: a task
//!   only ever moves towards its desired status, and those are the two the seed's
//!   backend sends;
//! - `arn`, when given, is at most 1,024 characters without control characters, and its
//!   last `/`-separated part (by which APIs and Docker names refer to the task) is not
//!   empty.

use super::Draft;
use super::ecs::{Flavor, read_containers, read_network_mode, read_volumes};
use super::reader::{Obj, Sink, quote};
use super::validate::check_name;
use crate::status::TaskStatus;
use crate::task::arn_last_part;

/// Longest task arn accepted.
const MAX_ARN_LEN: usize = 1024;

/// Read the seed payload.
pub(crate) fn read_seed(mut o: Obj<'_>, s: &mut Sink) -> Draft {
    let mut d = Draft::empty(&o.path_of("family"), &o.path_of("containers"));
    if let Some(arn) = o.non_empty_string("arn", s) {
        if arn.len() > MAX_ARN_LEN || arn.chars().any(char::is_control) || arn_last_part(&arn).is_empty() {
            s.error(
                &o.path_of("arn"),
                format!(
                    "{} is not a usable task arn: at most {MAX_ARN_LEN} characters, no control characters, and \
                     not ending in \"/\"",
                    quote(&arn)
                ),
            );
        }
        d.arn = Some(arn);
    }
    if let Some(family) = o.non_empty_string("family", s) {
        check_name(&o.path_of("family"), &family, "family", s);
        d.family = Some(family);
    }
    d.version = o.non_empty_string("version", s);
    if let Some(f) = o.field("desiredStatus") {
        match f.string(s) {
            Some("RUNNING") => {}
            Some("STOPPED") => d.desired_status = TaskStatus::Stopped,
            Some(other) => s.error(&f.path, format!("expected \"RUNNING\" or \"STOPPED\", found {}", quote(other))),
            None => {}
        }
    }
    d.network_mode = read_network_mode(&mut o, s);
    let containers = o.field("containers");
    read_containers(containers, Flavor::Seed, &mut d, s);
    read_volumes(o.field("volumes"), &mut d, s);
    d.overrides = super::overrides::read(&mut o, s);
    o.finish(s);
    d
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accept, reject, warnings};
    use crate::container::{Link, PortMapping, Protocol};
    use crate::status::{ContainerStatus, TaskStatus};
    use crate::volume::VolumeKind;
    use serde_json::json;

    fn payload() -> serde_json::Value {
        json!({
            "arn": "arn:aws:ecs:us-west-2:123:task/abc-123",
            "family": "web",
            "version": "3",
            "desiredStatus": "RUNNING",
            "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data"}}],
            "containers": [
                {"name": "web", "image": "nginx", "command": ["nginx"], "entryPoint": ["/entry"], "cpu": 10,
                 "memory": 64, "links": ["db:database"],
                 "portMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}],
                 "essential": true, "environment": {"MODE": "prod", "EMPTY": ""},
                 "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}],
                 "volumesFrom": [{"sourceContainer": "db"}], "desiredStatus": "RUNNING"},
                {"name": "db", "image": "mysql", "essential": false,
                 "desiredStatus": "STOPPED"}
            ]
        })
    }

    #[test]
    fn the_seed_payload_is_read() {
        let a = accept(&payload());
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        let t = a.task;
        assert_eq!(t.arn, "arn:aws:ecs:us-west-2:123:task/abc-123");
        assert_eq!((t.family.as_str(), t.version.as_str()), ("web", "3"));
        assert_eq!(t.desired_status, TaskStatus::Running);
        assert_eq!(t.volumes[0].kind, VolumeKind::Host { source_path: "/srv/data".into() });
        let web = &t.containers[0];
        assert_eq!(web.spec.environment.get("MODE").map(String::as_str), Some("prod"));
        assert_eq!(web.spec.environment.get("EMPTY").map(String::as_str), Some(""));
        assert_eq!(web.spec.links, [Link { name: "db".into(), alias: Some("database".into()) }]);
        assert_eq!(
            web.spec.port_mappings,
            [PortMapping { container_port: 80, host_port: 8080, protocol: Protocol::Tcp }]
        );
        assert_eq!(web.desired_status, ContainerStatus::Running);
        assert_eq!(t.containers[1].desired_status, ContainerStatus::Stopped);
    }

    #[test]
    fn a_stopped_task_stops_every_container() {
        let mut p = payload();
        p["desiredStatus"] = json!("STOPPED");
        let t = accept(&p).task;
        assert_eq!(t.desired_status, TaskStatus::Stopped);
        assert!(t.containers.iter().all(|c| c.desired_status == ContainerStatus::Stopped));
    }

    #[test]
    fn seed_errors() {
        let mut p = payload();
        p["desiredStatus"] = json!("CREATED");
        p["arn"] = json!("arn:x/");
        p["version"] = json!(3);
        p["containers"][0]["environment"] = json!([{"name": "A", "value": "1"}]);
        p["containers"][1]["desiredStatus"] = json!("PULLED");
        assert_eq!(
            reject(&p),
            [
                r#"arn: "arn:x/" is not a usable task arn: at most 1024 characters, no control characters, and not ending in "/""#,
                "version: expected a string, found the number 3",
                r#"desiredStatus: expected "RUNNING" or "STOPPED", found "CREATED""#,
                "containers[0].environment: expected an object, found an array",
                r#"containers[1].desiredStatus: expected "RUNNING" or "STOPPED", found "PULLED""#,
            ]
        );
    }

    #[test]
    fn seed_without_arn_gets_one_and_unknown_keys_warn() {
        let mut p = payload();
        if let Some(o) = p.as_object_mut() {
            o.remove("arn");
            o.insert("taskDefinitionArn".into(), json!("arn:aws:ecs:x:1:task-definition/web:3"));
        }
        assert_eq!(accept(&p).task.arn, "arn:berth:task/00000000000000000000000000000abc");
        assert_eq!(warnings(&p), ["taskDefinitionArn: unknown key, ignored"]);
    }
}
