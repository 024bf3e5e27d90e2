//! The semantic rules: what makes a well-typed task definition still one that berth (like
//! ECS) refuses. Each rule reports every offender, with the JSON path where there is one.
//!
//! Rules checked while reading (they need only the field itself): names and their limits
//! ([`check_name`]), image references, number ranges, `dependsOn` conditions, protocols,
//! the limits of every list and string. Rules checked here, once the whole task has been
//! read: label keys berth or Docker's events own, unique names, an essential container,
//! `dependsOn` against what it names, `memoryReservation` against `memory`, `mountPoints`
//! against the task's volumes, the settings awsvpc forbids, and (on the built task) the
//! dependency graph.
//!
//! Labels: Docker copies a container's labels into the attributes of each of its events,
//! over the attributes Docker set itself (a `die` event of a container labelled
//! `exitCode=0` says `exitCode: 0` whatever the exit code was; seen on Docker 20.10), and
//! berth reads exit codes, signals and names from those events. So a `dockerLabels` key
//! equal to an attribute Docker puts in container events ([`EVENT_ATTRIBUTES`]) is
//! refused; keys are compared exactly, as Docker's are (`ExitCode` is an ordinary label).

use super::reader::{Sink, key_path, quote};
use super::{Draft, MAX_NAME_LEN};
use crate::container::DependencyCondition;
use crate::graph::DependencyGraph;
use crate::task::{NetworkMode, Task};
use std::collections::{HashMap, HashSet};

/// The attributes Docker puts in container events (moby's `LogContainerEventWithAttributes`
/// callers): `exitCode` (die, exec_die), `execDuration` (die, newer Dockers), `signal`
/// (kill), `execID` (exec_*), `oldName` (rename), `height` and `width` (resize), `comment`,
/// `imageID` and `imageRef` (commit), and `name` and `image` (every event; set after the
/// labels, so a label does not replace them, but it would still be read as one of them).
pub const EVENT_ATTRIBUTES: [&str; 12] = [
    "exitCode",
    "execDuration",
    "signal",
    "execID",
    "oldName",
    "height",
    "width",
    "comment",
    "imageID",
    "imageRef",
    "name",
    "image",
];

/// Check a family, container or volume name: 1 to [`MAX_NAME_LEN`] characters of
/// `[A-Za-z0-9_-]`, as ECS requires (`what` is "container name", "family", ...).
pub(crate) fn check_name(path: &str, name: &str, what: &str, s: &mut Sink) -> bool {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        s.error(
            path,
            format!(
                "{} is not a valid {what}: use 1 to {MAX_NAME_LEN} letters, digits, hyphens and underscores",
                quote(name)
            ),
        );
    }
    ok
}

/// The rules that need the whole task definition.
pub(crate) fn check_draft(d: &Draft, s: &mut Sink) {
    if !d.containers_read {
        // The containers could not be read at all (wrong type, over the limit): that error
        // is already reported, and these rules would only add noise.
        check_volume_names(d, s);
        return;
    }
    check_container_names(d, s);
    check_volume_names(d, s);
    if d.containers.is_empty() {
        s.error(&d.containers_path, "at least one container is required");
    } else if !d.containers.iter().any(|c| c.spec.essential) {
        s.error(&d.containers_path, "no essential container: at least one container must be essential");
    }
    let by_name: HashMap<&str, usize> =
        d.containers.iter().enumerate().map(|(i, c)| (c.spec.name.as_str(), i)).collect();
    let volumes: HashSet<&str> = d.volumes.iter().map(|v| v.volume.name.as_str()).collect();
    for c in &d.containers {
        let spec = &c.spec;
        check_label_keys(&c.path, spec.docker_labels.keys(), s);
        if let (Some(mem), Some(res)) = (spec.memory, spec.memory_reservation)
            && res > mem
        {
            s.error(
                &format!("{}.memoryReservation", c.path),
                format!("memoryReservation ({res} MiB) is above memory ({mem} MiB)"),
            );
        }
        for (dep, path) in spec.depends_on.iter().zip(&c.depends_on_paths) {
            let Some(target) = by_name.get(dep.container_name.as_str()).and_then(|&i| d.containers.get(i)) else {
                continue; // a dangling name: the dependency graph reports it
            };
            match dep.condition {
                DependencyCondition::Complete | DependencyCondition::Success if target.spec.essential => s.error(
                    path,
                    format!(
                        "condition {} on essential container {}: only a non-essential container can be waited \
                         for to exit",
                        dep.condition,
                        quote(&dep.container_name)
                    ),
                ),
                DependencyCondition::Healthy if target.spec.health_check.is_none() => s.error(
                    path,
                    format!("condition HEALTHY on {}, which has no healthCheck", quote(&dep.container_name)),
                ),
                _ => {}
            }
        }
        let mut missing = HashSet::new();
        for m in spec.mount_points.iter().filter(|_| d.volumes_read) {
            if !volumes.contains(m.source_volume.as_str()) && missing.insert(m.source_volume.as_str()) {
                s.error(
                    "",
                    format!("mountPoints of {}: no volume named {}", quote(&spec.name), quote(&m.source_volume)),
                );
            }
        }
        if d.network_mode == NetworkMode::Awsvpc {
            let forbidden = [
                ("links", !spec.links.is_empty()),
                ("hostname", spec.hostname.is_some()),
                ("dnsServers", !spec.dns_servers.is_empty()),
                ("dnsSearchDomains", !spec.dns_search_domains.is_empty()),
                ("extraHosts", !spec.extra_hosts.is_empty()),
            ];
            for (field, set) in forbidden {
                if set {
                    s.error(
                        &format!("{}.{field}", c.path),
                        "not allowed with networkMode awsvpc (the task's containers share one network namespace)",
                    );
                }
            }
        }
    }
}

