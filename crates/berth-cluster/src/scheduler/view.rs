//! The leader's view of the cluster: every key under the cluster's root it needs (tasks,
//! nodes, placements, assignments, statuses, pending notes, the election), decoded, kept
//! up to date from one list then watch of the root. Usage on a node is not stored: it is
//! the sum of the node's assignments here.
//!
//! Applying is idempotent and ignores what is older than what the view has for a key (a
//! key's entry keeps its mod revision), so replaying a batch does no harm. A record that
//! cannot be read is dropped with a warning: the view never guesses at it.

use crate::records::{self, Assignment, Drain, NodeAlive, NodeInfo, Pending, Placement, StatusRecord, TaskRecord};
use crate::store::{EventKind, KeyValue, LeaseId, Revision, WatchEvent};
use berth_model::admission::Reservation;
use berth_model::input::{self, ParseOptions};
use berth_model::placement::{Request, Rules};
use std::collections::BTreeMap;

/// A key as the view keeps it: the decoded record and the key's revisions and lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<T> {
    /// The record.
    pub record: T,
    /// The key's create revision.
    pub create_revision: Revision,
    /// The key's mod revision (what a compare of the write checks).
    pub mod_revision: Revision,
    /// The lease the key is held under, if any.
    pub lease: Option<LeaseId>,
}

/// What the scheduler reads of a task record: the placement request (what it reserves by
/// ECS's rules, its group for `distinctInstance` and spread: the definition's family, and
/// its constraints and strategies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskNeeds {
    /// The request the pure placement decides on.
    pub request: Request,
}

/// A task as the view keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEntry {
    /// `tasks/<id>`.
    pub entry: Entry<TaskRecord>,
    /// Its needs, or why its definition cannot be read (it is then refused).
    pub needs: Result<TaskNeeds, String>,
}

/// A node as the view keeps it (any of its keys may be missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeEntry {
    /// `nodes/<n>/info`.
    pub info: Option<Entry<NodeInfo>>,
    /// `nodes/<n>/alive` (gone with the node's lease).
    pub alive: Option<Entry<NodeAlive>>,
    /// `nodes/<n>/drain`.
    pub drain: Option<Entry<Drain>>,
}

impl NodeEntry {
    /// The node's epoch: the lease its `alive` key is held under, if it is alive.
    pub fn epoch(&self) -> Option<LeaseId> {
        self.alive.as_ref().and_then(|a| a.lease)
    }
}

/// The cluster as the leader sees it.
#[derive(Debug, Clone, Default)]
pub struct View {
    root: String,
    /// The store revision the view is complete up to.
    pub revision: Revision,
    /// `tasks/<id>`, by id.
    pub tasks: BTreeMap<String, TaskEntry>,
    /// `nodes/<n>/...`, by node name.
    pub nodes: BTreeMap<String, NodeEntry>,
    /// `placement/<id>`, by task id.
    pub placements: BTreeMap<String, Entry<Placement>>,
    /// `assign/<n>/<id>`, by node then task id.
    pub assignments: BTreeMap<String, BTreeMap<String, Entry<Assignment>>>,
    /// `status/<id>/<n>`, by task id then node.
    pub statuses: BTreeMap<String, BTreeMap<String, Entry<StatusRecord>>>,
    /// `pending/<id>`, by task id.
    pub pending: BTreeMap<String, Entry<Pending>>,
    /// Every key under the election (`scheduler/...`), with its create revision.
    pub election: BTreeMap<String, Revision>,
    /// The highest placement generation seen per task (placements are deleted, their
    /// generation is not forgotten while this view lives).
    pub generations: BTreeMap<String, u64>,
}

