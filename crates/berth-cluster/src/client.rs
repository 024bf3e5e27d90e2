//! The cluster as a client sees it: submit, stop, list tasks and nodes, follow events.
//! Every node's API serves these (`/v1/cluster/...`), so any node takes work for the whole
//! cluster.
//!
//! - [`ClusterClient::submit`] writes `tasks/<id>` once: created only if absent, and with a
//!   client token, `tokens/<token>` in the same transaction, so a retry (same token) finds
//!   the task the first call made instead of making a second one. The definition is checked
//!   by the caller first (the API parses it as `POST /v1/tasks` does, with this node's host
//!   policy: every node of a cluster must run the same policy, and the node that runs the
//!   task checks again); [`split_placement`] takes the cluster's own fields out of the body.
//! - [`ClusterClient::stop`] sets desired STOPPED, guarded by the task's mod revision and
//!   retried on a conflict.
//! - [`ClusterClient::list_tasks`] and [`ClusterClient::list_nodes`] read at one revision
//!   and join task, placement and status (nodes: info, alive, drain, assignments, leader).
//! - [`ClusterClient::events`] streams changes under `tasks/`, `placement/` and `status/`
//!   from a revision; when that revision was compacted it lists again (the current state,
//!   each key as a `PUT`, after a `RESYNC` marker) and goes on from the listing.

use crate::keys::{Keys, check_name};
use crate::records::{
    self, Assignment, Desired, Drain, NodeAlive, NodeInfo, PartitionPolicy, Pending, Placement, PlacementConstraint,
    PlacementStrategy, RecordError, StatusRecord, TaskRecord,
};
use crate::store::{ClusterError, ClusterStore, Compare, EventKind, KeyValue, Op, Revision, Txn};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many times a write that lost a race (a compare failed) is read and tried again.
const CONFLICT_RETRIES: usize = 20;

/// What can go wrong for a client of the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The store failed (unreachable, no leader, refused).
    #[error(transparent)]
    Store(#[from] ClusterError),
    /// A stored record could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// No such task.
    #[error("no cluster task {0}")]
    TaskNotFound(String),
    /// The client token was used for a task with another definition.
    #[error("client token {token:?} was used for cluster task {task}, whose definition differs from this one")]
    TokenConflict {
        /// The token.
        token: String,
        /// The task it made.
        task: String,
    },
    /// No registered node could hold the task even empty (`scheduler::check_submit`).
    #[error("no node of the cluster could ever run this task: {0}")]
    NeverFits(String),
    /// Too many concurrent writers changed the task between read and write.
    #[error("cluster task {0} kept changing under this write; try again")]
    Contended(String),
}

/// One problem in the cluster's fields of a submitted body, with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementIssue {
    /// JSON path (`placementStrategy[0].field`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The cluster's fields of a submitted body: where the task may run and how a node is chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placing {
    /// `placementConstraints` (the task definition's and RunTask's field).
    pub constraints: Vec<PlacementConstraint>,
    /// `placementStrategy` (RunTask's field).
    pub strategy: Vec<PlacementStrategy>,
    /// `partitionPolicy`: `keep` (the default), `exclusive` or `replace`.
    pub partition: PartitionPolicy,
}

/// Takes `placementConstraints`, `placementStrategy` and `partitionPolicy` out of a
/// submitted body (an object; a bare array has none) and checks their shape. What is left
/// is the definition as `POST /v1/tasks` takes it. The placement code checks the
/// expressions themselves again when it places.
pub fn split_placement(body: &mut Value) -> Result<Placing, Vec<PlacementIssue>> {
    let mut placing = Placing::default();
    let Some(object) = body.as_object_mut() else { return Ok(placing) };
    let mut issues = Vec::new();
    let mut issue = |path: String, message: String| issues.push(PlacementIssue { path, message });
    let constraints = object.remove("placementConstraints");
    let strategy = object.remove("placementStrategy");
    // The placement code's own reader: the same rules, and errors with the same paths, as
    // when the scheduler places the task.
    match berth_model::placement::Rules::from_json(constraints.as_ref(), strategy.as_ref()) {
        Err(rejected) => {
            for e in rejected.errors {
                issue(e.path, e.message);
            }
        }
        Ok(_) => {
            let c: Result<Option<Vec<PlacementConstraint>>, _> =
                constraints.filter(|v| !v.is_null()).map(serde_json::from_value).transpose();
            let st: Result<Option<Vec<PlacementStrategy>>, _> =
                strategy.filter(|v| !v.is_null()).map(serde_json::from_value).transpose();
            match (c, st) {
                (Ok(c), Ok(s)) => {
                    placing.constraints = c.unwrap_or_default();
                    placing.strategy = s.unwrap_or_default();
                }
                (Err(e), _) | (_, Err(e)) => issue("placementConstraints".into(), e.to_string()),
            }
        }
    }
    if let Some(value) = object.remove("partitionPolicy") {
        match serde_json::from_value::<PartitionPolicy>(value) {
            Ok(policy) => placing.partition = policy,
            Err(_) => issue("partitionPolicy".into(), "expected keep, exclusive or replace".into()),
        }
    }
    if issues.is_empty() { Ok(placing) } else { Err(issues) }
}