/// `dockerLabels` keys that are not the user's to set: those under `berth.` and Docker's
/// event attributes ([`EVENT_ATTRIBUTES`]).
fn check_label_keys<'a>(container_path: &str, keys: impl Iterator<Item = &'a String>, s: &mut Sink) {
    let labels_path = format!("{container_path}.dockerLabels");
    for key in keys {
        if key.starts_with("berth.") {
            s.error(&key_path(&labels_path, key), "labels under \"berth.\" are reserved for berth");
        } else if EVENT_ATTRIBUTES.contains(&key.as_str()) {
            s.error(
                &key_path(&labels_path, key),
                format!(
                    "{} is an attribute Docker puts in container events, where this label would replace or pass \
                     for it (berth reads exit codes, signals and names from these events), so it is refused; label \
                     keys are compared exactly",
                    quote(key)
                ),
            );
        }
    }
}

/// Container names are unique within the task.
fn check_container_names(d: &Draft, s: &mut Sink) {
    let mut seen = HashSet::new();
    for c in &d.containers {
        if !c.spec.name.is_empty() && !seen.insert(c.spec.name.as_str()) {
            s.error(&format!("{}.name", c.path), format!("duplicate container name {}", quote(&c.spec.name)));
        }
    }
}

/// Volume names are unique within the task.
fn check_volume_names(d: &Draft, s: &mut Sink) {
    let mut seen = HashSet::new();
    for v in &d.volumes {
        if !v.volume.name.is_empty() && !seen.insert(v.volume.name.as_str()) {
            s.error(&format!("{}.name", v.path), format!("duplicate volume name {}", quote(&v.volume.name)));
        }
    }
}

