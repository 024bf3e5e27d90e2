//! From a task's container to Docker's create request: names, labels and every setting
//! (SPEC 2 and 3). Settings go at create (the seed sent some at start, which current Docker
//! rejects).

use crate::config::{ContainerLimits, LogRotation, MetadataEndpoint};
use berth_docker::{ContainerConfig, HealthConfig, HostConfig, LogConfig, PortSpec, labels};
use berth_model::container::{Container, LogConfiguration};
use berth_model::task::{NetworkMode, Task, docker_safe};
use berth_model::volume::VolumeKind;
use std::collections::BTreeMap;

/// Docker's smallest memory limit, in MiB; smaller non-zero limits are raised to it.
pub const MIN_MEMORY_MIB: u64 = 6;
/// The kernel's smallest CPU shares; 0 or absent gives it (Docker would read 0 as 1024).
pub const MIN_CPU_SHARES: u64 = 2;

/// `berth-<family>-<version>-<name>-<hex>`, with only `[A-Za-z0-9_.-]`.
pub fn docker_name(task: &Task, container: &Container, random: u64) -> String {
    docker_safe(&format!("berth-{}-{}-{}-{random:016x}", task.family, task.version, container.name()))
}

/// Why a container cannot be created as its task asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

/// The environment a container gets from the local secret source: its environment files'
/// `KEY=value` lines, then its secrets. A reference the source lacks is an error naming
/// every missing one (never a value).
fn secret_environment(
    container: &Container,
    secrets: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, SettingsError> {
    let spec = &container.spec;
    let mut env = Vec::new();
    let mut missing = Vec::new();
    for file in &spec.environment_files {
        match secrets.get(file) {
            Some(content) => {
                for line in content.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                    if let Some((k, v)) = line.split_once('=') {
                        env.push((k.trim().to_string(), v.to_string()));
                    }
                }
            }
            None => missing.push(format!("environment file {file}")),
        }
    }
    for secret in &spec.secrets {
        match secrets.get(&secret.value_from) {
            Some(value) => env.push((secret.name.clone(), value.clone())),
            None => missing.push(format!("{} (valueFrom {})", secret.name, secret.value_from)),
        }
    }
    if missing.is_empty() {
        Ok(env)
    } else {
        Err(SettingsError(format!(
            "secrets of container \"{}\" not found in the local secret source: {}",
            spec.name,
            missing.join(", ")
        )))
    }
}

/// The variable holding a container's task metadata endpoint v3 URL.
pub const METADATA_URI_V3: &str = "ECS_CONTAINER_METADATA_URI";
/// The variable holding a container's task metadata endpoint v4 URL.
pub const METADATA_URI_V4: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// The two metadata endpoint variables of `container` (none when its task's network mode
/// has no endpoint address or it has no metadata id).
fn metadata_environment(task: &Task, container: &Container, endpoint: &MetadataEndpoint) -> Vec<(String, String)> {
    match (endpoint.for_mode(task.network_mode), &container.metadata_id) {
        (Some(addr), Some(id)) => vec![
            (METADATA_URI_V3.to_string(), format!("http://{addr}/v3/{id}")),
            (METADATA_URI_V4.to_string(), format!("http://{addr}/v4/{id}")),
        ],
        _ => Vec::new(),
    }
}

