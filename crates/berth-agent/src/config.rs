//! The daemon's configuration (`berth daemon`, SPEC 7 and 9).
//!
//! Four layers, each overriding the one before: the defaults ([`AgentConfig::default`],
//! with the data directory taken from the environment), the TOML file, the `BERTH_*`
//! environment variables, and the command line ([`Overrides`]). See
//! `docs/daemon-config.md` for every setting.
//!
//! The module is pure apart from reading files it is pointed at: [`AgentConfig::load`]
//! reads the configuration file only, and the environment is passed in, never read from
//! the process, so the same inputs always give the same configuration.
//! [`AgentConfig::engine_config`] reads the secrets file and the auth data file.
//!
//! Every error names where the bad value came from (`<file>: key timeouts.pull`,
//! `BERTH_TIMEOUTS_PULL`, `--tcp`). Registry credentials (`auth_data`) are kept in a
//! [`Secret`] and never appear in an error or in `{:?}`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use berth_docker::auth::{AuthError, AuthSource, DOCKER_CONFIG_ENV, DockerAuth, Secret, docker_config_path_from};
use berth_engine::{ContainerLimits, EngineConfig, LogRotation, PullBehavior, Timeouts};
use berth_model::plan::PlanConfig;
use serde_json::Value as JsonValue;
use toml::Value as TomlValue;

/// The TCP port of the API when TCP is switched on without a port (the ECS
/// introspection API's).
pub const DEFAULT_TCP_PORT: u16 = 51678;

/// The data directory when neither `XDG_STATE_HOME` nor `HOME` is set (a system
/// service).
pub const SYSTEM_DATA_DIR: &str = "/var/lib/berth";

/// The largest request body the API accepts by default: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The prefix of every environment variable the daemon reads.
pub const ENV_PREFIX: &str = "BERTH_";

/// `BERTH_*` variables that are not settings of this module: the clients' (`BERTH_HOST`,
/// `BERTH_TOKEN`), the daemon's `--config` (`BERTH_CONFIG`) and the crash-point hook of
/// test builds (`BERTH_CRASH_AT`: only a binary built with berth-store's `crash-points`
/// feature reads it; other builds ignore it). The daemon does not warn about them.
pub const CLIENT_ENV: &[&str] = &["BERTH_HOST", "BERTH_TOKEN", "BERTH_CONFIG", "BERTH_CRASH_AT"];

/// The name of the token file in the data directory when `token_file` is not set.
pub const TOKEN_FILE_NAME: &str = "token";

/// No duration setting may be this long or longer (100 years): a sanity bound that
/// keeps every later computation with it from overflowing.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The daemon's configuration. Field names are the TOML keys (grouped in the tables
/// `[timeouts]`, `[host]` and `[image_cleanup]` where the field is a group).
///
/// `{:?}` never shows the registry credentials: `auth_data` is a [`Secret`].
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the daemon keeps its state, its API socket and its token.
    /// Default: `$XDG_STATE_HOME/berth/daemon`, else `$HOME/.local/state/berth/daemon`,
    /// else [`SYSTEM_DATA_DIR`].
    pub data_dir: PathBuf,
    /// The cluster name the introspection API reports (`default`).
    pub cluster: String,
    /// Where the API also listens on TCP; `None` (the default): the unix socket only.
    pub tcp: Option<SocketAddr>,
    /// The largest request body the API accepts, in bytes (1 MiB).
    pub body_limit: usize,
    /// How log lines are written (human).
    pub log_format: LogFormat,
    /// The log filter: a level or a filter directive (`info`).
    pub log_level: String,
    /// Docker call timeouts.
    pub timeouts: Timeouts,
    /// Stop timeout for containers without `stopTimeout` (30 s); whole seconds.
    pub default_stop_timeout: Duration,
    /// How long a STOPPED task's containers stay before cleanup (3 h, at least 1 s).
    pub task_cleanup_wait: Duration,
    /// How images are pulled (default).
    pub pull_behavior: PullBehavior,
    /// The registry credential source type: `none` (the default), `docker`,
    /// `dockercfg` or `docker-config` (lower case once loaded).
    pub auth_type: String,
    /// The source's data: JSON for `docker` and `dockercfg`, a file path for
    /// `docker-config`. Never printed.
    pub auth_data: Secret,
    /// A file holding the auth data instead (read by [`AgentConfig::engine_config`]);
    /// setting one of `auth_data` and `auth_data_file` clears the other.
    pub auth_data_file: Option<PathBuf>,
    /// The local secret source: a JSON object mapping each secret's `valueFrom` to its
    /// value (none by default).
    pub secrets_file: Option<PathBuf>,
    /// What task definitions may do to the host.
    pub host: HostPolicy,
    /// Removal of unused images berth pulled (SPEC 7).
    pub image_cleanup: ImageCleanup,
    /// How long a berth container that no task owns is left alone before removal (60 s).
    pub orphan_grace: Duration,
    /// How many Docker calls other than pulls may be in flight at once (64).
    pub docker_concurrency: usize,
    /// How often every container not known to be STOPPED is inspected (60 s).
    pub steady_state_check: Duration,
    /// Whether `tcp` may be an address that is not loopback (false): the token and task
    /// contents then travel in clear text.
    pub tcp_allow_remote: bool,
    /// Host names accepted in a TCP request's `Host` header besides IP literals and
    /// `localhost` (none; lower case once loaded).
    pub tcp_allowed_hosts: Vec<String>,
    /// Whether the ECS introspection endpoints (`GET /`, `/v1/metadata`, `/v1/tasks` and
    /// its query forms) answer over TCP without the token (false).
    pub tcp_open_introspection: bool,
    /// The most TCP connections served at once (256); more wait in the kernel's backlog.
    pub tcp_max_connections: usize,
    /// The most following streams (`logs?follow=true`, `/v1/events` following) open at
    /// once on each listener (32).
    pub max_log_followers: usize,
    /// How long a request that does not stream may take to be answered (30 s).
    pub request_timeout: Duration,
    /// How long a TCP client may take to send a request's headers (10 s), from the
    /// connection's start or from the first byte of a later request.
    pub tcp_header_timeout: Duration,
    /// How long a TCP connection with no request in flight stays open (60 s).
    pub tcp_idle_timeout: Duration,
    /// The bearer token file for TCP calls; `None` means `<data_dir>/token`
    /// ([`AgentConfig::load`] fills it in; see [`AgentConfig::token_path`]).
    pub token_file: Option<PathBuf>,
}

