//! A [`Saver`] in memory: the store's semantics (sequence numbers, retention) without
//! durability, for tests and for the no-store benchmark.

use crate::{ChangesSince, DEFAULT_RETAINED_CHANGES, Group, Loaded, Saver, StoreError, gap_before};
use berth_model::{StateChange, Task};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// The state kept in memory. Clones share it: a test keeps a clone, hands another to the
/// engine, and looks at what was saved (or hands it to a "restarted" engine).
#[derive(Debug, Clone, Default)]
pub struct MemorySaver {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    tasks: BTreeMap<String, Arc<Task>>,
    changes: VecDeque<StateChange>,
    next_seq: u64,
    retention: u64,
    saves: u64,
    force_saves: u64,
    failing: bool,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            tasks: BTreeMap::new(),
            changes: VecDeque::new(),
            next_seq: 1,
            retention: DEFAULT_RETAINED_CHANGES,
            saves: 0,
            force_saves: 0,
            failing: false,
        }
    }
}

impl MemorySaver {
    /// An empty state, keeping [`DEFAULT_RETAINED_CHANGES`] changes.
    pub fn new() -> MemorySaver {
        MemorySaver::default()
    }

    /// An empty state keeping the last `changes` changes (at least 1).
    pub fn with_retention(changes: u64) -> MemorySaver {
        let saver = MemorySaver::default();
        saver.lock().retention = changes.max(1);
        saver
    }

    /// A state holding `loaded` (as if a store had been loaded), keeping the default number
    /// of changes.
    pub fn from_loaded(loaded: Loaded) -> MemorySaver {
        let saver = MemorySaver::default();
        {
            let mut inner = saver.lock();
            inner.tasks = loaded.tasks.into_iter().map(|t| (t.arn.clone(), Arc::new(t))).collect();
            inner.next_seq = loaded.next_seq.max(loaded.changes.last().map_or(1, |c| c.seq + 1)).max(1);
            inner.changes = loaded.changes.into();
        }
        saver
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many non-empty groups were committed (the store's fsyncs).
    pub fn saves(&self) -> u64 {
        self.lock().saves
    }

    /// How many times [`Saver::force_save`] was called.
    pub fn force_saves(&self) -> u64 {
        self.lock().force_saves
    }

    /// Everything held now (what `load` would return).
    pub fn snapshot(&self) -> Loaded {
        let inner = self.lock();
        Loaded {
            tasks: inner.tasks.values().map(|t| Task::clone(t)).collect(),
            changes: inner.changes.iter().cloned().collect(),
            next_seq: inner.next_seq,
        }
    }

    /// The changes with `seq >= from`, at most `max`, and the gap when some of the asked
    /// positions were dropped by retention.
    pub fn changes_since(&self, from: u64, max: usize) -> Result<ChangesSince, StoreError> {
        let inner = self.lock();
        let oldest = inner.changes.front().map(|c| c.seq);
        let gap = gap_before(from, oldest, inner.next_seq);
        let start = from.max(1);
        let first = inner.changes.partition_point(|c| c.seq < start);
        let changes = inner.changes.range(first..).take(max).cloned().collect();
        Ok(ChangesSince { gap, changes, next_seq: inner.next_seq })
    }

    /// While `failing`, every save and force_save fails (an I/O error) and changes nothing:
    /// for testing how the engine lives with a failing store.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }
}

fn injected_failure() -> StoreError {
    StoreError::Io {
        action: "save to",
        path: "memory".into(),
        source: std::io::Error::other("injected failure (MemorySaver::set_failing)"),
    }
}

impl crate::ChangeSource for MemorySaver {
    fn changes_since(&self, from: u64, max: usize) -> Result<ChangesSince, StoreError> {
        MemorySaver::changes_since(self, from, max)
    }
}

impl Saver for MemorySaver {
    fn load(&mut self) -> Result<Loaded, StoreError> {
        Ok(self.snapshot())
    }

    fn save(&mut self, group: Group) -> Result<Vec<StateChange>, StoreError> {
        let mut inner = self.lock();
        if inner.failing {
            return Err(injected_failure());
        }
        if group.is_empty() {
            return Ok(Vec::new());
        }
        for (arn, task) in group.tasks {
            match task {
                Some(task) => inner.tasks.insert(arn, task),
                None => inner.tasks.remove(&arn),
            };
        }
        let mut changes = group.changes;
        for change in &mut changes {
            change.seq = inner.next_seq;
            inner.next_seq += 1;
        }
        // Old changes out before new ones in, so the ring never holds more than retention
        // keeps, and grows (doubling) no further than that: 100,000 retained changes take
        // 100,000 slots, not the next power of two.
        let cut = inner.next_seq.saturating_sub(inner.retention);
        while inner.changes.front().is_some_and(|c| c.seq < cut) {
            inner.changes.pop_front();
        }
        let kept = changes.iter().filter(|c| c.seq >= cut);
        let (len, capacity) = (inner.changes.len(), inner.changes.capacity());
        let wanted = len + kept.clone().count();
        if wanted > capacity {
            let limit = usize::try_from(inner.retention).unwrap_or(usize::MAX);
            let grown = capacity.saturating_mul(2).min(limit).max(wanted);
            inner.changes.reserve_exact(grown - len);
        }
        inner.changes.extend(kept.cloned());
        inner.saves += 1;
        Ok(changes)
    }

    fn force_save(&mut self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.failing {
            return Err(injected_failure());
        }
        inner.force_saves += 1;
        Ok(())
    }

    fn change_source(&self) -> Option<std::sync::Arc<dyn crate::ChangeSource>> {
        Some(std::sync::Arc::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::{ContainerStatus, TaskStatus};

    fn changes(n: usize) -> Vec<StateChange> {
        let change = StateChange {
            seq: 0,
            time: chrono::DateTime::UNIX_EPOCH,
            task_arn: "arn:a".into(),
            container_name: "c".into(),
            status: ContainerStatus::Running,
            reason: None,
            exit_code: None,
            port_bindings: vec![],
            task_status: TaskStatus::None,
            task_desired_status: TaskStatus::None,
        };
        vec![change; n]
    }

    #[test]
    fn the_ring_of_changes_grows_no_further_than_retention_keeps() {
        let mut saver = MemorySaver::with_retention(1_000);
        for _ in 0..30 {
            saver.save(Group { tasks: vec![], changes: changes(100) }).unwrap();
        }
        let inner = saver.lock();
        assert_eq!(inner.changes.len(), 1_000);
        assert_eq!(inner.changes.front().map(|c| c.seq), Some(2_001));
        // Doubling alone would have reached 1,024 slots.
        assert!(inner.changes.capacity() <= 1_000, "capacity {}", inner.changes.capacity());
    }

    #[test]
    fn a_group_larger_than_retention_keeps_its_newest_changes() {
        let mut saver = MemorySaver::with_retention(10);
        let saved = saver.save(Group { tasks: vec![], changes: changes(25) }).unwrap();
        assert_eq!(saved.len(), 25, "every change of the group is answered with its number");
        let inner = saver.lock();
        let kept: Vec<u64> = inner.changes.iter().map(|c| c.seq).collect();
        assert_eq!(kept, (16..=25).collect::<Vec<u64>>());
    }
}