/// The create request for `container` of `task`, owned by berth instance `instance`, with
/// secrets from the local source `secrets`, the host's `limits`, and the metadata
/// endpoint's address (its variables replace any the task sets itself, as in ECS).
pub fn container_config(
    task: &Task,
    container: &Container,
    instance: &str,
    secrets: &BTreeMap<String, String>,
    limits: &ContainerLimits,
    metadata: &MetadataEndpoint,
) -> Result<ContainerConfig, SettingsError> {
    let spec = &container.spec;
    let mut secret_env = secret_environment(container, secrets)?;
    let metadata_env = metadata_environment(task, container, metadata);
    if !metadata_env.is_empty() {
        secret_env.retain(|(k, _)| k != METADATA_URI_V3 && k != METADATA_URI_V4);
    }
    let name = container
        .docker_name
        .clone()
        .ok_or_else(|| SettingsError(format!("container \"{}\" has no Docker name yet", spec.name)))?;
    let docker_name_of = |target: &str| -> Result<String, SettingsError> {
        task.container(target)
            .and_then(|c| c.docker_name.clone())
            .ok_or_else(|| SettingsError(format!("container \"{target}\" of the task has no Docker name yet")))
    };
    let mut config_labels = spec.docker_labels.clone();
    config_labels.insert(labels::INSTANCE.into(), instance.into());
    config_labels.insert(labels::TASK_ARN.into(), task.arn.clone());
    config_labels.insert(labels::CONTAINER_NAME.into(), spec.name.clone());
    config_labels.insert(labels::FAMILY.into(), task.family.clone());
    config_labels.insert(labels::VERSION.into(), task.version.clone());

    let mut host = HostConfig {
        memory_bytes: spec.memory.filter(|m| *m > 0).map(|m| mib(m.max(MIN_MEMORY_MIB))),
        memory_reservation_bytes: spec.memory_reservation.filter(|m| *m > 0).map(|m| mib(m.max(MIN_MEMORY_MIB))),
        cpu_shares: Some(i64::try_from(spec.cpu.max(MIN_CPU_SHARES)).unwrap_or(i64::MAX)),
        readonly_rootfs: spec.readonly_root_filesystem,
        privileged: spec.privileged,
        security_opt: spec.docker_security_options.to_vec(),
        sysctls: spec.system_controls.clone(),
        dns: spec.dns_servers.to_vec(),
        dns_search: spec.dns_search_domains.to_vec(),
        extra_hosts: spec.extra_hosts.iter().map(|h| format!("{}:{}", h.hostname, h.ip_address)).collect(),
        ulimits: spec.ulimits.iter().map(|u| (u.name.clone(), u.soft_limit, u.hard_limit)).collect(),
        cap_add: spec.linux_parameters.capabilities_add.to_vec(),
        cap_drop: spec.linux_parameters.capabilities_drop.to_vec(),
        init: spec.linux_parameters.init_process_enabled,
        shm_size_bytes: spec.linux_parameters.shared_memory_size.map(mib),
        tmpfs: spec
            .linux_parameters
            .tmpfs
            .iter()
            .map(|t| {
                let mut opts = t.mount_options.clone();
                opts.push(format!("size={}m", t.size));
                (t.container_path.clone(), opts.join(","))
            })
            .collect(),
        devices: spec
            .linux_parameters
            .devices
            .iter()
            .map(|d| {
                let perms: String = d.permissions.iter().filter_map(|p| p.chars().next()).collect();
                let perms = if perms.is_empty() { "rwm".to_string() } else { perms };
                (d.host_path.clone(), d.container_path.clone().unwrap_or_else(|| d.host_path.clone()), perms)
            })
            .collect(),
        log_config: log_config(spec.log_configuration.as_deref(), limits.log_rotation.as_ref()),
        pids_limit: limits.pids_limit,
        ..HostConfig::default()
    };
    for link in &spec.links {
        host.links.push(format!("{}:{}", docker_name_of(&link.name)?, link.alias.as_deref().unwrap_or(&link.name)));
    }
    for from in &spec.volumes_from {
        let ro = if from.read_only { ":ro" } else { "" };
        host.volumes_from.push(format!("{}{ro}", docker_name_of(&from.source_container)?));
    }
    for m in &spec.mount_points {
        let volume = task.volume(&m.source_volume).ok_or_else(|| {
            SettingsError(format!("mountPoints of \"{}\": no volume named \"{}\"", spec.name, m.source_volume))
        })?;
        let source = match &volume.kind {
            VolumeKind::Host { source_path } => source_path.clone(),
            VolumeKind::Empty | VolumeKind::Docker(_) => task.docker_volume_name(volume),
            VolumeKind::Unsupported { kind } => {
                return Err(SettingsError(format!("volume \"{}\": {kind} is not supported by berth", volume.name)));
            }
        };
        let ro = if m.read_only { ":ro" } else { "" };
        host.binds.push(format!("{source}:{}{ro}", m.container_path));
    }
    let ports = || {
        spec.port_mappings
            .iter()
            .map(|p| PortSpec { container_port: p.container_port, host_port: p.host_port, protocol: p.protocol })
            .collect()
    };
    match task.network_mode {
        NetworkMode::Awsvpc if spec.internal => {
            host.network_mode = Some("bridge".into());
            host.ports = ports();
        }
        NetworkMode::Awsvpc => {
            let pause = task
                .containers
                .iter()
                .find(|c| c.spec.internal)
                .and_then(|c| c.docker_name.clone())
                .ok_or_else(|| SettingsError("the task's pause container has no Docker name yet".into()))?;
            host.network_mode = Some(format!("container:{pause}"));
        }
        mode => {
            host.network_mode = Some(mode.as_str().to_string());
            if mode == NetworkMode::Bridge {
                host.ports = ports();
            }
        }
    }
    Ok(ContainerConfig {
        name,
        image: spec.image.clone(),
        command: spec.command.to_vec(),
        entry_point: spec.entry_point.to_vec(),
        env: spec
            .environment
            .iter()
            .filter(|(k, _)| metadata_env.iter().all(|(m, _)| m != *k))
            .chain(secret_env.iter().chain(&metadata_env).map(|(k, v)| (k, v)))
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        labels: config_labels,
        working_dir: spec.working_directory.clone(),
        user: spec.user.clone(),
        hostname: spec.hostname.clone(),
        health_check: spec.health_check.as_ref().map(|h| HealthConfig {
            test: h.command.to_vec(),
            interval_secs: h.interval,
            timeout_secs: h.timeout,
            retries: h.retries,
            start_period_secs: h.start_period,
        }),
        stop_timeout: spec.stop_timeout,
        network_disabled: spec.disable_networking,
        open_stdin: spec.interactive,
        tty: spec.pseudo_terminal,
        host,
    })
}

