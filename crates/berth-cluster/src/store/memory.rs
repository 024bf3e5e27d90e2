//! [`MemoryStore`]: the cluster store in memory, with etcd's semantics, for unit and
//! property tests (the same idea as the fake Docker).
//!
//! - one revision counter (starting at 1, as an empty etcd's), bumped by every request that
//!   writes; each key has create and mod revision and version;
//! - leases on a manual clock ([`MemoryStore::advance`]): a lease whose deadline has come
//!   is revoked, its keys deleted in one revision (as etcd's revocation does);
//! - transactions compare create/mod revision, value and lease, then apply put, delete and
//!   get operations in order (a get sees the branch's earlier writes);
//! - history is kept since the compact revision ([`MemoryStore::compact`]): a list at a
//!   past revision and a watch from a past revision read it; older ones are `Compacted`;
//! - watches deliver every event from their start revision, a slow reader catching up from
//!   the history (and ending with `Compacted` if compaction overtook it), with prev kvs;
//! - the election is etcd's: key `<election>/<lease hex>`, the lowest create revision leads;
//! - faults: [`MemoryStore::set_unavailable`] (every call fails, watches end),
//!   [`MemoryStore::fail_next`] and [`MemoryStore::fail_next_after_applying`] (the write
//!   happens, the answer is lost: the caller cannot know).
//!
//! One owner of the state: a `std::sync::Mutex` held only inside non-async code. Watchers
//! and campaigners wait on a tick (a `tokio::sync::watch`) bumped by every change.

use super::{
    ClusterError, ClusterStore, CmpOp, Compare, EventKind, KeyValue, Leadership, Lease, LeaseId, Listing, Op, Revision,
    Target, Txn, TxnResult, WatchBatch, WatchEvent, WatchStream,
};
use async_trait::async_trait;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Batches a watch may have in flight before it waits for its reader (then it catches up
/// from the history, as an etcd "unsynced" watcher does).
const WATCH_BUFFER: usize = 16;
/// Events in one watch batch at the most (a batch never splits a revision).
const MAX_BATCH_EVENTS: usize = 512;

/// The in-memory cluster store. Cloning it is cheap: every clone is a handle on one state.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("MemoryStore")
            .field("revision", &s.revision)
            .field("compact_revision", &s.compact_revision)
            .field("keys", &s.kvs.len())
            .field("leases", &s.leases.len())
            .finish()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every change (writes, clock, faults): watchers and campaigners look again.
    tick: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent state (every change is made
        // in one go after its checks), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self) {
        self.tick.send_modify(|t| *t = t.wrapping_add(1));
    }
}

struct LeaseState {
    ttl: Duration,
    /// On the manual clock.
    deadline: Duration,
    keys: BTreeSet<String>,
}

struct State {
    revision: Revision,
    compact_revision: Revision,
    kvs: BTreeMap<String, KeyValue>,
    /// Every event since the compact revision, in revision order (an event's revision is
    /// its `kv.mod_revision`); each carries the key before it, so the past can be rebuilt.
    history: VecDeque<WatchEvent>,
    leases: HashMap<i64, LeaseState>,
    next_lease: i64,
    now: Duration,
    unavailable: bool,
    fail_next: u32,
    fail_after_applying: u32,
}

fn unavailable(what: &str) -> ClusterError {
    ClusterError::Unavailable(format!("memory store: {what} (fault injected)"))
}

/// The keys of `map` under `prefix`, in key order.
fn under<'a, V>(map: &'a BTreeMap<String, V>, prefix: &str) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    let prefix = prefix.to_string();
    map.range(prefix.clone()..).take_while(move |(k, _)| k.starts_with(&prefix))
}

impl State {
    fn new() -> State {
        State {
            revision: 1,
            compact_revision: 0,
            kvs: BTreeMap::new(),
            history: VecDeque::new(),
            leases: HashMap::new(),
            next_lease: 0x5eed_0000_0000,
            now: Duration::ZERO,
            unavailable: false,
            fail_next: 0,
            fail_after_applying: 0,
        }
    }

    /// The fault gate every call passes first.
    fn gate(&mut self) -> Result<(), ClusterError> {
        if self.unavailable {
            return Err(unavailable("unavailable"));
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(unavailable("this call failed"));
        }
        Ok(())
    }

