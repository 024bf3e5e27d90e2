//! What the leader should write next: a pure function of the [`View`] (no I/O, no clock
//! of its own: `now` is passed in), so every rule is unit-tested without a store.
//!
//! The rules, per task, oldest task first (by the create revision of `tasks/<id>`):
//! - **desired RUNNING, not placed**: placed by the pure placement on the view's nodes,
//!   each placement of the pass accounted before the next task is decided; a task that
//!   fits nowhere now waits (`pending/<id>`, WAITING, with each node's reason); one that no
//!   registered node could hold even empty, or whose definition or constraints cannot be
//!   read, is refused (`pending/<id>`, FAILED): final for that revision of the task record
//!   (a new revision is decided again). Nodes that handed the task back are excluded.
//! - **placed, assignment gone**: the node handed it back (its agent deletes the assignment
//!   and reports why in `status/<id>/<node>`): the placement is released, and the task is
//!   placed again elsewhere on a later pass.
//! - **placed, task record changed since**: the assignment is rewritten with the new task
//!   revision, so the node (which watches only its assignments) reads the task again; this
//!   is how a stop reaches it.
//! - **placed, the node reports it STOPPED** (a status written after the placement): while
//!   desired RUNNING the task ended by itself, and its desired status becomes STOPPED (as
//!   ECS does); once desired STOPPED, placement and assignment are deleted.
//! - **desired STOPPED, not placed**: forgotten (task record, its statuses and pending
//!   note deleted) once it has been so for [`super::Config::forget_after`], counted from when
//!   this leader first saw it so (a new leader counts again: a stopped task is kept at
//!   least that long, so `cluster ps` shows how it ended).
//! - A `keep` task whose node is gone is left as it is (issue 18's `node forget` decides);
//!   `exclusive` and `replace` placements go with their node's lease and are placed again,
//!   not before [`super::Config::reassign_delay`] after their loss was seen.

use super::view::{Entry, TaskEntry, View};
use crate::records::{Assignment, Desired, PartitionPolicy, Pending, PendingState, Placement, TaskRecord};
use crate::store::{LeaseId, Revision};
use berth_model::admission::Reservation;
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::{Duration, Instant};

use crate::records::HANDED_BACK;
/// The task status of a stopped task.
const STOPPED: &str = "STOPPED";

/// One write the leader should make. Each carries the revisions it was decided on: the
/// transaction compares them, so a decision on a stale view fails instead of applying.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Put `placement/<task>` and `assign/<node>/<task>` (create-only), and delete the
    /// task's pending note.
    Place {
        /// The task id.
        task: String,
        /// The mod revision of `tasks/<task>` decided on.
        task_revision: Revision,
        /// The node chosen.
        node: String,
        /// The mod revision of `nodes/<node>/info` decided on.
        info_revision: Revision,
        /// The placement record.
        placement: Placement,
        /// The assignment record.
        assignment: Assignment,
        /// The lease both keys are held under (the node's, for `exclusive` and `replace`).
        lease: Option<LeaseId>,
        /// Whether a pending note exists to delete.
        clear_pending: bool,
    },
    /// Put `pending/<task>`.
    Note {
        /// The task id.
        task: String,
        /// The mod revision of `tasks/<task>` decided on.
        task_revision: Revision,
        /// The note.
        pending: Pending,
    },
    /// Delete `placement/<task>` and, if present, `assign/<node>/<task>`.
    Release {
        /// The task id.
        task: String,
        /// The node of the placement.
        node: String,
        /// The mod revision of `placement/<task>` decided on.
        placement_revision: Revision,
        /// Whether the assignment is still there to delete.
        with_assignment: bool,
    },
    /// Rewrite `assign/<node>/<task>` with the task's new revision (under the same lease).
    Notify {
        /// The task id.
        task: String,
        /// The node.
        node: String,
        /// The mod revision of the assignment decided on.
        assignment_revision: Revision,
        /// The mod revision of `tasks/<task>` decided on.
        task_revision: Revision,
        /// The assignment as it should be.
        assignment: Assignment,
        /// Its lease, unchanged.
        lease: Option<LeaseId>,
    },
    /// Rewrite `tasks/<task>` with desired STOPPED: it ended by itself on its node.
    MarkStopped {
        /// The task id.
        task: String,
        /// The mod revision of `tasks/<task>` decided on.
        task_revision: Revision,
        /// The record, desired STOPPED.
        record: TaskRecord,
    },
    /// Delete `tasks/<task>`, its statuses and its pending note (placement absent).
    Forget {
        /// The task id.
        task: String,
        /// The mod revision of `tasks/<task>` decided on.
        task_revision: Revision,
        /// The nodes whose `status/<task>/<node>` to delete.
        status_nodes: Vec<String>,
        /// Whether a pending note exists to delete.
        clear_pending: bool,
    },
}

