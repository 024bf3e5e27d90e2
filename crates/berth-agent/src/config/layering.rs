//! The layering: the defaults, the TOML file, the `BERTH_*` variables and the command
//! line, each overriding the one before; which setting each key and variable sets; and
//! where each value came from, for errors.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use berth_docker::auth::Secret;
use toml::Value as TomlValue;

use super::auth::normalize_auth_type;
use super::values::{
    Raw, at_least_a_second, at_least_one, attributes, auth_type, body_limit, boolean, cluster_store, count, duration,
    host_names, host_paths, host_ports, log_max_file, log_size, metadata_port, names, node_lease_ttl, non_empty,
    parse_pull_behavior, path, per_cycle, pids_limit, positive, secret_text, tcp, text, tmpfs_options, type_name,
    ulimit_max, whole_seconds,
};
use super::{AgentConfig, CLIENT_ENV, ConfigError, ENV_PREFIX, Origin, Overrides, SYSTEM_DATA_DIR};

/// One setting: its key (tables joined with `.`) and how a value is applied.
pub(super) struct Setting {
    key: &'static str,
    set: fn(&mut AgentConfig, Raw<'_>) -> Result<(), String>,
}

/// The tables of the file.
pub(super) const TABLES: &[&str] = &["timeouts", "host", "image_cleanup", "resources"];

/// Every setting, in the order of the documentation.
pub(super) const SETTINGS: &[Setting] = &[
    Setting { key: "data_dir", set: |c, r| set(&mut c.data_dir, path(r)?) },
    Setting { key: "cluster", set: |c, r| set(&mut c.cluster, non_empty(r)?.to_owned()) },
    Setting { key: "cluster_store", set: |c, r| set(&mut c.cluster_store, cluster_store(r)?) },
    Setting { key: "node", set: |c, r| set(&mut c.node, Some(non_empty(r)?.trim().to_owned())) },
    Setting { key: "node_attributes", set: |c, r| set(&mut c.node_attributes, attributes(r)?) },
    Setting { key: "node_lease_ttl", set: |c, r| set(&mut c.node_lease_ttl, node_lease_ttl(r)?) },
    Setting { key: "tcp", set: |c, r| set(&mut c.tcp, tcp(r)?) },
    Setting { key: "body_limit", set: |c, r| set(&mut c.body_limit, body_limit(r)?) },
    Setting { key: "log_format", set: |c, r| set(&mut c.log_format, text(r, "a log format")?.parse()?) },
    Setting { key: "log_level", set: |c, r| set(&mut c.log_level, non_empty(r)?.trim().to_owned()) },
    Setting { key: "timeouts.pull", set: |c, r| set(&mut c.timeouts.pull, positive(r)?) },
    Setting { key: "timeouts.create", set: |c, r| set(&mut c.timeouts.create, positive(r)?) },
    Setting { key: "timeouts.start", set: |c, r| set(&mut c.timeouts.start, positive(r)?) },
    Setting { key: "timeouts.stop_extra", set: |c, r| set(&mut c.timeouts.stop_extra, positive(r)?) },
    Setting { key: "timeouts.remove", set: |c, r| set(&mut c.timeouts.remove, positive(r)?) },
    Setting { key: "timeouts.inspect", set: |c, r| set(&mut c.timeouts.inspect, positive(r)?) },
    Setting { key: "timeouts.volume", set: |c, r| set(&mut c.timeouts.volume, positive(r)?) },
    Setting { key: "default_stop_timeout", set: |c, r| set(&mut c.default_stop_timeout, whole_seconds(r)?) },
    Setting { key: "task_cleanup_wait", set: |c, r| set(&mut c.task_cleanup_wait, at_least_a_second(r)?) },
    Setting {
        key: "pull_behavior",
        set: |c, r| set(&mut c.pull_behavior, parse_pull_behavior(text(r, "a pull behavior")?)?),
    },
    Setting { key: "auth_type", set: |c, r| set(&mut c.auth_type, auth_type(r)?) },
    Setting {
        key: "auth_data",
        set: |c, r| {
            c.auth_data = Secret::new(secret_text(r)?);
            c.auth_data_file = None;
            Ok(())
        },
    },
    Setting {
        key: "auth_data_file",
        set: |c, r| {
            c.auth_data_file = Some(path(r)?);
            c.auth_data = Secret::default();
            Ok(())
        },
    },
    Setting { key: "secrets_file", set: |c, r| set(&mut c.secrets_file, Some(path(r)?)) },
    Setting { key: "host.allow_privileged", set: |c, r| set(&mut c.host.allow_privileged, boolean(r)?) },
    Setting { key: "host.allow_host_network", set: |c, r| set(&mut c.host.allow_host_network, boolean(r)?) },
    Setting { key: "host.allow_devices", set: |c, r| set(&mut c.host.allow_devices, boolean(r)?) },
    Setting { key: "host.allowed_host_paths", set: |c, r| set(&mut c.host.allowed_host_paths, host_paths(r)?) },
    Setting { key: "host.allowed_capabilities", set: |c, r| set(&mut c.host.allowed_capabilities, names(r)?) },
    Setting { key: "host.allowed_security_options", set: |c, r| set(&mut c.host.allowed_security_options, names(r)?) },
    Setting { key: "host.allowed_volume_drivers", set: |c, r| set(&mut c.host.allowed_volume_drivers, names(r)?) },
    Setting { key: "host.allowed_shared_volumes", set: |c, r| set(&mut c.host.allowed_shared_volumes, names(r)?) },
    Setting { key: "host.allowed_log_drivers", set: |c, r| set(&mut c.host.allowed_log_drivers, names(r)?) },
    Setting {
        key: "host.allowed_tmpfs_options",
        set: |c, r| set(&mut c.host.allowed_tmpfs_options, tmpfs_options(r)?),
    },
    Setting { key: "host.ulimit_max", set: |c, r| ulimit_max(&mut c.host.ulimit_max, r) },
    Setting { key: "host.require_memory", set: |c, r| set(&mut c.host.require_memory, boolean(r)?) },
    Setting { key: "host.pids_limit", set: |c, r| set(&mut c.host.pids_limit, pids_limit(r)?) },
    Setting { key: "host.log_max_size", set: |c, r| set(&mut c.host.log_max_size, log_size(r)?) },
    Setting { key: "host.log_max_file", set: |c, r| set(&mut c.host.log_max_file, log_max_file(r)?) },
    Setting { key: "image_cleanup.enabled", set: |c, r| set(&mut c.image_cleanup.enabled, boolean(r)?) },
    Setting { key: "image_cleanup.interval", set: |c, r| set(&mut c.image_cleanup.interval, at_least_a_second(r)?) },
    Setting { key: "image_cleanup.min_age", set: |c, r| set(&mut c.image_cleanup.min_age, duration(r)?) },
    Setting { key: "image_cleanup.per_cycle", set: |c, r| set(&mut c.image_cleanup.per_cycle, per_cycle(r)?) },
    Setting { key: "resources.cpu", set: |c, r| set(&mut c.resources.cpu, Some(count(r)?)) },
    Setting { key: "resources.memory", set: |c, r| set(&mut c.resources.memory, Some(count(r)?)) },
    Setting { key: "resources.reserved_cpu", set: |c, r| set(&mut c.resources.reserved_cpu, count(r)?) },
    Setting { key: "resources.reserved_memory", set: |c, r| set(&mut c.resources.reserved_memory, count(r)?) },
    Setting { key: "resources.reserved_ports", set: |c, r| set(&mut c.resources.reserved_ports, host_ports(r)?) },
    Setting { key: "orphan_grace", set: |c, r| set(&mut c.orphan_grace, duration(r)?) },
    Setting { key: "docker_concurrency", set: |c, r| set(&mut c.docker_concurrency, at_least_one(r)?) },
    Setting { key: "steady_state_check", set: |c, r| set(&mut c.steady_state_check, at_least_a_second(r)?) },
    Setting { key: "token_file", set: |c, r| set(&mut c.token_file, Some(path(r)?)) },
    Setting { key: "tcp_allow_remote", set: |c, r| set(&mut c.tcp_allow_remote, boolean(r)?) },
    Setting { key: "tcp_allowed_hosts", set: |c, r| set(&mut c.tcp_allowed_hosts, host_names(r)?) },
    Setting { key: "tcp_open_introspection", set: |c, r| set(&mut c.tcp_open_introspection, boolean(r)?) },
    Setting { key: "tcp_max_connections", set: |c, r| set(&mut c.tcp_max_connections, at_least_one(r)?) },
    Setting { key: "max_log_followers", set: |c, r| set(&mut c.max_log_followers, at_least_one(r)?) },
    Setting { key: "request_timeout", set: |c, r| set(&mut c.request_timeout, positive(r)?) },
    Setting { key: "tcp_header_timeout", set: |c, r| set(&mut c.tcp_header_timeout, positive(r)?) },
    Setting { key: "tcp_idle_timeout", set: |c, r| set(&mut c.tcp_idle_timeout, positive(r)?) },
    Setting { key: "metadata_port", set: |c, r| set(&mut c.metadata_port, metadata_port(r)?) },
];

pub(super) fn set<T>(field: &mut T, value: T) -> Result<(), String> {
    *field = value;
    Ok(())
}

/// The environment variable of a setting: `BERTH_` and the key upper-cased, tables
/// joined with `_` (`timeouts.pull` → `BERTH_TIMEOUTS_PULL`).
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every setting's key, tables joined with `.` (`data_dir`, `timeouts.pull`, ...).
pub fn setting_keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|s| s.key)
}

