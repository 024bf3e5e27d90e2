//! The cluster client on the in-memory store: submits happen once per client token, stops
//! are guarded, listings join what the keys hold, and events resume by revision and list
//! again after a compaction.

use berth_cluster::client::{ClientError, ClusterClient, NewTask, Placing};
use berth_cluster::keys::Keys;
use berth_cluster::records::{self, Assignment, Desired, NodeAlive, NodeInfo, Placement, StatusRecord};
use berth_cluster::store::memory::MemoryStore;
use berth_cluster::store::{ClusterStore, LeaseId, Op, Txn};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn setup() -> (Arc<MemoryStore>, ClusterClient) {
    let store = Arc::new(MemoryStore::new());
    let client = ClusterClient::new(store.clone(), Keys::new("c1").expect("name"), "n1");
    (store, client)
}

fn new_task(image: &str, token: Option<&str>) -> NewTask {
    NewTask {
        definition: json!({"family": "web", "containerDefinitions": [{"name": "a", "image": image, "memory": 64}]}),
        placing: Placing::default(),
        client_token: token.map(str::to_string),
    }
}

async fn put(store: &MemoryStore, key: String, value: Vec<u8>) {
    let txn = Txn { compares: vec![], success: vec![Op::put(key, value)], failure: vec![] };
    assert!(store.txn(txn).await.expect("put").succeeded);
}

#[tokio::test]
async fn a_client_token_makes_one_task_and_a_different_definition_is_a_conflict() {
    let (store, client) = setup();
    let first = client.submit(new_task("busybox", Some("tok/1"))).await.expect("submit");
    assert!(first.created);
    let again = client.submit(new_task("busybox", Some("tok/1"))).await.expect("retry");
    assert!(!again.created, "the retry finds the first task");
    assert_eq!(again.task.id, first.task.id);
    let other = client.submit(new_task("alpine", Some("tok/1"))).await.expect_err("conflict");
    assert!(matches!(other, ClientError::TokenConflict { ref task, .. } if *task == first.task.id), "{other}");
    let untokened = client.submit(new_task("busybox", None)).await.expect("no token");
    assert_ne!(untokened.task.id, first.task.id, "without a token every submit is a new task");
    let listing = store.list(&Keys::new("c1").expect("name").tasks(), None).await.expect("list");
    assert_eq!(listing.kvs.len(), 2);
}

#[tokio::test]
async fn stop_sets_desired_stopped_once_and_unknown_tasks_are_not_found() {
    let (_store, client) = setup();
    let t = client.submit(new_task("busybox", None)).await.expect("submit");
    let stopped = client.stop(&t.task.id).await.expect("stop");
    assert_eq!(stopped.desired, Desired::Stopped);
    let before = client.task(&t.task.id).await.expect("read").expect("present").revision;
    client.stop(&t.task.id).await.expect("stop again");
    let after = client.task(&t.task.id).await.expect("read").expect("present").revision;
    assert_eq!(before, after, "a second stop writes nothing");
    assert!(matches!(client.stop("nope").await, Err(ClientError::TaskNotFound(_))));
    assert!(matches!(client.stop("../x").await, Err(ClientError::TaskNotFound(_))));
}

#[tokio::test]
async fn listings_join_placement_status_and_what_each_node_uses() {
    let (store, client) = setup();
    let keys = Keys::new("c1").expect("name");
    let a = client.submit(new_task("busybox", None)).await.expect("a").task.id;
    let b = client.submit(new_task("busybox", None)).await.expect("b").task.id;
    let info = NodeInfo {
        cpu: 2048,
        memory_mib: 1024,
        reserved_ports: vec![],
        attributes: Default::default(),
        version: "t".into(),
    };
    put(&store, keys.node_info("n1"), records::encode(&info)).await;
    put(&store, keys.node_info("n2"), records::encode(&info)).await;
    let lease = store.grant(Duration::from_secs(10)).await.expect("lease");
    let alive = NodeAlive { epoch: lease.id, started_at: chrono::Utc::now(), address: None };
    put(&store, keys.node_alive("n1"), records::encode(&alive)).await;
    for id in [&a, &b] {
        let placement = Placement { node: "n1".into(), epoch: lease.id, generation: 1 };
        put(&store, keys.placement(id), records::encode(&placement)).await;
        let assignment = Assignment {
            task: id.clone(),
            generation: 1,
            epoch: lease.id,
            task_revision: 1,
            cpu: 100,
            memory_mib: 64,
            ports: vec!["8080/tcp".into()],
        };
        put(&store, keys.assignment("n1", id), records::encode(&assignment)).await;
    }
    let status = StatusRecord {
        epoch: lease.id,
        seq: 3,
        status: "RUNNING".into(),
        reason: None,
        containers: vec![],
        updated_at: chrono::Utc::now(),
    };
    put(&store, keys.status(&a, "n1"), records::encode(&status)).await;
    store.campaign(&keys.election(), b"n1".to_vec(), lease.id).await.expect("campaign");

    let tasks = client.list_tasks().await.expect("tasks");
    assert_eq!(tasks.len(), 2);
    let ta = tasks.iter().find(|t| t.task.id == a).expect("a listed");
    assert_eq!(ta.placement.as_ref().map(|p| p.node.as_str()), Some("n1"));
    assert_eq!(ta.status.get("n1").map(|s| s.status.as_str()), Some("RUNNING"));
    let tb = tasks.iter().find(|t| t.task.id == b).expect("b listed");
    assert!(tb.status.is_empty());

    let nodes = client.list_nodes().await.expect("nodes");
    assert_eq!(nodes.leader.as_deref(), Some("n1"));
    let n1 = nodes.nodes.iter().find(|n| n.name == "n1").expect("n1");
    assert_eq!((n1.used.tasks, n1.used.cpu, n1.used.memory_mib), (2, 200, 128));
    assert_eq!(n1.alive.as_ref().map(|a| a.epoch), Some(lease.id));
    assert!(n1.leader);
    let n2 = nodes.nodes.iter().find(|n| n.name == "n2").expect("n2");
    assert!(n2.alive.is_none() && !n2.leader && n2.used.tasks == 0);
    let _ = LeaseId(0);
}

