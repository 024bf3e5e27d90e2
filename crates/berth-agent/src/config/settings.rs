//! The settings types: the daemon's configuration, its groups (host policy, image
//! cleanup) and what the command line overrides, with their defaults; and what the
//! engine and the listeners are given from them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use berth_docker::auth::{DockerAuth, Secret};
use berth_engine::{ContainerLimits, EngineConfig, LogRotation, PullBehavior, Timeouts};
use berth_model::admission::{HostCapacity, HostPort, Reserve};
use berth_model::container::Protocol;
use berth_model::plan::PlanConfig;

use super::layering::setting_origin;
use super::{ConfigError, DEFAULT_BODY_LIMIT, SOCKET_FILE_NAME, SYSTEM_DATA_DIR, TOKEN_FILE_NAME};

/// The daemon's configuration. Field names are the TOML keys (grouped in the tables
/// `[timeouts]`, `[host]`, `[image_cleanup]` and `[resources]` where the field is a group).
///
/// `{:?}` never shows the registry credentials: `auth_data` is a [`Secret`].
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the daemon keeps its state, its API socket and its token.
    /// Default: `$XDG_STATE_HOME/berth/daemon`, else `$HOME/.local/state/berth/daemon`,
    /// else [`SYSTEM_DATA_DIR`].
    pub data_dir: PathBuf,
    /// The cluster name the introspection API reports (`default`); in cluster mode, also
    /// the name of the cluster in etcd (`/berth/v1/<cluster>/`).
    pub cluster: String,
    /// The etcd members of cluster mode (`etcd://host:port[,host:port...]`, each kept as
    /// `http://host:port`); empty (the default): one host, no cluster.
    pub cluster_store: Vec<String>,
    /// This node's name in the cluster (required in cluster mode).
    pub node: Option<String>,
    /// This node's attributes, which placement constraints and spread read (none).
    pub node_attributes: BTreeMap<String, String>,
    /// The TTL of the node's etcd lease (30 s): a node silent this long is gone.
    pub node_lease_ttl: Duration,
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
    /// The host resources tasks may reserve (`docs/resources.md`).
    pub resources: Resources,
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
    /// The port of the task metadata endpoint (51679; `None`: no endpoint, containers get
    /// no `ECS_CONTAINER_METADATA_URI*` variables; 0: any free port).
    pub metadata_port: Option<u16>,
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
            cluster_store: Vec::new(),
            node: None,
            node_attributes: BTreeMap::new(),
            node_lease_ttl: Duration::from_secs(30),
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
            resources: Resources::default(),
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
            metadata_port: Some(crate::metadata::DEFAULT_PORT),
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
    /// `--cluster`: the etcd members (as the `cluster_store` setting).
    pub cluster_store: Option<String>,
    /// `--cluster-name` (the `cluster` setting).
    pub cluster_name: Option<String>,
    /// `--node` (the `node` setting).
    pub node: Option<String>,
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

/// The host resources tasks may reserve: the machine's (or the ones set here) less what is
/// kept back for the host. A task waits until its reservation fits beside the running
/// ones, and one that never fits is refused (`docs/resources.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// The host's CPU units; `None` (the default): 1,024 per CPU berth may run on.
    pub cpu: Option<u64>,
    /// The host's memory in MiB; `None` (the default): `MemTotal` of `/proc/meminfo`.
    pub memory: Option<u64>,
    /// CPU units kept back for the host (0).
    pub reserved_cpu: u64,
    /// Memory MiB kept back for the host (256: berth itself, dockerd and containerd).
    pub reserved_memory: u64,
    /// Host ports no task may take (tcp 22, 2375, 2376, 51678, 51679, as ECS).
    pub reserved_ports: Vec<HostPort>,
}

/// Memory kept back for the host by default, MiB.
pub const DEFAULT_RESERVED_MEMORY_MIB: u64 = 256;

/// Host ports kept back by default (ECS's): ssh, Docker's TCP ports, the ECS agent's
/// (and berth's own TCP API's) ports.
pub const DEFAULT_RESERVED_PORTS: [u16; 5] = [22, 2375, 2376, 51678, 51679];

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: None,
            memory: None,
            reserved_cpu: 0,
            reserved_memory: DEFAULT_RESERVED_MEMORY_MIB,
            reserved_ports: DEFAULT_RESERVED_PORTS
                .iter()
                .map(|&port| HostPort { port, protocol: Protocol::Tcp })
                .collect(),
        }
    }
}

impl Resources {
    /// The capacity tasks share: the host's CPU and memory (read from the machine where
    /// not set) less the reserve.
    pub fn capacity(&self) -> Result<HostCapacity, ConfigError> {
        let cpu = self.cpu.unwrap_or_else(crate::machine::cpu_units);
        let memory = match self.memory {
            Some(memory) => memory,
            None => crate::machine::memory_mib().map_err(|error| ConfigError::Invalid {
                origin: setting_origin("resources.memory"),
                reason: format!("cannot read the machine's memory (set it instead): {error}"),
            })?,
        };
        let reserve =
            Reserve { cpu: self.reserved_cpu, memory_mib: self.reserved_memory, ports: self.reserved_ports.clone() };
        Ok(HostCapacity::new(cpu, memory, &reserve))
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

impl AgentConfig {
    /// The token file: `token_file`, or `<data_dir>/token` when it is `None`.
    pub fn token_path(&self) -> PathBuf {
        self.token_file.clone().unwrap_or_else(|| self.data_dir.join(TOKEN_FILE_NAME))
    }

    /// The API's unix socket: `<data_dir>/berth.sock` (the daemon listens there; the
    /// clients look there when not told where the daemon is).
    pub fn socket_path(&self) -> PathBuf {
        self.data_dir.join(SOCKET_FILE_NAME)
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
            capacity: Some(self.resources.capacity()?),
            ..EngineConfig::default()
        })
    }
}