    fn compare(&self, c: &Compare) -> bool {
        let kv = self.kvs.get(&c.key);
        let ord = match &c.target {
            // etcd: a value compare on an absent key fails whatever the operator.
            Target::Value(v) => match kv {
                Some(kv) => kv.value.as_slice().cmp(v.as_slice()),
                None => return false,
            },
            Target::CreateRevision(r) => kv.map_or(0, |k| k.create_revision).cmp(r),
            Target::ModRevision(r) => kv.map_or(0, |k| k.mod_revision).cmp(r),
            Target::Lease(l) => kv.and_then(|k| k.lease).map_or(0, |l| l.0).cmp(l),
        };
        match c.op {
            CmpOp::Equal => ord == Ordering::Equal,
            CmpOp::NotEqual => ord != Ordering::Equal,
            CmpOp::Less => ord == Ordering::Less,
            CmpOp::Greater => ord == Ordering::Greater,
        }
    }

    fn detach(&mut self, kv: &KeyValue) {
        if let Some(lease) = kv.lease.and_then(|l| self.leases.get_mut(&l.0)) {
            lease.keys.remove(&kv.key);
        }
    }

    fn delete_at(&mut self, key: &str, rev: Revision, events: &mut Vec<WatchEvent>) {
        if let Some(prev) = self.kvs.remove(key) {
            self.detach(&prev);
            let kv = KeyValue {
                key: key.to_string(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: rev,
                version: 0,
                lease: None,
            };
            events.push(WatchEvent { kind: EventKind::Delete, kv, prev: Some(prev) });
        }
    }

    /// Makes `events` (all of revision `revision + 1`) the new revision, if any.
    fn commit(&mut self, events: Vec<WatchEvent>) {
        if !events.is_empty() {
            self.revision += 1;
            self.history.extend(events);
        }
    }

    fn apply_txn(&mut self, txn: &Txn) -> Result<TxnResult, ClusterError> {
        let succeeded = txn.compares.iter().all(|c| self.compare(c));
        let ops = if succeeded { &txn.success } else { &txn.failure };
        // Checks first, as etcd does: nothing is applied when one fails.
        let mut written = BTreeSet::new();
        for op in ops {
            let key = match op {
                Op::Put { key, lease, .. } => {
                    if let Some(lease) = lease
                        && !self.leases.contains_key(&lease.0)
                    {
                        return Err(ClusterError::LeaseNotFound(*lease));
                    }
                    key
                }
                Op::Delete { key } => key,
                Op::Get { key } => {
                    if key.is_empty() {
                        return Err(ClusterError::Refused("memory store: empty key".into()));
                    }
                    continue;
                }
            };
            if key.is_empty() {
                return Err(ClusterError::Refused("memory store: empty key".into()));
            }
            if !written.insert(key.as_str()) {
                return Err(ClusterError::Refused(format!("memory store: duplicate key {key:?} in one transaction")));
            }
        }
        let rev = self.revision + 1;
        let mut events = Vec::new();
        let mut reads = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let prev = self.kvs.get(key).cloned();
                    if let Some(prev) = &prev {
                        self.detach(prev);
                    }
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        lease: *lease,
                    };
                    if let Some(lease) = lease.and_then(|l| self.leases.get_mut(&l.0)) {
                        lease.keys.insert(key.clone());
                    }
                    self.kvs.insert(key.clone(), kv.clone());
                    events.push(WatchEvent { kind: EventKind::Put, kv, prev });
                }
                Op::Delete { key } => self.delete_at(key, rev, &mut events),
                Op::Get { key } => reads.push(self.kvs.get(key).cloned()),
            }
        }
        self.commit(events);
        Ok(TxnResult { succeeded, revision: self.revision, reads })
    }

    /// Removes a lease and deletes its keys in one revision.
    fn revoke_lease(&mut self, id: i64) -> bool {
        let Some(lease) = self.leases.remove(&id) else { return false };
        let rev = self.revision + 1;
        let mut events = Vec::new();
        for key in &lease.keys {
            self.delete_at(key, rev, &mut events);
        }
        self.commit(events);
        true
    }

    /// Revokes every lease whose deadline has come (in id order, one revision each).
    fn expire(&mut self) -> bool {
        let mut due: Vec<i64> = self.leases.iter().filter(|(_, l)| l.deadline <= self.now).map(|(id, _)| *id).collect();
        due.sort_unstable();
        let any = !due.is_empty();
        for id in due {
            self.revoke_lease(id);
        }
        any
    }

    fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<Listing, ClusterError> {
        let at = revision.filter(|r| *r > 0).unwrap_or(self.revision);
        if at > self.revision {
            return Err(ClusterError::Refused(format!(
                "memory store: revision {at} is in the future (current {})",
                self.revision
            )));
        }
        if at < self.compact_revision {
            return Err(ClusterError::Compacted { compact_revision: self.compact_revision });
        }
        let mut kvs: BTreeMap<String, KeyValue> =
            under(&self.kvs, prefix).map(|(k, v)| (k.clone(), v.clone())).collect();
        // Undo the events after `at`, newest first.
        for event in self.history.iter().rev().take_while(|e| e.kv.mod_revision > at) {
            if !event.kv.key.starts_with(prefix) {
                continue;
            }
            match &event.prev {
                Some(prev) => kvs.insert(prev.key.clone(), prev.clone()),
                None => kvs.remove(&event.kv.key),
            };
        }
        Ok(Listing { kvs: kvs.into_values().collect(), revision: at })
    }

    /// The leader of `prefix` (`<election>/`): the key with the lowest create revision.
    fn leader(&self, prefix: &str) -> Option<&KeyValue> {
        under(&self.kvs, prefix).map(|(_, kv)| kv).min_by_key(|kv| kv.create_revision)
    }
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 1, its clock at zero.
    pub fn new() -> MemoryStore {
        let (tick, _) = watch::channel(0);
        MemoryStore { shared: Arc::new(Shared { state: Mutex::new(State::new()), tick }) }
    }

    /// Moves the manual clock on by `by`; leases whose deadline has come are revoked (their
    /// keys deleted, one revision per lease) and watchers see it.
    pub fn advance(&self, by: Duration) {
        let changed = {
            let mut s = self.shared.lock();
            s.now += by;
            s.expire()
        };
        if changed {
            self.shared.notify();
        }
    }

    /// The manual clock (zero at creation).
    pub fn now(&self) -> Duration {
        self.shared.lock().now
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.shared.lock().revision
    }

    /// The revision history starts from (0: never compacted).
    pub fn compact_revision(&self) -> Revision {
        self.shared.lock().compact_revision
    }

    /// The time left on a lease, if it exists.
    pub fn lease_remaining(&self, lease: LeaseId) -> Option<Duration> {
        let s = self.shared.lock();
        s.leases.get(&lease.0).map(|l| l.deadline.saturating_sub(s.now))
    }

    /// Forgets the history before `revision` (as etcd's compaction): lists and watches at an
    /// older revision fail with `Compacted`. A revision compacted already is `Compacted`, a
    /// future one `Refused`.
    pub fn compact(&self, revision: Revision) -> Result<(), ClusterError> {
        {
            let mut s = self.shared.lock();
            if revision > s.revision {
                return Err(ClusterError::Refused(format!(
                    "memory store: cannot compact at future revision {revision} (current {})",
                    s.revision
                )));
            }
            if revision <= s.compact_revision {
                return Err(ClusterError::Compacted { compact_revision: s.compact_revision });
            }
            s.compact_revision = revision;
            while s.history.front().is_some_and(|e| e.kv.mod_revision < revision) {
                s.history.pop_front();
            }
        }
        self.shared.notify();
        Ok(())
    }

    /// Fault injection: while set, every call fails with `Unavailable` and every watch ends
    /// with it (as a store cut off; leases still expire on the clock).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.lock().unavailable = unavailable;
        self.shared.notify();
    }

    /// Fault injection: the next `n` calls fail with `Unavailable`, doing nothing.
    pub fn fail_next(&self, n: u32) {
        self.shared.lock().fail_next = n;
    }

    /// Fault injection: the next `n` transactions are applied, then fail with
    /// `Unavailable` (the answer lost: the caller cannot tell whether they happened).
    pub fn fail_next_after_applying(&self, n: u32) {
        self.shared.lock().fail_after_applying = n;
    }

    fn gate(&self) -> Result<MutexGuard<'_, State>, ClusterError> {
        let mut s = self.shared.lock();
        s.gate()?;
        Ok(s)
    }
}

