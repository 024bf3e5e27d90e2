//! The memory store's behaviours, one test each.

use super::*;
use crate::store::{ClusterStore, CmpOp, Compare, EventKind, Op, Target, Txn};
use std::collections::BTreeMap;

const SEC: Duration = Duration::from_secs(1);

async fn put(store: &MemoryStore, key: &str, value: &str) -> Revision {
    let r = store.txn(Txn { success: vec![Op::put(key, value.as_bytes().to_vec())], ..Txn::default() }).await;
    r.expect("put").revision
}

async fn put_leased(store: &MemoryStore, key: &str, value: &str, lease: LeaseId) -> Revision {
    let op = Op::put_leased(key, value.as_bytes().to_vec(), lease);
    store.txn(Txn { success: vec![op], ..Txn::default() }).await.expect("leased put").revision
}

async fn delete(store: &MemoryStore, key: &str) -> Revision {
    store.txn(Txn { success: vec![Op::delete(key)], ..Txn::default() }).await.expect("delete").revision
}

fn guarded(compares: Vec<Compare>, key: &str) -> Txn {
    Txn { compares, success: vec![Op::put(key, b"ok".to_vec())], failure: vec![Op::get(key)] }
}

/// Lets spawned tasks run until they wait (the tests run on one thread).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

async fn next_batch(w: &mut WatchStream) -> WatchBatch {
    match w.next().await {
        Some(Ok(batch)) => batch,
        other => panic!("expected a batch, got {other:?}"),
    }
}

