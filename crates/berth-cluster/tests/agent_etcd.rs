//! The agent side on one real etcd member (started by the test on loopback ports of its
//! own) and the fake Docker: a node registers and a second process of its name is refused;
//! an assignment runs and its status reaches etcd; unassigned, it stops.

use berth_cluster::ClusterStore;
use berth_cluster::keys::Keys;
use berth_cluster::node::{Node, NodeConfig, NodeError};
use berth_cluster::records::{self, Assignment, Desired, NodeInfo, PartitionPolicy, StatusRecord, TaskRecord};
use berth_cluster::runner::{Runner, RunnerConfig};
use berth_cluster::status::{StatusConfig, StatusWriter};
use berth_cluster::store::etcd::EtcdStore;
use berth_cluster::store::{LeaseId, Op, Txn};
use berth_engine::{Engine, EngineConfig};
use berth_testutils::FakeDocker;
use berth_testutils::etcd::EtcdCluster;
use std::sync::Arc;
use std::time::Duration;

fn info() -> NodeInfo {
    NodeInfo { cpu: 1024, memory_mib: 512, reserved_ports: vec![], attributes: Default::default(), version: "t".into() }
}

async fn status(store: &Arc<dyn ClusterStore>, keys: &Keys, id: &str) -> Option<StatusRecord> {
    let kv = store.get(&keys.status(id, "n1")).await.unwrap_or_else(|e| panic!("get: {e}"))?;
    Some(records::decode(&kv.key, &kv.value).unwrap_or_else(|e| panic!("{e}")))
}

async fn until_status(store: &Arc<dyn ClusterStore>, keys: &Keys, id: &str, want: &str) {
    for _ in 0..1000 {
        if status(store, keys, id).await.is_some_and(|s| s.status == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {id} {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_etcd_a_node_registers_once_and_runs_its_assignment() {
    let etcd = EtcdCluster::start(1);
    let store: Arc<dyn ClusterStore> =
        Arc::new(EtcdStore::connect(&etcd.endpoints(), Duration::from_secs(5)).await.expect("connect"));
    let keys = Keys::new("agent-etcd").expect("valid");
    let node = Node::register(Arc::clone(&store), keys.clone(), NodeConfig::new("n1", info(), Duration::from_secs(6)))
        .await
        .unwrap_or_else(|e| panic!("register: {e}"));
    let epoch = node.epoch().expect("registered");
    match Node::register(Arc::clone(&store), keys.clone(), NodeConfig::new("n1", info(), Duration::from_secs(6))).await
    {
        Err(NodeError::NameTaken { epoch: held, .. }) => assert_eq!(held, epoch),
        other => panic!("expected NameTaken, got {other:?}"),
    }

    let fake = FakeDocker::new();
    fake.add_registry_image("busybox:latest");
    let engine = Engine::builder(EngineConfig::default(), Arc::new(fake.clone())).start().await.expect("engine");
    let runner =
        Runner::start(Arc::clone(&store), keys.clone(), node.liveness(), engine.clone(), RunnerConfig::new("n1"));
    let writer =
        StatusWriter::start(Arc::clone(&store), keys.clone(), node.liveness(), engine.clone(), StatusConfig::new("n1"));

    let record = TaskRecord {
        id: "t1".into(),
        definition: serde_json::json!({"family": "t1", "containerDefinitions": [{"name": "web", "image": "busybox", "memory": 64}]}),
        desired: Desired::Running,
        partition: PartitionPolicy::Keep,
        constraints: vec![],
        strategy: vec![],
        client_token: None,
        submitted_via: "n1".into(),
        submitted_at: chrono::Utc::now(),
    };
    let assignment =
        Assignment { task: "t1".into(), generation: 1, epoch, task_revision: 0, cpu: 0, memory_mib: 64, ports: vec![] };
    let put = Txn {
        compares: vec![],
        success: vec![
            Op::put(keys.task("t1"), records::encode(&record)),
            Op::put_leased(keys.assignment("n1", "t1"), records::encode(&assignment), LeaseId(epoch.0)),
        ],
        failure: vec![],
    };
    store.txn(put).await.expect("assign");
    until_status(&store, &keys, "t1", "RUNNING").await;
    assert_eq!(status(&store, &keys, "t1").await.map(|s| s.epoch), Some(epoch));

    let delete = Txn { compares: vec![], success: vec![Op::delete(keys.assignment("n1", "t1"))], failure: vec![] };
    store.txn(delete).await.expect("unassign");
    until_status(&store, &keys, "t1", "STOPPED").await;

    runner.stop().await;
    writer.stop().await;
    engine.shutdown().await.expect("shutdown");
    node.leave().await.expect("leave");
}