/// Which key of the layout a key is.
enum Which<'a> {
    Task(&'a str),
    NodeInfo(&'a str),
    NodeAlive(&'a str),
    NodeDrain(&'a str),
    Placement(&'a str),
    Assignment(&'a str, &'a str),
    Status(&'a str, &'a str),
    Pending(&'a str),
    Election,
    Other,
}

impl View {
    /// An empty view of the cluster whose keys start with `root` (`Keys::root`).
    pub fn new(root: &str) -> View {
        View { root: root.to_string(), ..View::default() }
    }

    /// A view of `kvs` as listed at `revision` (every key under the root).
    pub fn from_listing(root: &str, kvs: &[KeyValue], revision: Revision) -> View {
        let mut view = View::new(root);
        for kv in kvs {
            view.put(kv);
        }
        view.revision = revision;
        view
    }

    /// Applies the changes of one watch batch. The view's revision becomes that of the
    /// last event: a batch's own revision is the store's when it was sent, and the events
    /// of later revisions may still be on their way.
    pub fn apply_batch(&mut self, events: &[WatchEvent]) {
        for event in events {
            self.apply(event);
        }
    }

    /// Applies one change.
    pub fn apply(&mut self, event: &WatchEvent) {
        match event.kind {
            EventKind::Put => self.put(&event.kv),
            EventKind::Delete => self.delete(&event.kv.key, event.kv.mod_revision),
        }
        self.revision = self.revision.max(event.kv.mod_revision);
    }

    fn which<'a>(&self, key: &'a str) -> Which<'a> {
        let Some(rest) = key.strip_prefix(self.root.as_str()) else { return Which::Other };
        let parts: Vec<&'a str> = rest.split('/').collect();
        match parts.as_slice() {
            ["tasks", id] => Which::Task(id),
            ["nodes", n, "info"] => Which::NodeInfo(n),
            ["nodes", n, "alive"] => Which::NodeAlive(n),
            ["nodes", n, "drain"] => Which::NodeDrain(n),
            ["placement", id] => Which::Placement(id),
            ["assign", n, id] => Which::Assignment(n, id),
            ["status", id, n] => Which::Status(id, n),
            ["pending", id] => Which::Pending(id),
            ["scheduler", ..] => Which::Election,
            _ => Which::Other,
        }
    }

    fn put(&mut self, kv: &KeyValue) {
        match self.which(&kv.key) {
            Which::Task(id) => {
                if let Some(record) = decode::<TaskRecord>(kv) {
                    if newer(self.tasks.get(id).map(|t| &t.entry), kv) {
                        let needs = needs_of(&record);
                        self.tasks.insert(id.to_string(), TaskEntry { entry: entry(record, kv), needs });
                    }
                } else {
                    self.tasks.remove(id);
                }
            }
            Which::NodeInfo(n) => {
                let node = self.nodes.entry(n.to_string()).or_default();
                put_into(&mut node.info, kv);
            }
            Which::NodeAlive(n) => {
                let node = self.nodes.entry(n.to_string()).or_default();
                put_into(&mut node.alive, kv);
            }
            Which::NodeDrain(n) => {
                let node = self.nodes.entry(n.to_string()).or_default();
                put_into(&mut node.drain, kv);
            }
            Which::Placement(id) => {
                if let Some(record) = decode::<Placement>(kv) {
                    let seen = self.generations.entry(id.to_string()).or_default();
                    *seen = (*seen).max(record.generation);
                    if newer(self.placements.get(id), kv) {
                        self.placements.insert(id.to_string(), entry(record, kv));
                    }
                } else {
                    self.placements.remove(id);
                }
            }
            Which::Assignment(n, id) => {
                let node = self.assignments.entry(n.to_string()).or_default();
                put_map(node, id, kv);
            }
            Which::Status(id, n) => {
                let task = self.statuses.entry(id.to_string()).or_default();
                put_map(task, n, kv);
            }
            Which::Pending(id) => put_map(&mut self.pending, id, kv),
            Which::Election => {
                self.election.insert(kv.key.clone(), kv.create_revision);
            }
            Which::Other => {}
        }
    }

    fn delete(&mut self, key: &str, revision: Revision) {
        match self.which(key) {
            Which::Task(id) => {
                if self.tasks.get(id).is_some_and(|t| t.entry.mod_revision <= revision) {
                    self.tasks.remove(id);
                }
            }
            Which::NodeInfo(n) => self.delete_node_key(n, revision, |node| &mut node.info),
            Which::NodeAlive(n) => self.delete_node_key(n, revision, |node| &mut node.alive),
            Which::NodeDrain(n) => self.delete_node_key(n, revision, |node| &mut node.drain),
            Which::Placement(id) => delete_map(&mut self.placements, id, revision),
            Which::Assignment(n, id) => {
                if let Some(node) = self.assignments.get_mut(n) {
                    delete_map(node, id, revision);
                    if node.is_empty() {
                        self.assignments.remove(n);
                    }
                }
            }
            Which::Status(id, n) => {
                if let Some(task) = self.statuses.get_mut(id) {
                    delete_map(task, n, revision);
                    if task.is_empty() {
                        self.statuses.remove(id);
                    }
                }
            }
            Which::Pending(id) => delete_map(&mut self.pending, id, revision),
            Which::Election => {
                self.election.remove(key);
            }
            Which::Other => {}
        }
    }

    fn delete_node_key<T>(
        &mut self,
        n: &str,
        revision: Revision,
        field: impl Fn(&mut NodeEntry) -> &mut Option<Entry<T>>,
    ) {
        let Some(node) = self.nodes.get_mut(n) else { return };
        let slot = field(node);
        if slot.as_ref().is_some_and(|e| e.mod_revision <= revision) {
            *slot = None;
        }
        if node.info.is_none() && node.alive.is_none() && node.drain.is_none() {
            self.nodes.remove(n);
        }
    }

    /// The assignment of task `id` on node `node`, if any.
    pub fn assignment(&self, node: &str, id: &str) -> Option<&Entry<Assignment>> {
        self.assignments.get(node).and_then(|a| a.get(id))
    }
}

/// The needs of a task record: its definition read by berth's own parser (the node that
/// runs it reads it the same way), its constraints and strategies by the placement's.
pub fn needs_of(record: &TaskRecord) -> Result<TaskNeeds, String> {
    let bytes = serde_json::to_vec(&record.definition).map_err(|e| format!("task definition: {e}"))?;
    let opts = ParseOptions { family: None, arn_random: 0 };
    let accepted = input::parse(&bytes, &opts).map_err(|rejected| rejected.to_string())?;
    let rules = Rules::from_parts(
        record.constraints.iter().map(|c| (c.kind.as_str(), c.expression.as_deref())),
        record.strategy.iter().map(|s| (s.kind.as_str(), s.field.as_deref())),
    )
    .map_err(|rejected| rejected.to_string().replacen("invalid task definition", "invalid placement", 1))?;
    Ok(TaskNeeds {
        request: Request { reservation: Reservation::of(&accepted.task), group: accepted.task.family, rules },
    })
}

fn decode<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    match records::decode::<T>(&kv.key, &kv.value) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(error = %e, "scheduler: ignoring a record it cannot read");
            None
        }
    }
}

