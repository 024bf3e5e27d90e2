//! [`Reflector`]: a list-then-watch cache of one key prefix (Kubernetes' reflector), so a
//! consumer sees every change under the prefix once, in revision order, or a resync.
//!
//! It lists the prefix, watches from the listing's revision + 1, and applies each event to
//! its cache. A watch that fails or ends is re-opened from the next revision not seen (after
//! a backoff); a watch (or a re-opened one) whose revision was compacted away re-lists, and
//! the difference between the cache and the new listing is reported as puts and deletes,
//! then [`ReflectorEvent::Synced`]. An event at a revision already seen is never reported
//! again. Changes overwritten while the reflector was behind a compaction are not seen
//! (only the latest value of each key is): that is what a resync means.

use crate::store::{ClusterError, ClusterStore, EventKind, KeyValue, Revision};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Events a reflector may have sent ahead of its consumer before it waits.
const CHANNEL: usize = 256;

/// One change, as the consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReflectorEvent {
    /// A key created or updated; `kv.mod_revision` is the change's revision (on a resync,
    /// the key's latest write). `prev` is the value the cache had.
    Put {
        /// The key as written.
        kv: KeyValue,
        /// The key as the cache had it before.
        prev: Option<KeyValue>,
    },
    /// A key deleted at `revision` (on a resync: the listing's revision, the deletion's own
    /// having been compacted away).
    Delete {
        /// The key as the cache had it.
        prev: KeyValue,
        /// When.
        revision: Revision,
    },
    /// The cache matches the store at `revision`: after the first listing (every key came
    /// as a `Put` before) and after each re-listing (the differences came before).
    Synced {
        /// The listing's revision.
        revision: Revision,
        /// Whether this was a re-listing (after a compaction).
        relisted: bool,
    },
}

/// How a reflector retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReflectorConfig {
    /// The first pause after a failure.
    pub min_backoff: Duration,
    /// The longest pause (it doubles from `min_backoff` on each failure in a row).
    pub max_backoff: Duration,
}

impl Default for ReflectorConfig {
    fn default() -> ReflectorConfig {
        ReflectorConfig { min_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5) }
    }
}

/// The cache: every key under the prefix, as of `revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Key → key-value.
    pub kvs: BTreeMap<String, KeyValue>,
    /// The revision the cache is at (0 until the first listing).
    pub revision: Revision,
}

/// A running reflector of one prefix. Its task stops when this is dropped.
#[derive(Debug)]
pub struct Reflector {
    cache: Arc<Mutex<Snapshot>>,
    task: JoinHandle<()>,
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(cache: &Mutex<Snapshot>) -> MutexGuard<'_, Snapshot> {
    // Every change to the snapshot is made in one go: a poisoned lock still holds a whole one.
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Reflector {
    /// Starts reflecting `prefix` of `store`; the events come on the receiver (the reflector
    /// waits when its consumer is 256 events behind, and stops when the receiver is
    /// dropped).
    pub fn start(
        store: Arc<dyn ClusterStore>,
        prefix: impl Into<String>,
        config: ReflectorConfig,
    ) -> (Reflector, mpsc::Receiver<ReflectorEvent>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let cache = Arc::new(Mutex::new(Snapshot::default()));
        let run = Run { store, prefix: prefix.into(), config, cache: cache.clone(), tx };
        let task = tokio::spawn(run.run());
        (Reflector { cache, task }, rx)
    }

    /// A copy of the cache. It may be ahead of the events the consumer has read (by the
    /// channel's length), never behind them.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.cache).clone()
    }

    /// One key of the cache.
    pub fn get(&self, key: &str) -> Option<KeyValue> {
        lock(&self.cache).kvs.get(key).cloned()
    }

    /// The revision the cache is at.
    pub fn revision(&self) -> Revision {
        lock(&self.cache).revision
    }
}

/// The consumer is gone: the reflector stops.
struct Gone;

struct Run {
    store: Arc<dyn ClusterStore>,
    prefix: String,
    config: ReflectorConfig,
    cache: Arc<Mutex<Snapshot>>,
    tx: mpsc::Sender<ReflectorEvent>,
}