/// Dangling references, self references and cycles among the containers of the built
/// task, each as an error with an empty path (the message names the containers).
pub(crate) fn check_graph(task: &Task, s: &mut Sink) {
    if let Err(errors) = DependencyGraph::build(task) {
        for e in errors {
            s.error("", e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accept, reject, task};
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn an_essential_container_is_required() {
        let t = task(json!([{"name": "a", "image": "busybox", "essential": false}]), json!({}));
        assert_eq!(
            reject(&t),
            ["containerDefinitions: no essential container: at least one container must be essential"]
        );
        // essential defaults to true, null included.
        accept(&task(json!([{"name": "a", "image": "busybox", "essential": null}]), json!({})));
        assert_eq!(reject(&task(json!([]), json!({}))), ["containerDefinitions: at least one container is required"]);
    }

    #[test]
    fn complete_and_success_cannot_wait_for_an_essential_container() {
        for cond in ["COMPLETE", "SUCCESS"] {
            let t = task(
                json!([
                    {"name": "a", "image": "busybox", "dependsOn": [{"containerName": "b", "condition": cond}]},
                    {"name": "b", "image": "busybox"},
                ]),
                json!({}),
            );
            assert_eq!(
                reject(&t),
                [format!(
                    "containerDefinitions[0].dependsOn[0]: condition {cond} on essential container \"b\": only a \
                     non-essential container can be waited for to exit"
                )]
            );
        }
        accept(&task(
            json!([
                {"name": "a", "image": "busybox", "dependsOn": [{"containerName": "b", "condition": "SUCCESS"}]},
                {"name": "b", "image": "busybox", "essential": false},
            ]),
            json!({}),
        ));
    }

    #[test]
    fn healthy_needs_a_health_check() {
        let t = task(
            json!([
                {"name": "a", "image": "busybox", "dependsOn": [
                    {"containerName": "b", "condition": "START"},
                    {"containerName": "b", "condition": "HEALTHY"},
                ]},
                {"name": "b", "image": "busybox"},
            ]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [r#"containerDefinitions[0].dependsOn[1]: condition HEALTHY on "b", which has no healthCheck"#]
        );
    }

    #[test]
    fn unknown_dependency_condition() {
        let t = task(
            json!([
                {"name": "a", "image": "busybox", "dependsOn": [{"containerName": "b", "condition": "RUNNING"}]},
                {"name": "b", "image": "busybox"},
            ]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [
                r#"containerDefinitions[0].dependsOn[0].condition: unknown condition "RUNNING" (expected START, COMPLETE, SUCCESS or HEALTHY)"#
            ]
        );
    }

    #[test]
    fn memory_reservation_above_memory() {
        let t = task(json!([{"name": "a", "image": "busybox", "memory": 256, "memoryReservation": 512}]), json!({}));
        assert_eq!(
            reject(&t),
            ["containerDefinitions[0].memoryReservation: memoryReservation (512 MiB) is above memory (256 MiB)"]
        );
        accept(&task(json!([{"name": "a", "image": "busybox", "memory": 0, "memoryReservation": 512}]), json!({})));
    }

    #[test]
    fn berth_labels_are_reserved() {
        let t = task(
            json!([{"name": "a", "image": "busybox", "dockerLabels": {"berth.task": "x", "berthx": "ok", "app": "y"}}]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [r#"containerDefinitions[0].dockerLabels["berth.task"]: labels under "berth." are reserved for berth"#]
        );
    }

    #[test]
    fn labels_docker_puts_in_container_events_are_refused() {
        for key in EVENT_ATTRIBUTES {
            let t = task(json!([{"name": "a", "image": "busybox", "dockerLabels": { key: "0" }}]), json!({}));
            assert_eq!(
                reject(&t),
                [format!(
                    "containerDefinitions[0].dockerLabels.{key}: \"{key}\" is an attribute Docker puts in container \
                     events, where this label would replace or pass for it (berth reads exit codes, signals and names \
                     from these events), so it is refused; label keys are compared exactly"
                )]
            );
        }
        // The case of Docker's keys matters to Docker: these are ordinary labels.
        let other_case = json!({"ExitCode": "0", "SIGNAL": "9", "Name": "x", "image.version": "1", "app": "y"});
        accept(&task(json!([{"name": "a", "image": "busybox", "dockerLabels": other_case}]), json!({})));
        // The seed payload's containers too.
        let seed = json!({"family": "f", "containers": [
            {"name": "a", "image": "busybox", "dockerLabels": {"exitCode": "0", "signal": "15"}}
        ]});
        let errs = reject(&seed);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with(r#"containers[0].dockerLabels.exitCode: "exitCode" is an attribute Docker"#));
        assert!(errs[1].starts_with(r#"containers[0].dockerLabels.signal: "signal" is an attribute Docker"#));
    }

    #[test]
    fn protocol_is_tcp_or_udp() {
        let t = task(
            json!([{"name": "a", "image": "busybox", "portMappings": [{"containerPort": 80, "protocol": "sctp"}]}]),
            json!({}),
        );
        assert_eq!(
            reject(&t),
            [r#"containerDefinitions[0].portMappings[0].protocol: expected "tcp" or "udp", found "sctp""#]
        );
    }

    #[test]
    fn unknown_network_mode() {
        let t = task(json!([{"name": "a", "image": "busybox"}]), json!({"networkMode": "nat"}));
        assert_eq!(reject(&t), [r#"networkMode: unknown network mode "nat" (expected bridge, host, none or awsvpc)"#]);
        for mode in ["bridge", "host", "none", "awsvpc"] {
            accept(&task(json!([{"name": "a", "image": "busybox"}]), json!({ "networkMode": mode })));
        }
    }

    #[test]
    fn awsvpc_refuses_what_a_shared_namespace_cannot_do() {
        let t = task(
            json!([
                {"name": "a", "image": "busybox", "links": ["b"], "hostname": "h", "dnsServers": ["1.1.1.1"],
                 "dnsSearchDomains": ["example.com"], "extraHosts": [{"hostname": "x", "ipAddress": "10.0.0.1"}]},
                {"name": "b", "image": "busybox", "hostname": ""},
            ]),
            json!({"networkMode": "awsvpc"}),
        );
        let why = "not allowed with networkMode awsvpc (the task's containers share one network namespace)";
        assert_eq!(
            reject(&t),
            ["links", "hostname", "dnsServers", "dnsSearchDomains", "extraHosts"]
                .map(|f| format!("containerDefinitions[0].{f}: {why}"))
        );
        // The same under bridge is fine.
        let mut bridge = t.clone();
        bridge["networkMode"] = json!("bridge");
        accept(&bridge);
    }

    #[test]
    fn mount_points_need_a_task_volume() {
        let t = task(
            json!([{"name": "app", "image": "busybox", "mountPoints": [
                {"sourceVolume": "data", "containerPath": "/a"},
                {"sourceVolume": "data", "containerPath": "/b"},
                {"sourceVolume": "logs", "containerPath": "/c"},
            ]}]),
            json!({"volumes": [{"name": "logs"}]}),
        );
        assert_eq!(reject(&t), [r#"mountPoints of "app": no volume named "data""#]);
    }

    #[test]
    fn graph_errors_become_issues() {
        let t = task(
            json!([
                {"name": "a", "image": "busybox", "links": ["b"], "volumesFrom": [{"sourceContainer": "nope"}]},
                {"name": "b", "image": "busybox", "dependsOn": [{"containerName": "a", "condition": "START"}]},
            ]),
            json!({}),
        );
        assert_eq!(reject(&t), [r#"volumesFrom of "a": no container named "nope""#, "dependency cycle: a -> b -> a"]);
        let own = task(json!([{"name": "a", "image": "busybox", "links": ["a:self"]}]), json!({}));
        assert_eq!(reject(&own), [r#"links of "a": a container cannot depend on itself"#]);
    }

    #[test]
    fn names_are_unique() {
        let t = task(
            json!([{"name": "a", "image": "busybox"}, {"name": "a", "image": "busybox"}]),
            json!({"volumes": [{"name": "v"}, {"name": "v", "host": {"sourcePath": "/x"}}]}),
        );
        assert_eq!(
            reject(&t),
            [
                r#"containerDefinitions[1].name: duplicate container name "a""#,
                r#"volumes[1].name: duplicate volume name "v""#
            ]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let many: Vec<Value> = (0..=100).map(|i| json!({"name": format!("c{i}"), "image": "busybox"})).collect();
        assert_eq!(
            reject(&task(json!(many), json!({}))),
            ["containerDefinitions: 101 containers, more than the limit of 100"]
        );
        let hundred: Vec<Value> = (0..100).map(|i| json!({"name": format!("c{i}"), "image": "busybox"})).collect();
        assert_eq!(accept(&task(json!(hundred), json!({}))).task.containers.len(), 100);

        let long = "n".repeat(256);
        assert_eq!(
            reject(&task(json!([{"name": long, "image": "busybox"}]), json!({}))),
            [format!(
                "containerDefinitions[0].name: \"{}\"... is not a valid container name: use 1 to 255 letters, digits, \
                 hyphens and underscores",
                "n".repeat(60)
            )]
        );
        let family = "f".repeat(256);
        assert_eq!(reject(&task(json!([{"name": "a", "image": "busybox"}]), json!({ "family": family }))).len(), 1);

        let env: Vec<Value> = (0..1001).map(|i| json!({"name": format!("V{i}"), "value": "x"})).collect();
        assert_eq!(
            reject(&task(json!([{"name": "a", "image": "busybox", "environment": env}]), json!({}))),
            ["containerDefinitions[0].environment: 1001 entries, more than the limit of 1000"]
        );
    }

    #[test]
    fn names_are_letters_digits_hyphens_underscores() {
        let mut s = Sink::default();
        assert!(check_name("p", "a-B_9", "container name", &mut s));
        assert!(check_name("p", &"x".repeat(255), "family", &mut s));
        assert!(!check_name("p", &"x".repeat(256), "family", &mut s));
        assert!(!check_name("p", "${APP}", "container name", &mut s));
        assert!(!check_name("p", "", "volume name", &mut s));
        assert!(!check_name("p", "é", "volume name", &mut s));
        let msgs: Vec<String> = s.errors.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 4);
        assert_eq!(
            msgs[1],
            r#"p: "${APP}" is not a valid container name: use 1 to 255 letters, digits, hyphens and underscores"#
        );
    }
}
