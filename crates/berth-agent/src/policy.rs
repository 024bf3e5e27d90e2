//! What a submitted task may do to the host (SPEC 9, `docs/host-policy.md`). Each setting
//! that gives a container power over the host is refused unless the daemon's configuration
//! allows it, and each refusal names the JSON path as the input spelled it and the setting
//! that would allow it. Settings are judged by what Docker would do with them, not by their
//! spelling: capabilities are compared after Docker's own normalization, security options
//! and log options by allow-list, image references after Docker's normalization.
//! `berth run` does not use this: its file is the user's own.
//!
//! Host paths are judged here as text; the engine resolves them again when it creates the
//! container (symlinks followed) and binds the resolved path (`EngineConfig::host_paths`).

use crate::config::HostPolicy;
use berth_model::container::{ContainerSpec, PAUSE_IMAGE};
use berth_model::input::{InputPaths, Issue};
use berth_model::task::NetworkMode;
use berth_model::volume::{DockerVolumeConfiguration, VolumeScope};
use berth_model::{Task, VolumeKind};
use std::path::{Component, Path};

/// Docker's default capability set (moby's `oci/caps` defaults): adding one of these
/// changes nothing, so it needs no allowing.
pub const DOCKER_DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// tmpfs mount options that undo Docker's default `noexec,nosuid,nodev`.
pub const GUARDED_TMPFS_OPTIONS: [&str; 3] = ["exec", "suid", "dev"];

/// The prefix of the names berth gives its own task volumes.
const BERTH_VOLUME_PREFIX: &str = "berth-";

/// Log options that make dockerd neither connect anywhere nor read a host file, by driver
/// (the drivers berth honours). Any other option needs the driver in
/// `host.allowed_log_drivers`.
fn safe_log_option(driver: &str, option: &str) -> bool {
    const TAGGING: [&str; 5] = ["tag", "labels", "labels-regex", "env", "env-regex"];
    match driver {
        "json-file" => matches!(option, "max-size" | "max-file" | "compress") || TAGGING.contains(&option),
        "local" => matches!(option, "max-size" | "max-file" | "compress"),
        "journald" => TAGGING.contains(&option),
        "syslog" => matches!(option, "syslog-facility" | "syslog-format") || TAGGING.contains(&option),
        _ => false,
    }
}

/// Every setting of `task` the policy refuses, each naming its JSON path as the input
/// spelled it (`paths`). Empty: the task may run. Pure: no I/O.
pub fn refusals(task: &Task, paths: &InputPaths, policy: &HostPolicy) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut refuse = |path: String, message: String| issues.push(Issue { path, message });
    if task.network_mode == NetworkMode::Host && !policy.allow_host_network {
        refuse("networkMode".into(), not_allowed("host network", "host.allow_host_network"));
    }
    let user_containers = task.containers.iter().filter(|c| !c.spec.internal);
    for (i, c) in user_containers.enumerate() {
        container_refusals(&c.spec, &paths.container(i), policy, &mut refuse);
    }
    for (v, volume) in task.volumes.iter().enumerate() {
        let at = paths.volume(v);
        match &volume.kind {
            VolumeKind::Host { source_path } if !path_allowed(source_path, &policy.allowed_host_paths) => refuse(
                format!("{at}.host.sourcePath"),
                not_allowed(
                    &format!("host path {source_path} (outside the allowed prefixes)"),
                    "host.allowed_host_paths",
                ),
            ),
            VolumeKind::Docker(cfg) => docker_volume_refusals(&volume.name, cfg, &at, policy, &mut refuse),
            _ => {}
        }
    }
    issues
}

/// `what is not allowed by this berth's configuration (setting)`.
fn not_allowed(what: &str, setting: &str) -> String {
    format!("{what} is not allowed by this berth's configuration ({setting})")
}

