//! The reflector on the memory store: every change once, through compactions and faults.

use super::*;
use crate::store::{MemoryStore, Op, Txn};
use std::collections::{BTreeSet, HashMap};

const END: &str = "/p/~end";

fn config() -> ReflectorConfig {
    ReflectorConfig { min_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(20) }
}

/// Writes, retrying while injected faults fail it (they are meant for the reflector).
async fn write(store: &MemoryStore, ops: Vec<Op>) {
    let txn = Txn { success: ops, ..Txn::default() };
    loop {
        match store.txn(txn.clone()).await {
            Ok(_) => return,
            Err(ClusterError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => panic!("write: {e}"),
        }
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::put(key, value.as_bytes().to_vec())
}

/// What the consumer rebuilt from the events, and how they came.
#[derive(Default)]
struct Consumer {
    view: BTreeMap<String, KeyValue>,
    /// (key, revision) of every put and delete seen, to catch one seen twice.
    seen: BTreeSet<(String, Revision)>,
    puts: usize,
    deletes: usize,
    syncs: Vec<(Revision, bool)>,
}

impl Consumer {
    fn take(&mut self, event: ReflectorEvent) {
        match event {
            ReflectorEvent::Put { kv, prev } => {
                assert_eq!(prev, self.view.get(&kv.key).cloned(), "prev is what the consumer had");
                assert!(
                    self.seen.insert((kv.key.clone(), kv.mod_revision)),
                    "{} at {} seen twice",
                    kv.key,
                    kv.mod_revision
                );
                self.puts += 1;
                self.view.insert(kv.key.clone(), kv);
            }
            ReflectorEvent::Delete { prev, revision } => {
                assert_eq!(Some(&prev), self.view.get(&prev.key), "a delete of what the consumer had");
                assert!(
                    self.seen.insert((prev.key.clone(), revision)),
                    "delete of {} at {revision} seen twice",
                    prev.key
                );
                self.deletes += 1;
                self.view.remove(&prev.key);
            }
            ReflectorEvent::Synced { revision, relisted } => self.syncs.push((revision, relisted)),
        }
    }

    /// Reads until the first listing is taken.
    async fn until_synced(&mut self, rx: &mut mpsc::Receiver<ReflectorEvent>) {
        while self.syncs.is_empty() {
            let event = rx.recv().await.expect("the reflector runs");
            self.take(event);
        }
    }

    /// Reads until the end marker holds `value`.
    async fn until_end(&mut self, rx: &mut mpsc::Receiver<ReflectorEvent>, value: &str) {
        while self.view.get(END).is_none_or(|kv| kv.value != value.as_bytes()) {
            let event = rx.recv().await.expect("the reflector runs");
            self.take(event);
        }
    }

    async fn assert_matches(&self, store: &MemoryStore) {
        let listing = store.list("/p/", None).await.expect("list");
        let expected: BTreeMap<_, _> = listing.kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        assert_eq!(self.view, expected, "the consumer's view is the store's");
    }
}

#[tokio::test]
async fn lists_then_reports_every_change_once_in_order() {
    let store = MemoryStore::new();
    write(&store, vec![put("/p/a", "1"), put("/p/b", "1"), put("/q/x", "other prefix")]).await;
    let (reflector, mut rx) = Reflector::start(Arc::new(store.clone()), "/p/", config());
    let mut c = Consumer::default();
    c.until_synced(&mut rx).await;
    let first = store.revision();
    while c.syncs.is_empty() {
        c.take(rx.recv().await.expect("event"));
    }
    assert_eq!(c.syncs, [(first, false)]);
    assert_eq!(c.view.keys().cloned().collect::<Vec<_>>(), ["/p/a", "/p/b"]);
    write(&store, vec![put("/p/a", "2")]).await;
    write(&store, vec![Op::delete("/p/b"), put("/q/y", "other")]).await;
    write(&store, vec![put(END, "1")]).await;
    let mut revisions = Vec::new();
    while !c.view.contains_key(END) {
        let event = rx.recv().await.expect("event");
        revisions.push(match &event {
            ReflectorEvent::Put { kv, .. } => kv.mod_revision,
            ReflectorEvent::Delete { revision, .. } => *revision,
            ReflectorEvent::Synced { revision, .. } => *revision,
        });
        c.take(event);
    }
    assert_eq!(revisions, [first + 1, first + 2, first + 3], "in order; other prefixes not reported");
    assert_eq!((c.puts, c.deletes), (4, 1));
    c.assert_matches(&store).await;
    assert_eq!(reflector.snapshot().kvs, c.view);
    assert_eq!(reflector.revision(), store.revision());
}

#[tokio::test]
async fn a_compaction_while_behind_relists_and_reports_the_difference() {
    let store = MemoryStore::new();
    write(&store, vec![put("/p/keep", "0"), put("/p/change", "0"), put("/p/gone", "0"), put("/p/recreated", "0")])
        .await;
    let (reflector, mut rx) = Reflector::start(Arc::new(store.clone()), "/p/", config());
    let mut c = Consumer::default();
    c.until_synced(&mut rx).await;
    write(&store, vec![put(END, "0")]).await;
    c.until_end(&mut rx, "0").await;
    // The consumer stops reading: the reflector's channel, then its watch, fill up.
    for i in 0..(CHANNEL + 100) {
        write(&store, vec![put("/p/change", &i.to_string())]).await;
        tokio::task::yield_now().await;
    }
    write(&store, vec![Op::delete("/p/gone")]).await;
    write(&store, vec![Op::delete("/p/recreated")]).await;
    write(&store, vec![put("/p/recreated", "again"), put("/p/new", "1")]).await;
    write(&store, vec![put(END, "1")]).await;
    assert!(reflector.revision() < store.revision(), "the reflector is behind");
    store.compact(store.revision()).expect("compact");
    c.until_end(&mut rx, "1").await;
    // The marker came with the re-listing's differences; its Synced follows them.
    while !c.syncs.iter().any(|&(_, relisted)| relisted) {
        c.take(rx.recv().await.expect("the reflector lists again"));
    }
    assert!(c.puts < 4 + 2 + CHANNEL + 100 + 3, "some overwritten values were skipped (a resync)");
    c.assert_matches(&store).await;
}

#[tokio::test]
async fn faults_and_an_unavailable_store_lose_and_repeat_nothing() {
    let store = MemoryStore::new();
    let (_reflector, mut rx) = Reflector::start(Arc::new(store.clone()), "/p/", config());
    let mut c = Consumer::default();
    c.until_synced(&mut rx).await;
    let mut expected_puts = 0;
    for round in 0..6 {
        for i in 0..5 {
            write(&store, vec![put(&format!("/p/k{i}"), &format!("{round}"))]).await;
            expected_puts += 1;
        }
        write(&store, vec![Op::delete("/p/k0")]).await;
        // The watch ends and watching again fails for a while; nothing is written meanwhile.
        store.set_unavailable(true);
        tokio::time::sleep(Duration::from_millis(30)).await;
        if round % 2 == 1 {
            // Then a few more calls fail (the reflector's, or this test's, which retries).
            store.fail_next(3);
        }
        store.set_unavailable(false);
        write(&store, vec![put(END, &round.to_string())]).await;
        expected_puts += 1;
        c.until_end(&mut rx, &round.to_string()).await;
    }
    c.assert_matches(&store).await;
    assert_eq!((c.puts, c.deletes), (expected_puts, 6), "with no compaction, every change came exactly once");
    assert_eq!(c.syncs.len(), 1, "no compaction: no re-listing, the watch resumed where it was");
}

#[tokio::test]
async fn a_lease_expiry_comes_as_deletes() {
    let store = MemoryStore::new();
    let lease = store.grant(Duration::from_secs(2)).await.expect("grant").id;
    write(&store, vec![Op::put_leased("/p/alive", vec![], lease)]).await;
    let (_reflector, mut rx) = Reflector::start(Arc::new(store.clone()), "/p/", config());
    let mut c = Consumer::default();
    c.until_synced(&mut rx).await;
    write(&store, vec![put(END, "0")]).await;
    c.until_end(&mut rx, "0").await;
    store.advance(Duration::from_secs(2));
    let event = rx.recv().await.expect("event");
    assert!(
        matches!(&event, ReflectorEvent::Delete { prev, revision } if prev.key == "/p/alive" && *revision == store.revision())
    );
    c.take(event);
    c.assert_matches(&store).await;
}

#[tokio::test]
async fn every_revision_is_reported_once_across_many_compactions() {
    let store = MemoryStore::new();
    let (_reflector, mut rx) = Reflector::start(Arc::new(store.clone()), "/p/", config());
    let mut c = Consumer::default();
    c.until_synced(&mut rx).await;
    let mut last_value: HashMap<String, String> = HashMap::new();
    for round in 0..20 {
        for i in 0..(round * 7 % 40) {
            let key = format!("/p/k{}", i % 9);
            let value = format!("{round}-{i}");
            write(&store, vec![put(&key, &value)]).await;
            last_value.insert(key, value);
        }
        if round % 3 == 0 {
            store.compact(store.revision()).expect("compact");
        }
        write(&store, vec![put(END, &round.to_string())]).await;
        c.until_end(&mut rx, &round.to_string()).await;
        c.assert_matches(&store).await;
    }
    for (key, value) in last_value {
        assert_eq!(c.view.get(&key).map(|kv| kv.value.clone()), Some(value.into_bytes()));
    }
}
