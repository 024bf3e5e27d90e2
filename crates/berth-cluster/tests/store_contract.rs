//! One set of behaviour checks of the `ClusterStore` contract, run against the memory store
//! and against real etcd (one member; three members with one stopped). The etcd tests start
//! their own members (`berth_testutils::etcd`) and fail when etcd is missing: they never skip.

use berth_cluster::store::{
    ClusterError, ClusterStore, CmpOp, Compare, EtcdStore, EventKind, LeaseId, MemoryStore, Op, Target, Txn,
    WatchEvent, WatchStream,
};
use berth_testutils::etcd::EtcdCluster;
use std::sync::Arc;
use std::time::Duration;

/// A store under test, with what the contract cannot do through the trait.
#[derive(Clone)]
enum Backend {
    Memory(MemoryStore),
    Etcd(EtcdStore),
}

impl Backend {
    fn store(&self) -> Arc<dyn ClusterStore> {
        match self {
            Backend::Memory(m) => Arc::new(m.clone()),
            Backend::Etcd(e) => Arc::new(e.clone()),
        }
    }

    async fn compact(&self, revision: i64) {
        match self {
            Backend::Memory(m) => m.compact(revision).expect("compact"),
            Backend::Etcd(e) => e.compact(revision).await.expect("compact"),
        }
    }

    /// Lets `lease` (of `ttl`) expire without keepalives: the manual clock moves on for the
    /// memory store; etcd's own clock does it (the caller waits for the effect).
    fn let_expire(&self, ttl: Duration) {
        if let Backend::Memory(m) = self {
            m.advance(ttl);
        }
    }
}

/// Writes without compares.
async fn write(store: &dyn ClusterStore, ops: Vec<Op>) -> i64 {
    store.txn(Txn { success: ops, ..Txn::default() }).await.expect("write").revision
}

/// The next `n` events of a watch.
async fn events(watch: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
            Ok(Some(Ok(batch))) => out.extend(batch.events),
            other => panic!("expected {n} events, have {}, then {other:?}", out.len()),
        }
    }
    out
}

async fn txn_compares(b: &Backend, p: &str) {
    let store = b.store();
    let key = format!("{p}task");
    let create = Txn {
        compares: vec![Compare::absent(&key)],
        success: vec![Op::put(&key, b"v1".to_vec())],
        failure: vec![Op::get(&key)],
    };
    let first = store.txn(create.clone()).await.expect("create");
    assert!(first.succeeded, "create-only on an absent key");
    let again = store.txn(create).await.expect("create again");
    assert!(!again.succeeded, "create-only on a present key fails");
    assert_eq!(again.revision, first.revision, "a failed compare writes nothing");
    let seen = again.reads[0].clone().expect("the failure branch read the key");
    assert_eq!((seen.create_revision, seen.mod_revision, seen.version), (first.revision, first.revision, 1));

    let update = |rev: i64, value: &[u8]| Txn {
        compares: vec![Compare::mod_revision(&key, rev)],
        success: vec![Op::put(&key, value.to_vec()), Op::get(&key)],
        failure: vec![],
    };
    let updated = store.txn(update(seen.mod_revision, b"v2")).await.expect("update");
    assert!(updated.succeeded);
    let after = updated.reads[0].clone().expect("the get after the put");
    assert_eq!((after.value.as_slice(), after.version, after.create_revision), (b"v2".as_slice(), 2, first.revision));
    assert!(!store.txn(update(seen.mod_revision, b"v3")).await.expect("stale update").succeeded, "stale mod revision");

    let value_is = |v: &[u8]| Compare { key: key.clone(), op: CmpOp::Equal, target: Target::Value(v.to_vec()) };
    let guarded = |c: Compare| Txn { compares: vec![c], success: vec![], failure: vec![] };
    assert!(store.txn(guarded(value_is(b"v2"))).await.expect("txn").succeeded);
    assert!(!store.txn(guarded(value_is(b"v1"))).await.expect("txn").succeeded);
    let absent_value = Compare { key: format!("{p}none"), op: CmpOp::NotEqual, target: Target::Value(b"x".to_vec()) };
    assert!(!store.txn(guarded(absent_value)).await.expect("txn").succeeded, "a value compare on an absent key fails");

    let lease = store.grant(Duration::from_secs(60)).await.expect("grant").id;
    let leased = format!("{p}leased");
    write(&*store, vec![Op::put_leased(&leased, vec![], lease)]).await;
    let on_lease = |l: i64| Compare { key: leased.clone(), op: CmpOp::Equal, target: Target::Lease(l) };
    assert!(store.txn(guarded(on_lease(lease.0))).await.expect("txn").succeeded);
    assert!(!store.txn(guarded(on_lease(0))).await.expect("txn").succeeded);
    store.revoke(lease).await.expect("revoke");
    assert_eq!(store.get(&leased).await.expect("get"), None, "revoking deleted the lease's key");

    let gone = Txn { success: vec![Op::put_leased(format!("{p}x"), vec![], lease)], ..Txn::default() };
    assert_eq!(store.txn(gone).await, Err(ClusterError::LeaseNotFound(lease)), "a put under a revoked lease");
}