/// The container's log driver, with the host's rotation for json-file and local logs (the
/// task's own options first); json-file with rotation when the task names no driver and
/// rotation is on.
fn log_config(given: Option<&LogConfiguration>, rotation: Option<&LogRotation>) -> Option<LogConfig> {
    let mut config = match (given, rotation) {
        (Some(l), _) => LogConfig { driver: l.log_driver.clone(), options: l.options.clone() },
        (None, Some(_)) => LogConfig { driver: "json-file".into(), options: BTreeMap::new() },
        (None, None) => return None,
    };
    if let Some(rotation) = rotation
        && matches!(config.driver.as_str(), "json-file" | "local")
    {
        config.options.entry("max-size".into()).or_insert_with(|| rotation.max_size.clone());
        config.options.entry("max-file".into()).or_insert_with(|| rotation.max_file.to_string());
    }
    Some(config)
}

fn mib(m: u64) -> i64 {
    i64::try_from(m.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation() -> LogRotation {
        LogRotation { max_size: "10m".into(), max_file: 5 }
    }

    fn given(driver: &str, options: &[(&str, &str)]) -> LogConfiguration {
        LogConfiguration {
            log_driver: driver.into(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn options(config: &LogConfig) -> Vec<(&str, &str)> {
        config.options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn without_rotation_the_task_s_log_configuration_goes_as_given() {
        assert_eq!(log_config(None, None), None);
        let journald = given("journald", &[("tag", "x")]);
        let config = log_config(Some(&journald), None).expect("a driver");
        assert_eq!((config.driver.as_str(), options(&config)), ("journald", vec![("tag", "x")]));
    }

    #[test]
    fn rotation_fills_in_json_file_and_local_and_keeps_the_task_s_own_values() {
        let config = log_config(None, Some(&rotation())).expect("json-file by default");
        assert_eq!(
            (config.driver.as_str(), options(&config)),
            ("json-file", vec![("max-file", "5"), ("max-size", "10m")])
        );
        let local = given("local", &[("max-size", "1m")]);
        let config = log_config(Some(&local), Some(&rotation())).expect("local");
        assert_eq!(options(&config), [("max-file", "5"), ("max-size", "1m")]);
        let syslog = given("syslog", &[]);
        let config = log_config(Some(&syslog), Some(&rotation())).expect("syslog");
        assert!(config.options.is_empty(), "only json-file and local rotate");
    }
}
