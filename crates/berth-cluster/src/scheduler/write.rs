//! The leader's writes: each [`Action`] as compares and operations, several actions in one
//! transaction, every transaction guarded by the leader key's create revision (a deposed
//! leader's writes fail) and by the revisions the actions were decided on (a decision on a
//! stale view fails). The failure branch reads the leader key back, so a failed write
//! tells a lost leadership from a stale view.

use super::decide::Action;
use crate::keys::Keys;
use crate::records::encode;
use crate::store::{ClusterError, ClusterStore, CmpOp, Compare, Leadership, Op, Revision, Target, Txn};
use std::collections::BTreeSet;

/// etcd's default limit on compares, and on operations, per transaction (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// How one transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied at this revision.
    Applied(Revision),
    /// A compare on the view failed: the store had moved on (it was at this revision).
    Stale(Revision),
    /// The leader key is gone or is not the one won.
    NotLeader,
}

/// The transaction of `actions` (all or nothing).
pub fn txn_of(keys: &Keys, leadership: &Leadership, actions: &[Action]) -> Txn {
    let mut compares = vec![Compare::create_revision(leadership.key.clone(), leadership.revision)];
    let mut ops = Vec::new();
    let mut seen = BTreeSet::new();
    let mut compare = |c: Compare, compares: &mut Vec<Compare>| {
        if seen.insert((c.key.clone(), format!("{:?}", c.target))) {
            compares.push(c);
        }
    };
    for action in actions {
        match action {
            Action::Place { task, task_revision, node, info_revision, placement, assignment, lease, clear_pending } => {
                compare(Compare::absent(keys.placement(task)), &mut compares);
                compare(Compare::mod_revision(keys.task(task), *task_revision), &mut compares);
                compare(
                    Compare { key: keys.node_alive(node), op: CmpOp::Equal, target: Target::Lease(placement.epoch.0) },
                    &mut compares,
                );
                compare(Compare::mod_revision(keys.node_info(node), *info_revision), &mut compares);
                ops.push(Op::Put { key: keys.placement(task), value: encode(placement), lease: *lease });
                ops.push(Op::Put { key: keys.assignment(node, task), value: encode(assignment), lease: *lease });
                if *clear_pending {
                    ops.push(Op::delete(keys.pending(task)));
                }
            }
            Action::Note { task, task_revision, pending } => {
                compare(Compare::mod_revision(keys.task(task), *task_revision), &mut compares);
                ops.push(Op::put(keys.pending(task), encode(pending)));
            }
            Action::Release { task, node, placement_revision, with_assignment } => {
                compare(Compare::mod_revision(keys.placement(task), *placement_revision), &mut compares);
                ops.push(Op::delete(keys.placement(task)));
                if *with_assignment {
                    ops.push(Op::delete(keys.assignment(node, task)));
                }
            }
            Action::Notify { task, node, assignment_revision, task_revision, assignment, lease } => {
                compare(Compare::mod_revision(keys.assignment(node, task), *assignment_revision), &mut compares);
                compare(Compare::mod_revision(keys.task(task), *task_revision), &mut compares);
                ops.push(Op::Put { key: keys.assignment(node, task), value: encode(assignment), lease: *lease });
            }
            Action::MarkStopped { task, task_revision, record } => {
                compare(Compare::mod_revision(keys.task(task), *task_revision), &mut compares);
                ops.push(Op::put(keys.task(task), encode(record)));
            }
            Action::Forget { task, task_revision, status_nodes, clear_pending } => {
                compare(Compare::mod_revision(keys.task(task), *task_revision), &mut compares);
                compare(Compare::absent(keys.placement(task)), &mut compares);
                ops.push(Op::delete(keys.task(task)));
                ops.extend(status_nodes.iter().map(|n| Op::delete(keys.status(task, n))));
                if *clear_pending {
                    ops.push(Op::delete(keys.pending(task)));
                }
            }
        }
    }
    Txn { compares, success: ops, failure: vec![Op::get(leadership.key.clone())] }
}