/// What the leader remembers beside the view, by time: when it first saw each task
/// stopped and unplaced (to forget it later), and when it saw a placement lost that it did
/// not release itself (to wait the reassign delay).
#[derive(Debug, Clone, Default)]
pub struct Clocks {
    /// Task id → when it was first seen desired STOPPED and unplaced.
    pub stopped_since: BTreeMap<String, Instant>,
    /// Task id → when its placement was seen deleted by someone else (a lease's expiry).
    pub lost_at: BTreeMap<String, Instant>,
}

impl Clocks {
    /// Notes what the view shows at `now`: stopped tasks start their countdown, tasks no
    /// longer stopped or placed again are cleared.
    pub fn observe(&mut self, view: &View, now: Instant) {
        self.stopped_since.retain(|id, _| view.tasks.get(id).is_some_and(|t| done(t, view)));
        for (id, task) in &view.tasks {
            if done(task, view) {
                self.stopped_since.entry(id.clone()).or_insert(now);
            }
        }
        self.lost_at.retain(|id, _| view.tasks.contains_key(id) && !view.placements.contains_key(id));
    }
}

fn done(task: &TaskEntry, view: &View) -> bool {
    task.entry.record.desired == Desired::Stopped && !view.placements.contains_key(&task.entry.record.id)
}

/// The decisions' settings.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How long a stopped task is kept before it is forgotten.
    pub forget_after: Duration,
    /// How long after a placement's loss the task may be placed again.
    pub reassign_delay: Duration,
}

/// What to write now, and when to decide again if nothing changes before (a countdown).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    /// The writes, in order.
    pub actions: Vec<Action>,
    /// The earliest countdown still running (forget, reassign delay), if any.
    pub wake_at: Option<Instant>,
}

/// Decides every write the view calls for (see the module docs).
pub fn decide(view: &View, clocks: &Clocks, rules: Rules, now: Instant) -> Decisions {
    let mut out = Decisions::default();
    let mut cluster = super::fit::cluster_view(view);
    let mut order: Vec<&TaskEntry> = view.tasks.values().collect();
    order.sort_by_key(|t| (t.entry.create_revision, t.entry.record.id.clone()));
    for task in order {
        let id = task.entry.record.id.as_str();
        let task_revision = task.entry.mod_revision;
        if let Some(placement) = view.placements.get(id) {
            placed(view, task, placement, &mut out.actions);
            continue;
        }
        match task.entry.record.desired {
            Desired::Stopped => {
                let since = clocks.stopped_since.get(id).copied().unwrap_or(now);
                let due = since + rules.forget_after;
                if now >= due {
                    out.actions.push(Action::Forget {
                        task: id.to_string(),
                        task_revision,
                        status_nodes: view.statuses.get(id).map(|s| s.keys().cloned().collect()).unwrap_or_default(),
                        clear_pending: view.pending.contains_key(id),
                    });
                } else {
                    wake(&mut out.wake_at, due);
                }
            }
            Desired::Running => {
                let pending = view.pending.get(id);
                if pending
                    .is_some_and(|p| p.record.state == PendingState::Failed && p.record.task_revision == task_revision)
                {
                    continue; // refused; a new revision of the record is decided again
                }
                if let Some(&lost) = clocks.lost_at.get(id) {
                    let due = lost + rules.reassign_delay;
                    if now < due {
                        wake(&mut out.wake_at, due);
                        continue;
                    }
                }
                let needs = match &task.needs {
                    Ok(needs) => needs,
                    Err(reason) => {
                        note(&mut out.actions, task, pending, PendingState::Failed, reason.clone(), BTreeMap::new());
                        continue;
                    }
                };
                let excluded = handed_back_by(view, id);
                let generation = view.generations.get(id).copied().unwrap_or(0) + 1;
                let seed = berth_model::fnv1a_64(id.as_bytes()) ^ generation;
                match super::fit::choose(&mut cluster, needs, &excluded, seed) {
                    super::fit::Choice::Node(node) => {
                        let Some(action) = place(view, task, &needs.request.reservation, &node, pending.is_some())
                        else {
                            continue;
                        };
                        super::fit::apply(&mut cluster, &node, &needs.request);
                        out.actions.push(action);
                    }
                    super::fit::Choice::Wait { reason, nodes } => {
                        note(&mut out.actions, task, pending, PendingState::Waiting, reason, nodes);
                    }
                    super::fit::Choice::Never { reason, nodes } => {
                        note(&mut out.actions, task, pending, PendingState::Failed, reason, nodes);
                    }
                }
            }
        }
    }
    out
}