#[async_trait]
impl ClusterStore for MemoryStore {
    async fn grant(&self, ttl: Duration) -> Result<Lease, ClusterError> {
        let mut s = self.gate()?;
        // etcd grants whole seconds, at least its minimum TTL (1 s here).
        let ttl = Duration::from_secs(ttl.as_secs_f64().ceil().max(1.0) as u64);
        s.next_lease += 1;
        let id = s.next_lease;
        let deadline = s.now + ttl;
        s.leases.insert(id, LeaseState { ttl, deadline, keys: BTreeSet::new() });
        Ok(Lease { id: LeaseId(id), ttl })
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, ClusterError> {
        let mut s = self.gate()?;
        let now = s.now;
        let l = s.leases.get_mut(&lease.0).ok_or(ClusterError::LeaseNotFound(lease))?;
        l.deadline = now + l.ttl;
        Ok(l.ttl)
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), ClusterError> {
        let changed = self.gate()?.revoke_lease(lease.0);
        if changed {
            self.shared.notify();
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, ClusterError> {
        Ok(self.gate()?.kvs.get(key).cloned())
    }

    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<Listing, ClusterError> {
        self.gate()?.list(prefix, revision)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, ClusterError> {
        let (result, lost) = {
            let mut s = self.gate()?;
            let result = s.apply_txn(&txn)?;
            let lost = s.fail_after_applying > 0;
            if lost {
                s.fail_after_applying -= 1;
            }
            (result, lost)
        };
        self.shared.notify();
        if lost {
            return Err(unavailable("the answer was lost after the transaction was applied"));
        }
        Ok(result)
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream, ClusterError> {
        let start = {
            let s = self.gate()?;
            if start <= 0 { s.revision + 1 } else { start }
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(run_watch(self.shared.clone(), prefix.to_string(), start, tx));
        Ok(WatchStream::new(rx))
    }

    async fn campaign(&self, election: &str, value: Vec<u8>, lease: LeaseId) -> Result<Leadership, ClusterError> {
        let prefix = format!("{election}/");
        let key = format!("{prefix}{:x}", lease.0);
        let mut tick = self.shared.tick.subscribe();
        {
            let mut s = self.gate()?;
            if !s.leases.contains_key(&lease.0) {
                return Err(ClusterError::LeaseNotFound(lease));
            }
            // As etcd's campaign: create the key under the lease, or (a campaign again on
            // the same lease) keep it and proclaim the new value.
            let keep = s.kvs.get(&key).is_some_and(|kv| kv.value == value);
            if !keep {
                s.apply_txn(&Txn {
                    compares: vec![],
                    success: vec![Op::put_leased(&key, value, lease)],
                    failure: vec![],
                })?;
            }
        }
        self.shared.notify();
        loop {
            tick.borrow_and_update();
            {
                let s = self.shared.lock();
                if s.unavailable {
                    return Err(unavailable("unavailable while campaigning"));
                }
                let Some(mine) = s.kvs.get(&key) else {
                    // Its lease expired or was revoked while it waited.
                    return Err(ClusterError::LeaseNotFound(lease));
                };
                if s.leader(&prefix).is_some_and(|l| l.key == key) {
                    return Ok(Leadership {
                        election: election.to_string(),
                        key: key.clone(),
                        revision: mine.create_revision,
                        lease,
                    });
                }
            }
            if tick.changed().await.is_err() {
                return Err(unavailable("store dropped while campaigning"));
            }
        }
    }

    async fn resign(&self, leadership: &Leadership) -> Result<(), ClusterError> {
        {
            let mut s = self.gate()?;
            s.apply_txn(&Txn {
                compares: vec![Compare::create_revision(&leadership.key, leadership.revision)],
                success: vec![Op::delete(&leadership.key)],
                failure: vec![],
            })?;
        }
        self.shared.notify();
        Ok(())
    }

    async fn leader(&self, election: &str) -> Result<Option<KeyValue>, ClusterError> {
        let s = self.gate()?;
        Ok(s.leader(&format!("{election}/")).cloned())
    }
}

/// What a watcher finds on one look at the state.
enum Look {
    Batch(WatchBatch),
    Nothing,
    End(ClusterError),
}

fn look(s: &State, prefix: &str, next: &mut Revision) -> Look {
    if s.unavailable {
        return Look::End(unavailable("unavailable: watch ended"));
    }
    if *next < s.compact_revision {
        return Look::End(ClusterError::Compacted { compact_revision: s.compact_revision });
    }
    let from = s.history.partition_point(|e| e.kv.mod_revision < *next);
    let mut events = Vec::new();
    let mut last = None;
    for e in s.history.range(from..) {
        let rev = e.kv.mod_revision;
        // Cut only between revisions.
        if events.len() >= MAX_BATCH_EVENTS && last != Some(rev) {
            break;
        }
        last = Some(rev);
        if e.kv.key.starts_with(prefix) {
            events.push(e.clone());
        }
    }
    match last {
        // Up to date: nothing older than the current revision is needed again.
        Some(rev) if rev == s.revision => *next = s.revision + 1,
        Some(rev) => *next = rev + 1,
        None => *next = (*next).max(s.revision + 1),
    }
    if events.is_empty() { Look::Nothing } else { Look::Batch(WatchBatch { revision: s.revision, events }) }
}

async fn run_watch(
    shared: Arc<Shared>,
    prefix: String,
    mut next: Revision,
    tx: mpsc::Sender<Result<WatchBatch, ClusterError>>,
) {
    let mut tick = shared.tick.subscribe();
    loop {
        tick.borrow_and_update();
        let found = look(&shared.lock(), &prefix, &mut next);
        match found {
            Look::End(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Look::Batch(batch) => {
                if tx.send(Ok(batch)).await.is_err() {
                    return;
                }
                // More may be waiting in the history: look again before sleeping.
                continue;
            }
            Look::Nothing => {}
        }
        tokio::select! {
            changed = tick.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
        }
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