#[tokio::test]
async fn revisions_versions_and_create_revisions_follow_etcd() {
    let store = MemoryStore::new();
    assert_eq!(store.revision(), 1, "an empty store is at revision 1");
    let r1 = put(&store, "/a", "1").await;
    let r2 = put(&store, "/a", "2").await;
    assert_eq!((r1, r2), (2, 3));
    let kv = store.get("/a").await.expect("get").expect("present");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(kv.value, b"2");
    let r3 = delete(&store, "/a").await;
    assert_eq!(r3, 4);
    assert_eq!(store.get("/a").await.expect("get"), None);
    // A delete of an absent key, or a transaction that only reads, writes nothing.
    assert_eq!(delete(&store, "/a").await, 4);
    let read = store.txn(Txn { success: vec![Op::get("/a")], ..Txn::default() }).await.expect("read");
    assert_eq!((read.revision, read.reads.clone()), (4, vec![None]));
    // Created again: a new create revision, version 1.
    put(&store, "/a", "3").await;
    let kv = store.get("/a").await.expect("get").expect("present");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[tokio::test]
async fn a_transaction_writes_all_its_keys_in_one_revision() {
    let store = MemoryStore::new();
    put(&store, "/c", "old").await;
    let txn = Txn {
        compares: vec![],
        success: vec![Op::put("/a", b"a".to_vec()), Op::put("/b", b"b".to_vec()), Op::delete("/c"), Op::get("/a")],
        failure: vec![],
    };
    let r = store.txn(txn).await.expect("txn");
    assert!(r.succeeded);
    assert_eq!(r.revision, 3);
    let a = r.reads[0].as_ref().expect("a get sees the branch's earlier put");
    assert_eq!((a.mod_revision, a.value.as_slice()), (3, b"a".as_slice()));
    let listing = store.list("/", None).await.expect("list");
    assert_eq!(
        listing.kvs.iter().map(|kv| (kv.key.as_str(), kv.mod_revision)).collect::<Vec<_>>(),
        [("/a", 3), ("/b", 3)]
    );
}

#[tokio::test]
async fn compares_on_create_and_mod_revision_value_and_lease() {
    let store = MemoryStore::new();
    let lease = store.grant(10 * SEC).await.expect("grant").id;
    let rev = put_leased(&store, "/k", "v", lease).await;
    let cases = [
        (Compare::absent("/k"), false),
        (Compare::absent("/none"), true),
        (Compare::create_revision("/k", rev), true),
        (Compare::mod_revision("/k", rev), true),
        (Compare::mod_revision("/k", rev - 1), false),
        (Compare::mod_revision("/none", 0), true),
        (Compare { key: "/k".into(), op: CmpOp::Equal, target: Target::Value(b"v".to_vec()) }, true),
        (Compare { key: "/k".into(), op: CmpOp::NotEqual, target: Target::Value(b"v".to_vec()) }, false),
        (Compare { key: "/k".into(), op: CmpOp::Greater, target: Target::Value(b"u".to_vec()) }, true),
        (Compare { key: "/k".into(), op: CmpOp::Less, target: Target::Value(b"u".to_vec()) }, false),
        // etcd: a value compare on an absent key fails, whatever the operator.
        (Compare { key: "/none".into(), op: CmpOp::NotEqual, target: Target::Value(b"v".to_vec()) }, false),
        (Compare { key: "/k".into(), op: CmpOp::Equal, target: Target::Lease(lease.0) }, true),
        (Compare { key: "/none".into(), op: CmpOp::Equal, target: Target::Lease(0) }, true),
        (Compare { key: "/k".into(), op: CmpOp::Greater, target: Target::ModRevision(rev - 1) }, true),
        (Compare { key: "/k".into(), op: CmpOp::Less, target: Target::CreateRevision(rev) }, false),
    ];
    for (i, (compare, holds)) in cases.into_iter().enumerate() {
        let before = store.revision();
        let r = store.txn(guarded(vec![compare.clone()], &format!("/out{i}"))).await.expect("txn");
        assert_eq!(r.succeeded, holds, "{compare:?}");
        assert_eq!(r.revision, if holds { before + 1 } else { before }, "{compare:?}: only the success branch writes");
        if !holds {
            assert_eq!(r.reads, vec![None], "the failure branch's get ran");
        }
    }
    // All compares must hold.
    let r = store.txn(guarded(vec![Compare::absent("/none"), Compare::absent("/k")], "/both")).await.expect("txn");
    assert!(!r.succeeded);
}

#[tokio::test]
async fn a_refused_transaction_applies_nothing() {
    let store = MemoryStore::new();
    let dup = Txn { success: vec![Op::put("/a", vec![]), Op::delete("/a")], ..Txn::default() };
    assert!(matches!(store.txn(dup).await, Err(ClusterError::Refused(_))));
    let gone = LeaseId(42);
    let txn = Txn { success: vec![Op::put("/b", vec![]), Op::put_leased("/c", vec![], gone)], ..Txn::default() };
    assert_eq!(store.txn(txn).await, Err(ClusterError::LeaseNotFound(gone)));
    assert_eq!(store.revision(), 1);
    assert_eq!(store.get("/b").await.expect("get"), None);
}

#[tokio::test]
async fn keep_alive_renews_and_expiry_deletes_the_lease_keys_in_one_revision() {
    let store = MemoryStore::new();
    let lease = store.grant(Duration::from_millis(5500)).await.expect("grant");
    assert_eq!(lease.ttl, 6 * SEC, "whole seconds, rounded up");
    put_leased(&store, "/n/a", "1", lease.id).await;
    put_leased(&store, "/n/b", "2", lease.id).await;
    put(&store, "/n/c", "kept").await;
    store.advance(5 * SEC);
    assert_eq!(store.keep_alive(lease.id).await, Ok(6 * SEC));
    store.advance(5 * SEC);
    assert_eq!(store.lease_remaining(lease.id), Some(SEC), "renewed from the keepalive");
    let before = store.revision();
    store.advance(SEC);
    assert_eq!(store.revision(), before + 1, "both keys deleted in one revision");
    let listing = store.list("/n/", None).await.expect("list");
    assert_eq!(listing.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["/n/c"]);
    assert_eq!(store.keep_alive(lease.id).await, Err(ClusterError::LeaseNotFound(lease.id)));
    let txn = Txn { success: vec![Op::put_leased("/n/a", vec![], lease.id)], ..Txn::default() };
    assert_eq!(store.txn(txn).await, Err(ClusterError::LeaseNotFound(lease.id)));
}

#[tokio::test]
async fn a_key_moved_to_another_lease_or_none_outlives_its_old_lease() {
    let store = MemoryStore::new();
    let first = store.grant(SEC).await.expect("grant").id;
    let second = store.grant(10 * SEC).await.expect("grant").id;
    put_leased(&store, "/a", "1", first).await;
    put_leased(&store, "/b", "1", first).await;
    put_leased(&store, "/a", "2", second).await;
    put(&store, "/b", "2").await;
    store.advance(2 * SEC);
    assert_eq!(store.get("/a").await.expect("get").and_then(|kv| kv.lease), Some(second));
    assert!(store.get("/b").await.expect("get").is_some());
}

#[tokio::test]
async fn revoke_deletes_the_keys_and_a_gone_lease_is_no_error() {
    let store = MemoryStore::new();
    let lease = store.grant(10 * SEC).await.expect("grant").id;
    put_leased(&store, "/a", "1", lease).await;
    store.revoke(lease).await.expect("revoke");
    assert_eq!(store.get("/a").await.expect("get"), None);
    assert_eq!(store.lease_remaining(lease), None);
    store.revoke(lease).await.expect("revoking again");
}

#[tokio::test]
async fn list_at_a_past_revision_until_compacted() {
    let store = MemoryStore::new();
    let r_a1 = put(&store, "/p/a", "1").await;
    put(&store, "/q", "other prefix").await;
    let r_b = put(&store, "/p/b", "1").await;
    put(&store, "/p/a", "2").await;
    delete(&store, "/p/b").await;
    let at = |kvs: &[KeyValue]| kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect::<Vec<_>>();
    let past = store.list("/p/", Some(r_b)).await.expect("list at r_b");
    assert_eq!(past.revision, r_b);
    assert_eq!(at(&past.kvs), [("/p/a".to_string(), b"1".to_vec()), ("/p/b".to_string(), b"1".to_vec())]);
    let first = store.list("/p/", Some(r_a1)).await.expect("list at r_a1");
    assert_eq!(at(&first.kvs), [("/p/a".to_string(), b"1".to_vec())]);
    let now = store.list("/p/", None).await.expect("list now");
    assert_eq!((now.revision, at(&now.kvs)), (store.revision(), vec![("/p/a".to_string(), b"2".to_vec())]));
    assert!(matches!(store.list("/p/", Some(store.revision() + 1)).await, Err(ClusterError::Refused(_))));

    store.compact(r_b).expect("compact");
    assert_eq!(store.list("/p/", Some(r_b)).await.expect("the compact revision itself is kept").kvs.len(), 2);
    assert_eq!(store.list("/p/", Some(r_a1)).await, Err(ClusterError::Compacted { compact_revision: r_b }));
    assert_eq!(store.compact(r_a1), Err(ClusterError::Compacted { compact_revision: r_b }));
    assert!(matches!(store.compact(store.revision() + 1), Err(ClusterError::Refused(_))));
}

#[tokio::test]
async fn watch_from_a_past_revision_sends_every_change_with_prev() {
    let store = MemoryStore::new();
    let r1 = put(&store, "/w/a", "1").await;
    put(&store, "/x", "not watched").await;
    put(&store, "/w/a", "2").await;
    let mut w = store.watch("/w/", r1).await.expect("watch");
    let batch = next_batch(&mut w).await;
    let seen: Vec<_> =
        batch.events.iter().map(|e| (e.kind, e.kv.mod_revision, e.prev.as_ref().map(|p| p.version))).collect();
    assert_eq!(seen, [(EventKind::Put, r1, None), (EventKind::Put, r1 + 2, Some(1))]);
    let r_del = delete(&store, "/w/a").await;
    let batch = next_batch(&mut w).await;
    assert_eq!(batch.events.len(), 1);
    let e = &batch.events[0];
    assert_eq!((e.kind, e.kv.key.as_str(), e.kv.mod_revision), (EventKind::Delete, "/w/a", r_del));
    assert_eq!(e.prev.as_ref().map(|p| p.value.clone()), Some(b"2".to_vec()));
}

#[tokio::test]
async fn lease_expiry_is_seen_by_watchers_as_deletes_of_one_revision() {
    let store = MemoryStore::new();
    let lease = store.grant(2 * SEC).await.expect("grant").id;
    put_leased(&store, "/n/a", "1", lease).await;
    put_leased(&store, "/n/b", "1", lease).await;
    let mut w = store.watch("/n/", store.revision() + 1).await.expect("watch");
    store.advance(2 * SEC);
    let batch = next_batch(&mut w).await;
    let kinds: Vec<_> = batch.events.iter().map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision)).collect();
    let rev = store.revision();
    assert_eq!(kinds, [(EventKind::Delete, "/n/a", rev), (EventKind::Delete, "/n/b", rev)]);
    assert!(batch.events.iter().all(|e| e.prev.as_ref().is_some_and(|p| p.lease == Some(lease))));
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_ends_with_compacted() {
    let store = MemoryStore::new();
    let r = put(&store, "/w/a", "1").await;
    put(&store, "/w/a", "2").await;
    store.compact(r + 1).expect("compact");
    let mut w = store.watch("/w/", r).await.expect("watch");
    assert_eq!(w.next().await, Some(Err(ClusterError::Compacted { compact_revision: r + 1 })));
    assert_eq!(w.next().await, None, "the watch ended");
}