/// How many compares and operations `action` adds to a transaction, at most.
fn weight(action: &Action) -> usize {
    match action {
        Action::Place { .. } => 4,
        Action::Forget { status_nodes, .. } => 3 + status_nodes.len(),
        _ => 2,
    }
}

/// Splits `actions` into transactions of at most `per_txn` actions that stay within
/// etcd's per-transaction limits.
pub fn chunks(actions: &[Action], per_txn: usize) -> Vec<&[Action]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut load = 1; // the leader compare
    for (i, action) in actions.iter().enumerate() {
        let w = weight(action);
        if i > start && (i - start >= per_txn.max(1) || load + w > MAX_TXN_OPS) {
            out.push(&actions[start..i]);
            start = i;
            load = 1;
        }
        load += w;
    }
    if start < actions.len() {
        out.push(&actions[start..]);
    }
    out
}

/// Runs the transaction of `actions`.
pub async fn write<S: ClusterStore + ?Sized>(
    store: &S,
    keys: &Keys,
    leadership: &Leadership,
    actions: &[Action],
) -> Result<Outcome, ClusterError> {
    let result = match store.txn(txn_of(keys, leadership, actions)).await {
        Ok(result) => result,
        // A put under a lease that just expired: the lease's deletions are on their way
        // through the watch; decide again once they are in.
        Err(ClusterError::LeaseNotFound(_)) => {
            // Listing the leader key gives it and the store's current revision, which is
            // past the lease's deletions.
            let now = store.list(&leadership.key, None).await?;
            return Ok(match now.kvs.iter().find(|kv| kv.key == leadership.key) {
                Some(kv) if kv.create_revision == leadership.revision => Outcome::Stale(now.revision),
                _ => Outcome::NotLeader,
            });
        }
        Err(e) => return Err(e),
    };
    if result.succeeded {
        return Ok(Outcome::Applied(result.revision));
    }
    match result.reads.first() {
        Some(Some(kv)) if kv.create_revision == leadership.revision => Ok(Outcome::Stale(result.revision)),
        _ => Ok(Outcome::NotLeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Pending;
    use crate::records::PendingState;
    use crate::store::MemoryStore;
    use std::time::Duration;

    #[tokio::test]
    async fn a_deposed_leaders_write_fails_and_says_so() {
        let store = MemoryStore::new();
        let keys = Keys::new("c").expect("name");
        store
            .txn(Txn { compares: vec![], success: vec![Op::put(keys.task("t"), b"{}".to_vec())], failure: vec![] })
            .await
            .expect("put");
        let task_revision = store.revision();
        let lease = store.grant(Duration::from_secs(5)).await.expect("grant").id;
        let leadership = store.campaign(&keys.election(), b"a".to_vec(), lease).await.expect("leads");
        let note = Action::Note {
            task: "t".into(),
            task_revision,
            pending: Pending {
                state: PendingState::Waiting,
                reason: "r".into(),
                nodes: Default::default(),
                task_revision,
            },
        };
        assert!(matches!(
            write(&store, &keys, &leadership, std::slice::from_ref(&note)).await,
            Ok(Outcome::Applied(_))
        ));
        // A stale view: the compare on the task fails, leadership holds.
        let mut stale = note.clone();
        if let Action::Note { task_revision, .. } = &mut stale {
            *task_revision -= 1;
        }
        assert!(matches!(write(&store, &keys, &leadership, &[stale]).await, Ok(Outcome::Stale(_))));
        store.revoke(lease).await.expect("revoke");
        let before = store.revision();
        assert_eq!(write(&store, &keys, &leadership, &[note]).await, Ok(Outcome::NotLeader));
        assert_eq!(store.revision(), before, "nothing written");
    }

    #[test]
    fn chunks_stay_within_etcds_limits() {
        let place = |i: usize| Action::Release {
            task: format!("t{i}"),
            node: "n".into(),
            placement_revision: 1,
            with_assignment: true,
        };
        let actions: Vec<Action> = (0..200).map(place).collect();
        let chunks = chunks(&actions, 100);
        assert!(
            chunks.iter().all(|c| c.len() * 2 < MAX_TXN_OPS),
            "{:?}",
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 200);
    }
}
