//! The task table: every task the engine holds, with its dependency graph, what the next
//! round must look at (`dirty`), when each task wants to be looked at again (`wakes`), the
//! client tokens, and one shared copy of each container spec. Planning a task
//! ([`advance`]) and marking an operation issued ([`issue`]) work on one entry.

use super::entry::Entry;
use super::{Call, Map, Set};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::settings;
use crate::specs::Specs;
use berth_model::graph::DependencyGraph;
use berth_model::plan::{self, Action, Feedback, Op, Outcome, PlanConfig};
use berth_model::{Container, ContainerStatus, Task};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;

/// A task's wake-up: when, and which task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Wake {
    at: DateTime<Utc>,
    arn: String,
}

/// Every task held, and what the next round must look at.
#[derive(Default)]
pub(super) struct TaskTable {
    /// The tasks, by arn.
    pub entries: Map<String, Entry>,
    /// The arn of each held task that has a client token, by token.
    tokens: Map<String, String>,
    /// Tasks the next round plans again.
    pub dirty: Set<String>,
    /// When tasks want to be planned again, soonest first (stale ones skipped).
    wakes: BinaryHeap<Reverse<Wake>>,
    /// One copy of each distinct container spec of the tasks held.
    specs: Specs,
    /// The arn of the task of each container's metadata id (the metadata endpoint's key).
    metadata_ids: Map<String, String>,
}

/// Whether berth cannot be sure of a container's state: it was created, is not known to
/// be STOPPED, and is not removed. Such a container is inspected after a restart, after
/// the event stream was reopened, and at the steady-state check.
pub(crate) fn state_uncertain(c: &Container) -> bool {
    c.applied_status >= ContainerStatus::Created && c.known_status < ContainerStatus::Stopped && !c.removed
}

impl TaskTable {
    /// The table of the tasks loaded at start, each resumed: a container whose outcome
    /// berth cannot know is inspected before anything else happens to it.
    pub fn load(loaded: Vec<Task>, now: DateTime<Utc>, plan: &PlanConfig) -> Result<TaskTable, EngineError> {
        let mut table = TaskTable::default();
        for mut task in loaded {
            if let Some(token) = &task.client_token {
                table.tokens.insert(token.clone(), task.arn.clone());
            }
            table.specs.share(&mut task);
            let graph = DependencyGraph::build(&task).map_err(|errs| {
                EngineError::InvalidState(format!("task {}: {}", task.arn, berth_model::graph::GraphErrors(&errs)))
            })?;
            // A task stored without metadata ids gets them now, and one whose times were
            // brought within reach keeps them: either is a changed record, which the next
            // round saves. Resuming moves only what memory alone needs.
            let gave_ids = table.give_metadata_ids(&mut task);
            resume(&mut task);
            let moved_times = within_reach(&mut task, now, plan);
            table.dirty.insert(task.arn.clone());
            table.entries.insert(task.arn.clone(), Entry::new(task, graph, !gave_ids && !moved_times));
        }
        Ok(table)
    }

    /// Add a task, or update the one with the same arn (desired statuses only rise): its
    /// arn, and whether it is new.
    pub fn add(&mut self, mut task: Task) -> Result<(String, bool), EngineError> {
        if let Some(token) = &task.client_token
            && let Some(arn) = self.tokens.get(token).filter(|arn| **arn != task.arn)
        {
            return Err(EngineError::ClientTokenUsed { token: token.clone(), arn: arn.clone() });
        }
        if let Some(entry) = self.entries.get_mut(&task.arn) {
            entry.task_mut().update_from(&task);
            self.dirty.insert(task.arn.clone());
            return Ok((task.arn, false));
        }
        let graph = DependencyGraph::build(&task).map_err(EngineError::InvalidGraph)?;
        self.specs.share(&mut task);
        self.give_metadata_ids(&mut task);
        if let Some(token) = &task.client_token {
            self.tokens.insert(token.clone(), task.arn.clone());
        }
        self.dirty.insert(task.arn.clone());
        let arn = task.arn.clone();
        self.entries.insert(task.arn.clone(), Entry::new(task, graph, false));
        Ok((arn, true))
    }

    /// Take a task out of the table (it was swept).
    pub fn forget(&mut self, arn: &str) {
        if let Some(entry) = self.entries.remove(arn) {
            if let Some(token) = &entry.task().client_token {
                self.tokens.remove(token);
            }
            for id in entry.task().containers.iter().filter_map(|c| c.metadata_id.as_ref()) {
                self.metadata_ids.remove(id);
            }
        }
    }

    /// Give every container of `task` that has none a metadata id (128 random bits from
    /// the thread's CSPRNG, as 32 hex digits), and index them all; returns whether any
    /// container got one.
    fn give_metadata_ids(&mut self, task: &mut Task) -> bool {
        let mut gave = false;
        for c in &mut task.containers {
            let id = c.metadata_id.get_or_insert_with(|| {
                gave = true;
                format!("{:032x}", rand::random::<u128>())
            });
            self.metadata_ids.insert(id.clone(), task.arn.clone());
        }
        gave
    }

    /// The task and the name of the container whose metadata id is `id`.
    pub fn by_metadata_id(&self, id: &str) -> Option<(Arc<Task>, String)> {
        let task = self.entries.get(self.metadata_ids.get(id)?)?.task();
        let container = task.containers.iter().find(|c| c.metadata_id.as_deref() == Some(id))?;
        Some((Arc::clone(task), container.name().to_string()))
    }