#[tokio::test]
async fn a_slow_watcher_overtaken_by_compaction_ends_with_compacted() {
    let store = MemoryStore::new();
    let start = store.revision() + 1;
    let mut w = store.watch("/w/", start).await.expect("watch");
    // More batches than the watch buffers: the watcher falls behind its reader.
    for i in 0..(WATCH_BUFFER + 10) {
        put(&store, "/w/a", &i.to_string()).await;
        settle().await;
    }
    store.compact(store.revision()).expect("compact");
    let mut seen = 0;
    let end = loop {
        match w.next().await {
            Some(Ok(batch)) => seen += batch.events.len(),
            other => break other,
        }
    };
    assert!(seen < WATCH_BUFFER + 10, "it had not read everything before the compaction");
    assert_eq!(end, Some(Err(ClusterError::Compacted { compact_revision: store.revision() })));
}

#[tokio::test]
async fn a_watch_that_keeps_up_survives_compaction() {
    let store = MemoryStore::new();
    let mut w = store.watch("/w/", 0).await.expect("watch from now");
    let r = put(&store, "/w/a", "1").await;
    assert_eq!(next_batch(&mut w).await.events[0].kv.mod_revision, r);
    store.compact(r).expect("compact");
    let r2 = put(&store, "/w/a", "2").await;
    assert_eq!(next_batch(&mut w).await.events[0].kv.mod_revision, r2);
}

