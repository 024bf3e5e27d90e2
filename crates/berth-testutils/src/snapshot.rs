//! What tests read back from the fake: copies of its containers, taken under its lock.

use berth_docker::ContainerConfig;
use berth_model::HealthStatus;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A fake container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Exited (after at least one run).
    Exited,
}

impl RunState {
    /// Docker's state word: `created`, `running`, `exited`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Exited => "exited",
        }
    }
}

/// A copy of one fake container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSnapshot {
    /// Full id (64 lowercase hex).
    pub id: String,
    /// Name.
    pub name: String,
    /// Image reference, as given at create.
    pub image: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// State.
    pub state: RunState,
    /// Exit code of the last run, once exited.
    pub exit_code: Option<i64>,
    /// Health, when it has a health check and has started.
    pub health: Option<HealthStatus>,
    /// How many times it was started (a start of a running one does not count).
    pub times_started: u32,
    /// How many of those starts ran an exited container again (berth must never cause one).
    pub restarts_after_exit: u32,
    /// When it last started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last exited.
    pub finished_at: Option<DateTime<Utc>>,
    /// The whole config it was created with.
    pub config: ContainerConfig,
}