fn container_refusals(spec: &ContainerSpec, at: &str, policy: &HostPolicy, refuse: &mut impl FnMut(String, String)) {
    if spec.privileged && !policy.allow_privileged {
        refuse(format!("{at}.privileged"), not_allowed("a privileged container", "host.allow_privileged"));
    }
    if names_pause_image(&spec.image) {
        refuse(
            format!("{at}.image"),
            format!("{} names berth's own pause image ({PAUSE_IMAGE}), which tasks may not use", spec.image),
        );
    }
    if policy.require_memory && spec.memory.is_none() {
        refuse(
            format!("{at}.memory"),
            "a hard memory limit is required by this berth's configuration (host.require_memory)".into(),
        );
    }
    let lp = &spec.linux_parameters;
    if !policy.allow_devices {
        for (d, device) in lp.devices.iter().enumerate() {
            refuse(
                format!("{at}.linuxParameters.devices[{d}]"),
                not_allowed(&format!("host device {}", device.host_path), "host.allow_devices"),
            );
        }
    }
    for (k, cap) in lp.capabilities_add.iter().enumerate() {
        if !capability_allowed(cap, &policy.allowed_capabilities) {
            refuse(
                format!("{at}.linuxParameters.capabilities.add[{k}]"),
                not_allowed(&format!("capability {cap:?} (beyond Docker's default set)"), "host.allowed_capabilities"),
            );
        }
    }
    for (k, option) in spec.docker_security_options.iter().enumerate() {
        if !security_option_allowed(option, &policy.allowed_security_options) {
            refuse(
                format!("{at}.dockerSecurityOptions[{k}]"),
                not_allowed(
                    &format!("security option {option:?} (only no-new-privileges is always allowed)"),
                    "host.allowed_security_options",
                ),
            );
        }
    }
    for (k, tmpfs) in lp.tmpfs.iter().enumerate() {
        for (m, option) in tmpfs.mount_options.iter().enumerate() {
            let lower = option.trim().to_ascii_lowercase();
            if GUARDED_TMPFS_OPTIONS.contains(&lower.as_str()) && !policy.allowed_tmpfs_options.contains(&lower) {
                refuse(
                    format!("{at}.linuxParameters.tmpfs[{k}].mountOptions[{m}]"),
                    not_allowed(&format!("tmpfs option {option:?}"), "host.allowed_tmpfs_options"),
                );
            }
        }
    }
    for (k, ulimit) in spec.ulimits.iter().enumerate() {
        let Some(&max) = policy.ulimit_max.get(&ulimit.name) else { continue };
        for (field, value) in [("softLimit", ulimit.soft_limit), ("hardLimit", ulimit.hard_limit)] {
            if exceeds(value, max) {
                let shown = if value == -1 { "unlimited".to_string() } else { value.to_string() };
                refuse(
                    format!("{at}.ulimits[{k}].{field}"),
                    format!("ulimit {} of {shown} is above this berth's bound of {max} (host.ulimit_max)", ulimit.name),
                );
            }
        }
    }
    if let Some(log) = &spec.log_configuration {
        log_refusals(&log.log_driver, &log.options, &format!("{at}.logConfiguration"), policy, refuse);
    }
}

fn log_refusals(
    driver: &str,
    options: &std::collections::BTreeMap<String, String>,
    at: &str,
    policy: &HostPolicy,
    refuse: &mut impl FnMut(String, String),
) {
    if policy.allowed_log_drivers.iter().any(|d| d == driver) {
        return;
    }
    for (key, value) in options {
        let path = format!("{at}.options[{key:?}]");
        if !safe_log_option(driver, key) {
            refuse(
                path,
                not_allowed(
                    &format!(
                        "log option {key:?} of driver {driver} (it can make dockerd connect somewhere or read a host file)"
                    ),
                    "host.allowed_log_drivers",
                ),
            );
            continue;
        }
        // With rotation on, a task may rotate sooner, never later.
        let rotated = matches!(driver, "json-file" | "local") && !policy.log_max_size.is_empty();
        let above = match key.as_str() {
            "max-size" if rotated => {
                let bound = log_size_bytes(&policy.log_max_size).unwrap_or(u64::MAX);
                log_size_bytes(value).is_none_or(|size| size > bound).then(|| policy.log_max_size.clone())
            }
            "max-file" if rotated => value
                .trim()
                .parse::<u32>()
                .map_or(true, |n| n > policy.log_max_file)
                .then(|| policy.log_max_file.to_string()),
            _ => None,
        };
        if let Some(bound) = above {
            let setting = if key == "max-size" { "host.log_max_size" } else { "host.log_max_file" };
            refuse(path, format!("{key} {value:?} is above this berth's bound of {bound} ({setting})"));
        }
    }
}