#[tokio::test]
async fn the_lowest_create_revision_leads_and_the_next_waits() {
    let store = MemoryStore::new();
    let l1 = store.grant(5 * SEC).await.expect("grant").id;
    let l2 = store.grant(5 * SEC).await.expect("grant").id;
    assert_eq!(store.leader("/e").await.expect("leader"), None);
    let first = store.campaign("/e", b"one".to_vec(), l1).await.expect("first leads at once");
    assert_eq!(first.key, format!("/e/{:x}", l1.0));
    let second = tokio::spawn({
        let store = store.clone();
        async move { store.campaign("/e", b"two".to_vec(), l2).await }
    });
    settle().await;
    assert!(!second.is_finished(), "the second campaigner waits while the first leads");
    let leader = store.leader("/e").await.expect("leader").expect("a leader");
    assert_eq!((leader.key.as_str(), leader.value.as_slice()), (first.key.as_str(), b"one".as_slice()));
    store.resign(&first).await.expect("resign");
    let second = second.await.expect("join").expect("the second leads after the resignation");
    assert_eq!(store.leader("/e").await.expect("leader").map(|kv| kv.key), Some(second.key.clone()));
    assert!(second.revision > first.revision);
    // A resignation of a lost leadership is no error and deletes nothing.
    store.resign(&first).await.expect("resign again");
    assert!(store.get(&second.key).await.expect("get").is_some());
}