impl Default for AgentConfig {
    /// The defaults, with [`SYSTEM_DATA_DIR`] as the data directory (the environment
    /// is not consulted: [`AgentConfig::load`] does that).
    fn default() -> Self {
        let plan = PlanConfig::default();
        AgentConfig {
            data_dir: PathBuf::from(SYSTEM_DATA_DIR),
            cluster: "default".to_owned(),
            tcp: None,
            body_limit: DEFAULT_BODY_LIMIT,
            log_format: LogFormat::default(),
            log_level: "info".to_owned(),
            timeouts: Timeouts::default(),
            default_stop_timeout: Duration::from_secs(plan.default_stop_timeout_secs),
            task_cleanup_wait: Duration::from_secs(3 * 3600),
            pull_behavior: PullBehavior::default(),
            auth_type: "none".to_owned(),
            auth_data: Secret::default(),
            auth_data_file: None,
            secrets_file: None,
            host: HostPolicy::default(),
            image_cleanup: ImageCleanup::default(),
            orphan_grace: Duration::from_secs(60),
            docker_concurrency: 64,
            steady_state_check: Duration::from_secs(60),
            tcp_allow_remote: false,
            tcp_allowed_hosts: Vec::new(),
            tcp_open_introspection: false,
            tcp_max_connections: 256,
            max_log_followers: 32,
            request_timeout: Duration::from_secs(30),
            tcp_header_timeout: Duration::from_secs(10),
            tcp_idle_timeout: Duration::from_secs(60),
            token_file: None,
        }
    }
}