/// A task to submit: its definition (already checked) and how to place it.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The body as `POST /v1/tasks` takes it (definition, `overrides`), without the
    /// cluster's fields.
    pub definition: Value,
    /// Where it may run and how a node is chosen.
    pub placing: Placing,
    /// The idempotency token, if any (1 to 64 printable ASCII characters: the API checks).
    pub client_token: Option<String>,
}

/// What a submit did.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// True when this call created the task; false when its client token had made it.
    pub created: bool,
    /// The task as stored.
    pub task: TaskRecord,
    /// Where the record's revision is (the create's, or the one read).
    pub revision: Revision,
}

/// A task with where it runs and what its node reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTask {
    /// The desired state.
    pub task: TaskRecord,
    /// The mod revision of `tasks/<id>`.
    pub revision: Revision,
    /// Its owner, once placed.
    pub placement: Option<Placement>,
    /// The scheduler's word while it is not placed: why it waits, or why it was refused.
    pub pending: Option<Pending>,
    /// Each reporting node's latest status (the owner's, and a former owner's until it
    /// removes it).
    pub status: BTreeMap<String, StatusRecord>,
}

/// A node as the cluster sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    /// Its name.
    pub name: String,
    /// What it offers (absent until it registered once).
    pub info: Option<NodeInfo>,
    /// Its current process, while its lease lives.
    pub alive: Option<NodeAlive>,
    /// The operator's drain, if any.
    pub drain: Option<Drain>,
    /// The sum of its assignments.
    pub used: Used,
    /// Whether its agent is the scheduler now.
    pub leader: bool,
}

/// What a node's assignments reserve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Used {
    /// Tasks assigned.
    pub tasks: usize,
    /// CPU units.
    pub cpu: u64,
    /// Memory MiB.
    pub memory_mib: u64,
    /// Static host ports.
    pub ports: Vec<String>,
}

/// The nodes, with the scheduler's leader.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNodes {
    /// Every node with a key (alive or not), by name.
    pub nodes: Vec<ClusterNode>,
    /// The leader's value as it campaigned (its node name), if any leads.
    pub leader: Option<String>,
    /// The revision read at.
    pub revision: Revision,
}

/// One change of the cluster's desired state, placement or status.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEvent {
    /// The store revision of the change: resume with `from = revision + 1`.
    pub revision: Revision,
    /// `PUT`, `DELETE`, or `RESYNC` (the revision asked for was compacted: what follows,
    /// up to the next change, is the whole current state as `PUT`s).
    pub op: &'static str,
    /// `task`, `placement`, `pending` (the scheduler's word on an unplaced task) or
    /// `status` (empty for `RESYNC`).
    pub kind: &'static str,
    /// The task id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub task: String,
    /// The reporting node, for `status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The record after a `PUT` (null for a `DELETE`).
    pub value: Option<Value>,
}

/// The cluster through its store, as one node's API uses it.
#[derive(Clone)]
pub struct ClusterClient {
    store: Arc<dyn ClusterStore>,
    keys: Keys,
    node: String,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient").field("root", &self.keys.root()).field("node", &self.node).finish()
    }
}

