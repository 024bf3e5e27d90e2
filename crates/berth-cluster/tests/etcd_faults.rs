//! The etcd store and the reflector on real etcd when members go away: errors say
//! `Unavailable` (never hang), and a reader cut off while the others wrote and compacted
//! lists again and misses nothing. Real etcd members (`berth_testutils::etcd`); never skipped.

use berth_cluster::reflector::{Reflector, ReflectorConfig, ReflectorEvent};
use berth_cluster::store::{ClusterError, ClusterStore, EtcdStore, KeyValue, Op, Txn};
use berth_testutils::etcd::EtcdCluster;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const END: &str = "/r/~end";

async fn connect(endpoints: &[String]) -> EtcdStore {
    EtcdStore::connect(endpoints, Duration::from_secs(3)).await.expect("connect")
}

async fn write(store: &EtcdStore, ops: Vec<Op>) {
    store.txn(Txn { success: ops, ..Txn::default() }).await.expect("write");
}

fn put(key: &str, value: &str) -> Op {
    Op::put(key, value.as_bytes().to_vec())
}

#[derive(Default)]
struct Consumer {
    view: BTreeMap<String, KeyValue>,
    seen: BTreeSet<(String, i64)>,
    relisted: bool,
}

impl Consumer {
    fn take(&mut self, event: ReflectorEvent) {
        match event {
            ReflectorEvent::Put { kv, .. } => {
                assert!(self.seen.insert((kv.key.clone(), kv.mod_revision)), "{} at {} twice", kv.key, kv.mod_revision);
                self.view.insert(kv.key.clone(), kv);
            }
            ReflectorEvent::Delete { prev, revision } => {
                assert!(self.seen.insert((prev.key.clone(), revision)), "delete of {} at {revision} twice", prev.key);
                self.view.remove(&prev.key);
            }
            ReflectorEvent::Synced { relisted, .. } => self.relisted |= relisted,
        }
    }

    async fn until(&mut self, rx: &mut mpsc::Receiver<ReflectorEvent>, done: impl Fn(&Consumer) -> bool) {
        while !done(self) {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Some(event)) => self.take(event),
                other => panic!("the reflector stopped sending: {other:?}"),
            }
        }
    }
}

fn end_is(value: &'static str) -> impl Fn(&Consumer) -> bool {
    move |c| c.view.get(END).is_some_and(|kv| kv.value == value.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cut_off_during_writes_and_a_compaction_lists_again_and_misses_nothing() {
    let mut cluster = EtcdCluster::start(3);
    let writer = connect(&cluster.endpoints()[1..]).await;
    // The reader talks to member 0 only, which will be stopped.
    let reader = connect(&[cluster.endpoint(0)]).await;
    let config = ReflectorConfig { min_backoff: Duration::from_millis(50), max_backoff: Duration::from_millis(500) };
    let (_reflector, mut rx) = Reflector::start(Arc::new(reader), "/r/", config);
    for i in 0..10 {
        write(&writer, vec![put(&format!("/r/k{i}"), "0")]).await;
    }
    write(&writer, vec![put(END, "0")]).await;
    let mut c = Consumer::default();
    c.until(&mut rx, end_is("0")).await;
    assert_eq!(c.view.len(), 11);

    cluster.stop_member(0);
    cluster.wait_healthy(1);
    for round in 1..=5 {
        for i in 0..10 {
            write(&writer, vec![put(&format!("/r/k{i}"), &round.to_string())]).await;
        }
    }
    write(&writer, vec![Op::delete("/r/k0"), Op::delete("/r/k1"), put("/r/new", "1")]).await;
    write(&writer, vec![put(END, "1")]).await;
    let revision = writer.revision().await.expect("the current revision");
    writer.compact(revision).await.expect("compact");
    cluster.start_member(0);

    c.until(&mut rx, |c| end_is("1")(c) && c.relisted).await;
    let listing = writer.list("/r/", None).await.expect("list");
    let expected: BTreeMap<_, _> = listing.kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    assert_eq!(c.view, expected, "the reader's view is the store's after the re-listing");
    assert!(!c.view.contains_key("/r/k0") && c.view.contains_key("/r/new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_only_member_down_calls_fail_unavailable_and_watches_end() {
    let mut cluster = EtcdCluster::start(1);
    let store = connect(&cluster.endpoints()).await;
    let lease = store.grant(Duration::from_secs(30)).await.expect("grant").id;
    let mut watch = store.watch("/w/", 0).await.expect("watch");
    cluster.stop_member(0);
    match tokio::time::timeout(Duration::from_secs(60), watch.next()).await {
        Ok(Some(Err(ClusterError::Unavailable(_))) | None) => {}
        other => panic!("the watch on a stopped member: {other:?}"),
    }
    assert!(matches!(store.get("/w/a").await, Err(ClusterError::Unavailable(_))));
    assert!(matches!(store.keep_alive(lease).await, Err(ClusterError::Unavailable(_))));
    assert!(matches!(store.watch("/w/", 0).await, Err(ClusterError::Unavailable(_))));
    cluster.start_member(0);
    // Back: the lease lived through it (its TTL restarts on a leader's start).
    let mut answer = store.keep_alive(lease).await;
    while matches!(answer, Err(ClusterError::Unavailable(_))) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = store.keep_alive(lease).await;
    }
    assert_eq!(answer, Ok(Duration::from_secs(30)));
    store.revoke(lease).await.expect("revoke");
    assert_eq!(store.keep_alive(lease).await, Err(ClusterError::LeaseNotFound(lease)));
}
