//! What berth sends to Docker and what it reads back, in Docker's terms (not tasks').

use berth_model::container::{PortBinding, Protocol};
use berth_model::status::HealthStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything a container is created with: berth sends every setting at create.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Docker name (`berth-<family>-<version>-<name>-<hex>`).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// `Cmd`; empty keeps the image's.
    pub command: Vec<String>,
    /// `Entrypoint`; empty keeps the image's.
    pub entry_point: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Labels, berth's and the user's.
    pub labels: BTreeMap<String, String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User to run as.
    pub user: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Health check.
    pub health_check: Option<HealthConfig>,
    /// Seconds Docker waits after SIGTERM before SIGKILL.
    pub stop_timeout: Option<u64>,
    /// `NetworkDisabled`: no networking inside the container.
    pub network_disabled: bool,
    /// `OpenStdin`: stdin kept open with nothing attached.
    pub open_stdin: bool,
    /// `Tty`: a pseudo-terminal (its output then comes as one raw stream).
    pub tty: bool,
    /// Host-side settings.
    pub host: HostConfig,
}

/// Docker's health check, in its units.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Seconds between checks.
    pub interval_secs: Option<u64>,
    /// Seconds a check may take.
    pub timeout_secs: Option<u64>,
    /// Failures before unhealthy.
    pub retries: Option<u64>,
    /// Seconds of grace after start.
    pub start_period_secs: Option<u64>,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortSpec {
    /// Port inside the container.
    pub container_port: u16,
    /// Port on the host; 0 lets Docker pick.
    pub host_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

/// A log driver and its options.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogConfig {
    /// Driver name.
    pub driver: String,
    /// Options.
    pub options: BTreeMap<String, String>,
}

/// Docker's `HostConfig`, the part berth uses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostConfig {
    /// Hard memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// Soft memory limit in bytes.
    pub memory_reservation_bytes: Option<i64>,
    /// CPU shares.
    pub cpu_shares: Option<i64>,
    /// `<docker name>:<alias>`.
    pub links: Vec<String>,
    /// `source:target[:ro]` bind and volume mounts.
    pub binds: Vec<String>,
    /// `<docker name>[:ro]`.
    pub volumes_from: Vec<String>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// `bridge`, `host`, `none`, `container:<id>`.
    pub network_mode: Option<String>,
    /// `name=soft:hard` style limits, as (name, soft, hard).
    pub ulimits: Vec<(String, i64, i64)>,
    /// Read-only root filesystem.
    pub readonly_rootfs: bool,
    /// `host:ip` entries.
    pub extra_hosts: Vec<String>,
    /// DNS servers.
    pub dns: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Run an init process.
    pub init: bool,
    /// tmpfs mounts: path → options.
    pub tmpfs: BTreeMap<String, String>,
    /// Devices: (host path, container path, permissions like "rwm").
    pub devices: Vec<(String, String, String)>,
    /// `/dev/shm` size in bytes.
    pub shm_size_bytes: Option<i64>,
    /// Privileged mode.
    pub privileged: bool,
    /// `--security-opt` values.
    pub security_opt: Vec<String>,
    /// Namespaced sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// Log driver.
    pub log_config: Option<LogConfig>,
    /// The most processes the container may have (`None`: Docker's default, none).
    pub pids_limit: Option<i64>,
}

/// A container's state as inspect reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerState {
    /// Docker's word: created, running, paused, restarting, removing, exited, dead.
    pub status: String,
    /// Exit code (meaningful once exited).
    pub exit_code: i64,
    /// When it last started; `None` when it never has (Docker's zero time).
    pub started_at: Option<DateTime<Utc>>,
    /// When it last exited.
    pub finished_at: Option<DateTime<Utc>>,
    /// Health, when it has a health check.
    pub health: Option<HealthStatus>,
    /// The kernel killed it for memory.
    pub oom_killed: bool,
}

/// What inspect says of a container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    /// Name, without Docker's leading `/`.
    pub name: String,
    /// Image reference it was created from.
    pub image: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// State.
    pub state: ContainerState,
    /// Ports Docker bound.
    pub port_bindings: Vec<PortBinding>,
    /// The id of the image it runs (`sha256:...`).
    pub image_id: String,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// The networks it is attached to, with its addresses on each (none for a container
    /// that joined another's namespace or the host's network, or is not running).
    pub networks: Vec<NetworkAttachment>,
}

/// A container's endpoint on a Docker network, as inspect reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network's name (`bridge`, `host`, a user network).
    pub network: String,
    /// Its IPv4 address there, if it has one.
    pub ipv4: Option<String>,
    /// Its global IPv6 address there, if it has one.
    pub ipv6: Option<String>,
}

impl ContainerInfo {
    /// It has run at some time: berth never starts it again.
    pub fn has_run(&self) -> bool {
        self.state.started_at.is_some()
    }
}

/// A container as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerSummary {
    /// Full id.
    pub id: String,
    /// Names, without the leading `/`.
    pub names: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Docker's state word.
    pub state: String,
    /// The image reference it was created from (as given at create).
    pub image: String,
    /// The id of the image it runs (Docker's `ImageID`, `sha256:...`); empty when unknown.
    pub image_id: String,
}

/// An image on the host (the seed's `DescribeDockerImages`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// Image id.
    pub id: String,
    /// Its tags.
    pub repo_tags: Vec<String>,
    /// Size in bytes.
    pub size: i64,
    /// When it was made.
    pub created: i64,
}

/// Which of a container's output streams a piece of its output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogSource {
    /// Standard output (and a TTY's output, which Docker does not split).
    Stdout,
    /// Standard error.
    Stderr,
}

/// Which part of a container's output to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Go on with new output until the container stops (at once when it is not running).
    pub follow: bool,
    /// Only the last this many lines, as Docker counts them (both streams together);
    /// `None`: all of it.
    pub tail: Option<u64>,
    /// Only output written at this Unix time (seconds) or later; `None`: from the start.
    pub since: Option<i64>,
}

impl LogOptions {
    /// All the output there is, then the end.
    pub fn all() -> LogOptions {
        LogOptions::default()
    }

    /// All the output there is, then new output until the container stops.
    pub fn following() -> LogOptions {
        LogOptions { follow: true, ..LogOptions::default() }
    }

    /// [`LogOptions::all`] or [`LogOptions::following`].
    pub fn follow(follow: bool) -> LogOptions {
        LogOptions { follow, ..LogOptions::default() }
    }
}

/// A piece of a container's output, as Docker hands it over: not split into lines, and a
/// line may span pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The stream it came from.
    pub source: LogSource,
    /// The bytes, as the container wrote them.
    pub bytes: bytes::Bytes,
}

/// A Docker volume to create.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeConfig {
    /// Volume name.
    pub name: String,
    /// Driver (`local` when absent).
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// One step of a pull, as Docker reports it: a layer's status and, while it downloads or
/// extracts, how far it has got.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PullProgress {
    /// The image being pulled.
    pub image: String,
    /// The layer (empty for the image as a whole).
    pub layer: String,
    /// Docker's word: `Pulling fs layer`, `Downloading`, `Extracting`, `Pull complete`, ...
    pub status: String,
    /// Bytes done, when known.
    pub current: Option<u64>,
    /// Bytes in all, when known.
    pub total: Option<u64>,
}
