//! The agent side: run what the scheduler assigned to this node on the local engine.
//!
//! The runner watches only `assign/<node>/` (no herd), through a [`Reflector`]: it lists the
//! prefix, then watches from the listing's revision, and lists again when that revision was
//! compacted; a failed watch is watched again from the next revision not seen and never
//! stops anything (only the lease decides what moves). Each assignment's task is read from `tasks/<id>`, its
//! definition parsed with berth's input parser (the same as a local submit; a bare
//! `containerDefinitions` array takes the task id as its family), given the cluster arn
//! [`task_arn`] (`arn:berth:cluster/<cluster>/task/<id>`) and handed to the engine
//! (`EngineHandle::add_task`).
//!
//! - A task already in the engine under that arn (a restart within the lease) is left as it
//!   is: nothing is restarted.
//! - Desired `STOPPED` in the task record (seen when the assignment is written again), the
//!   task record gone, or the assignment deleted: `EngineHandle::stop_task`. After a
//!   re-list, a task of this cluster the engine holds without an assignment is stopped too.
//!   Only tasks with this cluster's arns are touched: local tasks are not the runner's.
//! - **Hand-back.** A task this node cannot run after all (the engine refuses it,
//!   `EngineError::NeverFits` or an invalid graph; the node's host policy refuses it, see
//!   [`HostCheck`]; its definition does not parse here) is handed back to the scheduler in
//!   one transaction guarded by the node's epoch (`nodes/<n>/alive`'s lease is the epoch)
//!   and by the assignment's mod revision (a newer assignment is never deleted): it puts
//!   `status/<id>/<node>` with status [`HANDED_BACK`], the reason in `reason`, `seq` 0 and
//!   no containers, and deletes `assign/<node>/<id>`. The placement is the scheduler's: it
//!   sees the assignment's deletion and the status, and places the task elsewhere (it
//!   should not choose this node again for that task while this record says so).
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn berth_cluster::ClusterStore>,
//! #   engine: berth_engine::EngineHandle, node: &berth_cluster::node::Node) -> Result<(), Box<dyn std::error::Error>> {
//! use berth_cluster::keys::Keys;
//! use berth_cluster::runner::{Runner, RunnerConfig};
//! use std::sync::Arc;
//!
//! let mut config = RunnerConfig::new(node.name());
//! // The daemon checks its host policy here (berth-agent's `policy::refusals`).
//! config.host_check = Some(Arc::new(|_accepted: &berth_model::input::Accepted| Ok(())));
//! let runner = Runner::start(Arc::clone(&store), Keys::new("prod")?, node.liveness(), engine, config);
//! // ...
//! runner.stop().await;
//! # Ok(()) }
//! ```

use crate::backoff::Backoff;
use crate::keys::Keys;
use crate::node::Liveness;
use crate::records::{self, Assignment, Desired, StatusRecord, TaskRecord};
use crate::reflector::{Reflector, ReflectorConfig, ReflectorEvent};
use crate::store::{ClusterError, ClusterStore, CmpOp, Compare, KeyValue, Op, Revision, Target, Txn};
use berth_engine::{EngineError, EngineHandle};
use berth_model::input::{self, Accepted, ParseOptions};
use berth_model::{Task, TaskStatus};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::records::HANDED_BACK;

/// The node's own check of a parsed task (the daemon's host policy): `Err(why)` refuses it
/// on this node, and the task is handed back with the reason.
pub type HostCheck = Arc<dyn Fn(&Accepted) -> Result<(), String> + Send + Sync>;

/// How the runner runs.
#[derive(Clone)]
pub struct RunnerConfig {
    /// This node's name.
    pub node: String,
    /// The node's host policy (none: every task that parses is allowed).
    pub host_check: Option<HostCheck>,
    /// Assignments of one watch batch handled at once (each waits for the engine's commit).
    pub parallel: usize,
}

impl std::fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("node", &self.node)
            .field("host_check", &self.host_check.is_some())
            .field("parallel", &self.parallel)
            .finish()
    }
}

impl RunnerConfig {
    /// The runner of node `node`, no host check, 32 assignments at once.
    pub fn new(node: impl Into<String>) -> RunnerConfig {
        RunnerConfig { node: node.into(), host_check: None, parallel: 32 }
    }
}

/// The engine arn of cluster task `id`: `arn:berth:cluster/<cluster>/task/<id>`.
pub fn task_arn(cluster: &str, id: &str) -> String {
    format!("arn:berth:cluster/{cluster}/task/{id}")
}

