//! The scheduler: one in every agent, one leading at a time (`docs/cluster.md`).
//!
//! Every agent starts one ([`Scheduler::start`]). It campaigns in the store's election
//! ([`Keys::election`]) under its node's lease; the winner keeps a [`view::View`] of the
//! cluster (one list, then one watch of the cluster's root: tasks, nodes, placements,
//! assignments, statuses, pending notes and the election itself), decides what to write
//! with the pure [`decide::decide`], and writes it in transactions ([`write`](mod@write)) that each
//! compare the leader key's create revision and the revisions the decision was made on.
//! After writing it waits for its watch to bring the store's revision back before deciding
//! again, so every decision is made on a view that includes its own writes.
//!
//! Leadership ends when the leader key disappears from the view (its lease expired or was
//! revoked), when a write's leader compare fails, or when the node's lease changes (a new
//! epoch); the scheduler then campaigns again. A failed watch never ends it: the watch is
//! made again from the next revision, and the cluster listed again after a compaction.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn berth_cluster::ClusterStore>, epoch: berth_cluster::store::LeaseId) {
//! use berth_cluster::keys::Keys;
//! use berth_cluster::scheduler::{Config, Scheduler};
//!
//! let keys = Keys::new("prod").expect("a valid cluster name");
//! // The node's current epoch (its lease); the node sends a new one when it re-registers.
//! let (_epoch_tx, epoch_rx) = tokio::sync::watch::channel(epoch);
//! let scheduler = Scheduler::start(store, keys, "node-1".to_string(), epoch_rx, Config::default());
//! if scheduler.state().leading {
//!     println!("this agent schedules");
//! }
//! scheduler.stop().await; // resigns if it leads
//! # }
//! ```

pub mod decide;
mod fit;
pub mod view;
pub mod write;

use crate::keys::Keys;
use crate::records::{NodeInfo, TaskRecord};
use crate::store::{ClusterError, ClusterStore, EventKind, Leadership, LeaseId, Revision, WatchStream};
use decide::{Action, Clocks, Rules};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use view::View;
use write::Outcome;

/// How the scheduler behaves.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Most actions (placements, releases, notes) per transaction (etcd allows 128
    /// compares and 128 operations per transaction; a placement takes up to 4 of each).
    pub per_txn: usize,
    /// How long after an `exclusive` or `replace` placement was lost with its node's lease
    /// the task may be placed again (issue 18's fencing sets it; 0 here).
    pub reassign_delay: Duration,
    /// How long a stopped task (and its statuses) is kept before it is deleted.
    pub forget_after: Duration,
    /// First wait after a store error; doubled up to `retry_max`.
    pub retry_min: Duration,
    /// Longest wait after a store error.
    pub retry_max: Duration,
    /// How long to wait for the watch to bring a revision the leader wrote or was refused
    /// at before listing again (a revision bumped by keys outside the cluster's root never
    /// arrives through its watch).
    pub catch_up: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            per_txn: 25,
            reassign_delay: Duration::ZERO,
            forget_after: Duration::from_secs(3600),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            catch_up: Duration::from_secs(1),
        }
    }
}

/// What a scheduler is doing, as its handle shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerState {
    /// It leads (it won the election and has not seen its leadership end).
    pub leading: bool,
    /// While leading: the store revision its view is complete up to.
    pub revision: Revision,
    /// While leading: its last decision at `revision` called for no write.
    pub idle: bool,
    /// Transactions applied (every leadership together).
    pub writes: u64,
    /// Transactions that failed a compare on a stale view.
    pub stale_writes: u64,
    /// Tasks placed.
    pub placed: u64,
    /// Times it won the election.
    pub terms: u64,
}

/// A running scheduler.
#[derive(Debug)]
pub struct SchedulerHandle {
    state: watch::Receiver<SchedulerState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SchedulerHandle {
    /// What it is doing now.
    pub fn state(&self) -> SchedulerState {
        self.state.borrow().clone()
    }

    /// Its state as it changes.
    pub fn subscribe(&self) -> watch::Receiver<SchedulerState> {
        self.state.clone()
    }

    /// Stops it: resigns if it leads, and waits for its task to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "scheduler task ended abnormally");
        }
    }
}

/// Starts schedulers (see the module docs).
pub struct Scheduler;

impl Scheduler {
    /// Starts the scheduler of node `node`: it campaigns under the lease `epoch` holds
    /// (and again under each new one), schedules while it leads, until stopped.
    pub fn start(
        store: Arc<dyn ClusterStore>,
        keys: Keys,
        node: String,
        epoch: watch::Receiver<LeaseId>,
        config: Config,
    ) -> SchedulerHandle {
        let (state_tx, state) = watch::channel(SchedulerState::default());
        let (stop, stop_rx) = watch::channel(false);
        let runner = Runner { store, keys, node, epoch, stop: stop_rx, config, state: state_tx };
        let task = tokio::spawn(runner.run());
        SchedulerHandle { state, stop, task }
    }
}