fn docker_volume_refusals(
    name: &str,
    cfg: &DockerVolumeConfiguration,
    at: &str,
    policy: &HostPolicy,
    refuse: &mut impl FnMut(String, String),
) {
    let driver = cfg.driver.as_deref().unwrap_or("local");
    let driver_allowed = policy.allowed_volume_drivers.iter().any(|d| d == driver);
    if driver != "local" && !driver_allowed {
        refuse(
            format!("{at}.dockerVolumeConfiguration.driver"),
            not_allowed(&format!("volume driver {driver:?}"), "host.allowed_volume_drivers"),
        );
    }
    if !cfg.driver_opts.is_empty() && !driver_allowed {
        refuse(
            format!("{at}.dockerVolumeConfiguration.driverOpts"),
            not_allowed(
                &format!(
                    "driver options for volume driver {driver:?} (local's type/o/device make host binds or network mounts)"
                ),
                "host.allowed_volume_drivers",
            ),
        );
    }
    if cfg.scope == VolumeScope::Shared {
        if name.starts_with(BERTH_VOLUME_PREFIX) {
            refuse(
                format!("{at}.name"),
                format!("shared volume {name:?}: names under {BERTH_VOLUME_PREFIX:?} are berth's own task volumes"),
            );
        } else if !policy.allowed_shared_volumes.iter().any(|v| v == name) {
            refuse(
                format!("{at}.name"),
                not_allowed(&format!("shared volume {name:?}"), "host.allowed_shared_volumes"),
            );
        }
    }
}

/// Whether `value` (a ulimit; -1 is unlimited) is above `max` (-1: no bound).
fn exceeds(value: i64, max: i64) -> bool {
    match (value, max) {
        (_, -1) => false,
        (-1, _) => true,
        (v, m) => v > m,
    }
}

/// A capability as Docker reads it: upper case, without `CAP_`.
fn normalize_capability(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").map(str::to_string).unwrap_or(upper)
}

/// Whether adding `cap` changes nothing (Docker's default set) or is allowed.
fn capability_allowed(cap: &str, allowed: &[String]) -> bool {
    let cap = normalize_capability(cap);
    DOCKER_DEFAULT_CAPABILITIES.contains(&cap.as_str())
        || allowed.iter().map(|a| normalize_capability(a)).any(|a| a == cap || a == "ALL")
}

/// A security option as `key=value` (Docker also takes the older `key:value`).
fn normalize_security_option(option: &str) -> String {
    let option = option.trim();
    match option.find(['=', ':']) {
        Some(i) => format!("{}={}", &option[..i], &option[i + 1..]),
        None => option.to_string(),
    }
}

/// `no-new-privileges` in any form Docker reads, or an allowed option.
fn security_option_allowed(option: &str, allowed: &[String]) -> bool {
    let option = normalize_security_option(option);
    if matches!(option.as_str(), "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges=false") {
        return true;
    }
    allowed.iter().any(|a| normalize_security_option(a) == option)
}

/// The repository an image reference names, as Docker normalizes it: the registry
/// (`docker.io` when none, `index.docker.io` being the same), `library/` for official
/// images, no tag or digest.
fn normalized_repository(image: &str) -> String {
    let name = image.trim().split('@').next().unwrap_or_default();
    let name = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first.to_ascii_lowercase(), rest),
        _ => ("docker.io".to_string(), name),
    };
    let domain = if domain == "index.docker.io" { "docker.io".to_string() } else { domain };
    if domain == "docker.io" && !path.contains('/') {
        format!("{domain}/library/{}", path.to_ascii_lowercase())
    } else {
        format!("{domain}/{}", path.to_ascii_lowercase())
    }
}

/// Whether `image` names berth's pause image's repository, with any tag, digest or
/// spelling of the registry.
pub fn names_pause_image(image: &str) -> bool {
    normalized_repository(image) == normalized_repository(PAUSE_IMAGE)
}

/// A size as Docker's log drivers read `max-size` (`units.RAMInBytes`): a number, an
/// optional space, an optional unit k, m, g, t or p (powers of 1024, any case, with an
/// optional `i` and `b`). `None` when it is not one (or not positive).
pub fn log_size_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let number: f64 = s[..end].parse().ok()?;
    let unit = s[end..].trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    let bytes = number * 1024f64.powi(power);
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
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
mod tests;
