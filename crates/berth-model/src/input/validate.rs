//! The semantic rules: what makes a well-typed task definition still one that berth (like
//! ECS) refuses. Each rule reports every offender, with the JSON path where there is one.
//!
//! Rules checked while reading (they need only the field itself): names and their limits
//! ([`check_name`]), image references, number ranges, `dependsOn` conditions, protocols,
//! labels under `berth.`, the environment limit. Rules checked here, once the whole task
//! has been read: unique names, an essential container, `dependsOn` against what it names,
//! `memoryReservation` against `memory`, `mountPoints` against the task's volumes, the
//! settings awsvpc forbids, and (on the built task) the dependency graph.

use super::reader::{Sink, quote};
use super::{Draft, MAX_NAME_LEN};
use crate::container::DependencyCondition;
use crate::graph::DependencyGraph;
use crate::task::{NetworkMode, Task};
use std::collections::{HashMap, HashSet};

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
        for m in &spec.mount_points {
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
    use super::*;

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