/// The scheduler's refusal of a task, decided before it is stored (the submit API may
/// call it): `Err` with the reason when its definition or placement rules cannot be read,
/// or when none of the registered `nodes` could hold it even empty. No node registered is
/// not a refusal (the task waits). A task that passes may still be refused later if the
/// nodes change before it is placed.
pub fn check_submit(record: &TaskRecord, nodes: &BTreeMap<String, NodeInfo>) -> Result<(), String> {
    let needs = view::needs_of(record)?;
    match fit::never(nodes, &needs.request) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// Why a leadership (or a wait) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Asked to stop.
    Stop,
    /// The node's lease changed: campaign under the new one.
    NewEpoch,
    /// Leadership lost: campaign again.
    Lost,
}

struct Runner {
    store: Arc<dyn ClusterStore>,
    keys: Keys,
    node: String,
    epoch: watch::Receiver<LeaseId>,
    stop: watch::Receiver<bool>,
    config: Config,
    state: watch::Sender<SchedulerState>,
}

impl Runner {
    async fn run(mut self) {
        let mut backoff = self.config.retry_min;
        loop {
            if *self.stop.borrow() {
                return;
            }
            let lease = *self.epoch.borrow_and_update();
            let election = self.keys.election();
            let campaign = self.store.campaign(&election, self.node.clone().into_bytes(), lease);
            let won = tokio::select! {
                won = campaign => won,
                _ = self.epoch.changed() => continue,
                _ = self.stop.changed() => return,
            };
            let leadership = match won {
                Ok(leadership) => leadership,
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "scheduler: campaign failed");
                    // A lost lease waits for the node's next epoch; anything else retries.
                    match self.pause(backoff).await {
                        Some(End::Stop) => return,
                        _ => {
                            backoff = (backoff * 2).min(self.config.retry_max);
                            continue;
                        }
                    }
                }
            };
            backoff = self.config.retry_min;
            tracing::info!(node = %self.node, revision = leadership.revision, "scheduler: leading");
            self.state.send_modify(|s| {
                s.leading = true;
                s.idle = false;
                s.terms += 1;
            });
            let end = self.lead(&leadership).await;
            self.state.send_modify(|s| {
                s.leading = false;
                s.idle = false;
            });
            tracing::info!(node = %self.node, reason = ?end, "scheduler: no longer leading");
            match end {
                End::Stop => {
                    if let Err(e) = self.store.resign(&leadership).await {
                        tracing::warn!(node = %self.node, error = %e, "scheduler: resign failed (the lease ends it)");
                    }
                    return;
                }
                End::NewEpoch | End::Lost => {}
            }
        }
    }

    /// Waits `how_long`, unless stopped or given a new epoch first.
    async fn pause(&mut self, how_long: Duration) -> Option<End> {
        tokio::select! {
            _ = tokio::time::sleep(how_long) => None,
            _ = self.epoch.changed() => Some(End::NewEpoch),
            _ = self.stop.changed() => Some(End::Stop),
        }
    }

    /// Lists the cluster and watches it from there, retrying store errors.
    async fn sync(&mut self, keep: Option<&View>) -> Result<(View, WatchStream), End> {
        let root = self.keys.root().to_string();
        let mut backoff = self.config.retry_min;
        loop {
            let attempt = async {
                let listing = self.store.list(&root, None).await?;
                let watch = self.store.watch(&root, listing.revision + 1).await?;
                Ok::<_, ClusterError>((View::from_listing(&root, &listing.kvs, listing.revision), watch))
            };
            match attempt.await {
                Ok((mut view, watch)) => {
                    if let Some(old) = keep {
                        for (id, g) in &old.generations {
                            let seen = view.generations.entry(id.clone()).or_default();
                            *seen = (*seen).max(*g);
                        }
                    }
                    return Ok((view, watch));
                }
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "scheduler: listing the cluster failed");
                    if let Some(end) = self.pause(backoff).await {
                        return Err(end);
                    }
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// Schedules while `leadership` lasts.
    async fn lead(&mut self, leadership: &Leadership) -> End {
        let (mut view, mut watch) = match self.sync(None).await {
            Ok(synced) => synced,
            Err(end) => return end,
        };
        let rules = Rules { forget_after: self.config.forget_after, reassign_delay: self.config.reassign_delay };
        let mut clocks = Clocks::default();
        let mut own_releases: BTreeSet<String> = BTreeSet::new();
        let mut wait_for: Revision = 0;
        let mut backoff = self.config.retry_min;
        loop {
            if view.revision >= leadership.revision && !view.election.contains_key(&leadership.key) {
                return End::Lost;
            }
            let mut wake_at = None;
            let mut behind = false;
            if view.revision < wait_for {
                behind = true;
            } else {
                let now = Instant::now();
                clocks.observe(&view, now);
                let decisions = decide::decide(&view, &clocks, rules, now);
                if decisions.actions.is_empty() {
                    let revision = view.revision;
                    self.state.send_if_modified(|s| {
                        let changed = !s.idle || s.revision != revision;
                        s.idle = true;
                        s.revision = revision;
                        changed
                    });
                    wake_at = decisions.wake_at;
                } else {
                    self.state.send_modify(|s| {
                        s.idle = false;
                        s.revision = view.revision;
                    });
                    match self.write_all(leadership, &decisions.actions, &mut own_releases).await {
                        Ok(revision) => {
                            wait_for = revision;
                            backoff = self.config.retry_min;
                            continue;
                        }
                        Err(WriteEnd::NotLeader) => return End::Lost,
                        Err(WriteEnd::Store(e)) => {
                            tracing::warn!(node = %self.node, error = %e, "scheduler: write failed; retrying");
                            if let Some(end) = self.pause(backoff).await {
                                return end;
                            }
                            backoff = (backoff * 2).min(self.config.retry_max);
                            continue;
                        }
                    }
                }
            }
            if behind {
                wake_at = Some(Instant::now() + self.config.catch_up);
            }
            let sleep = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                batch = watch.next() => match batch {
                    Some(Ok(batch)) => {
                        let now = Instant::now();
                        for event in &batch.events {
                            if event.kind == EventKind::Delete {
                                self.note_loss(&view, &event.kv.key, &mut own_releases, &mut clocks, now);
                            }
                        }
                        view.apply_batch(&batch.events);
                    }
                    Some(Err(ClusterError::Compacted { .. })) => {
                        tracing::info!(node = %self.node, "scheduler: watch compacted; listing again");
                        match self.sync(Some(&view)).await {
                            Ok((v, w)) => (view, watch) = (v, w),
                            Err(end) => return end,
                        }
                    }
                    other => {
                        if let Some(Err(e)) = other {
                            tracing::warn!(node = %self.node, error = %e, "scheduler: watch failed; watching again");
                        }
                        if let Some(end) = self.pause(backoff).await {
                            return end;
                        }
                        backoff = (backoff * 2).min(self.config.retry_max);
                        match self.store.watch(self.keys.root(), view.revision + 1).await {
                            Ok(w) => watch = w,
                            Err(ClusterError::Compacted { .. }) => match self.sync(Some(&view)).await {
                                Ok((v, w)) => (view, watch) = (v, w),
                                Err(end) => return end,
                            },
                            Err(e) => tracing::warn!(node = %self.node, error = %e, "scheduler: watching again failed"),
                        }
                    }
                },
                _ = sleep => {
                    if behind && view.revision < wait_for {
                        tracing::debug!(node = %self.node, "scheduler: watch behind its own writes; listing again");
                        match self.sync(Some(&view)).await {
                            Ok((v, w)) => (view, watch) = (v, w),
                            Err(end) => return end,
                        }
                    }
                }
                _ = self.epoch.changed() => return End::NewEpoch,
                _ = self.stop.changed() => return End::Stop,
            }
        }
    }

    /// A placement deleted by someone else (its lease's expiry) starts the reassign delay.
    fn note_loss(&self, view: &View, key: &str, own: &mut BTreeSet<String>, clocks: &mut Clocks, now: Instant) {
        let Some(id) = key.strip_prefix(&self.keys.placements()) else { return };
        if own.remove(id) {
            return;
        }
        if view.placements.contains_key(id) && view.tasks.contains_key(id) {
            clocks.lost_at.insert(id.to_string(), now);
        }
    }

    /// Writes `actions` in transactions; the revision to wait for before deciding again.
    async fn write_all(
        &mut self,
        leadership: &Leadership,
        actions: &[Action],
        own_releases: &mut BTreeSet<String>,
    ) -> Result<Revision, WriteEnd> {
        let mut last = 0;
        for chunk in write::chunks(actions, self.config.per_txn) {
            match write::write(self.store.as_ref(), &self.keys, leadership, chunk).await {
                Ok(Outcome::Applied(revision)) => {
                    last = revision;
                    let placed = chunk.iter().filter(|a| matches!(a, Action::Place { .. })).count() as u64;
                    for action in chunk {
                        if let Action::Release { task, .. } = action {
                            own_releases.insert(task.clone());
                        }
                    }
                    self.state.send_modify(|s| {
                        s.writes += 1;
                        s.placed += placed;
                    });
                }
                Ok(Outcome::Stale(revision)) => {
                    self.state.send_modify(|s| s.stale_writes += 1);
                    return Ok(revision.max(last));
                }
                Ok(Outcome::NotLeader) => return Err(WriteEnd::NotLeader),
                Err(e) => return Err(WriteEnd::Store(e)),
            }
        }
        Ok(last)
    }
}

enum WriteEnd {
    NotLeader,
    Store(ClusterError),
}