#[tokio::test]
async fn the_leader_lease_expiry_elects_the_next_and_fails_the_deposed_leaders_writes() {
    let store = MemoryStore::new();
    let l1 = store.grant(2 * SEC).await.expect("grant").id;
    let l2 = store.grant(10 * SEC).await.expect("grant").id;
    let first = store.campaign("/e", b"one".to_vec(), l1).await.expect("first");
    let second = tokio::spawn({
        let store = store.clone();
        async move { store.campaign("/e", b"two".to_vec(), l2).await }
    });
    settle().await;
    let as_leader = |l: &Leadership| guarded(vec![Compare::create_revision(&l.key, l.revision)], "/placement");
    assert!(store.txn(as_leader(&first)).await.expect("txn").succeeded, "the leader's guarded write");
    store.advance(2 * SEC);
    let second = second.await.expect("join").expect("the second leads once the first lease expired");
    assert!(!store.txn(as_leader(&first)).await.expect("txn").succeeded, "the deposed leader's write fails");
    assert!(store.txn(as_leader(&second)).await.expect("txn").succeeded);
}

#[tokio::test]
async fn campaigning_needs_a_live_lease() {
    let store = MemoryStore::new();
    assert_eq!(store.campaign("/e", vec![], LeaseId(7)).await, Err(ClusterError::LeaseNotFound(LeaseId(7))));
    let l1 = store.grant(10 * SEC).await.expect("grant").id;
    let l2 = store.grant(SEC).await.expect("grant").id;
    store.campaign("/e", vec![], l1).await.expect("first");
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.campaign("/e", vec![], l2).await }
    });
    settle().await;
    store.advance(SEC);
    assert_eq!(waiting.await.expect("join"), Err(ClusterError::LeaseNotFound(l2)), "its lease expired while it waited");
}

#[tokio::test]
async fn campaigning_again_on_the_same_lease_keeps_leadership_and_proclaims() {
    let store = MemoryStore::new();
    let l = store.grant(10 * SEC).await.expect("grant").id;
    let a = store.campaign("/e", b"a".to_vec(), l).await.expect("campaign");
    let b = store.campaign("/e", b"b".to_vec(), l).await.expect("again");
    assert_eq!((a.key.clone(), a.revision), (b.key, b.revision));
    assert_eq!(store.leader("/e").await.expect("leader").map(|kv| kv.value), Some(b"b".to_vec()));
}

#[tokio::test]
async fn unavailable_fails_every_call_and_ends_watches() {
    let store = MemoryStore::new();
    let lease = store.grant(10 * SEC).await.expect("grant").id;
    let mut w = store.watch("/", 0).await.expect("watch");
    store.set_unavailable(true);
    assert!(matches!(w.next().await, Some(Err(ClusterError::Unavailable(_)))));
    assert!(matches!(store.get("/a").await, Err(ClusterError::Unavailable(_))));
    assert!(matches!(store.keep_alive(lease).await, Err(ClusterError::Unavailable(_))));
    assert!(matches!(store.txn(guarded(vec![], "/a")).await, Err(ClusterError::Unavailable(_))));
    assert!(matches!(store.watch("/", 0).await, Err(ClusterError::Unavailable(_))));
    assert_eq!(store.revision(), 1, "nothing written");
    store.set_unavailable(false);
    assert!(store.txn(guarded(vec![], "/a")).await.expect("txn").succeeded);
}

#[tokio::test]
async fn a_campaign_ends_when_the_store_becomes_unavailable() {
    let store = MemoryStore::new();
    let l1 = store.grant(10 * SEC).await.expect("grant").id;
    let l2 = store.grant(10 * SEC).await.expect("grant").id;
    store.campaign("/e", vec![], l1).await.expect("first");
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.campaign("/e", vec![], l2).await }
    });
    settle().await;
    store.set_unavailable(true);
    assert!(matches!(waiting.await.expect("join"), Err(ClusterError::Unavailable(_))));
}