/// The cluster task id of an engine arn of `cluster`, if it is one.
pub fn task_id<'a>(cluster: &str, arn: &'a str) -> Option<&'a str> {
    let id = arn.strip_prefix("arn:berth:cluster/")?.strip_prefix(cluster)?.strip_prefix("/task/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The cluster name of `keys` (`/berth/v1/<cluster>/`).
pub(crate) fn cluster_name(keys: &Keys) -> String {
    keys.root().trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string()
}

/// The running agent loop; stopped by [`Runner::stop`] or drop (the tasks it started keep
/// running in the engine).
#[derive(Debug)]
pub struct Runner {
    task: Option<JoinHandle<()>>,
    applied: watch::Receiver<Revision>,
}

impl Runner {
    /// Starts running the assignments of `config.node` on `engine`; `liveness` is the node's
    /// ([`crate::node::Node::liveness`]), whose epoch guards hand-backs.
    pub fn start(
        store: Arc<dyn ClusterStore>,
        keys: Keys,
        liveness: watch::Receiver<Liveness>,
        engine: EngineHandle,
        config: RunnerConfig,
    ) -> Runner {
        let (tx, applied) = watch::channel(0);
        let ctx = Arc::new(Ctx { cluster: cluster_name(&keys), store, keys, liveness, engine, config });
        Runner { task: Some(tokio::spawn(run(ctx, tx))), applied }
    }

    /// The last revision of `assign/<node>/` the runner has acted on (every assignment up to
    /// it is in the engine, stopped, handed back, or, when the engine failed to take it,
    /// waiting to be tried again).
    pub fn applied(&self) -> watch::Receiver<Revision> {
        self.applied.clone()
    }

    /// Stops the loop (nothing is stopped in the engine).
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What the loop works with.
struct Ctx {
    cluster: String,
    store: Arc<dyn ClusterStore>,
    keys: Keys,
    liveness: watch::Receiver<Liveness>,
    engine: EngineHandle,
    config: RunnerConfig,
}

/// What handling one assignment left.
enum Outcome {
    /// The assignment at this mod revision is acted on.
    Held(Revision),
    /// Nothing held (deleted, or handed back).
    Gone,
    /// Not acted on (the engine failed to take it): tried again after a pause.
    Retry(KeyValue),
    /// The engine no longer runs: the loop ends.
    EngineGone,
}

/// Follows `assign/<node>/` through a [`Reflector`] (list, then watch from the listing's
/// revision, list again after a compaction) and acts on each task's latest assignment; after
/// each listing, also on the engine's tasks of this cluster that have none.
async fn run(ctx: Arc<Ctx>, applied: watch::Sender<Revision>) {
    let prefix = ctx.keys.node_assignments(&ctx.config.node);
    let (reflector, mut events) = Reflector::start(Arc::clone(&ctx.store), prefix.clone(), ReflectorConfig::default());
    let mut held: BTreeMap<String, Revision> = BTreeMap::new();
    let mut retry: BTreeMap<String, KeyValue> = BTreeMap::new();
    let mut backoff = Backoff::new();
    let mut revision = 0;
    loop {
        if retry.is_empty() {
            backoff = Backoff::new();
        }
        let first = tokio::select! {
            event = events.recv() => match event {
                Some(event) => Some(event),
                None => return,
            },
            () = tokio::time::sleep(backoff.next()), if !retry.is_empty() => None,
        };
        // Everything ready goes in one round: each task's latest assignment only.
        let mut changes: BTreeMap<String, Option<KeyValue>> =
            std::mem::take(&mut retry).into_iter().map(|(id, kv)| (id, Some(kv))).collect();
        let mut synced = false;
        let mut next = first;
        while let Some(event) = next {
            match event {
                ReflectorEvent::Put { kv, .. } => {
                    revision = revision.max(kv.mod_revision);
                    if let Some(id) = kv.key.strip_prefix(&prefix) {
                        changes.insert(id.to_string(), Some(kv.clone()));
                    }
                }
                ReflectorEvent::Delete { prev, revision: at } => {
                    revision = revision.max(at);
                    if let Some(id) = prev.key.strip_prefix(&prefix) {
                        changes.insert(id.to_string(), None);
                    }
                }
                ReflectorEvent::Synced { revision: at, .. } => {
                    revision = revision.max(at);
                    synced = true;
                }
            }
            next = events.try_recv().ok();
        }
        if synced {
            // Tasks of this cluster the engine holds without an assignment (unassigned while
            // this berth was down, or while it was behind a compaction) are stopped.
            let assigned = reflector.snapshot().kvs;
            match ctx.engine.list_tasks().await {
                Ok(tasks) => {
                    for task in tasks {
                        if let Some(id) = task_id(&ctx.cluster, &task.arn)
                            && task.desired_status != TaskStatus::Stopped
                            && !assigned.contains_key(&format!("{prefix}{id}"))
                        {
                            changes.entry(id.to_string()).or_insert(None);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %ctx.config.node, "the engine stopped: the runner ends ({e})");
                    return;
                }
            }
        }
        match ctx.apply(&mut held, changes).await {
            Some(again) => retry = again,
            None => return,
        }
        applied.send_replace(revision);
    }
}

impl Ctx {
    /// Acts on each task's latest assignment (`None`: deleted), `parallel` at once; returns
    /// the assignments to try again, or `None` once the engine is gone.
    async fn apply(
        &self,
        held: &mut BTreeMap<String, Revision>,
        changes: BTreeMap<String, Option<KeyValue>>,
    ) -> Option<BTreeMap<String, KeyValue>> {
        let work = changes.into_iter().map(|(id, kv)| {
            let before = held.get(&id).copied();
            async move {
                let outcome = self.handle(&id, kv, before).await;
                (id, outcome)
            }
        });
        let outcomes: Vec<(String, Outcome)> =
            futures_util::stream::iter(work).buffer_unordered(self.config.parallel.max(1)).collect().await;
        let mut engine_alive = true;
        let mut retry = BTreeMap::new();
        for (id, outcome) in outcomes {
            match outcome {
                Outcome::Held(revision) => {
                    held.insert(id, revision);
                }
                Outcome::Gone => {
                    held.remove(&id);
                }
                Outcome::Retry(kv) => {
                    held.remove(&id);
                    retry.insert(id, kv);
                }
                Outcome::EngineGone => engine_alive = false,
            }
        }
        engine_alive.then_some(retry)
    }

    async fn handle(&self, id: &str, kv: Option<KeyValue>, before: Option<Revision>) -> Outcome {
        let arn = task_arn(&self.cluster, id);
        let Some(kv) = kv else {
            return match self.stop(&arn).await {
                Ok(()) => Outcome::Gone,
                Err(gone) => gone,
            };
        };
        if before == Some(kv.mod_revision) {
            return Outcome::Held(kv.mod_revision);
        }
        let held = Outcome::Held(kv.mod_revision);
        if let Err(e) = records::decode::<Assignment>(&kv.key, &kv.value) {
            tracing::error!(node = %self.config.node, "{e}: not run");
            return held;
        }
        let Some(record) = self.task_record(id).await else {
            // No task (deleted) or an unreadable one: nothing to run; stop what runs.
            return match self.stop(&arn).await {
                Ok(()) => held,
                Err(gone) => gone,
            };
        };
        if record.desired == Desired::Stopped {
            return match self.stop(&arn).await {
                Ok(()) => held,
                Err(gone) => gone,
            };
        }
        match self.engine.task(&arn).await {
            Ok(Some(_)) => return held,
            Ok(None) => {}
            Err(_) => return Outcome::EngineGone,
        }
        let body = records::encode(&record.definition);
        let opts = ParseOptions { family: Some(id.to_string()), arn_random: 0 };
        let accepted = match input::parse(&body, &opts) {
            Ok(accepted) => accepted,
            Err(rejected) => {
                return self.hand_back(id, &kv, format!("{rejected} (on node {})", self.config.node)).await;
            }
        };
        if let Some(check) = &self.config.host_check
            && let Err(why) = check(&accepted)
        {
            let reason = format!("refused by the host policy of node {}: {why}", self.config.node);
            return self.hand_back(id, &kv, reason).await;
        }
        let mut task = accepted.task;
        give_arn(&mut task, arn);
        match self.engine.add_task(task).await {
            Ok(_) => held,
            Err(EngineError::NeverFits(e)) => {
                self.hand_back(id, &kv, format!("never fits node {}: {e}", self.config.node)).await
            }
            Err(e @ EngineError::InvalidGraph(_)) => {
                self.hand_back(id, &kv, format!("cannot run on node {}: {e}", self.config.node)).await
            }
            Err(EngineError::NotRunning | EngineError::Stopped(_)) => Outcome::EngineGone,
            Err(e) => {
                tracing::error!(node = %self.config.node, task = %id, "handing the task to the engine: {e}; trying again");
                Outcome::Retry(kv)
            }
        }
    }

    /// `tasks/<id>`, read until the store answers; `None` when absent or unreadable.
    async fn task_record(&self, id: &str) -> Option<TaskRecord> {
        let key = self.keys.task(id);
        let mut backoff = Backoff::new();
        let kv = loop {
            match self.store.get(&key).await {
                Ok(kv) => break kv?,
                Err(e) => {
                    tracing::warn!(node = %self.config.node, "reading {key}: {e}");
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        };
        match records::decode::<TaskRecord>(&kv.key, &kv.value) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::error!(node = %self.config.node, "{e}: not run");
                None
            }
        }
    }

    /// Stops the task in the engine (a task it does not hold is no error).
    async fn stop(&self, arn: &str) -> Result<(), Outcome> {
        match self.engine.stop_task(arn).await {
            Ok(()) | Err(EngineError::TaskNotFound(_)) => Ok(()),
            Err(EngineError::NotRunning | EngineError::Stopped(_)) => Err(Outcome::EngineGone),
            Err(e) => {
                tracing::error!(node = %self.config.node, "stopping {arn}: {e}");
                Ok(())
            }
        }
    }

    /// Writes the hand-back status and deletes the assignment, guarded by the epoch and the
    /// assignment's revision; retried while the store is unavailable.
    async fn hand_back(&self, id: &str, assignment: &KeyValue, reason: String) -> Outcome {
        let mut liveness = self.liveness.clone();
        let mut backoff = Backoff::new();
        loop {
            let epoch = match liveness.wait_for(|l| l.epoch.is_some()).await {
                Ok(l) => l.epoch,
                Err(_) => return Outcome::Gone,
            };
            let Some(epoch) = epoch else { continue };
            let status = StatusRecord {
                epoch,
                seq: 0,
                status: HANDED_BACK.to_string(),
                reason: Some(reason.clone()),
                containers: Vec::new(),
                updated_at: chrono::Utc::now(),
            };
            let txn = Txn {
                compares: vec![
                    Compare {
                        key: self.keys.node_alive(&self.config.node),
                        op: CmpOp::Equal,
                        target: Target::Lease(epoch.0),
                    },
                    Compare::mod_revision(assignment.key.clone(), assignment.mod_revision),
                ],
                success: vec![
                    Op::put(self.keys.status(id, &self.config.node), records::encode(&status)),
                    Op::delete(assignment.key.clone()),
                ],
                failure: vec![],
            };
            match self.store.txn(txn).await {
                Ok(result) if result.succeeded => {
                    tracing::warn!(node = %self.config.node, task = %id, "handed back: {reason}");
                    return Outcome::Gone;
                }
                Ok(_) => {
                    tracing::info!(node = %self.config.node, task = %id,
                        "not handed back: the node's epoch or the assignment changed meanwhile");
                    return Outcome::Gone;
                }
                Err(ClusterError::Unavailable(why)) => {
                    tracing::warn!(node = %self.config.node, task = %id, "handing back: {why}");
                    tokio::time::sleep(backoff.next()).await;
                }
                Err(e) => {
                    tracing::error!(node = %self.config.node, task = %id, "handing back: {e}");
                    return Outcome::Gone;
                }
            }
        }
    }
}

/// Gives a parsed task its cluster arn (and its task volumes the Docker names that go with
/// it).
fn give_arn(task: &mut Task, arn: String) {
    for volume in &mut task.volumes {
        if volume.docker_name.is_some() && volume.managed_by_task() {
            volume.docker_name = Some(berth_model::task::task_volume_name(&arn, &volume.name));
        }
    }
    task.arn = arn;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_arns_round_trip_and_others_are_not_ours() {
        let arn = task_arn("prod", "t-1");
        assert_eq!(arn, "arn:berth:cluster/prod/task/t-1");
        assert_eq!(task_id("prod", &arn), Some("t-1"));
        assert_eq!(task_id("prod2", &arn), None);
        assert_eq!(task_id("pro", &arn), None);
        assert_eq!(task_id("prod", "arn:berth:task/0123"), None);
        assert_eq!(task_id("prod", "arn:berth:cluster/prod/task/"), None);
    }

    #[test]
    fn the_cluster_name_comes_from_the_keys() {
        let keys = Keys::new("prod").expect("a valid name");
        assert_eq!(cluster_name(&keys), "prod");
    }
}