/// The rules for a placed task.
fn placed(view: &View, task: &TaskEntry, placement: &Entry<Placement>, actions: &mut Vec<Action>) {
    let id = task.entry.record.id.as_str();
    let node = placement.record.node.as_str();
    let Some(assignment) = view.assignment(node, id) else {
        // Handed back (or its assignment otherwise gone): release, place again later.
        actions.push(Action::Release {
            task: id.to_string(),
            node: node.to_string(),
            placement_revision: placement.mod_revision,
            with_assignment: false,
        });
        return;
    };
    let stopped_there = view
        .statuses
        .get(id)
        .and_then(|s| s.get(node))
        .is_some_and(|s| s.record.status == STOPPED && s.mod_revision > placement.create_revision);
    if stopped_there {
        match task.entry.record.desired {
            Desired::Running => {
                let mut record = task.entry.record.clone();
                record.desired = Desired::Stopped;
                actions.push(Action::MarkStopped {
                    task: id.to_string(),
                    task_revision: task.entry.mod_revision,
                    record,
                });
            }
            Desired::Stopped => actions.push(Action::Release {
                task: id.to_string(),
                node: node.to_string(),
                placement_revision: placement.mod_revision,
                with_assignment: true,
            }),
        }
        return;
    }
    if assignment.record.task_revision < task.entry.mod_revision {
        let alive = view.nodes.get(node).and_then(|n| n.epoch()).is_some();
        if !alive && task.entry.record.partition == PartitionPolicy::Keep {
            return; // its node is gone: nobody reads the assignment; issue 18 decides
        }
        let mut updated = assignment.record.clone();
        updated.task_revision = task.entry.mod_revision;
        actions.push(Action::Notify {
            task: id.to_string(),
            node: node.to_string(),
            assignment_revision: assignment.mod_revision,
            task_revision: task.entry.mod_revision,
            assignment: updated,
            lease: assignment.lease,
        });
    }
}

/// The placement of `task` on `node`, if the node is alive with an info record.
fn place(view: &View, task: &TaskEntry, reservation: &Reservation, node: &str, clear_pending: bool) -> Option<Action> {
    let entry = view.nodes.get(node)?;
    let epoch = entry.epoch()?;
    let info = entry.info.as_ref()?;
    let id = task.entry.record.id.clone();
    let generation = view.generations.get(&id).copied().unwrap_or(0) + 1;
    let lease = match task.entry.record.partition {
        PartitionPolicy::Exclusive | PartitionPolicy::Replace => Some(epoch),
        PartitionPolicy::Keep => None,
    };
    Some(Action::Place {
        task: id.clone(),
        task_revision: task.entry.mod_revision,
        node: node.to_string(),
        info_revision: info.mod_revision,
        placement: Placement { node: node.to_string(), epoch, generation },
        assignment: Assignment {
            task: id,
            generation,
            epoch,
            task_revision: task.entry.mod_revision,
            cpu: reservation.cpu,
            memory_mib: reservation.memory_mib,
            ports: reservation.ports.iter().map(ToString::to_string).collect(),
        },
        lease,
        clear_pending,
    })
}

/// Adds a pending note unless the same one is already there.
fn note(
    actions: &mut Vec<Action>,
    task: &TaskEntry,
    have: Option<&Entry<Pending>>,
    state: PendingState,
    reason: String,
    nodes: BTreeMap<String, String>,
) {
    let pending = Pending { state, reason, nodes, task_revision: task.entry.mod_revision };
    if have.is_some_and(|h| h.record == pending) {
        return;
    }
    actions.push(Action::Note { task: task.entry.record.id.clone(), task_revision: task.entry.mod_revision, pending });
}

/// The nodes that handed task `id` back (their status says so): never chosen again for it.
pub fn handed_back_by(view: &View, id: &str) -> BTreeSet<String> {
    view.statuses
        .get(id)
        .map(|s| s.iter().filter(|(_, st)| st.record.status == HANDED_BACK).map(|(n, _)| n.clone()).collect())
        .unwrap_or_default()
}