async fn lease_expiry(b: &Backend, p: &str) {
    let store = b.store();
    let lease = store.grant(Duration::from_secs(2)).await.expect("grant");
    let (a, c) = (format!("{p}a"), format!("{p}c"));
    let start = write(&*store, vec![Op::put_leased(&a, b"1".to_vec(), lease.id)]).await;
    write(&*store, vec![Op::put_leased(&c, b"2".to_vec(), lease.id), Op::put(format!("{p}kept"), vec![])]).await;
    let renewed = store.keep_alive(lease.id).await.expect("keepalive of a live lease");
    assert_eq!(renewed, lease.ttl);
    let mut watch = store.watch(p, start + 2).await.expect("watch");
    b.let_expire(lease.ttl);
    let deletes = events(&mut watch, 2).await;
    assert!(deletes.iter().all(|e| e.kind == EventKind::Delete), "{deletes:?}");
    let keys: Vec<&str> = deletes.iter().map(|e| e.kv.key.as_str()).collect();
    assert_eq!(keys, [a.as_str(), c.as_str()]);
    assert_eq!(deletes[0].kv.mod_revision, deletes[1].kv.mod_revision, "one revision for the lease's keys");
    assert!(deletes.iter().all(|e| e.prev.as_ref().is_some_and(|p| p.lease == Some(lease.id))), "prev kvs");
    assert_eq!(store.keep_alive(lease.id).await, Err(ClusterError::LeaseNotFound(lease.id)));
    let left = store.list(p, None).await.expect("list");
    assert_eq!(left.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), [format!("{p}kept")]);
}

async fn watch_from_revision(b: &Backend, p: &str) {
    let store = b.store();
    let key = format!("{p}k");
    let r1 = write(&*store, vec![Op::put(&key, b"1".to_vec())]).await;
    write(&*store, vec![Op::put(format!("{p}other"), b"x".to_vec())]).await;
    let r3 = write(&*store, vec![Op::put(&key, b"2".to_vec())]).await;
    let r4 = write(&*store, vec![Op::delete(&key)]).await;
    let mut watch = store.watch(&key, r1).await.expect("watch");
    let seen = events(&mut watch, 3).await;
    let summary: Vec<_> =
        seen.iter().map(|e| (e.kind, e.kv.mod_revision, e.prev.as_ref().map(|p| p.value.clone()))).collect();
    assert_eq!(
        summary,
        [
            (EventKind::Put, r1, None),
            (EventKind::Put, r3, Some(b"1".to_vec())),
            (EventKind::Delete, r4, Some(b"2".to_vec()))
        ]
    );
    // Live events follow the past ones on the same stream.
    let r5 = write(&*store, vec![Op::put(&key, b"3".to_vec())]).await;
    let live = events(&mut watch, 1).await;
    assert_eq!((live[0].kind, live[0].kv.mod_revision, live[0].prev.clone()), (EventKind::Put, r5, None));
}

async fn list_at_revision(b: &Backend, p: &str) {
    let store = b.store();
    let (a, c) = (format!("{p}a"), format!("{p}c"));
    let r1 = write(&*store, vec![Op::put(&a, b"1".to_vec()), Op::put(&c, b"1".to_vec())]).await;
    write(&*store, vec![Op::put(&a, b"2".to_vec())]).await;
    write(&*store, vec![Op::delete(&c)]).await;
    let past = store.list(p, Some(r1)).await.expect("list at r1");
    assert_eq!(past.revision, r1);
    let values: Vec<_> = past.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    assert_eq!(values, [(a.clone(), b"1".to_vec()), (c.clone(), b"1".to_vec())]);
    let now = store.list(p, None).await.expect("list now");
    let values: Vec<_> = now.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
    assert_eq!(values, [(a, b"2".to_vec())]);
    assert!(now.revision > r1);
}

async fn compaction(b: &Backend, p: &str) {
    let store = b.store();
    let key = format!("{p}k");
    let r1 = write(&*store, vec![Op::put(&key, b"1".to_vec())]).await;
    let r2 = write(&*store, vec![Op::put(&key, b"2".to_vec())]).await;
    b.compact(r2).await;
    assert!(
        matches!(store.list(p, Some(r1)).await, Err(ClusterError::Compacted { .. })),
        "a list before the compaction"
    );
    assert_eq!(store.list(p, Some(r2)).await.expect("list at the compact revision").kvs.len(), 1);
    let mut watch = store.watch(p, r1).await.expect("watch");
    match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
        Ok(Some(Err(ClusterError::Compacted { compact_revision }))) => assert_eq!(compact_revision, r2),
        other => panic!("a watch from a compacted revision: {other:?}"),
    }
}