impl ClusterClient {
    /// The client of the cluster under `keys`, on node `node` (recorded as `submittedVia`).
    pub fn new(store: Arc<dyn ClusterStore>, keys: Keys, node: impl Into<String>) -> ClusterClient {
        ClusterClient { store, keys, node: node.into() }
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Stores a new task once. With a client token, a second call with the same token finds
    /// the first's task (`created: false`), or fails with [`ClientError::TokenConflict`]
    /// when its definition or placement differ.
    pub async fn submit(&self, new: NewTask) -> Result<Submitted, ClientError> {
        let mut refused_checked = false;
        for _ in 0..CONFLICT_RETRIES {
            let id = new_task_id();
            let record = TaskRecord {
                id: id.clone(),
                definition: new.definition.clone(),
                desired: Desired::Running,
                partition: new.placing.partition,
                constraints: new.placing.constraints.clone(),
                strategy: new.placing.strategy.clone(),
                client_token: new.client_token.clone(),
                submitted_via: self.node.clone(),
                submitted_at: chrono::Utc::now(),
            };
            // A task no registered node could hold even empty is refused before it is
            // stored; a retry whose token was used already gets the stored task instead.
            if !refused_checked {
                refused_checked = true;
                if let Err(refused) = self.refuse_if_never_fits(&record).await {
                    let token_used = match &new.client_token {
                        Some(token) => self.store.get(&self.keys.token(&token_key_segment(token))).await?.is_some(),
                        None => false,
                    };
                    if !token_used {
                        return Err(refused);
                    }
                }
            }
            let task_key = self.keys.task(&id);
            let mut txn = Txn {
                compares: vec![Compare::absent(&task_key)],
                success: vec![Op::put(&task_key, records::encode(&record))],
                failure: Vec::new(),
            };
            if let Some(token) = &new.client_token {
                let token_key = self.keys.token(&token_key_segment(token));
                txn.compares.push(Compare::absent(&token_key));
                txn.success.push(Op::put(&token_key, id.clone().into_bytes()));
                txn.failure.push(Op::get(&token_key));
            }
            let result = self.store.txn(txn).await?;
            if result.succeeded {
                return Ok(Submitted { created: true, task: record, revision: result.revision });
            }
            // The token was used (or, never in practice, the random id was taken).
            let Some(token) = &new.client_token else { continue };
            let Some(Some(held)) = result.reads.into_iter().next() else { continue };
            let held_id = String::from_utf8_lossy(&held.value).into_owned();
            let Some((task, revision)) = self.read_task(&held_id).await? else {
                // A token without its task: the task was deleted after it stopped; the
                // token keeps pointing at it, and the answer is the same conflict-free one.
                return Err(ClientError::TaskNotFound(held_id));
            };
            let same = task.definition == new.definition
                && task.constraints == new.placing.constraints
                && task.strategy == new.placing.strategy
                && task.partition == new.placing.partition;
            if !same {
                return Err(ClientError::TokenConflict { token: token.clone(), task: held_id });
            }
            return Ok(Submitted { created: false, task, revision });
        }
        Err(ClientError::Contended("(new task)".into()))
    }

    /// `NeverFits` when none of the registered nodes could hold `record` even empty.
    async fn refuse_if_never_fits(&self, record: &TaskRecord) -> Result<(), ClientError> {
        let listing = self.store.list(&self.keys.nodes(), None).await?;
        let mut nodes = BTreeMap::new();
        for kv in &listing.kvs {
            let Some(name) = kv.key.strip_prefix(&self.keys.nodes()).and_then(|rest| rest.strip_suffix("/info")) else {
                continue;
            };
            nodes.insert(name.to_string(), records::decode::<NodeInfo>(&kv.key, &kv.value)?);
        }
        crate::scheduler::check_submit(record, &nodes).map_err(ClientError::NeverFits)
    }

    /// Sets the task's desired status to STOPPED (nothing if it is already); the node
    /// running it stops it, and the scheduler then removes its placement.
    pub async fn stop(&self, id: &str) -> Result<TaskRecord, ClientError> {
        check_name("task id", id).map_err(|_| ClientError::TaskNotFound(id.to_string()))?;
        for _ in 0..CONFLICT_RETRIES {
            let Some((mut task, revision)) = self.read_task(id).await? else {
                return Err(ClientError::TaskNotFound(id.to_string()));
            };
            if task.desired == Desired::Stopped {
                return Ok(task);
            }
            task.desired = Desired::Stopped;
            let key = self.keys.task(id);
            let txn = Txn {
                compares: vec![Compare::mod_revision(&key, revision)],
                success: vec![Op::put(&key, records::encode(&task))],
                failure: Vec::new(),
            };
            if self.store.txn(txn).await?.succeeded {
                return Ok(task);
            }
        }
        Err(ClientError::Contended(id.to_string()))
    }

    /// One task with its placement and status.
    pub async fn task(&self, id: &str) -> Result<Option<ClusterTask>, ClientError> {
        if check_name("task id", id).is_err() {
            return Ok(None);
        }
        let Some((task, revision)) = self.read_task(id).await? else { return Ok(None) };
        let placement = match self.store.get(&self.keys.placement(id)).await? {
            Some(kv) => Some(records::decode::<Placement>(&kv.key, &kv.value)?),
            None => None,
        };
        let pending = match self.store.get(&self.keys.pending(id)).await? {
            Some(kv) => Some(records::decode::<Pending>(&kv.key, &kv.value)?),
            None => None,
        };
        let listing = self.store.list(&format!("{}{id}/", self.keys.statuses()), None).await?;
        let status = statuses(&listing.kvs, &format!("{}{id}/", self.keys.statuses()))?;
        Ok(Some(ClusterTask { task, revision, placement, pending, status }))
    }

    /// Every task with its placement and status, read at one revision.
    pub async fn list_tasks(&self) -> Result<Vec<ClusterTask>, ClientError> {
        let tasks = self.store.list(&self.keys.tasks(), None).await?;
        let at = Some(tasks.revision);
        let placements = self.store.list(&self.keys.placements(), at).await?;
        let all_status = self.store.list(&self.keys.statuses(), at).await?;
        let pendings = self.store.list(&self.keys.pendings(), at).await?;
        let mut waiting: BTreeMap<String, Pending> = BTreeMap::new();
        for kv in &pendings.kvs {
            let id = suffix(&kv.key, &self.keys.pendings());
            waiting.insert(id.to_string(), records::decode(&kv.key, &kv.value)?);
        }
        let mut placed: BTreeMap<String, Placement> = BTreeMap::new();
        for kv in &placements.kvs {
            let id = suffix(&kv.key, &self.keys.placements());
            placed.insert(id.to_string(), records::decode(&kv.key, &kv.value)?);
        }
        let mut reported: BTreeMap<String, BTreeMap<String, StatusRecord>> = BTreeMap::new();
        for kv in &all_status.kvs {
            let rest = suffix(&kv.key, &self.keys.statuses());
            let Some((id, node)) = rest.split_once('/') else { continue };
            reported.entry(id.to_string()).or_default().insert(node.to_string(), records::decode(&kv.key, &kv.value)?);
        }
        let mut out = Vec::with_capacity(tasks.kvs.len());
        for kv in &tasks.kvs {
            let task: TaskRecord = records::decode(&kv.key, &kv.value)?;
            let placement = placed.remove(&task.id);
            let pending = waiting.remove(&task.id);
            let status = reported.remove(&task.id).unwrap_or_default();
            out.push(ClusterTask { task, revision: kv.mod_revision, placement, pending, status });
        }
        Ok(out)
    }

    /// Every node with what it offers, whether it is alive (its epoch), what its
    /// assignments use, and which one leads, read at one revision.
    pub async fn list_nodes(&self) -> Result<ClusterNodes, ClientError> {
        let nodes = self.store.list(&self.keys.nodes(), None).await?;
        let assigned = self.store.list(&self.keys.assignments(), Some(nodes.revision)).await?;
        let leader = self.store.leader(&self.keys.election()).await?;
        let leader = leader.map(|kv| leader_name(&kv.value));
        let mut by_name: BTreeMap<String, ClusterNode> = BTreeMap::new();
        let entry = |map: &mut BTreeMap<String, ClusterNode>, name: &str| {
            map.entry(name.to_string())
                .or_insert_with(|| ClusterNode {
                    name: name.to_string(),
                    info: None,
                    alive: None,
                    drain: None,
                    used: Used::default(),
                    leader: leader.as_deref() == Some(name),
                })
                .clone()
        };
        for kv in &nodes.kvs {
            let rest = suffix(&kv.key, &self.keys.nodes());
            let Some((name, what)) = rest.split_once('/') else { continue };
            let mut node = entry(&mut by_name, name);
            match what {
                "info" => node.info = Some(records::decode(&kv.key, &kv.value)?),
                "alive" => node.alive = Some(records::decode(&kv.key, &kv.value)?),
                "drain" => node.drain = Some(records::decode(&kv.key, &kv.value)?),
                _ => {}
            }
            by_name.insert(name.to_string(), node);
        }
        for kv in &assigned.kvs {
            let rest = suffix(&kv.key, &self.keys.assignments());
            let Some((name, _)) = rest.split_once('/') else { continue };
            let assignment: Assignment = records::decode(&kv.key, &kv.value)?;
            let mut node = entry(&mut by_name, name);
            node.used.tasks += 1;
            node.used.cpu += assignment.cpu;
            node.used.memory_mib += assignment.memory_mib;
            node.used.ports.extend(assignment.ports);
            by_name.insert(name.to_string(), node);
        }
        Ok(ClusterNodes { nodes: by_name.into_values().collect(), leader, revision: nodes.revision })
    }

    /// The changes under `tasks/`, `placement/` and `status/` from revision `from` (none:
    /// the current state first, as `PUT`s, then every change), until the receiver is
    /// dropped. A compacted `from` gives a `RESYNC` and the current state. Store errors
    /// end the stream after being sent.
    pub fn events(&self, from: Option<Revision>) -> mpsc::Receiver<Result<ClusterEvent, ClientError>> {
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.follow(from, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn follow(
        &self,
        from: Option<Revision>,
        tx: &mpsc::Sender<Result<ClusterEvent, ClientError>>,
    ) -> Result<(), ClientError> {
        let root = self.keys.root().to_string();
        let mut next = match from {
            Some(from) => from.max(1),
            None => match self.snapshot(None, tx).await? {
                Some(revision) => revision + 1,
                None => return Ok(()),
            },
        };
        loop {
            let mut watch = self.store.watch(&root, next).await?;
            loop {
                match watch.next().await {
                    Some(Ok(batch)) => {
                        for event in &batch.events {
                            next = next.max(event.kv.mod_revision + 1);
                            let deleted = event.kind == EventKind::Delete;
                            let Some(change) = self.event_of(&event.kv, deleted)? else { continue };
                            if tx.send(Ok(change)).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                    Some(Err(ClusterError::Compacted { compact_revision })) => {
                        match self.snapshot(Some(compact_revision), tx).await? {
                            Some(revision) => next = revision + 1,
                            None => return Ok(()),
                        }
                        break;
                    }
                    Some(Err(ClusterError::Unavailable(_))) | None => {
                        // Watch again from the next revision (a blip of the store).
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        break;
                    }
                    Some(Err(e)) => return Err(e.into()),
                }
            }
            if tx.is_closed() {
                return Ok(());
            }
        }
    }

    /// Sends the current state as `PUT`s (after a `RESYNC` when `compacted` says the
    /// asked revision is gone); the listing's revision, or None once the receiver is gone.
    async fn snapshot(
        &self,
        compacted: Option<Revision>,
        tx: &mpsc::Sender<Result<ClusterEvent, ClientError>>,
    ) -> Result<Option<Revision>, ClientError> {
        let listing = self.store.list(self.keys.root(), None).await?;
        if compacted.is_some() {
            let resync = ClusterEvent {
                revision: listing.revision,
                op: "RESYNC",
                kind: "",
                task: String::new(),
                node: None,
                value: None,
            };
            if tx.send(Ok(resync)).await.is_err() {
                return Ok(None);
            }
        }
        for kv in &listing.kvs {
            let Some(change) = self.event_of(kv, false)? else { continue };
            if tx.send(Ok(change)).await.is_err() {
                return Ok(None);
            }
        }
        Ok(Some(listing.revision))
    }

    /// The event of a key under `tasks/`, `placement/` or `status/`; None for other keys.
    fn event_of(&self, kv: &KeyValue, deleted: bool) -> Result<Option<ClusterEvent>, ClientError> {
        let rest = suffix(&kv.key, self.keys.root());
        let (kind, task, node) = match rest.split_once('/') {
            Some(("tasks", id)) => ("task", id.to_string(), None),
            Some(("placement", id)) => ("placement", id.to_string(), None),
            Some(("pending", id)) => ("pending", id.to_string(), None),
            Some(("status", id_node)) => match id_node.split_once('/') {
                Some((id, node)) => ("status", id.to_string(), Some(node.to_string())),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let value = if deleted {
            None
        } else {
            Some(
                serde_json::from_slice::<Value>(&kv.value)
                    .map_err(|e| RecordError { key: kv.key.clone(), message: e.to_string() })?,
            )
        };
        Ok(Some(ClusterEvent {
            revision: kv.mod_revision,
            op: if deleted { "DELETE" } else { "PUT" },
            kind,
            task,
            node,
            value,
        }))
    }

    async fn read_task(&self, id: &str) -> Result<Option<(TaskRecord, Revision)>, ClientError> {
        match self.store.get(&self.keys.task(id)).await? {
            Some(kv) => Ok(Some((records::decode(&kv.key, &kv.value)?, kv.mod_revision))),
            None => Ok(None),
        }
    }
}

/// A new cluster-wide task id: 32 random hex digits (a key segment).
fn new_task_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A client token as a key segment: tokens may hold any printable ASCII, so every byte
/// outside `[A-Za-z0-9._-]` is written as `%XX`.
fn token_key_segment(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name a leader campaigned with: its node name (as text; JSON `{"node": ...}` too).
fn leader_name(value: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(value)
        && let Some(Value::String(node)) = map.get("node")
    {
        return node.clone();
    }
    String::from_utf8_lossy(value).into_owned()
}

fn suffix<'a>(key: &'a str, prefix: &str) -> &'a str {
    key.strip_prefix(prefix).unwrap_or(key)
}

fn statuses(kvs: &[KeyValue], prefix: &str) -> Result<BTreeMap<String, StatusRecord>, ClientError> {
    let mut out = BTreeMap::new();
    for kv in kvs {
        out.insert(suffix(&kv.key, prefix).to_string(), records::decode(&kv.key, &kv.value)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placement_fields_are_taken_out_and_checked_with_paths() {
        let mut body = json!({
            "family": "web",
            "containerDefinitions": [],
            "placementConstraints": [{"type": "memberOf", "expression": "attribute:zone == a"}, {"type": "distinctInstance"}],
            "placementStrategy": [{"type": "binpack", "field": "memory"}, {"type": "spread", "field": "attribute:zone"}],
            "partitionPolicy": "exclusive",
        });
        let placing = split_placement(&mut body).expect("valid");
        assert_eq!(placing.constraints.len(), 2);
        assert_eq!(placing.strategy.len(), 2);
        assert_eq!(placing.partition, PartitionPolicy::Exclusive);
        assert_eq!(body, json!({"family": "web", "containerDefinitions": []}), "only the definition is left");

        let mut bad = json!({
            "placementConstraints": [{"type": "memberOf"}, {"type": "near"}],
            "placementStrategy": [{"type": "binpack", "field": "disk"}, {"type": "random", "field": "x"}],
            "partitionPolicy": "sometimes",
        });
        let issues = split_placement(&mut bad).expect_err("invalid");
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "placementConstraints[0].expression",
                "placementConstraints[1].type",
                "placementStrategy[0].field",
                "placementStrategy[1].field",
                "partitionPolicy"
            ]
        );
        let mut array = json!([{"name": "a"}]);
        assert_eq!(split_placement(&mut array).expect("array"), Placing::default());
    }

    #[test]
    fn tokens_become_safe_key_segments() {
        assert_eq!(token_key_segment("abc-1.2_3"), "abc-1.2_3");
        assert_eq!(token_key_segment("a/b c"), "a%2Fb%20c");
        assert!(!token_key_segment("../../x").contains('/'), "no token reaches outside tokens/");
        assert_ne!(token_key_segment("a%2F"), token_key_segment("a/"), "the escape itself is escaped");
    }

    #[test]
    fn the_leader_is_named_by_its_value() {
        assert_eq!(leader_name(b"n1"), "n1");
        assert_eq!(leader_name(br#"{"node":"n2","epoch":5}"#), "n2");
    }
}