/// What the command line of `berth daemon` may set; these override everything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--tcp`: `on`, `off`, a port, or an address (as the `tcp` setting).
    pub tcp: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--log-level`.
    pub log_level: Option<String>,
}

/// How the daemon writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Lines for people (`human`).
    #[default]
    Human,
    /// One JSON object a line (`json`).
    Json,
}

impl LogFormat {
    /// The name in the configuration (`human`, `json`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = String;

    /// `human` or `json`, without case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("invalid log format {s:?}: expected human or json")),
        }
    }
}

/// Reads a pull behaviour as configured: `default`, `always`, `once`, `prefer-cached`
/// (without case; `prefer_cached` too).
pub fn parse_pull_behavior(s: &str) -> Result<PullBehavior, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "default" => Ok(PullBehavior::Default),
        "always" => Ok(PullBehavior::Always),
        "once" => Ok(PullBehavior::Once),
        "prefer-cached" | "prefer_cached" => Ok(PullBehavior::PreferCached),
        _ => Err(format!("invalid pull behavior {s:?}: expected default, always, once or prefer-cached")),
    }
}

/// What task definitions submitted to the daemon may do to the host (SPEC 9, and
/// `docs/host-policy.md`). Every power is refused by default; each setting allows one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// Containers may be `privileged`.
    pub allow_privileged: bool,
    /// Tasks may use the `host` network mode.
    pub allow_host_network: bool,
    /// Containers may be given host devices.
    pub allow_devices: bool,
    /// Host-path bind mounts are allowed under these prefixes (absolute paths).
    pub allowed_host_paths: Vec<PathBuf>,
    /// Capabilities that may be added beyond Docker's default set (`SYS_ADMIN`, `ALL`, ...;
    /// any spelling Docker accepts).
    pub allowed_capabilities: Vec<String>,
    /// `dockerSecurityOptions` allowed besides `no-new-privileges` (`apparmor=unconfined`,
    /// ...; `key=value` or `key:value`).
    pub allowed_security_options: Vec<String>,
    /// Volume drivers whose volumes may be made with any driver options; `local` without
    /// options is always allowed (with options it makes host binds or network mounts).
    pub allowed_volume_drivers: Vec<String>,
    /// Shared-scope Docker volumes tasks may use, by name (never a name under `berth-`).
    pub allowed_shared_volumes: Vec<String>,
    /// Log drivers whose every option is allowed (including those that make dockerd
    /// connect somewhere, such as `syslog-address`).
    pub allowed_log_drivers: Vec<String>,
    /// tmpfs mount options among `exec`, `suid`, `dev` that tasks may use.
    pub allowed_tmpfs_options: Vec<String>,
    /// The largest value of each ulimit (soft and hard); names not listed are not bounded.
    pub ulimit_max: BTreeMap<String, i64>,
    /// Every container must set a hard `memory` limit.
    pub require_memory: bool,
    /// The pids limit every container gets (4096; 0: none).
    pub pids_limit: i64,
    /// Log rotation for json-file and local logs: the largest file (`10m`; empty: no
    /// rotation). Containers without `logConfiguration` get json-file with it.
    pub log_max_size: String,
    /// Log rotation: how many files (5).
    pub log_max_file: u32,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            allow_privileged: false,
            allow_host_network: false,
            allow_devices: false,
            allowed_host_paths: Vec::new(),
            allowed_capabilities: Vec::new(),
            allowed_security_options: Vec::new(),
            allowed_volume_drivers: Vec::new(),
            allowed_shared_volumes: Vec::new(),
            allowed_log_drivers: Vec::new(),
            allowed_tmpfs_options: Vec::new(),
            ulimit_max: default_ulimit_max(),
            require_memory: false,
            pids_limit: DEFAULT_PIDS_LIMIT,
            log_max_size: DEFAULT_LOG_MAX_SIZE.to_owned(),
            log_max_file: DEFAULT_LOG_MAX_FILE,
        }
    }
}

impl HostPolicy {
    /// The limits the engine gives every container under this policy.
    pub fn container_limits(&self) -> ContainerLimits {
        ContainerLimits {
            pids_limit: (self.pids_limit > 0).then_some(self.pids_limit),
            log_rotation: (!self.log_max_size.is_empty())
                .then(|| LogRotation { max_size: self.log_max_size.clone(), max_file: self.log_max_file }),
        }
    }
}

/// The pids limit containers get by default.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;
/// The largest json-file/local log file by default.
pub const DEFAULT_LOG_MAX_SIZE: &str = "10m";
/// How many log files are kept by default.
pub const DEFAULT_LOG_MAX_FILE: u32 = 5;

/// The default bounds of ulimits: those whose raising lets a container take from the host
/// (locked memory, real-time priority, scheduling priority) or exceed what the kernel
/// itself allows a process by default.
pub fn default_ulimit_max() -> BTreeMap<String, i64> {
    [("memlock", 64 << 20), ("rtprio", 0), ("nice", 0), ("nofile", 1 << 20), ("nproc", 1 << 16), ("msgqueue", 819_200)]
        .into_iter()
        .map(|(name, max)| (name.to_owned(), max))
        .collect()
}

/// Removal of unused images berth itself pulled (SPEC 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCleanup {
    /// Whether it runs at all (true).
    pub enabled: bool,
    /// Time between cycles (30 min).
    pub interval: Duration,
    /// Images pulled more recently than this stay (1 h).
    pub min_age: Duration,
    /// Images removed per cycle at most (5).
    pub per_cycle: usize,
}

impl Default for ImageCleanup {
    fn default() -> Self {
        ImageCleanup {
            enabled: true,
            interval: Duration::from_secs(30 * 60),
            min_age: Duration::from_secs(3600),
            per_cycle: 5,
        }
    }
}

/// Where a value came from, as errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A key of the configuration file (`<file>: key timeouts.pull`).
    File {
        /// The file.
        path: PathBuf,
        /// The key, tables joined with `.`.
        key: String,
    },
    /// An environment variable (`BERTH_TIMEOUTS_PULL`).
    Env {
        /// Its name.
        var: String,
    },
    /// A command-line flag (`--tcp`).
    Flag {
        /// The flag.
        flag: String,
    },
    /// A setting whose source is not known (a configuration built in code, or a
    /// default).
    Setting {
        /// The key.
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, key } => write!(f, "{}: key {key}", path.display()),
            Origin::Env { var } => f.write_str(var),
            Origin::Flag { flag } => f.write_str(flag),
            Origin::Setting { key } => f.write_str(key),
        }
    }
}

/// Why the configuration could not be loaded. No message holds registry credentials
/// or a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {error}", path.display())]
    Read {
        /// Which file: `config file`, `auth data file`, `secrets file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The configuration file is not valid TOML. The position is given, never the text.
    #[error("{}: not valid TOML (line {line}, column {column}): {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The column (in characters), from 1.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// The configuration file has a key that is not a setting.
    #[error("{}: unknown key {key}", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, tables joined with `.`.
        key: String,
    },
    /// A value is not valid for its setting.
    #[error("{origin}: {reason}")]
    Invalid {
        /// Where the value came from.
        origin: Origin,
        /// What is wrong with it (quoting the value unless it is a credential).
        reason: String,
    },
    /// Two settings that exclude each other were given in the same layer.
    #[error("{first} and {second} are both set; give one or the other")]
    Conflict {
        /// The one.
        first: Origin,
        /// The other.
        second: Origin,
    },
    /// The registry credentials do not parse (the error names a JSON path, never a value).
    #[error("{origin}: {error}")]
    Auth {
        /// Where the auth data (or type) came from.
        origin: Origin,
        /// What is wrong.
        #[source]
        error: Box<AuthError>,
    },
    /// The auth data file's credentials do not parse.
    #[error("auth data file {}: {error}", path.display())]
    AuthDataFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        error: Box<AuthError>,
    },
    /// The secrets file is not a JSON object of strings (never quoting a value).
    #[error("secrets file {}: {reason}", path.display())]
    Secrets {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A value as given: from the file (typed TOML) or from the environment or a flag (text).
#[derive(Clone, Copy)]
enum Raw<'a> {
    Toml(&'a TomlValue),
    Text(&'a str),
}

impl<'a> Raw<'a> {
    /// The text of a TOML string or of a variable.
    fn as_str(self) -> Option<&'a str> {
        match self {
            Raw::Toml(TomlValue::String(s)) => Some(s),
            Raw::Text(s) => Some(s),
            Raw::Toml(_) => None,
        }
    }
}

/// One setting: its key (tables joined with `.`) and how a value is applied.
struct Setting {
    key: &'static str,
    set: fn(&mut AgentConfig, Raw<'_>) -> Result<(), String>,
}

/// The tables of the file.
const TABLES: &[&str] = &["timeouts", "host", "image_cleanup"];

/// Every setting, in the order of the documentation.
const SETTINGS: &[Setting] = &[
    Setting { key: "data_dir", set: |c, r| set(&mut c.data_dir, path(r)?) },
    Setting { key: "cluster", set: |c, r| set(&mut c.cluster, non_empty(r)?.to_owned()) },
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
];

fn set<T>(field: &mut T, value: T) -> Result<(), String> {
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
struct Sources(BTreeMap<&'static str, Origin>);

impl Sources {
    fn origin(&self, key: &'static str) -> Origin {
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
        if config.token_file.is_none() {
            config.token_file = Some(config.data_dir.join(TOKEN_FILE_NAME));
        }
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
        if let Some(level) = &flags.log_level {
            self.log_level = non_empty(Raw::Text(level)).map_err(|reason| invalid("--log-level", reason))?.to_owned();
            sources.0.insert("log_level", flag_origin("--log-level"));
        }
        Ok(())
    }

    /// Checks the credentials that are given inline, and finds the Docker
    /// configuration for `docker-config` without a path in the given environment.
    fn check_auth(&mut self, env: &BTreeMap<String, String>, sources: &Sources) -> Result<(), ConfigError> {
        if self.auth_data_file.is_some() {
            return Ok(());
        }
        match self.auth_type.as_str() {
            "docker" | "dockercfg" => {
                if self.auth_data.expose().trim().is_empty() {
                    return Err(ConfigError::Invalid {
                        origin: sources.origin("auth_type"),
                        reason: format!("auth type {} needs auth_data or auth_data_file", self.auth_type),
                    });
                }
                AuthSource::from_type_and_data(&self.auth_type, self.auth_data.expose()).map_err(|error| {
                    ConfigError::Auth { origin: sources.origin("auth_data"), error: Box::new(error) }
                })?;
            }
            "docker-config" if self.auth_data.expose().trim().is_empty() => {
                let docker_config = env.get(DOCKER_CONFIG_ENV).map(OsStr::new);
                let home = env.get("HOME").map(Path::new);
                if let Some(path) = docker_config_path_from(docker_config, home) {
                    self.auth_data = Secret::new(path.to_string_lossy());
                }
            }
            _ => {}
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

    /// The token file: `token_file`, or `<data_dir>/token` when it is `None`.
    pub fn token_path(&self) -> PathBuf {
        self.token_file.clone().unwrap_or_else(|| self.data_dir.join(TOKEN_FILE_NAME))
    }

    /// The registry credential source: `auth_type` with `auth_data`, or the content of
    /// `auth_data_file` (read here). `docker-config` without a path means no
    /// credentials ([`AgentConfig::load`] has put the path in from the environment
    /// when there was one).
    pub fn auth_source(&self) -> Result<AuthSource, ConfigError> {
        let kind = normalize_auth_type(&self.auth_type)
            .map_err(|reason| ConfigError::Invalid { origin: setting_origin("auth_type"), reason })?;
        let (data, file) = match &self.auth_data_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    what: "auth data file",
                    path: path.clone(),
                    error,
                })?;
                (Secret::new(text), Some(path))
            }
            None => (self.auth_data.clone(), None),
        };
        if kind == "docker-config" && data.expose().trim().is_empty() {
            return Ok(AuthSource::None);
        }
        AuthSource::from_type_and_data(&kind, data.expose()).map_err(|error| match file {
            Some(path) => ConfigError::AuthDataFile { path: path.clone(), error: Box::new(error) },
            None => ConfigError::Auth { origin: setting_origin("auth_data"), error: Box::new(error) },
        })
    }

    /// The secrets of `secrets_file` (read here; none without one): a JSON object of
    /// strings.
    pub fn secrets(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        match &self.secrets_file {
            Some(path) => read_secrets(path),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The engine's part: the data directory, the plan settings (cleanup wait, default
    /// stop timeout), the timeouts, the pull behaviour, the registry credentials, the
    /// secrets and the steady-state check; the rest of [`EngineConfig`] as its default.
    /// Reads the secrets file and the auth data file.
    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        if self.task_cleanup_wait < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                origin: setting_origin("task_cleanup_wait"),
                reason: "must be at least 1s".to_owned(),
            });
        }
        if self.steady_state_check.is_zero() {
            return Err(ConfigError::Invalid {
                origin: setting_origin("steady_state_check"),
                reason: "must be more than 0".to_owned(),
            });
        }
        let cleanup_wait = chrono::Duration::from_std(self.task_cleanup_wait).map_err(|_| ConfigError::Invalid {
            origin: setting_origin("task_cleanup_wait"),
            reason: "too long".to_owned(),
        })?;
        let mut stop_secs = self.default_stop_timeout.as_secs();
        if self.default_stop_timeout.subsec_nanos() > 0 {
            stop_secs += 1;
        }
        let plan = PlanConfig { cleanup_wait, default_stop_timeout_secs: stop_secs, ..PlanConfig::default() };
        Ok(EngineConfig {
            data_dir: Some(self.data_dir.clone()),
            plan,
            timeouts: self.timeouts.clone(),
            auth: Arc::new(DockerAuth::new(self.auth_source()?)),
            pull_behavior: self.pull_behavior,
            steady_state_check: self.steady_state_check,
            orphan_grace: self.orphan_grace,
            docker_concurrency: self.docker_concurrency,
            container_limits: self.host.container_limits(),
            host_paths: Some(self.host.allowed_host_paths.clone().into()),
            secrets: Arc::new(self.secrets()?),
            ..EngineConfig::default()
        })
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

fn flag_origin(flag: &str) -> Origin {
    Origin::Flag { flag: flag.to_owned() }
}

fn setting_origin(key: &str) -> Origin {
    Origin::Setting { key: key.to_owned() }
}

/// Adds a layer's sources; one layer may not give both spellings of the auth data.
fn merge_layer(sources: &mut Sources, layer: Sources) -> Result<(), ConfigError> {
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

/// `$XDG_STATE_HOME/berth/daemon` (an absolute one), else
/// `$HOME/.local/state/berth/daemon`, else [`SYSTEM_DATA_DIR`].
fn default_data_dir(env: &BTreeMap<String, String>) -> PathBuf {
    let var = |name: &str| env.get(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(state) = var("XDG_STATE_HOME") {
        return state.join("berth").join("daemon");
    }
    if let Some(home) = var("HOME") {
        return home.join(".local").join("state").join("berth").join("daemon");
    }
    PathBuf::from(SYSTEM_DATA_DIR)
}

/// Parses the file; a syntax error gives the position and the parser's expectation,
/// never the text around it (it could be a credential).
fn parse_toml(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str::<toml::Table>(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => line_column(text, span.start),
            None => (1, 1),
        };
        ConfigError::Syntax { path: path.to_owned(), line, column, message: e.message().trim().to_owned() }
    })
}

/// The line and column (both from 1, the column in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
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
fn apply_table(
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

fn type_name(value: &TomlValue) -> &'static str {
    match value {
        TomlValue::String(_) => "a string",
        TomlValue::Integer(_) => "an integer",
        TomlValue::Float(_) => "a float",
        TomlValue::Boolean(_) => "a boolean",
        TomlValue::Datetime(_) => "a datetime",
        TomlValue::Array(_) => "an array",
        TomlValue::Table(_) => "a table",
    }
}

/// The text of a value; `what` names what a string was expected to hold.
fn text<'a>(raw: Raw<'a>, what: &str) -> Result<&'a str, String> {
    match (raw.as_str(), raw) {
        (Some(s), _) => Ok(s),
        (None, Raw::Toml(other)) => Err(format!("expected {what} (a string), found {}", type_name(other))),
        (None, Raw::Text(s)) => Ok(s),
    }
}