impl Run {
    async fn run(self) {
        let mut backoff = self.config.min_backoff;
        let mut relisted = false;
        loop {
            let listing = match self.store.list(&self.prefix, None).await {
                Ok(listing) => listing,
                Err(e) => {
                    tracing::warn!(prefix = %self.prefix, error = %e, "reflector: listing failed; trying again");
                    self.pause(&mut backoff).await;
                    continue;
                }
            };
            let events = self.resync(listing.kvs, listing.revision);
            if self.send_all(events).await.is_err() {
                return;
            }
            let synced = ReflectorEvent::Synced { revision: listing.revision, relisted };
            if self.tx.send(synced).await.is_err() {
                return;
            }
            relisted = true;
            match self.follow(listing.revision + 1, &mut backoff).await {
                Ok(()) => continue,
                Err(Gone) => return,
            }
        }
    }

    /// Watches from `next` until a compaction (Ok: list again) or the consumer is gone.
    async fn follow(&self, mut next: Revision, backoff: &mut Duration) -> Result<(), Gone> {
        loop {
            let mut watch = match self.store.watch(&self.prefix, next).await {
                Ok(watch) => watch,
                Err(ClusterError::Compacted { .. }) => return Ok(()),
                Err(e) => {
                    tracing::warn!(prefix = %self.prefix, next, error = %e, "reflector: watch failed; trying again");
                    self.pause(backoff).await;
                    continue;
                }
            };
            let ended = loop {
                match watch.next().await {
                    Some(Ok(batch)) => {
                        *backoff = self.config.min_backoff;
                        let events = self.apply(batch.events, &mut next);
                        self.send_all(events).await?;
                    }
                    Some(Err(ClusterError::Compacted { compact_revision })) => {
                        tracing::info!(prefix = %self.prefix, next, compact_revision, "reflector: behind a compaction; listing again");
                        return Ok(());
                    }
                    Some(Err(e)) => break e.to_string(),
                    None => break "the store ended the watch".to_string(),
                }
            };
            tracing::warn!(prefix = %self.prefix, next, error = %ended, "reflector: watch ended; watching again");
            self.pause(backoff).await;
        }
    }

    async fn pause(&self, backoff: &mut Duration) {
        tokio::select! {
            () = tokio::time::sleep(*backoff) => {}
            () = self.tx.closed() => {}
        }
        *backoff = (*backoff * 2).min(self.config.max_backoff);
    }

    async fn send_all(&self, events: Vec<ReflectorEvent>) -> Result<(), Gone> {
        for event in events {
            self.tx.send(event).await.map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// Replaces the cache by a listing; returns the differences.
    fn resync(&self, kvs: Vec<KeyValue>, revision: Revision) -> Vec<ReflectorEvent> {
        let mut cache = lock(&self.cache);
        let mut fresh: BTreeMap<String, KeyValue> = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        let mut events = Vec::new();
        for (key, old) in &cache.kvs {
            if !fresh.contains_key(key) {
                events.push(ReflectorEvent::Delete { prev: old.clone(), revision });
            }
        }
        for (key, kv) in &fresh {
            let prev = cache.kvs.get(key);
            // Same mod revision: the very write the cache has (a key re-created has a new one).
            if prev.is_none_or(|p| p.mod_revision != kv.mod_revision) {
                events.push(ReflectorEvent::Put { kv: kv.clone(), prev: prev.cloned() });
            }
        }
        std::mem::swap(&mut cache.kvs, &mut fresh);
        cache.revision = revision;
        events
    }

    /// Applies watch events not seen yet (revision ≥ `next`); returns them for the consumer.
    fn apply(&self, events: Vec<crate::store::WatchEvent>, next: &mut Revision) -> Vec<ReflectorEvent> {
        let mut cache = lock(&self.cache);
        let mut out = Vec::with_capacity(events.len());
        let mut last = *next - 1;
        for event in events {
            let rev = event.kv.mod_revision;
            if rev < *next {
                continue;
            }
            last = last.max(rev);
            match event.kind {
                EventKind::Put => {
                    let prev = cache.kvs.insert(event.kv.key.clone(), event.kv.clone());
                    out.push(ReflectorEvent::Put { kv: event.kv, prev });
                }
                EventKind::Delete => {
                    if let Some(prev) = cache.kvs.remove(&event.kv.key) {
                        out.push(ReflectorEvent::Delete { prev, revision: rev });
                    }
                }
            }
        }
        *next = last + 1;
        cache.revision = cache.revision.max(last);
        out
    }
}

#[cfg(test)]
#[path = "reflector_tests.rs"]
mod tests;