fn wake(at: &mut Option<Instant>, due: Instant) {
    *at = Some(at.map_or(due, |a| a.min(due)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;
    use crate::records::{NodeAlive, NodeInfo, StatusRecord, encode};
    use crate::store::KeyValue;

    const RULES: Rules = Rules { forget_after: Duration::from_secs(60), reassign_delay: Duration::from_secs(5) };

    /// A view built key by key, each key written at the next revision.
    struct Build {
        keys: Keys,
        kvs: Vec<KeyValue>,
    }

    impl Build {
        fn new() -> Build {
            Build { keys: Keys::new("c").expect("name"), kvs: Vec::new() }
        }
        fn put<T: serde::Serialize>(&mut self, key: String, record: &T, lease: Option<LeaseId>) -> &mut Build {
            let revision = self.kvs.len() as i64 + 2;
            self.kvs.push(KeyValue {
                key,
                value: encode(record),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease,
            });
            self
        }
        fn node(&mut self, name: &str, alive: bool) -> &mut Build {
            let info = NodeInfo {
                cpu: 1024,
                memory_mib: 1024,
                reserved_ports: vec![],
                attributes: BTreeMap::new(),
                version: "t".into(),
            };
            self.put(self.keys.node_info(name), &info, None);
            if alive {
                let lease = LeaseId(7);
                let rec = NodeAlive { epoch: lease, started_at: chrono::Utc::now(), address: None };
                self.put(self.keys.node_alive(name), &rec, Some(lease));
            }
            self
        }
        fn task(&mut self, id: &str, desired: Desired, partition: PartitionPolicy) -> &mut Build {
            let record = TaskRecord {
                id: id.into(),
                definition: serde_json::json!({"family": "f", "containerDefinitions": [{"name": "c", "image": "busybox", "cpu": 256, "memory": 256}]}),
                desired,
                partition,
                constraints: vec![],
                strategy: vec![],
                client_token: None,
                submitted_via: "n".into(),
                submitted_at: chrono::Utc::now(),
            };
            self.put(self.keys.task(id), &record, None)
        }
        fn placed(&mut self, id: &str, node: &str, task_revision: Revision) -> &mut Build {
            let p = Placement { node: node.into(), epoch: LeaseId(7), generation: 1 };
            self.put(self.keys.placement(id), &p, None);
            let a = Assignment {
                task: id.into(),
                generation: 1,
                epoch: LeaseId(7),
                task_revision,
                cpu: 256,
                memory_mib: 256,
                ports: vec![],
            };
            self.put(self.keys.assignment(node, id), &a, None)
        }
        fn status(&mut self, id: &str, node: &str, status: &str) -> &mut Build {
            let s = StatusRecord {
                epoch: LeaseId(7),
                seq: 1,
                status: status.into(),
                reason: None,
                containers: vec![],
                updated_at: chrono::Utc::now(),
            };
            self.put(self.keys.status(id, node), &s, None)
        }
        fn view(&self) -> View {
            let revision = self.kvs.len() as i64 + 1;
            View::from_listing(self.keys.root(), &self.kvs, revision)
        }
    }

    fn kinds(d: &Decisions) -> Vec<&'static str> {
        d.actions
            .iter()
            .map(|a| match a {
                Action::Place { .. } => "place",
                Action::Note { .. } => "note",
                Action::Release { .. } => "release",
                Action::Notify { .. } => "notify",
                Action::MarkStopped { .. } => "mark-stopped",
                Action::Forget { .. } => "forget",
            })
            .collect()
    }

    #[test]
    fn a_stop_reaches_the_node_through_its_assignment_then_is_released_once_reported() {
        let now = Instant::now();
        let mut b = Build::new();
        b.node("a", true).task("t", Desired::Running, PartitionPolicy::Keep);
        let task_revision = b.kvs.len() as i64 + 1;
        b.placed("t", "a", task_revision).task("t", Desired::Stopped, PartitionPolicy::Keep);
        let d = decide(&b.view(), &Clocks::default(), RULES, now);
        assert_eq!(kinds(&d), ["notify"], "the assignment is rewritten with the stopped revision");
        b.status("t", "a", "STOPPED");
        let d = decide(&b.view(), &Clocks::default(), RULES, now);
        assert_eq!(kinds(&d), ["release"]);
        assert!(matches!(&d.actions[0], Action::Release { with_assignment: true, .. }));
    }

    #[test]
    fn a_task_that_stopped_by_itself_becomes_desired_stopped() {
        let mut b = Build::new();
        b.node("a", true).task("t", Desired::Running, PartitionPolicy::Keep);
        let task_revision = b.kvs.len() as i64 + 1;
        b.placed("t", "a", task_revision).status("t", "a", "STOPPED");
        let d = decide(&b.view(), &Clocks::default(), RULES, Instant::now());
        assert_eq!(kinds(&d), ["mark-stopped"]);
    }

    #[test]
    fn a_stopped_task_is_forgotten_after_the_delay_with_its_statuses() {
        let now = Instant::now();
        let mut b = Build::new();
        b.node("a", true).task("t", Desired::Stopped, PartitionPolicy::Keep).status("t", "a", "STOPPED");
        let view = b.view();
        let mut clocks = Clocks::default();
        clocks.observe(&view, now);
        let d = decide(&view, &clocks, RULES, now);
        assert!(d.actions.is_empty());
        assert_eq!(d.wake_at, Some(now + RULES.forget_after));
        let d = decide(&view, &clocks, RULES, now + RULES.forget_after);
        assert_eq!(d.actions.len(), 1);
        assert!(matches!(&d.actions[0], Action::Forget { status_nodes, .. } if status_nodes == &["a".to_string()]));
    }

    #[test]
    fn a_keep_task_on_a_gone_node_is_left_alone() {
        let mut b = Build::new();
        b.node("a", false).node("b", true).task("t", Desired::Running, PartitionPolicy::Keep);
        let task_revision = b.kvs.len() as i64 + 1;
        b.placed("t", "a", task_revision).task("t", Desired::Stopped, PartitionPolicy::Keep);
        let d = decide(&b.view(), &Clocks::default(), RULES, Instant::now());
        assert!(d.actions.is_empty(), "{:?}", d.actions);
    }

    #[test]
    fn a_lost_placement_waits_the_reassign_delay() {
        let now = Instant::now();
        let mut b = Build::new();
        b.node("a", true).task("t", Desired::Running, PartitionPolicy::Exclusive);
        let view = b.view();
        let mut clocks = Clocks::default();
        clocks.lost_at.insert("t".into(), now);
        let d = decide(&view, &clocks, RULES, now);
        assert!(d.actions.is_empty());
        assert_eq!(d.wake_at, Some(now + RULES.reassign_delay));
        let d = decide(&view, &clocks, RULES, now + RULES.reassign_delay);
        assert_eq!(kinds(&d), ["place"]);
        assert!(
            matches!(&d.actions[0], Action::Place { lease: Some(LeaseId(7)), .. }),
            "exclusive: under the node's lease"
        );
    }

    #[test]
    fn a_refusal_is_final_for_its_revision_and_written_once() {
        let mut b = Build::new();
        b.node("a", true);
        let mut t = TaskRecord {
            id: "big".into(),
            definition: serde_json::json!({"family": "f", "containerDefinitions": [{"name": "c", "image": "busybox", "cpu": 4096, "memory": 256}]}),
            desired: Desired::Running,
            partition: PartitionPolicy::Keep,
            constraints: vec![],
            strategy: vec![],
            client_token: None,
            submitted_via: "n".into(),
            submitted_at: chrono::Utc::now(),
        };
        b.put(b.keys.task("big"), &t, None);
        let d = decide(&b.view(), &Clocks::default(), RULES, Instant::now());
        let Some(Action::Note { pending, task_revision, .. }) = d.actions.first() else { panic!("{:?}", d.actions) };
        assert_eq!(pending.state, PendingState::Failed);
        assert!(pending.reason.contains("even empty"), "{}", pending.reason);
        let pending = Pending { task_revision: *task_revision, ..pending.clone() };
        b.put(b.keys.pending("big"), &pending, None);
        assert!(decide(&b.view(), &Clocks::default(), RULES, Instant::now()).actions.is_empty());
        // Unreadable placement rules are refused too, naming the path.
        t.constraints =
            vec![crate::records::PlacementConstraint { kind: "memberOf".into(), expression: Some("((".into()) }];
        b.put(b.keys.task("big"), &t, None);
        let d = decide(&b.view(), &Clocks::default(), RULES, Instant::now());
        let Some(Action::Note { pending, .. }) = d.actions.first() else { panic!("{:?}", d.actions) };
        assert!(pending.reason.contains("placementConstraints[0]"), "{}", pending.reason);
    }
}