fn entry<T>(record: T, kv: &KeyValue) -> Entry<T> {
    Entry { record, create_revision: kv.create_revision, mod_revision: kv.mod_revision, lease: kv.lease }
}

/// Whether `kv` is at least as new as what the view has.
fn newer<T>(have: Option<&Entry<T>>, kv: &KeyValue) -> bool {
    have.is_none_or(|e| e.mod_revision <= kv.mod_revision)
}

fn put_into<T: serde::de::DeserializeOwned>(slot: &mut Option<Entry<T>>, kv: &KeyValue) {
    match decode::<T>(kv) {
        Some(record) => {
            if newer(slot.as_ref(), kv) {
                *slot = Some(entry(record, kv));
            }
        }
        None => *slot = None,
    }
}

fn put_map<T: serde::de::DeserializeOwned>(map: &mut BTreeMap<String, Entry<T>>, id: &str, kv: &KeyValue) {
    match decode::<T>(kv) {
        Some(record) => {
            if newer(map.get(id), kv) {
                map.insert(id.to_string(), entry(record, kv));
            }
        }
        None => {
            map.remove(id);
        }
    }
}

fn delete_map<T>(map: &mut BTreeMap<String, Entry<T>>, id: &str, revision: Revision) {
    if map.get(id).is_some_and(|e| e.mod_revision <= revision) {
        map.remove(id);
    }
}