#[tokio::test]
async fn fail_next_fails_that_many_calls() {
    let store = MemoryStore::new();
    store.fail_next(2);
    assert!(matches!(store.get("/a").await, Err(ClusterError::Unavailable(_))));
    assert!(matches!(store.txn(guarded(vec![], "/a")).await, Err(ClusterError::Unavailable(_))));
    assert_eq!(store.revision(), 1, "a failed call did nothing");
    assert!(store.txn(guarded(vec![], "/a")).await.expect("the third call").succeeded);
}

#[tokio::test]
async fn fail_next_after_applying_loses_the_answer_not_the_write() {
    let store = MemoryStore::new();
    store.fail_next_after_applying(1);
    let txn = guarded(vec![Compare::absent("/a")], "/a");
    assert!(matches!(store.txn(txn.clone()).await, Err(ClusterError::Unavailable(_))));
    assert!(store.get("/a").await.expect("get").is_some(), "the write happened");
    // Retrying the guarded write is safe: its compare now fails.
    assert!(!store.txn(txn).await.expect("retry").succeeded);
}

/// What a random schedule does to the store.
#[derive(Debug, Clone)]
enum Step {
    Put(u8, u8),
    PutLeased(u8, u8, u64),
    Delete(u8),
    /// Compact this many revisions behind the current one.
    Compact(i64),
    Advance(u64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u8..5, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
        2 => (0u8..5, any::<u8>(), 1u64..4).prop_map(|(k, v, ttl)| Step::PutLeased(k, v, ttl)),
        2 => (0u8..5).prop_map(Step::Delete),
        1 => (0i64..6).prop_map(Step::Compact),
        1 => (0u64..3).prop_map(Step::Advance),
    ]
}

type Values = BTreeMap<String, Vec<u8>>;

fn values(kvs: &[KeyValue]) -> Values {
    kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect()
}

/// Runs `steps`, keeping what each revision listed when it was current; then every revision
/// since the compact revision must list the same, and a watch from the compact revision
/// replayed on its listing must give the current one.
async fn history_holds(steps: Vec<Step>) {
    let store = MemoryStore::new();
    let mut then: BTreeMap<Revision, Values> = BTreeMap::from([(1, Values::new())]);
    for step in steps {
        match step {
            Step::Put(k, v) => {
                put(&store, &format!("/h/{k}"), &v.to_string()).await;
            }
            Step::PutLeased(k, v, ttl) => {
                let lease = store.grant(Duration::from_secs(ttl)).await.expect("grant").id;
                put_leased(&store, &format!("/h/{k}"), &v.to_string(), lease).await;
            }
            Step::Delete(k) => {
                delete(&store, &format!("/h/{k}")).await;
            }
            Step::Compact(back) => {
                let at = store.revision() - back;
                if at > store.compact_revision() {
                    store.compact(at).expect("compact");
                }
            }
            Step::Advance(secs) => store.advance(Duration::from_secs(secs)),
        }
        let now = store.list("/h/", None).await.expect("list");
        then.insert(now.revision, values(&now.kvs));
    }
    let current = store.revision();
    let from = store.compact_revision().max(1);
    // Revisions no step ended at (a lease expiry of several leases) are skipped.
    for (rev, expected) in then.range(from..=current) {
        let listing = store.list("/h/", Some(*rev)).await.expect("list at a kept revision");
        assert_eq!(&values(&listing.kvs), expected, "revision {rev}");
    }
    let mut replayed = values(&store.list("/h/", Some(from)).await.expect("list at the compact revision").kvs);
    if current > from {
        let mut watch = store.watch("/h/", from + 1).await.expect("watch");
        let mut last = from;
        while last < current {
            let batch = next_batch(&mut watch).await;
            for e in batch.events {
                assert!(e.kv.mod_revision >= last, "events in revision order");
                last = e.kv.mod_revision;
                match e.kind {
                    EventKind::Put => replayed.insert(e.kv.key, e.kv.value),
                    EventKind::Delete => replayed.remove(&e.kv.key),
                };
            }
        }
    }
    assert_eq!(replayed, then[&current], "the watch replayed on the compact revision's listing gives the current one");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    #[test]
    fn past_revisions_list_what_they_listed_then_and_watches_replay_to_now(steps in proptest::collection::vec(step(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(history_holds(steps));
    }
}
