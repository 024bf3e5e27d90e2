//! The change log as readers see it: the retained state changes, in sequence order, each
//! added only once the group commit holding it is durable. Readers read at their own pace
//! and never hold the engine up (the seed's unbuffered channel did); one that falls behind
//! the retention gets a [`LogItem::Gap`] saying which positions are gone, and can
//! resynchronize from the task list.

use berth_model::StateChange;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

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

/// The retained changes, shared by the engine (which appends) and its readers.
#[derive(Debug)]
pub struct ChangeLog {
    entries: Mutex<Entries>,
    retained: usize,
    appended: watch::Sender<u64>,
}

impl ChangeLog {
    /// A log holding `changes` (oldest first), whose next change gets `next_seq`.
    pub fn new(changes: Vec<StateChange>, next_seq: u64, retained: u64) -> Arc<ChangeLog> {
        let retained = usize::try_from(retained).unwrap_or(usize::MAX).max(1);
        let mut changes: VecDeque<StateChange> = changes.into();
        while changes.len() > retained {
            changes.pop_front();
        }
        Arc::new(ChangeLog {
            entries: Mutex::new(Entries { changes, next_seq }),
            retained,
            appended: watch::Sender::new(next_seq),
        })
    }

    /// Add committed changes (their sequence numbers given, in order) and wake readers.
    pub fn append(&self, committed: Vec<StateChange>) {
        if committed.is_empty() {
            return;
        }
        let next = {
            let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            for c in committed {
                e.next_seq = e.next_seq.max(c.seq + 1);
                e.changes.push_back(c);
            }
            while e.changes.len() > self.retained {
                e.changes.pop_front();
            }
            e.next_seq
        };
        self.appended.send_replace(next);
    }

    /// The sequence number the next change will get.
    pub fn next_seq(&self) -> u64 {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).next_seq
    }

    /// Every retained change, oldest first.
    pub fn retained(&self) -> Vec<StateChange> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).changes.iter().cloned().collect()
    }

    /// A reader from position `from` (`None`: only changes to come).
    pub fn reader(self: &Arc<Self>, from: Option<u64>) -> ChangeReader {
        let next = from.unwrap_or_else(|| self.next_seq());
        ChangeReader { log: Arc::clone(self), next, appended: self.appended.subscribe() }
    }

    /// The item at position `seq`, if it has been appended.
    fn item_at(&self, seq: u64) -> Option<LogItem> {
        let e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let first = e.first_seq();
        if seq < first {
            return Some(LogItem::Gap { from: seq, to: first });
        }
        if seq >= e.next_seq {
            return None;
        }
        let index = usize::try_from(seq - first).ok()?;
        e.changes.get(index).cloned().map(LogItem::Change)
    }
}

/// Reads the change log from a position on, at its own pace.
#[derive(Debug)]
pub struct ChangeReader {
    log: Arc<ChangeLog>,
    next: u64,
    appended: watch::Receiver<u64>,
}

impl ChangeReader {
    /// The position of the next item.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next item, waiting for it if need be; `None` once the engine has gone and
    /// everything has been read.
    pub async fn next(&mut self) -> Option<LogItem> {
        loop {
            if let Some(item) = self.try_next() {
                return Some(item);
            }
            if self.appended.changed().await.is_err() {
                return self.try_next();
            }
        }
    }

    /// The next item if there is one now.
    pub fn try_next(&mut self) -> Option<LogItem> {
        let item = self.log.item_at(self.next)?;
        self.next = match &item {
            LogItem::Change(c) => c.seq + 1,
            LogItem::Gap { to, .. } => *to,
        };
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        }
    }

    #[tokio::test]
    async fn readers_resume_from_any_position_without_gaps_or_repeats() {
        let log = ChangeLog::new(vec![], 1, 100);
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
        let log = ChangeLog::new(vec![], 1, 5);
        log.append((1..=12).map(change).collect());
        let mut r = log.reader(Some(2));
        assert_eq!(r.try_next(), Some(LogItem::Gap { from: 2, to: 8 }));
        assert!(matches!(r.try_next(), Some(LogItem::Change(c)) if c.seq == 8));
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_append_and_a_slow_one_blocks_nobody() {
        let log = ChangeLog::new(vec![], 1, 1000);
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
