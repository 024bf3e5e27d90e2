//! Task volumes, by name.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What kind of volume a task volume is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeKind {
    /// `host.sourcePath`: a bind mount of a host path (not judged by this host's rules).
    Host {
        /// The host path.
        source_path: String,
    },
    /// `host: {}` or a bare name: one Docker local volume for this task, shared by its
    /// containers (the seed's `emptyvolume`), removed at cleanup.
    Empty,
    /// `dockerVolumeConfiguration`.
    Docker(DockerVolumeConfiguration),
    /// A kind berth accepts with a warning and refuses when the task runs
    /// (`efsVolumeConfiguration`, ...).
    Unsupported {
        /// The JSON key that named the kind.
        kind: String,
    },
}

/// Whether a Docker volume lives and dies with the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeScope {
    /// Made for this task, removed at its cleanup.
    #[default]
    Task,
    /// Outlives the task; made when missing if `autoprovision` is set.
    Shared,
}

/// `dockerVolumeConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DockerVolumeConfiguration {
    /// task or shared.
    pub scope: VolumeScope,
    /// For shared volumes: make it when it does not exist.
    pub autoprovision: bool,
    /// Volume driver (`local` when absent).
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: BTreeMap<String, String>,
    /// Volume labels.
    pub labels: BTreeMap<String, String>,
}

/// A named task volume plus what the engine knows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Name the containers' mount points refer to.
    pub name: String,
    /// What it is.
    pub kind: VolumeKind,
    /// For volumes berth makes: the Docker volume exists.
    pub created: bool,
    /// For volumes berth makes: the Docker volume has been removed at cleanup.
    pub removed: bool,
    /// An operation on the Docker volume is in flight.
    pub in_flight: bool,
    /// Making the Docker volume failed: the task cannot run and stops with this reason.
    pub error: Option<String>,
    /// Failed removals so far (removal is retried with backoff until it succeeds).
    pub failures: u32,
    /// Do not retry the removal before this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// The Docker volume's name, chosen when its create is issued (volumes berth makes).
    /// Absent in records of berths before it, whose volumes have the older name
    /// ([`crate::Task::docker_volume_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_name: Option<String>,
}

impl Volume {
    /// A volume nothing has happened to yet.
    pub fn new(name: impl Into<String>, kind: VolumeKind) -> Volume {
        Volume {
            name: name.into(),
            kind,
            created: false,
            removed: false,
            in_flight: false,
            error: None,
            failures: 0,
            retry_at: None,
            docker_name: None,
        }
    }

    /// berth makes the Docker volume before the containers: task-scoped volumes, and shared
    /// ones with `autoprovision`.
    pub fn needs_create(&self) -> bool {
        match &self.kind {
            VolumeKind::Docker(cfg) if cfg.scope == VolumeScope::Shared => cfg.autoprovision,
            _ => self.managed_by_task(),
        }
    }

    /// berth makes (and later removes) a Docker volume for it: task-scoped empty volumes
    /// and task-scoped Docker volumes. Shared Docker volumes are made when missing only if
    /// `autoprovision` is set, and never removed.
    pub fn managed_by_task(&self) -> bool {
        match &self.kind {
            VolumeKind::Empty => true,
            VolumeKind::Docker(cfg) => cfg.scope == VolumeScope::Task,
            VolumeKind::Host { .. } | VolumeKind::Unsupported { .. } => false,
        }
    }
}
