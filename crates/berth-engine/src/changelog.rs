//! The change log as readers see it: the committed state changes, in sequence order, each
//! added only once the group commit holding it is durable. Readers read at their own pace
//! and never hold the engine up (the seed's unbuffered channel did); one that falls behind
//! the retention gets a [`LogItem::Gap`] saying which positions are gone, and can
//! resynchronize from the task list.
//!
//! Memory holds only the newest changes ([`MEMORY_TAIL`]) when the store can read its log
//! back ([`berth_store::ChangeSource`]): a reader further behind reads from the store, in
//! batches, the store's own retention deciding what is gone. A store that cannot (none
//! today) has the whole retention kept here.

use crate::error::EngineExit;
use crate::telemetry::{EngineTelemetry, Telemetry};
use berth_model::StateChange;
use berth_store::{ChangeSource, ChangesSince, StoreError};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// Changes kept in memory when the store can read older ones back: enough for readers
/// that keep up (and a round's burst), a few hundred kilobytes.
pub const MEMORY_TAIL: usize = 4096;

/// Changes a reader behind the memory tail reads from the store at a time.
const STORE_BATCH: usize = 1024;

/// What a reader gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogItem {
    /// The next state change.
    Change(StateChange),
    /// Positions `from..to` are gone (older than the retention); reading goes on at `to`.
    Gap {
        /// The first position missed.
        from: u64,
        /// The first position still there.
        to: u64,
    },
}

#[derive(Debug)]
struct Entries {
    changes: VecDeque<StateChange>,
    /// The sequence number the next change will get.
    next_seq: u64,
}

impl Entries {
    fn first_seq(&self) -> u64 {
        self.changes.front().map_or(self.next_seq, |c| c.seq)
    }
}

/// The newest changes, shared by the engine (which appends) and its readers, and where to
/// read older ones.
pub struct ChangeLog {
    entries: Mutex<Entries>,
    /// How many changes memory keeps.
    kept: usize,
    /// The store's reader of older positions; taken away when the engine stops (it holds
    /// the store open).
    source: Mutex<Option<Arc<dyn ChangeSource>>>,
    appended: watch::Sender<u64>,
    /// Set once the engine's loop has ended: readers end once they have read the rest.
    end: Mutex<Option<EngineExit>>,
    /// Where a failed read of older changes is told.
    telemetry: Arc<dyn Telemetry>,
}

impl std::fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeLog").field("kept", &self.kept).finish_non_exhaustive()
    }
}

impl ChangeLog {
    /// A log holding the newest of `changes` (oldest first), whose next change gets
    /// `next_seq`, keeping `retained` changes in memory, or only [`MEMORY_TAIL`] when
    /// `source` reads older ones back from the store.
    pub(crate) fn new(
        changes: Vec<StateChange>,
        next_seq: u64,
        retained: u64,
        source: Option<Arc<dyn ChangeSource>>,
        telemetry: Arc<dyn Telemetry>,
    ) -> Arc<ChangeLog> {
        let retained = usize::try_from(retained).unwrap_or(usize::MAX).max(1);
        let kept = if source.is_some() { retained.min(MEMORY_TAIL) } else { retained };
        let skip = changes.len().saturating_sub(kept);
        let changes: VecDeque<StateChange> = changes.into_iter().skip(skip).collect();
        Arc::new(ChangeLog {
            entries: Mutex::new(Entries { changes, next_seq }),
            kept,
            source: Mutex::new(source),
            appended: watch::Sender::new(next_seq),
            end: Mutex::new(None),
            telemetry,
        })
    }

    /// Add committed changes (their sequence numbers given, in order) and wake readers.
    pub(crate) fn append(&self, committed: Vec<StateChange>) {
        if committed.is_empty() {
            return;
        }
        let next = {
            let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            for c in committed {
                e.next_seq = e.next_seq.max(c.seq + 1);
                e.changes.push_back(c);
            }
            while e.changes.len() > self.kept {
                e.changes.pop_front();
            }
            e.next_seq
        };
        self.appended.send_replace(next);
    }

