//! What a submitted task may do to the host (SPEC 9): `privileged`, host devices, host
//! network and host-path bind mounts outside the allowed prefixes are refused unless the
//! daemon's configuration allows them. `berth run` does not use this: its file is the
//! user's own.

use crate::config::HostPolicy;
use berth_model::input::Issue;
use berth_model::task::NetworkMode;
use berth_model::{Task, VolumeKind};
use std::path::{Component, Path};

/// Every setting of `task` the policy refuses, each naming its JSON path as the task
/// definition spells it. Empty: the task may run.
pub fn refusals(task: &Task, policy: &HostPolicy) -> Vec<Issue> {
    let mut issues = Vec::new();
    let refuse = |path: String, message: String| Issue { path, message };
    if task.network_mode == NetworkMode::Host && !policy.allow_host_network {
        issues.push(refuse(
            "networkMode".into(),
            "host network is not allowed by this berth's configuration (host.allow_host_network)".into(),
        ));
    }
    for (i, c) in task.containers.iter().enumerate().filter(|(_, c)| !c.spec.internal) {
        if c.spec.privileged && !policy.allow_privileged {
            issues.push(refuse(
                format!("containerDefinitions[{i}].privileged"),
                "privileged containers are not allowed by this berth's configuration (host.allow_privileged)".into(),
            ));
        }
        if !policy.allow_devices {
            for (d, device) in c.spec.linux_parameters.devices.iter().enumerate() {
                issues.push(refuse(
                    format!("containerDefinitions[{i}].linuxParameters.devices[{d}]"),
                    format!(
                        "host device {} is not allowed by this berth's configuration (host.allow_devices)",
                        device.host_path
                    ),
                ));
            }
        }
    }
    for (v, volume) in task.volumes.iter().enumerate() {
        if let VolumeKind::Host { source_path } = &volume.kind
            && !path_allowed(source_path, &policy.allowed_host_paths)
        {
            issues.push(refuse(
                format!("volumes[{v}].host.sourcePath"),
                format!(
                    "host path {source_path} is outside the allowed prefixes of this berth's configuration \
                     (host.allowed_host_paths)"
                ),
            ));
        }
    }
    issues
}

/// Whether `path` (absolute, without `..`) lies under one of `allowed`.
fn path_allowed(path: &str, allowed: &[std::path::PathBuf]) -> bool {
    let path = Path::new(path);
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return false;
    }
    allowed.iter().any(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(json: &str) -> Task {
        let opts = berth_model::input::ParseOptions { family: None, arn_random: 7 };
        match berth_model::input::parse(json.as_bytes(), &opts) {
            Ok(accepted) => accepted.task,
            Err(rejected) => panic!("{rejected}"),
        }
    }

    #[test]
    fn a_plain_task_passes_the_strictest_policy() {
        let t = parse(r#"{"family":"f","containerDefinitions":[{"name":"web","image":"busybox","memory":8}]}"#);
        assert!(refusals(&t, &HostPolicy::default()).is_empty());
    }

    #[test]
    fn each_power_is_refused_by_default_and_named() {
        let t = parse(
            r#"{"family":"f","networkMode":"host",
                "volumes":[{"name":"etc","host":{"sourcePath":"/etc"}},{"name":"data","host":{"sourcePath":"/srv/data"}}],
                "containerDefinitions":[
                  {"name":"a","image":"busybox","memory":8},
                  {"name":"b","image":"busybox","memory":8,"privileged":true,
                   "linuxParameters":{"devices":[{"hostPath":"/dev/fuse"}]},
                   "mountPoints":[{"sourceVolume":"etc","containerPath":"/x"}]}]}"#,
        );
        let paths: Vec<String> = refusals(&t, &HostPolicy::default()).into_iter().map(|i| i.path).collect();
        assert_eq!(
            paths,
            [
                "networkMode",
                "containerDefinitions[1].privileged",
                "containerDefinitions[1].linuxParameters.devices[0]",
                "volumes[0].host.sourcePath",
                "volumes[1].host.sourcePath",
            ]
        );
        let allowed = HostPolicy {
            allow_privileged: true,
            allow_host_network: true,
            allow_devices: true,
            allowed_host_paths: vec![PathBuf::from("/srv")],
        };
        let paths: Vec<String> = refusals(&t, &allowed).into_iter().map(|i| i.path).collect();
        assert_eq!(paths, ["volumes[0].host.sourcePath"]);
    }

    #[test]
    fn prefixes_match_whole_components_and_refuse_parent_dirs() {
        let allowed = [PathBuf::from("/srv/data")];
        assert!(path_allowed("/srv/data", &allowed));
        assert!(path_allowed("/srv/data/x", &allowed));
        assert!(!path_allowed("/srv/database", &allowed));
        assert!(!path_allowed("/srv/data/../../etc", &allowed));
        assert!(!path_allowed("srv/data", &allowed));
    }
}