#[tokio::test]
async fn events_resume_from_a_revision_and_list_again_after_a_compaction() {
    let (store, client) = setup();
    let a = client.submit(new_task("busybox", None)).await.expect("a");
    let mut rx = client.events(Some(a.revision));
    let first = rx.recv().await.expect("event").expect("ok");
    assert_eq!((first.op, first.kind, first.task.as_str()), ("PUT", "task", a.task.id.as_str()));
    let b = client.submit(new_task("busybox", None)).await.expect("b");
    let second = rx.recv().await.expect("event").expect("ok");
    assert_eq!((second.revision, second.task.as_str()), (b.revision, b.task.id.as_str()));
    drop(rx);

    // A reader behind a compaction: a RESYNC and the whole current state, nothing missed.
    client.stop(&a.task.id).await.expect("stop");
    store.compact(store.revision()).expect("compact");
    let mut rx = client.events(Some(a.revision));
    let resync = rx.recv().await.expect("event").expect("ok");
    assert_eq!(resync.op, "RESYNC");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = rx.recv().await.expect("event").expect("ok");
        assert_eq!(e.op, "PUT");
        seen.push((e.task.clone(), e.value.and_then(|v| v.get("desired").cloned()).map(|d| d.to_string())));
    }
    seen.sort();
    let mut want = vec![
        (a.task.id.clone(), Some("\"STOPPED\"".to_string())),
        (b.task.id.clone(), Some("\"RUNNING\"".to_string())),
    ];
    want.sort();
    assert_eq!(seen, want);
    // And it follows on from the listing.
    let c = client.submit(new_task("busybox", None)).await.expect("c");
    let next = rx.recv().await.expect("event").expect("ok");
    assert_eq!((next.revision, next.task.as_str()), (c.revision, c.task.id.as_str()));
}

#[tokio::test]
async fn a_task_no_registered_node_could_ever_hold_is_refused_before_it_is_stored() {
    let (store, client) = setup();
    let keys = Keys::new("c1").expect("name");
    let big = |token: Option<&str>| NewTask {
        definition: json!({"family": "big", "containerDefinitions": [{"name": "a", "image": "busybox", "memory": 4096}]}),
        placing: Placing::default(),
        client_token: token.map(str::to_string),
    };
    // No node registered yet: the task waits for one, it is not refused.
    let accepted = client.submit(big(Some("early"))).await.expect("no node: accepted");
    assert!(accepted.created);

    let small = NodeInfo {
        cpu: 1024,
        memory_mib: 1024,
        reserved_ports: vec![],
        attributes: Default::default(),
        version: "t".into(),
    };
    put(&store, keys.node_info("n1"), records::encode(&small)).await;
    let before = store.list(&keys.tasks(), None).await.expect("list").kvs.len();
    let refused = client.submit(big(None)).await.expect_err("4096 MiB on a 1024 MiB cluster");
    assert!(matches!(refused, ClientError::NeverFits(ref why) if why.contains("memory")), "{refused}");
    assert_eq!(store.list(&keys.tasks(), None).await.expect("list").kvs.len(), before, "nothing stored");
    // A retry of the task accepted earlier still gets it back: the token was used.
    let again = client.submit(big(Some("early"))).await.expect("retry of a stored task");
    assert_eq!((again.created, again.task.id), (false, accepted.task.id));
    // A task that fits is taken.
    assert!(client.submit(new_task("busybox", None)).await.expect("fits").created);
}
