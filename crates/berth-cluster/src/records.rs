//! What each key holds: JSON records, one type per kind of key (`keys` says where).
//! Every record is read with [`decode`], which names the key on error: a record berth
//! cannot read is reported, never guessed at.

use crate::store::{LeaseId, Revision};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the task's owner wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Desired {
    /// Run it.
    Running,
    /// Stop it (and then forget it).
    Stopped,
}

/// What a partition means for the task (`docs/cluster.md`; enforced by the partition work).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionPolicy {
    /// Never on two hosts at once: fenced by its node's lease, replaced after it expired.
    Exclusive,
    /// Keeps running while its host is cut off; replaced only after `node forget` (ECS's
    /// behaviour, the default).
    #[default]
    Keep,
    /// Replaced once its node's lease expired; the old copy stopped when the host returns.
    Replace,
}

/// One ECS placement constraint, as submitted (`{"type": "memberOf", "expression": ...}`
/// or `{"type": "distinctInstance"}`); the placement code parses and checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementConstraint {
    /// `memberOf` or `distinctInstance`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The cluster query language expression of `memberOf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// One ECS placement strategy, as submitted (`{"type": "binpack", "field": "memory"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementStrategy {
    /// `binpack`, `spread` or `random`.
    #[serde(rename = "type")]
    pub kind: String,
    /// binpack: `cpu` or `memory`; spread: `instanceId` or `attribute:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `tasks/<id>`: a task's desired state, written by the API of any node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// The cluster-wide task id (a key segment).
    pub id: String,
    /// The submitted body (ECS task definition, with RunTask's `overrides` beside it), as
    /// the node that runs it parses it again.
    pub definition: serde_json::Value,
    /// Running or stopped.
    pub desired: Desired,
    /// What a partition means for it.
    #[serde(default)]
    pub partition: PartitionPolicy,
    /// Where it may run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<PlacementConstraint>,
    /// How a node is chosen among those it may run on (none: `random`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strategy: Vec<PlacementStrategy>,
    /// The client token that made it, if any (`tokens/<token>` points back here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// The node whose API took it.
    pub submitted_via: String,
    /// When it was taken (RFC 3339).
    pub submitted_at: chrono::DateTime<chrono::Utc>,
}

/// `nodes/<n>/info`: what a node offers, written by its agent at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// CPU units tasks may reserve (1,024 per core, less the reserve).
    pub cpu: u64,
    /// Memory MiB tasks may reserve.
    pub memory_mib: u64,
    /// Host ports no task may take, as `port/protocol`.
    #[serde(default)]
    pub reserved_ports: Vec<String>,
    /// Attributes placement constraints and spread read (`zone = a`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The agent's version.
    pub version: String,
}

/// `nodes/<n>/alive`: the node's current process, under its lease (gone when it expires).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAlive {
    /// The node's epoch: its lease id.
    pub epoch: LeaseId,
    /// When this process registered.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Where its API answers, if it listens on TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `nodes/<n>/drain`: an operator asked the node to take no new work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drain {
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// By when its tasks should have moved, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

/// `placement/<id>`: the task's one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The node.
    pub node: String,
    /// The node's epoch when placed.
    pub epoch: LeaseId,
    /// How many times the task was placed (1 for the first placement).
    pub generation: u64,
}

/// `assign/<n>/<id>`: what node `n` must run, with what it reserves there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The task id.
    pub task: String,
    /// The placement's generation.
    pub generation: u64,
    /// The node's epoch when placed.
    pub epoch: LeaseId,
    /// The mod revision of `tasks/<id>` the scheduler placed.
    pub task_revision: Revision,
    /// CPU units reserved.
    pub cpu: u64,
    /// Memory MiB reserved.
    pub memory_mib: u64,
    /// Static host ports reserved, as `port/protocol`.
    #[serde(default)]
    pub ports: Vec<String>,
}

/// Whether a [`Pending`] task waits or was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PendingState {
    /// It fits no node now; the scheduler places it once one has room.
    Waiting,
    /// It can never be placed as submitted (no registered node could hold it even empty,
    /// or its definition or constraints cannot be read): final for this task revision.
    Failed,
}

/// `pending/<id>`: the scheduler's word on a task it has not placed (no lease; written by
/// the leader, deleted when the task is placed or forgotten).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    /// Waiting or refused.
    pub state: PendingState,
    /// What an operator reads: why.
    pub reason: String,
    /// Why each node cannot take it, by node name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, String>,
    /// The mod revision of `tasks/<id>` this is about.
    pub task_revision: Revision,
}

/// One container's status in a [`StatusRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatusRecord {
    /// The container's name in the task definition.
    pub name: String,
    /// Its known status (`NONE` ... `STOPPED`).
    pub status: String,
    /// Its exit code, once stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it stopped or failed, if berth knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Published ports, as `hostPort->containerPort/protocol`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// The status a node writes to `status/<id>/<node>` when it hands a task back (the reason
/// beside it): the scheduler then places the task elsewhere, leaving that node out.
pub const HANDED_BACK: &str = "HANDED_BACK";

/// `status/<id>/<n>`: node `n`'s latest report on task `id`, guarded by its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    /// The reporting node's epoch.
    pub epoch: LeaseId,
    /// The node engine's change-log sequence number this report includes.
    pub seq: u64,
    /// The task's known status.
    pub status: String,
    /// Why the task waits or stopped, if berth knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each container's status.
    pub containers: Vec<ContainerStatusRecord>,
    /// When the node wrote it.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A record that could not be read, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster record {key}: {message}")]
pub struct RecordError {
    /// The key whose value it is.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// Reads the record stored at `key`.
pub fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(value).map_err(|e| RecordError { key: key.to_string(), message: e.to_string() })
}

/// A record as stored.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // These records are plain structs with string-keyed maps: serializing them cannot fail.
    serde_json::to_vec(record).expect("a cluster record serializes")
}