async fn election(b: &Backend, p: &str) {
    let store = b.store();
    let name = format!("{p}election");
    let ttl = Duration::from_secs(60);
    let l1 = store.grant(ttl).await.expect("grant").id;
    let l2 = store.grant(ttl).await.expect("grant").id;
    let l3 = store.grant(ttl).await.expect("grant").id;
    let first = store.campaign(&name, b"one".to_vec(), l1).await.expect("the first leads");
    assert_eq!(first.key, format!("{name}/{:x}", l1.0));
    let campaign = |lease: LeaseId, value: &'static [u8]| {
        let (store, name) = (store.clone(), name.clone());
        tokio::spawn(async move { store.campaign(&name, value.to_vec(), lease).await })
    };
    let second = campaign(l2, b"two");
    // The second campaigner's key exists (under its lease) while it waits.
    let second_key = format!("{name}/{:x}", l2.0);
    while store.get(&second_key).await.expect("get").is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!second.is_finished(), "the second waits while the first leads");
    assert_eq!(store.leader(&name).await.expect("leader").map(|kv| kv.value), Some(b"one".to_vec()));

    let as_leader = |key: &str, rev: i64| Txn {
        compares: vec![Compare::create_revision(key, rev)],
        success: vec![Op::put(format!("{p}placement"), key.as_bytes().to_vec())],
        failure: vec![],
    };
    assert!(store.txn(as_leader(&first.key, first.revision)).await.expect("txn").succeeded);
    store.resign(&first).await.expect("resign");
    let second = second.await.expect("join").expect("the second leads once the first resigned");
    assert_eq!(second.key, second_key);
    assert!(
        !store.txn(as_leader(&first.key, first.revision)).await.expect("txn").succeeded,
        "the resigned leader's write"
    );
    store.resign(&first).await.expect("resigning a lost leadership is no error");

    let third = campaign(l3, b"three");
    let third_key = format!("{name}/{:x}", l3.0);
    while store.get(&third_key).await.expect("get").is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!third.is_finished(), "the third waits while the second leads");
    store.revoke(second.lease).await.expect("revoke the leader's lease");
    let third = third.await.expect("join").expect("the third leads once the second's lease is gone");
    assert_eq!(store.leader(&name).await.expect("leader").map(|kv| kv.key), Some(third.key.clone()));
    assert!(
        !store.txn(as_leader(&second.key, second.revision)).await.expect("txn").succeeded,
        "the deposed leader's write"
    );
    assert!(store.txn(as_leader(&third.key, third.revision)).await.expect("txn").succeeded);
    store.revoke(l3).await.expect("revoke");
    assert_eq!(store.leader(&name).await.expect("leader"), None);
}

/// Every check, each under a prefix of its own.
async fn contract(b: &Backend, root: &str) {
    txn_compares(b, &format!("{root}/txn/")).await;
    lease_expiry(b, &format!("{root}/lease/")).await;
    watch_from_revision(b, &format!("{root}/watch/")).await;
    list_at_revision(b, &format!("{root}/list/")).await;
    election(b, &format!("{root}/election/")).await;
    // Last: it forgets the history of the others.
    compaction(b, &format!("{root}/compaction/")).await;
}

async fn connect(endpoints: &[String]) -> EtcdStore {
    EtcdStore::connect(endpoints, Duration::from_secs(5)).await.expect("connect")
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract(&Backend::Memory(MemoryStore::new()), "/contract").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_keeps_the_contract() {
    let cluster = EtcdCluster::start(1);
    let store = connect(&cluster.endpoints()).await;
    contract(&Backend::Etcd(store), "/contract").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_etcd_with_one_stopped_keeps_the_contract() {
    let mut cluster = EtcdCluster::start(3);
    let store = connect(&cluster.endpoints()).await;
    let before = write(&store, vec![Op::put("/before", b"1".to_vec())]).await;
    cluster.stop_member(0);
    // If it led, the others elect a leader first (a write meanwhile may fail Unavailable).
    cluster.wait_healthy(1);
    let b = Backend::Etcd(store.clone());
    contract(&b, "/contract").await;
    // The stopped member comes back and catches up.
    cluster.start_member(0);
    let alone = connect(&[cluster.endpoint(0)]).await;
    let mut listing = alone.list("/contract/list/", None).await;
    while !matches!(&listing, Ok(l) if l.revision > before) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        listing = alone.list("/contract/list/", None).await;
    }
    let listing = listing.expect("list on the restarted member");
    assert_eq!(listing.kvs.len(), 1, "the restarted member has the writes made while it was down");
}