    /// Let go of the specs no held task uses any more (after tasks were forgotten).
    pub fn let_go_of_unused_specs(&mut self) {
        self.specs.let_go_of_unused();
    }

    /// Plan `arn` again when `at` comes.
    pub fn wake_at(&mut self, arn: String, at: DateTime<Utc>) {
        self.wakes.push(Reverse(Wake { at, arn }));
    }

    /// The soonest moment a task wants to be planned again (stale wakes dropped).
    pub fn next_wake(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse(wake)) = self.wakes.peek() {
            let current = self.entries.get(&wake.arn).and_then(|e| e.wake_at);
            if current == Some(wake.at) {
                return Some(wake.at);
            }
            self.wakes.pop(); // stale
        }
        None
    }

    /// Mark dirty every task whose wake-up has come by `now`.
    pub fn wake_due(&mut self, now: DateTime<Utc>) {
        while let Some(Reverse(wake)) = self.wakes.peek() {
            if wake.at > now {
                break;
            }
            if let Some(Reverse(wake)) = self.wakes.pop()
                && self.entries.get(&wake.arn).is_some_and(|e| e.wake_at == Some(wake.at))
            {
                self.dirty.insert(wake.arn);
            }
        }
    }

    /// Have every container whose state is uncertain inspected (the event stream was
    /// reopened, or the steady-state check came).
    pub fn inspect_uncertain(&mut self) {
        for (arn, entry) in &mut self.entries {
            if entry.mark_for_inspect(state_uncertain) {
                self.dirty.insert(arn.clone());
            }
        }
    }

    /// Every Docker id and Docker name a task of this berth has.
    pub fn owned(&self) -> HashSet<&str> {
        self.entries
            .values()
            .flat_map(|e| e.task().containers.iter())
            .flat_map(|c| c.docker_id.iter().chain(c.docker_name.iter()))
            .map(String::as_str)
            .collect()
    }
}

/// Make a loaded task resumable: nothing is in flight any more, and every container whose
/// state berth cannot be sure of is inspected first.
fn resume(task: &mut Task) {
    for c in &mut task.containers {
        c.in_flight = false;
        if state_uncertain(c) {
            c.needs_inspect = true;
        }
    }
    for v in &mut task.volumes {
        v.in_flight = false;
    }
}

/// The wall-clock times a loaded record holds, brought within reach of `now`: the clock
/// may have been stepped back while berth was down, and a time it wrote under the old
/// clock must not stall the task by the size of the step. A retry is due at the latest
/// after the longest retry wait; a time the task became known (its cleanup wait counts from
/// it) is never later than now. A clock stepped forward cannot be told from time passing:
/// those retries and cleanups come due at once. Returns whether any time moved.
fn within_reach(task: &mut Task, now: DateTime<Utc>, plan: &PlanConfig) -> bool {
    let latest_retry = now.checked_add_signed(plan.retry.max_backoff).unwrap_or(now);
    let mut moved = false;
    let retries =
        task.containers.iter_mut().map(|c| &mut c.retry_at).chain(task.volumes.iter_mut().map(|v| &mut v.retry_at));
    let latest = |at: &mut Option<DateTime<Utc>>, latest: DateTime<Utc>, moved: &mut bool| {
        if let Some(at) = at.as_mut()
            && *at > latest
        {
            *at = latest;
            *moved = true;
        }
    };
    for retry_at in retries {
        latest(retry_at, latest_retry, &mut moved);
    }
    latest(&mut task.known_time, now, &mut moved);
    moved
}

/// Plan a task until only Docker calls (or nothing) remain: bookkeeping is applied at
/// once and the task planned again. Returns true when the task is to be forgotten.
pub(super) fn advance(
    entry: &mut Entry,
    arn: &str,
    config: &EngineConfig,
    now: DateTime<Utc>,
    calls: &mut Vec<Call>,
) -> bool {
    // Each bookkeeping pass settles at least one container or the task; bounded anyway.
    let now_config;
    let plan_config = if entry.clean_up_now {
        now_config = PlanConfig { cleanup_wait: chrono::Duration::zero(), ..config.plan.clone() };
        &now_config
    } else {
        &config.plan
    };
    for _ in 0..=entry.task().containers.len() + 2 {
        let plan = plan::plan(entry.task(), &entry.graph, now, plan_config);
        entry.wake_at = plan.wake_at;
        let mut bookkept = false;
        for op in plan.ops {
            if op == Op::Forget {
                return true;
            }
            if op.is_bookkeeping() {
                entry.apply(Feedback::Done(op, Outcome::Ok), now, &config.plan);
                bookkept = true;
            } else {
                issue(entry, arn, op, config, now, calls);
            }
        }
        if !bookkept {
            break;
        }
    }
    false
}

/// Mark `op` issued (choosing a create's Docker name first) and, when it is a Docker
/// call, add it to `calls`.
pub(super) fn issue(
    entry: &mut Entry,
    arn: &str,
    op: Op,
    config: &EngineConfig,
    now: DateTime<Utc>,
    calls: &mut Vec<Call>,
) {
    if let Op::Container { container, action: Action::Create } = &op
        && let Some(i) = entry.task().container_index(container)
        && entry.task().containers[i].docker_name.is_none()
    {
        let name = settings::docker_name(entry.task(), &entry.task().containers[i], rand::random());
        entry.task_mut().containers[i].docker_name = Some(name);
    }
    entry.apply(Feedback::Issued(op.clone()), now, &config.plan);
    if matches!(op, Op::Container { .. } | Op::Volume { .. }) {
        calls.push(Call { task_arn: arn.to_string(), op });
    }
}