    /// Stop reading from the store (the engine stopped and closes it): readers behind the
    /// memory tail get a gap marker from now on.
    pub(crate) fn close(&self) {
        self.source.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    /// The engine's loop has ended (shut down, or stopped by a failure): nothing more will
    /// be appended, and readers waiting for more end (`next` gives `None`) once they have
    /// read what was committed.
    pub(crate) fn end(&self, exit: EngineExit) {
        *self.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(exit);
        // Wakes every waiting reader (the value is the same, the version is new).
        self.appended.send_modify(|_| {});
    }

    /// How the engine ended, once it has.
    pub fn ended(&self) -> Option<EngineExit> {
        self.end.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The sequence number the next change will get.
    pub fn next_seq(&self) -> u64 {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).next_seq
    }

    /// Every retained change, oldest first (from the store when it keeps them).
    pub fn retained(&self) -> Result<Vec<StateChange>, StoreError> {
        let next_seq = self.next_seq();
        match self.source() {
            Some(source) => {
                let mut changes = source.changes_since(1, usize::MAX)?.changes;
                changes.retain(|c| c.seq < next_seq);
                Ok(changes)
            }
            None => Ok(self.entries.lock().unwrap_or_else(PoisonError::into_inner).changes.iter().cloned().collect()),
        }
    }

    fn source(&self) -> Option<Arc<dyn ChangeSource>> {
        self.source.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A reader from position `from` (`None`: only changes to come).
    pub fn reader(self: &Arc<Self>, from: Option<u64>) -> ChangeReader {
        let next = from.unwrap_or_else(|| self.next_seq());
        ChangeReader { log: Arc::clone(self), next, appended: self.appended.subscribe(), fetched: VecDeque::new() }
    }

    /// Where position `seq` is.
    fn locate(&self, seq: u64) -> At {
        let (first, next_seq) = {
            let e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let first = e.first_seq();
            if seq >= first {
                if seq >= e.next_seq {
                    return At::NotYet;
                }
                let index = usize::try_from(seq - first).unwrap_or(usize::MAX);
                return e.changes.get(index).cloned().map_or(At::NotYet, |c| At::Item(LogItem::Change(c)));
            }
            (first, e.next_seq)
        };
        // Older than memory keeps: the store's, read without the log's lock held.
        match self.source() {
            Some(source) => At::Store { source, first, next_seq },
            None => At::Item(LogItem::Gap { from: seq, to: first }),
        }
    }
}

/// Where a position of the log is.
enum At {
    /// In memory (or gone, with no store to read it from).
    Item(LogItem),
    /// Not appended yet.
    NotYet,
    /// Older than memory keeps: in the store, before memory's first change `first`; only
    /// changes before `next_seq` have been appended.
    Store { source: Arc<dyn ChangeSource>, first: u64, next_seq: u64 },
}

/// The item at `seq` from what the store answered, the changes after it kept in `fetched`.
fn from_store(
    telemetry: &dyn Telemetry,
    answer: Result<ChangesSince, String>,
    seq: u64,
    first: u64,
    next_seq: u64,
    fetched: &mut VecDeque<StateChange>,
) -> LogItem {
    let gap_to_memory = LogItem::Gap { from: seq, to: first };
    match answer {
        Ok(since) => {
            // Only what has been appended here: a group committed but not yet released is
            // seen once it is.
            fetched.extend(since.changes.into_iter().filter(|c| c.seq < next_seq));
            match since.gap {
                Some(gap) => LogItem::Gap { from: gap.start, to: gap.end },
                None => fetched.pop_front().map_or(gap_to_memory, LogItem::Change),
            }
        }
        Err(e) => {
            telemetry.record(&EngineTelemetry::OlderChangesUnreadable { from: seq, error: &e });
            gap_to_memory
        }
    }
}

/// Reads the change log from a position on, at its own pace.
#[derive(Debug)]
pub struct ChangeReader {
    log: Arc<ChangeLog>,
    next: u64,
    appended: watch::Receiver<u64>,
    /// Changes read from the store ahead of `next`, served first.
    fetched: VecDeque<StateChange>,
}

impl ChangeReader {
    /// The position of the next item.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// How the engine ended, once it has (after `next` gave `None`: why the log ended).
    pub fn end(&self) -> Option<EngineExit> {
        self.log.ended()
    }

    /// The next item, waiting for it if need be; `None` once the engine's loop has ended
    /// (shut down, or stopped by a failure: [`ChangeReader::end`] says which) and
    /// everything committed has been read. A read from the store runs on a blocking thread.
    pub async fn next(&mut self) -> Option<LogItem> {
        loop {
            if let Some(c) = self.fetched.pop_front() {
                return Some(self.advance(LogItem::Change(c)));
            }
            match self.log.locate(self.next) {
                At::Item(item) => return Some(self.advance(item)),
                At::Store { source, first, next_seq } => {
                    let seq = self.next;
                    let answer = tokio::task::spawn_blocking(move || source.changes_since(seq, STORE_BATCH))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    let item = from_store(&*self.log.telemetry, answer, seq, first, next_seq, &mut self.fetched);
                    return Some(self.advance(item));
                }
                At::NotYet => {
                    // Looked at before waiting: `end` bumps the version after setting it.
                    if self.log.ended().is_some() || self.appended.changed().await.is_err() {
                        return self.try_next();
                    }
                }
            }
        }
    }

    /// The next item if there is one now (a read from the store, if need be, on this
    /// thread).
    pub fn try_next(&mut self) -> Option<LogItem> {
        if let Some(c) = self.fetched.pop_front() {
            return Some(self.advance(LogItem::Change(c)));
        }
        let item = match self.log.locate(self.next) {
            At::Item(item) => item,
            At::NotYet => return None,
            At::Store { source, first, next_seq } => {
                let answer = source.changes_since(self.next, STORE_BATCH).map_err(|e| e.to_string());
                from_store(&*self.log.telemetry, answer, self.next, first, next_seq, &mut self.fetched)
            }
        };
        Some(self.advance(item))
    }

    /// Move past `item`.
    fn advance(&mut self, item: LogItem) -> LogItem {
        self.next = match &item {
            LogItem::Change(c) => c.seq + 1,
            LogItem::Gap { to, .. } => *to,
        };
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::NoTelemetry;
    use berth_model::{ContainerStatus, TaskStatus};
    use chrono::Utc;

    fn change(seq: u64) -> StateChange {
        StateChange {
            seq,
            time: Utc::now(),
            task_arn: "t".into(),
            container_name: format!("c{seq}"),
            status: ContainerStatus::Running,
            reason: None,
            exit_code: None,
            port_bindings: vec![],
            task_status: TaskStatus::None,
            task_desired_status: TaskStatus::None,
        }
    }

    #[tokio::test]
    async fn readers_resume_from_any_position_without_gaps_or_repeats() {
        let log = ChangeLog::new(vec![], 1, 100, None, Arc::new(NoTelemetry));
        log.append((1..=10).map(change).collect());
        for from in 1..=10 {
            let mut r = log.reader(Some(from));
            let mut seen = vec![];
            while let Some(LogItem::Change(c)) = r.try_next() {
                seen.push(c.seq);
            }
            assert_eq!(seen, (from..=10).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn a_reader_behind_the_retention_gets_a_gap_marker() {
        let log = ChangeLog::new(vec![], 1, 5, None, Arc::new(NoTelemetry));
        log.append((1..=12).map(change).collect());
        let mut r = log.reader(Some(2));
        assert_eq!(r.try_next(), Some(LogItem::Gap { from: 2, to: 8 }));
        assert!(matches!(r.try_next(), Some(LogItem::Change(c)) if c.seq == 8));
    }

    /// A log over a `MemorySaver` that has committed `n` changes (in groups of 1,000), of
    /// which memory keeps only the tail.
    fn log_over_store(n: usize) -> Arc<ChangeLog> {
        use berth_store::{Group, MemorySaver, Saver};
        let mut store = MemorySaver::new();
        let log = ChangeLog::new(vec![], 1, 100_000, store.change_source(), Arc::new(NoTelemetry));
        for _ in 0..n / 1000 {
            let group = Group { tasks: vec![], changes: (0..1000).map(|_| change(0)).collect() };
            log.append(store.save(group).unwrap_or_else(|e| panic!("{e}")));
        }
        log
    }

    /// A store that cannot read its change log back.
    struct Unreadable;

    impl ChangeSource for Unreadable {
        fn changes_since(&self, _from: u64, _max: usize) -> Result<ChangesSince, StoreError> {
            Err(StoreError::Database { file: "state.redb".into(), reason: "the change log cannot be read".into() })
        }
    }

    /// Remembers the positions of the unreadable-older-changes occurrences it is told.
    #[derive(Debug, Default)]
    struct Told(Mutex<Vec<u64>>);

    impl Telemetry for Told {
        fn record(&self, event: &EngineTelemetry<'_>) {
            if let EngineTelemetry::OlderChangesUnreadable { from, .. } = event {
                self.0.lock().unwrap_or_else(PoisonError::into_inner).push(*from);
            }
        }
    }

    #[test]
    fn a_failed_read_of_older_changes_is_a_gap_told_to_the_telemetry() {
        let told = Arc::new(Told::default());
        let changes: Vec<StateChange> = (1..=MEMORY_TAIL as u64 + 10).map(change).collect();
        let next = MEMORY_TAIL as u64 + 11;
        let log = ChangeLog::new(changes, next, 100_000, Some(Arc::new(Unreadable)), told.clone());
        let first = next - MEMORY_TAIL as u64;
        let mut r = log.reader(Some(3));
        assert_eq!(r.try_next(), Some(LogItem::Gap { from: 3, to: first }));
        assert!(matches!(r.try_next(), Some(LogItem::Change(c)) if c.seq == first));
        assert_eq!(*told.0.lock().unwrap_or_else(PoisonError::into_inner), vec![3]);
    }

    #[test]
    fn a_reader_behind_memory_reads_older_changes_from_the_store_without_gaps_or_repeats() {
        let log = log_over_store(10_000);
        assert!(log.entries.lock().unwrap_or_else(PoisonError::into_inner).changes.len() <= MEMORY_TAIL);
        for from in [1, 2, 5_000, 10_000 - MEMORY_TAIL as u64, 9_999] {
            let mut r = log.reader(Some(from));
            let mut seen = vec![];
            while let Some(item) = r.try_next() {
                match item {
                    LogItem::Change(c) => seen.push(c.seq),
                    gap => panic!("{gap:?} reading from {from}"),
                }
            }
            assert_eq!(seen, (from..=10_000).collect::<Vec<_>>(), "from {from}");
        }
        assert_eq!(log.retained().map(|c| c.len()).unwrap_or_else(|e| panic!("{e}")), 10_000);
        // Once the engine has stopped, what memory does not keep is a gap.
        log.close();
        let first_kept = 10_001 - MEMORY_TAIL as u64;
        assert_eq!(log.reader(Some(1)).try_next(), Some(LogItem::Gap { from: 1, to: first_kept }));
    }

    #[tokio::test]
    async fn an_awaiting_reader_behind_memory_reads_the_store_without_gaps_or_repeats() {
        let log = log_over_store(10_000);
        let mut r = log.reader(Some(1));
        for expected in 1..=10_000 {
            match r.next().await {
                Some(LogItem::Change(c)) => assert_eq!(c.seq, expected),
                other => panic!("{other:?} at {expected}"),
            }
        }
        assert_eq!(r.try_next(), None);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_append_and_a_slow_one_blocks_nobody() {
        let log = ChangeLog::new(vec![], 1, 1000, None, Arc::new(NoTelemetry));
        let _never_reads = log.reader(None);
        let mut r = log.reader(None);
        let waiter = tokio::spawn(async move { r.next().await });
        for seq in 1..=500 {
            log.append(vec![change(seq)]);
        }
        let first = waiter.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(first, Some(LogItem::Change(c)) if c.seq == 1));
    }
}
