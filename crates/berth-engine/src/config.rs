//! How an engine is set up.

use berth_model::plan::PlanConfig;
use berth_model::task::NetworkMode;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Per-operation Docker timeouts (SPEC 3). A call that exceeds its timeout has an unknown
/// outcome: the container is inspected before anything else happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// A whole pull.
    pub pull: Duration,
    /// Create.
    pub create: Duration,
    /// Start.
    pub start: Duration,
    /// Added to the container's stop timeout for a stop.
    pub stop_extra: Duration,
    /// Remove.
    pub remove: Duration,
    /// Inspect.
    pub inspect: Duration,
    /// Volume create and remove.
    pub volume: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            pull: Duration::from_secs(2 * 3600),
            create: Duration::from_secs(4 * 60),
            start: Duration::from_secs(3 * 60),
            stop_extra: Duration::from_secs(2 * 60),
            remove: Duration::from_secs(5 * 60),
            inspect: Duration::from_secs(30),
            volume: Duration::from_secs(60),
        }
    }
}

/// Limits every container gets from the engine's host (the daemon's host policy); none by
/// default, as `berth run` wants (its task file is the user's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerLimits {
    /// Docker's pids limit for every container.
    pub pids_limit: Option<i64>,
    /// Log rotation for json-file and local logs. A task's own smaller `max-size` or
    /// `max-file` is kept; a container without `logConfiguration` gets json-file with it.
    pub log_rotation: Option<LogRotation>,
}

/// json-file and local log rotation (Docker's `max-size` and `max-file` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRotation {
    /// The largest log file, as Docker reads it (`10m`).
    pub max_size: String,
    /// How many files are kept.
    pub max_file: u32,
}

/// Where a task's containers reach the task metadata endpoint (`host:port`), by network
/// mode; `None` for a mode: its containers get no endpoint variables. A `none`-mode task
/// never gets them (nothing reachable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataEndpoint {
    /// For bridge-mode containers: an address on Docker's `bridge` network (its gateway).
    pub bridge: Option<SocketAddr>,
    /// For host-mode containers: the host's loopback.
    pub host: Option<SocketAddr>,
    /// For awsvpc-mode containers, in the pause container's namespace (which sits on
    /// Docker's `bridge` network): its gateway, like bridge mode.
    pub awsvpc: Option<SocketAddr>,
}

impl MetadataEndpoint {
    /// The address containers of a task in `mode` reach the endpoint at, if any.
    pub fn for_mode(&self, mode: NetworkMode) -> Option<SocketAddr> {
        match mode {
            NetworkMode::Bridge => self.bridge,
            NetworkMode::Host => self.host,
            NetworkMode::Awsvpc => self.awsvpc,
            NetworkMode::None => None,
        }
    }
}

/// The engine's configuration (the seed's `config.Config`, the part the engine reads).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where state lives; `None` keeps it in memory only (nothing survives a restart).
    pub data_dir: Option<PathBuf>,
    /// Retries, cleanup wait, default stop timeout.
    pub plan: PlanConfig,
    /// Docker call timeouts.
    pub timeouts: Timeouts,
    /// State changes kept for readers (at least 100,000 by default).
    pub retained_changes: u64,
    /// How long `must_init` waits between attempts at first; it doubles up to a minute.
    pub init_backoff: Duration,
    /// Where registry credentials come from (SPEC 8; none by default, `berth run` uses the
    /// user's Docker configuration).
    pub auth: Arc<berth_docker::auth::DockerAuth>,
    /// How images are pulled: default, always, once, prefer-cached.
    pub pull_behavior: crate::executor::PullBehavior,
    /// How often every container not known to be STOPPED is inspected, to catch what the
    /// event stream missed (SPEC 4; 60 s by default).
    pub steady_state_check: Duration,
    /// The local secret source: each `valueFrom` of a container's `secrets` (and each
    /// `value` of its `environmentFiles`, whose content is `KEY=value` lines) mapped to its
    /// value. Never saved, logged or reported.
    pub secrets: Arc<BTreeMap<String, String>>,
    /// Told of everything that happens inside the engine (commits, Docker lost and
    /// reached, orphans, stream reopenings, ...): its one telemetry channel. By default
    /// [`crate::LogTelemetry`], which logs each.
    pub telemetry: Arc<dyn crate::telemetry::Telemetry>,
    /// How long a container of this instance that no task owns is left alone before it is
    /// removed (SPEC 6; 60 s by default): time for a task being restored to claim it.
    pub orphan_grace: std::time::Duration,
    /// How many Docker calls other than pulls may be in flight at once (64 by default): a
    /// restart's inspects of every container, and bursts of creates and starts, go through
    /// this many at a time.
    pub docker_concurrency: usize,
    /// Limits every container gets (none by default).
    pub container_limits: ContainerLimits,
    /// When set, host-path bind mounts are resolved when their container is created
    /// (symlinks followed), must then lie under one of these prefixes, and are bound by
    /// their resolved path: a symlink planted under an allowed prefix cannot lead outside
    /// it. `None` (the default, and `berth run`): bound as given.
    pub host_paths: Option<Arc<[PathBuf]>>,
    /// Where containers reach the task metadata endpoint the embedder serves (none by
    /// default: no `ECS_CONTAINER_METADATA_URI*` variables).
    pub metadata_endpoint: MetadataEndpoint,
    /// The host's capacity for tasks (the machine less its reserve: the daemon and
    /// `berth run` read it from the machine). With one, a task that does not fit beside
    /// those running waits, in submit order, and one that never fits is refused
    /// (`docs/resources.md`). `None` (the default): every task starts at once.
    pub capacity: Option<berth_model::admission::HostCapacity>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: None,
            plan: PlanConfig::default(),
            timeouts: Timeouts::default(),
            retained_changes: berth_store::DEFAULT_RETAINED_CHANGES,
            init_backoff: Duration::from_millis(250),
            steady_state_check: Duration::from_secs(60),
            pull_behavior: crate::executor::PullBehavior::Default,
            auth: Arc::default(),
            secrets: Arc::default(),
            telemetry: Arc::new(crate::telemetry::LogTelemetry),
            orphan_grace: std::time::Duration::from_secs(60),
            docker_concurrency: 64,
            container_limits: ContainerLimits::default(),
            host_paths: None,
            metadata_endpoint: MetadataEndpoint::default(),
            capacity: None,
        }
    }
}