/// Where each setting of a load came from, for errors about combinations.
#[derive(Default)]
pub(super) struct Sources(BTreeMap<&'static str, Origin>);

impl Sources {
    pub(super) fn origin(&self, key: &'static str) -> Origin {
        self.0.get(key).cloned().unwrap_or_else(|| Origin::Setting { key: key.to_owned() })
    }
}

impl AgentConfig {
    /// The configuration from the defaults, then `file` (when given; it must exist),
    /// then the `BERTH_*` variables of `env`, then `flags`: each layer overrides the
    /// ones before.
    ///
    /// `env` is the process environment as the caller sees it; besides the settings'
    /// variables it gives `XDG_STATE_HOME` and `HOME` (the default data directory) and
    /// `DOCKER_CONFIG` (the `docker-config` auth type without a path). `BERTH_*`
    /// variables that are not settings (such as the clients' `BERTH_HOST`) are ignored,
    /// as are empty ones.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &Overrides,
    ) -> Result<AgentConfig, ConfigError> {
        let mut config = AgentConfig { data_dir: default_data_dir(env), ..AgentConfig::default() };
        let mut sources = Sources::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                what: "config file",
                path: path.to_owned(),
                error,
            })?;
            let table = parse_toml(path, &text)?;
            let mut layer = Sources::default();
            apply_table(&mut config, &mut layer, path, &table, "")?;
            merge_layer(&mut sources, layer)?;
        }
        let mut layer = Sources::default();
        for setting in SETTINGS {
            let var = env_var(setting.key);
            let Some(value) = env.get(&var).filter(|v| !v.is_empty()) else { continue };
            let origin = Origin::Env { var };
            (setting.set)(&mut config, Raw::Text(value))
                .map_err(|reason| ConfigError::Invalid { origin: origin.clone(), reason })?;
            layer.0.insert(setting.key, origin);
        }
        merge_layer(&mut sources, layer)?;
        config.apply_flags(flags, &mut sources)?;

        config.auth_type = normalize_auth_type(&config.auth_type)
            .map_err(|reason| ConfigError::Invalid { origin: sources.origin("auth_type"), reason })?;
        config.check_auth(env, &sources)?;
        config.check_tcp_with(&sources)?;
        config.check_cluster_with(&sources)?;
        config.token_file = Some(config.token_path());
        Ok(config)
    }

    fn apply_flags(&mut self, flags: &Overrides, sources: &mut Sources) -> Result<(), ConfigError> {
        let invalid = |flag: &str, reason: String| ConfigError::Invalid { origin: flag_origin(flag), reason };
        if let Some(dir) = &flags.data_dir {
            if dir.as_os_str().is_empty() {
                return Err(invalid("--data-dir", "empty path".to_owned()));
            }
            self.data_dir = dir.clone();
            sources.0.insert("data_dir", flag_origin("--data-dir"));
        }
        if let Some(value) = &flags.tcp {
            self.tcp = tcp(Raw::Text(value)).map_err(|reason| invalid("--tcp", reason))?;
            sources.0.insert("tcp", flag_origin("--tcp"));
        }
        if let Some(format) = flags.log_format {
            self.log_format = format;
            sources.0.insert("log_format", flag_origin("--log-format"));
        }
        if let Some(store) = &flags.cluster_store {
            self.cluster_store = cluster_store(Raw::Text(store)).map_err(|reason| invalid("--cluster", reason))?;
            sources.0.insert("cluster_store", flag_origin("--cluster"));
        }
        if let Some(name) = &flags.cluster_name {
            self.cluster = non_empty(Raw::Text(name)).map_err(|reason| invalid("--cluster-name", reason))?.to_owned();
            sources.0.insert("cluster", flag_origin("--cluster-name"));
        }
        if let Some(node) = &flags.node {
            self.node = Some(non_empty(Raw::Text(node)).map_err(|reason| invalid("--node", reason))?.trim().to_owned());
            sources.0.insert("node", flag_origin("--node"));
        }
        if let Some(level) = &flags.log_level {
            self.log_level = non_empty(Raw::Text(level)).map_err(|reason| invalid("--log-level", reason))?.to_owned();
            sources.0.insert("log_level", flag_origin("--log-level"));
        }
        Ok(())
    }

    /// Refuses a TCP address that is not loopback unless `tcp_allow_remote` is set
    /// ([`AgentConfig::load`] does this; a configuration built in code is checked by
    /// `Agent::start`).
    pub fn check_tcp(&self) -> Result<(), ConfigError> {
        self.check_tcp_with(&Sources::default())
    }

    fn check_tcp_with(&self, sources: &Sources) -> Result<(), ConfigError> {
        match self.tcp {
            Some(addr) if !addr.ip().is_loopback() && !self.tcp_allow_remote => Err(ConfigError::Invalid {
                origin: sources.origin("tcp"),
                reason: format!(
                    "{addr} is not a loopback address: the bearer token and task contents would travel in clear \
                     text; set tcp_allow_remote = true (BERTH_TCP_ALLOW_REMOTE) to allow it"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// In cluster mode (`cluster_store` set): a node name is given, and it and the cluster
    /// name can be key segments (`[A-Za-z0-9._-]`, 1 to 128).
    fn check_cluster_with(&self, sources: &Sources) -> Result<(), ConfigError> {
        if self.cluster_store.is_empty() {
            return Ok(());
        }
        let Some(node) = &self.node else {
            return Err(ConfigError::Invalid {
                origin: sources.origin("cluster_store"),
                reason: "cluster mode needs a node name: set node (BERTH_NODE, --node)".to_owned(),
            });
        };
        berth_cluster::keys::check_name("node name", node)
            .map_err(|reason| ConfigError::Invalid { origin: sources.origin("node"), reason })?;
        berth_cluster::keys::check_name("cluster name", &self.cluster)
            .map_err(|reason| ConfigError::Invalid { origin: sources.origin("cluster"), reason })?;
        Ok(())
    }

    /// The `BERTH_*` variables of `env` that are neither settings nor the clients'
    /// ([`CLIENT_ENV`]): [`AgentConfig::load`] ignores them; a caller may warn about
    /// them (a misspelt setting, say).
    pub fn unrecognized_env(env: &BTreeMap<String, String>) -> Vec<String> {
        let known: BTreeSet<String> = SETTINGS.iter().map(|s| env_var(s.key)).collect();
        env.keys()
            .filter(|k| k.starts_with(ENV_PREFIX) && !known.contains(*k) && !CLIENT_ENV.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

pub(super) fn flag_origin(flag: &str) -> Origin {
    Origin::Flag { flag: flag.to_owned() }
}

pub(super) fn setting_origin(key: &str) -> Origin {
    Origin::Setting { key: key.to_owned() }
}

/// Adds a layer's sources; one layer may not give both spellings of the auth data.
pub(super) fn merge_layer(sources: &mut Sources, layer: Sources) -> Result<(), ConfigError> {
    if let (Some(first), Some(second)) = (layer.0.get("auth_data"), layer.0.get("auth_data_file")) {
        return Err(ConfigError::Conflict { first: first.clone(), second: second.clone() });
    }
    for (key, origin) in layer.0 {
        match key {
            "auth_data" => sources.0.remove("auth_data_file"),
            "auth_data_file" => sources.0.remove("auth_data"),
            _ => None,
        };
        sources.0.insert(key, origin);
    }
    Ok(())
}

/// The daemon's default data directory: `berth/daemon` in the user's state directory
/// ([`state_home`]), else [`SYSTEM_DATA_DIR`] (a system service, with no home).
fn default_data_dir(env: &BTreeMap<String, String>) -> PathBuf {
    let var = |name: &str| env.get(name).map(OsStr::new);
    match state_home(var("XDG_STATE_HOME"), var("HOME")) {
        Some(state) => state.join("berth").join("daemon"),
        None => PathBuf::from(SYSTEM_DATA_DIR),
    }
}

/// The user's state directory, as the XDG base directory specification has it:
/// `$XDG_STATE_HOME`, else `$HOME/.local/state`; a relative or empty value is ignored
/// (the specification calls it invalid). `None` when neither gives one. The daemon's
/// default data directory and `berth run`'s fresh directories are under it.
pub fn state_home(xdg_state_home: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let absolute = |value: Option<&OsStr>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg_state_home).or_else(|| absolute(home).map(|h| h.join(".local").join("state")))
}

/// Parses the file; a syntax error gives the position and the parser's expectation,
/// never the text around it (it could be a credential).
pub(super) fn parse_toml(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str::<toml::Table>(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => line_column(text, span.start),
            None => (1, 1),
        };
        ConfigError::Syntax { path: path.to_owned(), line, column, message: e.message().trim().to_owned() }
    })
}

/// The line and column (both from 1, the column in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Applies a table of the file whose keys are under `prefix`; a key that is neither a
/// setting nor a table is refused.
pub(super) fn apply_table(
    config: &mut AgentConfig,
    layer: &mut Sources,
    path: &Path,
    table: &toml::Table,
    prefix: &str,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let origin = || Origin::File { path: path.to_owned(), key: key.clone() };
        if prefix.is_empty() && TABLES.contains(&name.as_str()) {
            match value {
                TomlValue::Table(inner) => apply_table(config, layer, path, inner, &key)?,
                other => {
                    return Err(ConfigError::Invalid {
                        origin: origin(),
                        reason: format!("expected a table, found {}", type_name(other)),
                    });
                }
            }
            continue;
        }
        let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
            return Err(ConfigError::UnknownKey { path: path.to_owned(), key });
        };
        (setting.set)(config, Raw::Toml(value)).map_err(|reason| ConfigError::Invalid { origin: origin(), reason })?;
        layer.0.insert(setting.key, origin());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_a_distinct_variable_and_a_known_table() {
        let vars: BTreeSet<String> = SETTINGS.iter().map(|s| env_var(s.key)).collect();
        assert_eq!(vars.len(), SETTINGS.len());
        for s in SETTINGS {
            if let Some((table, _)) = s.key.split_once('.') {
                assert!(TABLES.contains(&table), "{}", s.key);
            }
            assert!(!CLIENT_ENV.contains(&env_var(s.key).as_str()));
        }
    }

    #[test]
    fn positions() {
        assert_eq!(line_column("a\nbc\n", 3), (2, 2));
        assert_eq!(line_column("é=", 1), (1, 1));
        assert_eq!(line_column("", 5), (1, 1));
    }
}
