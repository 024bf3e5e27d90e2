//! The cluster's event stream (`ClusterClient::events`, what `GET /v1/cluster/events`
//! serves) on one real etcd member (started by the test on loopback ports of its own): a
//! reader that fell behind while the store was compacted past its revision gets `RESYNC`,
//! lists again, and misses nothing (every task written appears, with its latest state), and
//! no event comes twice. Never skipped.

use berth_cluster::client::{ClusterClient, ClusterEvent, NewTask};
use berth_cluster::keys::Keys;
use berth_cluster::store::{ClusterStore, EtcdStore, Revision};
use berth_testutils::etcd::EtcdCluster;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

type Events = mpsc::Receiver<Result<ClusterEvent, berth_cluster::client::ClientError>>;

async fn submit(client: &ClusterClient, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let new = NewTask {
            definition: json!({"family": format!("f{i}"), "containerDefinitions": [{"name": "a", "image": "busybox", "memory": 16}]}),
            placing: Default::default(),
            client_token: None,
        };
        ids.push(client.submit(new).await.unwrap_or_else(|e| panic!("submit: {e}")).task.id);
    }
    ids
}

async fn next(rx: &mut Events) -> ClusterEvent {
    match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("the event stream ended or stalled: {other:?}"),
    }
}

/// A reader's view of the tasks: id → record, with every event it took.
#[derive(Default)]
struct Reader {
    tasks: BTreeMap<String, Value>,
    /// (kind, task, revision) of every event taken since the last `RESYNC`.
    taken: BTreeSet<(&'static str, String, Revision)>,
    last: Revision,
}

impl Reader {
    fn take(&mut self, event: ClusterEvent) {
        if event.op == "RESYNC" {
            // What follows is the whole current state: start the view again.
            self.tasks.clear();
            self.taken.clear();
            self.last = event.revision;
            return;
        }
        let fresh = self.taken.insert((event.kind, event.task.clone(), event.revision));
        assert!(fresh, "{} {} at {} came twice", event.kind, event.task, event.revision);
        self.last = self.last.max(event.revision);
        if event.kind == "task" {
            match event.value {
                Some(value) => self.tasks.insert(event.task, value),
                None => self.tasks.remove(&event.task),
            };
        }
    }

    async fn until(&mut self, rx: &mut Events, done: impl Fn(&Reader) -> bool) {
        while !done(self) {
            let event = next(rx).await;
            self.take(event);
        }
    }
}

/// The tasks as the store holds them now.
async fn stored(store: &EtcdStore, keys: &Keys) -> BTreeMap<String, Value> {
    let listing = store.list(&keys.tasks(), None).await.unwrap_or_else(|e| panic!("list: {e}"));
    listing
        .kvs
        .into_iter()
        .map(|kv| {
            let id = kv.key.strip_prefix(&keys.tasks()).unwrap_or(&kv.key).to_string();
            (id, serde_json::from_slice(&kv.value).unwrap_or_else(|e| panic!("{}: {e}", kv.key)))
        })
        .collect()
}

fn desired(tasks: &BTreeMap<String, Value>, id: &str) -> Option<String> {
    tasks.get(id).and_then(|t| t.get("desired")).and_then(Value::as_str).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_a_compaction_lists_again_and_misses_nothing() {
    let etcd = EtcdCluster::start(1);
    let store = Arc::new(EtcdStore::connect(&etcd.endpoints(), Duration::from_secs(5)).await.expect("connect"));
    let keys = Keys::new("events-compaction").expect("valid");
    let client = ClusterClient::new(store.clone() as Arc<dyn ClusterStore>, keys.clone(), "n1");

    // The reader follows the first five tasks, then goes away (a client of
    // `/v1/cluster/events` disconnecting), remembering the last revision it saw.
    let early = submit(&client, 5).await;
    let mut reader = Reader::default();
    let mut rx = client.events(None);
    reader.until(&mut rx, |r| early.iter().all(|id| r.tasks.contains_key(id))).await;
    drop(rx);
    let behind = reader.last;

    // While it is away: more tasks, two early ones stopped, one new one stopped, and the
    // store compacted past its revision.
    let late = submit(&client, 20).await;
    for id in [&early[0], &early[3], &late[7]] {
        client.stop(id).await.unwrap_or_else(|e| panic!("stop {id}: {e}"));
    }
    let compacted = store.revision().await.expect("revision");
    assert!(compacted > behind + 20);
    store.compact(compacted).await.expect("compact");

    // It comes back from the revision after the last it saw: that is compacted, so the
    // stream says RESYNC and sends the whole current state.
    let mut rx = client.events(Some(behind + 1));
    let first = next(&mut rx).await;
    assert_eq!(first.op, "RESYNC", "a compacted revision gives a RESYNC first: {first:?}");
    assert!(first.revision >= compacted);
    reader.take(first);
    let all: Vec<String> = early.iter().chain(&late).cloned().collect();
    reader.until(&mut rx, |r| all.iter().all(|id| r.tasks.contains_key(id))).await;
    assert_eq!(reader.tasks, stored(&store, &keys).await, "after the RESYNC the reader's view is the store's");
    for id in [&early[0], &early[3], &late[7]] {
        assert_eq!(desired(&reader.tasks, id).as_deref(), Some("STOPPED"), "the stop of {id} written while away");
    }

    // And it goes on from there: changes after the listing arrive once each.
    let after = submit(&client, 5).await;
    client.stop(&late[0]).await.expect("stop");
    reader
        .until(&mut rx, |r| {
            after.iter().all(|id| r.tasks.contains_key(id)) && desired(&r.tasks, &late[0]).as_deref() == Some("STOPPED")
        })
        .await;
    assert_eq!(reader.tasks, stored(&store, &keys).await);
    assert_eq!(reader.tasks.len(), 30, "every task written is in the view");
}