fn non_empty(raw: Raw<'_>) -> Result<&str, String> {
    let s = text(raw, "a string")?;
    if s.trim().is_empty() { Err("must not be empty".to_owned()) } else { Ok(s) }
}

/// A credential: never quoted, whatever is wrong.
fn secret_text(raw: Raw<'_>) -> Result<&str, String> {
    match (raw.as_str(), raw) {
        (Some(s), _) => Ok(s),
        (None, Raw::Toml(other)) => Err(format!("expected a string (the JSON data), found {}", type_name(other))),
        (None, Raw::Text(s)) => Ok(s),
    }
}

fn path(raw: Raw<'_>) -> Result<PathBuf, String> {
    let s = text(raw, "a path")?;
    if s.is_empty() { Err("empty path".to_owned()) } else { Ok(PathBuf::from(s)) }
}

/// Host path prefixes: an array of strings in the file, a `:`-separated list in the
/// environment; each absolute.
fn host_paths(raw: Raw<'_>) -> Result<Vec<PathBuf>, String> {
    let items: Vec<&str> = match raw {
        Raw::Text(s) => s.split(':').filter(|p| !p.is_empty()).collect(),
        Raw::Toml(TomlValue::Array(values)) => values
            .iter()
            .map(|v| match v {
                TomlValue::String(s) => Ok(s.as_str()),
                other => Err(format!("expected an array of paths, found {} in it", type_name(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => return Err(format!("expected an array of paths, found {}", type_name(other))),
    };
    items
        .into_iter()
        .map(|p| {
            let path = PathBuf::from(p);
            if path.is_absolute() { Ok(path) } else { Err(format!("host path {p:?} is not absolute")) }
        })
        .collect()
}

/// A list of names: an array of strings in the file, a `,`-separated list in the
/// environment; each trimmed and not empty.
fn names(raw: Raw<'_>) -> Result<Vec<String>, String> {
    let items: Vec<&str> = match raw {
        Raw::Text(s) => s.split(',').map(str::trim).filter(|p| !p.is_empty()).collect(),
        Raw::Toml(TomlValue::Array(values)) => values
            .iter()
            .map(|v| match v {
                TomlValue::String(s) => Ok(s.trim()),
                other => Err(format!("expected an array of strings, found {} in it", type_name(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => return Err(format!("expected an array of strings, found {}", type_name(other))),
    };
    if items.iter().any(|i| i.is_empty()) {
        return Err("an empty name in the list".to_owned());
    }
    Ok(items.into_iter().map(str::to_owned).collect())
}

/// tmpfs options that may be allowed: `exec`, `suid`, `dev` (any case).
fn tmpfs_options(raw: Raw<'_>) -> Result<Vec<String>, String> {
    let options = names(raw)?;
    options
        .into_iter()
        .map(|o| {
            let lower = o.to_ascii_lowercase();
            if crate::policy::GUARDED_TMPFS_OPTIONS.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!("tmpfs option {o:?} needs no allowing: expected exec, suid or dev"))
            }
        })
        .collect()
}

/// Host names: an array of strings in the file, a `,`-separated list in the environment;
/// each a DNS name (letters, digits, `-`, `.`), kept in lower case without a final dot.
fn host_names(raw: Raw<'_>) -> Result<Vec<String>, String> {
    names(raw)?
        .into_iter()
        .map(|name| {
            let lower = name.trim_end_matches('.').to_ascii_lowercase();
            let valid = !lower.is_empty()
                && lower
                    .split('.')
                    .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if valid { Ok(lower) } else { Err(format!("invalid host name {name:?}: expected a DNS name")) }
        })
        .collect()
}

/// Ulimit bounds, merged over the defaults: a table of name = integer in the file,
/// `name=value,...` in the environment. A name Docker does not know is refused.
fn ulimit_max(bounds: &mut BTreeMap<String, i64>, raw: Raw<'_>) -> Result<(), String> {
    let entries: Vec<(String, i64)> = match raw {
        Raw::Toml(TomlValue::Table(table)) => table
            .iter()
            .map(|(k, v)| match v {
                TomlValue::Integer(i) => Ok((k.clone(), *i)),
                other => Err(format!("ulimit {k}: expected an integer, found {}", type_name(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => {
            return Err(format!("expected a table of ulimit names to integers, found {}", type_name(other)));
        }
        Raw::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|entry| {
                let (k, v) =
                    entry.split_once('=').ok_or_else(|| format!("invalid entry {entry:?}: expected name=value"))?;
                let v = v.trim().parse::<i64>().map_err(|_| format!("ulimit {}: invalid number {v:?}", k.trim()))?;
                Ok((k.trim().to_owned(), v))
            })
            .collect::<Result<_, String>>()?,
    };
    for (name, max) in entries {
        if !berth_model::container::ULIMIT_NAMES.contains(&name.as_str()) {
            return Err(format!("unknown ulimit {name:?}"));
        }
        if max < -1 {
            return Err(format!("ulimit {name}: {max} is not a limit (-1 means unlimited)"));
        }
        bounds.insert(name, max);
    }
    Ok(())
}

/// A pids limit: 0 (none) or more.
fn pids_limit(raw: Raw<'_>) -> Result<i64, String> {
    let n = count(raw)?;
    i64::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// A log file size as Docker's json-file driver reads it (`10m`, `512k`, `1g`); empty
/// switches rotation off.
fn log_size(raw: Raw<'_>) -> Result<String, String> {
    let s = text(raw, "a size such as \"10m\"")?.trim().to_owned();
    if !s.is_empty() {
        crate::policy::log_size_bytes(&s)
            .ok_or_else(|| format!("invalid size {s:?}: expected a number with k, m or g"))?;
    }
    Ok(s)
}

fn log_max_file(raw: Raw<'_>) -> Result<u32, String> {
    match u32::try_from(count(raw)?) {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("is too large".to_owned()),
    }
}

/// A boolean: `true`/`false` in the file; `true`/`false`, `on`/`off`, `yes`/`no`,
/// `1`/`0` in the environment.
fn boolean(raw: Raw<'_>) -> Result<bool, String> {
    match raw {
        Raw::Toml(TomlValue::Boolean(b)) => Ok(*b),
        Raw::Toml(other) => Err(format!("expected a boolean, found {}", type_name(other))),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(format!("invalid boolean {s:?}: expected true or false")),
        },
    }
}

/// A humantime duration (`30s`, `5m`, `3h`, `500ms`), under 100 years.
fn duration(raw: Raw<'_>) -> Result<Duration, String> {
    let s = match (raw.as_str(), raw) {
        (Some(s), _) | (None, Raw::Text(s)) => s,
        (None, Raw::Toml(other)) => {
            return Err(format!("expected a duration such as \"30s\" (a string), found {}", type_name(other)));
        }
    };
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d >= MAX_DURATION {
        return Err(format!("duration {s:?} is too long (at most 100 years)"));
    }
    Ok(d)
}

fn positive(raw: Raw<'_>) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d.is_zero() { Err("must be more than 0".to_owned()) } else { Ok(d) }
}

fn at_least_a_second(raw: Raw<'_>) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d < Duration::from_secs(1) {
        Err(format!("must be at least 1s, not {}", humantime::format_duration(d)))
    } else {
        Ok(d)
    }
}

/// Docker's stop timeout is in whole seconds.
fn whole_seconds(raw: Raw<'_>) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d.subsec_nanos() != 0 {
        Err(format!("must be a whole number of seconds, not {}", humantime::format_duration(d)))
    } else {
        Ok(d)
    }
}

/// A count: an integer in the file, decimal digits in the environment.
fn count(raw: Raw<'_>) -> Result<u64, String> {
    match raw {
        Raw::Toml(TomlValue::Integer(i)) => u64::try_from(*i).map_err(|_| format!("must not be negative, not {i}")),
        Raw::Toml(other) => Err(format!("expected an integer, found {}", type_name(other))),
        Raw::Text(s) => s.trim().parse().map_err(|_| format!("invalid number {s:?}: expected an integer")),
    }
}

fn per_cycle(raw: Raw<'_>) -> Result<usize, String> {
    let n = count(raw)?;
    match usize::try_from(n) {
        Ok(0) => Err("must be at least 1 (set image_cleanup.enabled = false to turn cleanup off)".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{n} is too large")),
    }
}

/// A count of at least 1.
fn at_least_one(raw: Raw<'_>) -> Result<usize, String> {
    match usize::try_from(count(raw)?) {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("is too large".to_owned()),
    }
}

/// A size in bytes: an integer, or a string of digits with an optional unit (`B`,
/// `KiB`, `MiB`, `GiB`, without case); more than 0.
fn body_limit(raw: Raw<'_>) -> Result<usize, String> {
    let bytes = match raw {
        Raw::Toml(TomlValue::Integer(_)) => count(raw)?,
        Raw::Toml(TomlValue::String(s)) => parse_size(s)?,
        Raw::Text(s) => parse_size(s)?,
        Raw::Toml(other) => return Err(format!("expected a size in bytes, found {}", type_name(other))),
    };
    match usize::try_from(bytes) {
        Ok(0) => Err("must be more than 0".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{bytes} bytes is too large")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?}: expected a number of bytes, optionally followed by KiB, MiB or GiB");
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    number.checked_mul(unit).ok_or_else(|| format!("size {s:?} is too large"))
}

/// Where the API listens on TCP: `true`/`on` → `127.0.0.1:51678`, `false`/`off` (or
/// empty) → nowhere, a bare port → `127.0.0.1:PORT`, or an address `host:port` (an IP
/// address; `[::1]:PORT` for IPv6).
pub fn parse_tcp(s: &str) -> Result<Option<SocketAddr>, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "true" | "on" => return Ok(Some(loopback(DEFAULT_TCP_PORT))),
        "false" | "off" | "" => return Ok(None),
        _ => {}
    }
    if let Ok(port) = t.parse::<u16>() {
        return Ok(Some(loopback(port)));
    }
    t.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "invalid TCP address {s:?}: expected on, off, a port, or an address such as 127.0.0.1:{DEFAULT_TCP_PORT}"
        )
    })
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn tcp(raw: Raw<'_>) -> Result<Option<SocketAddr>, String> {
    match raw {
        Raw::Toml(TomlValue::Boolean(true)) => Ok(Some(loopback(DEFAULT_TCP_PORT))),
        Raw::Toml(TomlValue::Boolean(false)) => Ok(None),
        Raw::Toml(TomlValue::Integer(i)) => {
            u16::try_from(*i).map(|p| Some(loopback(p))).map_err(|_| format!("invalid TCP port {i}"))
        }
        Raw::Toml(TomlValue::String(s)) => parse_tcp(s),
        Raw::Text(s) => parse_tcp(s),
        Raw::Toml(other) => {
            Err(format!("expected a boolean, a port or an address (a string), found {}", type_name(other)))
        }
    }
}

/// The auth type as stored: lower case, `none` for empty.
fn normalize_auth_type(kind: &str) -> Result<String, String> {
    match kind.trim().to_ascii_lowercase().as_str() {
        "" | "none" => Ok("none".to_owned()),
        k @ ("docker" | "dockercfg" | "docker-config") => Ok(k.to_owned()),
        _ => Err(format!("unknown registry auth type {kind:?} (expected none, docker, dockercfg or docker-config)")),
    }
}

fn auth_type(raw: Raw<'_>) -> Result<String, String> {
    normalize_auth_type(text(raw, "an auth type")?)
}

/// A JSON object of strings, walked by hand so that no error quotes a value (a typed
/// deserializer would).
fn read_secrets(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read(path).map_err(|error| ConfigError::Read {
        what: "secrets file",
        path: path.to_owned(),
        error,
    })?;
    let invalid = |reason: String| ConfigError::Secrets { path: path.to_owned(), reason };
    let value: JsonValue = serde_json::from_slice(&text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Eof => "unexpected end",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Data => "bad data",
        };
        invalid(format!("not valid JSON ({kind} at line {} column {})", e.line(), e.column()))
    })?;
    let JsonValue::Object(map) = value else {
        return Err(invalid("expected a JSON object of strings".to_owned()));
    };
    map.into_iter()
        .map(|(name, value)| match value {
            JsonValue::String(s) => Ok((name, s)),
            _ => Err(invalid(format!("secret {name:?}: expected a string"))),
        })
        .collect()
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
