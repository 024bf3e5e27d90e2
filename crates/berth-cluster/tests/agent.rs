//! The agent side of the cluster on the memory store and the fake Docker: a node's
//! registration and lease (refused duplicate name, re-registration after expiry, resumed
//! epoch), the runner (assignments run, unassigned stopped, hand-backs, a restart within
//! the lease restarting nothing) and the status writer (statuses reach the store, in
//! batches).

use async_trait::async_trait;
use berth_cluster::ClusterStore;
use berth_cluster::keys::Keys;
use berth_cluster::node::{EPOCH_FILE, Node, NodeConfig, NodeError};
use berth_cluster::records::{self, Assignment, Desired, NodeInfo, PartitionPolicy, StatusRecord, TaskRecord};
use berth_cluster::runner::{HANDED_BACK, Runner, RunnerConfig, task_arn};
use berth_cluster::status::{StatusConfig, StatusWriter};
use berth_cluster::store::{
    ClusterError, KeyValue, Leadership, Lease, LeaseId, Listing, MemoryStore, Op, Revision, Txn, TxnResult, WatchStream,
};
use berth_engine::{Engine, EngineConfig, EngineHandle};
use berth_model::admission::{HostCapacity, Reserve};
use berth_testutils::{FakeDocker, Op as DockerOp, RunState};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

const CLUSTER: &str = "test";
const TTL: Duration = Duration::from_secs(6);

/// The memory store, counting the transactions that write statuses (tries included) and
/// the listings of assignments, and able to hold status writes (in flight until released)
/// and new watches (not opened until released).
struct Counting {
    inner: MemoryStore,
    status_txns: AtomicU64,
    hold: watch::Sender<bool>,
    assignment_lists: AtomicU64,
    hold_watches: watch::Sender<bool>,
    held_watches: AtomicU64,
}

impl Counting {
    fn new() -> Arc<Counting> {
        Arc::new(Counting {
            inner: MemoryStore::new(),
            status_txns: AtomicU64::new(0),
            hold: watch::Sender::new(false),
            assignment_lists: AtomicU64::new(0),
            hold_watches: watch::Sender::new(false),
            held_watches: AtomicU64::new(0),
        })
    }

    fn status_txns(&self) -> u64 {
        self.status_txns.load(Ordering::SeqCst)
    }
}

fn writes_status(txn: &Txn) -> bool {
    let statuses = Keys::new(CLUSTER).expect("valid").statuses();
    txn.success.iter().any(|op| matches!(op, Op::Put { key, .. } if key.starts_with(&statuses)))
}

#[async_trait]
impl ClusterStore for Counting {
    async fn grant(&self, ttl: Duration) -> Result<Lease, ClusterError> {
        self.inner.grant(ttl).await
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, ClusterError> {
        self.inner.keep_alive(lease).await
    }
    async fn revoke(&self, lease: LeaseId) -> Result<(), ClusterError> {
        self.inner.revoke(lease).await
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, ClusterError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<Listing, ClusterError> {
        if prefix.starts_with(&keys().assignments()) {
            self.assignment_lists.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.list(prefix, revision).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult, ClusterError> {
        if writes_status(&txn) {
            self.status_txns.fetch_add(1, Ordering::SeqCst);
            let mut hold = self.hold.subscribe();
            let _ = hold.wait_for(|held| !held).await;
        }
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream, ClusterError> {
        if *self.hold_watches.borrow() {
            self.held_watches.fetch_add(1, Ordering::SeqCst);
            let _ = self.hold_watches.subscribe().wait_for(|held| !held).await;
        }
        self.inner.watch(prefix, start).await
    }
    async fn campaign(&self, election: &str, value: Vec<u8>, lease: LeaseId) -> Result<Leadership, ClusterError> {
        self.inner.campaign(election, value, lease).await
    }
    async fn resign(&self, leadership: &Leadership) -> Result<(), ClusterError> {
        self.inner.resign(leadership).await
    }
    async fn leader(&self, election: &str) -> Result<Option<KeyValue>, ClusterError> {
        self.inner.leader(election).await
    }
}

fn keys() -> Keys {
    Keys::new(CLUSTER).expect("a valid cluster name")
}

fn info() -> NodeInfo {
    NodeInfo {
        cpu: 2048,
        memory_mib: 1024,
        reserved_ports: Vec::new(),
        attributes: Default::default(),
        version: "test".into(),
    }
}

/// A node config with a keepalive every 10 ms of real time (the lease's TTL runs on the
/// memory store's manual clock).
fn node_config(name: &str, dir: Option<&Path>) -> NodeConfig {
    let mut config = NodeConfig::new(name, info(), TTL);
    config.keepalive_every = Duration::from_millis(10);
    config.data_dir = dir.map(Path::to_path_buf);
    config
}

async fn register(store: &Arc<Counting>, name: &str, dir: Option<&Path>) -> Node {
    Node::register(Arc::clone(store) as Arc<dyn ClusterStore>, keys(), node_config(name, dir))
        .await
        .unwrap_or_else(|e| panic!("register {name}: {e}"))
}

fn fake() -> FakeDocker {
    let fake = FakeDocker::new();
    fake.add_registry_image("busybox:latest");
    fake
}

async fn engine(fake: &FakeDocker, config: EngineConfig) -> EngineHandle {
    Engine::builder(config, Arc::new(fake.clone())).start().await.unwrap_or_else(|e| panic!("engine: {e}"))
}

/// Polls `f` until it holds (panics after 10 s).
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..1000 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

async fn get(store: &Arc<Counting>, key: &str) -> Option<KeyValue> {
    store.get(key).await.unwrap_or_else(|e| panic!("get {key}: {e}"))
}

async fn status(store: &Arc<Counting>, id: &str, node: &str) -> Option<StatusRecord> {
    let key = keys().status(id, node);
    get(store, &key).await.map(|kv| records::decode(&kv.key, &kv.value).unwrap_or_else(|e| panic!("{e}")))
}

async fn put(store: &Arc<Counting>, key: String, value: Vec<u8>) {
    let txn = Txn { compares: vec![], success: vec![Op::put(key.clone(), value)], failure: vec![] };
    store.txn(txn).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// Acts as the scheduler: the task record of `definition`, and its assignment to `node`.
async fn assign(store: &Arc<Counting>, node: &str, id: &str, definition: serde_json::Value, desired: Desired) {
    let record = TaskRecord {
        id: id.into(),
        definition,
        desired,
        partition: PartitionPolicy::Keep,
        constraints: Vec::new(),
        strategy: Vec::new(),
        client_token: None,
        submitted_via: node.into(),
        submitted_at: chrono::Utc::now(),
    };
    put(store, keys().task(id), records::encode(&record)).await;
    let revision = get(store, &keys().task(id)).await.map_or(0, |kv| kv.mod_revision);
    let assignment = Assignment {
        task: id.into(),
        generation: 1,
        epoch: LeaseId(0),
        task_revision: revision,
        cpu: 0,
        memory_mib: 0,
        ports: Vec::new(),
    };
    put(store, keys().assignment(node, id), records::encode(&assignment)).await;
}

fn busybox(family: &str) -> serde_json::Value {
    serde_json::json!({"family": family, "containerDefinitions": [{"name": "web", "image": "busybox", "memory": 64}]})
}

/// A node with its runner and status writer.
struct Agent {
    node: Node,
    runner: Runner,
    writer: StatusWriter,
}

fn start_agent(store: &Arc<Counting>, node: Node, engine: &EngineHandle, runner: RunnerConfig) -> Agent {
    let shared = Arc::clone(store) as Arc<dyn ClusterStore>;
    let r = Runner::start(Arc::clone(&shared), keys(), node.liveness(), engine.clone(), runner);
    let status = StatusConfig::new(node.name());
    let writer = StatusWriter::start(shared, keys(), node.liveness(), engine.clone(), status);
    Agent { node, runner: r, writer }
}

impl Agent {
    async fn stop(self) {
        self.runner.stop().await;
        self.writer.stop().await;
        self.node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_registers_a_second_process_of_its_name_is_refused_and_a_lost_lease_gives_a_new_epoch() {
    let store = Counting::new();
    let node = register(&store, "n1", None).await;
    let epoch = node.epoch().expect("registered");
    let alive = get(&store, &keys().node_alive("n1")).await.expect("alive key");
    assert_eq!(alive.lease, Some(epoch), "the alive key is under the node's lease");
    let info_kv = get(&store, &keys().node_info("n1")).await.expect("info key");
    assert_eq!(info_kv.lease, None);
    assert_eq!(records::decode::<NodeInfo>(&info_kv.key, &info_kv.value).expect("info"), info());
    let first_valid = node.lease_valid_until().expect("a keepalive answered");

    // A second process with the same name is refused, naming the holder's epoch.
    match Node::register(Arc::clone(&store) as Arc<dyn ClusterStore>, keys(), node_config("n1", None)).await {
        Err(NodeError::NameTaken { node: name, epoch: held, .. }) => {
            assert_eq!((name.as_str(), held), ("n1", epoch));
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    // The keepalive moves the lower bound of the lease's life on.
    eventually("a later keepalive", async || node.lease_valid_until().is_some_and(|v| v > first_valid)).await;

    // The lease expires (the manual clock jumps past the TTL): a new epoch.
    let mut liveness = node.liveness();
    store.inner.advance(TTL + Duration::from_secs(1));
    eventually("a new epoch", async || node.epoch().is_some_and(|e| e != epoch)).await;
    let new = node.epoch().expect("registered again");
    assert_eq!(liveness.borrow_and_update().epoch, Some(new), "the epoch channel tells the new epoch");
    let alive = get(&store, &keys().node_alive("n1")).await.expect("alive key again");
    assert_eq!(alive.lease, Some(new));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_its_persisted_epoch_while_the_lease_lives_and_leave_revokes_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Counting::new();
    let first = register(&store, "n1", Some(dir.path())).await;
    assert!(!first.resumed());
    let epoch = first.epoch().expect("registered");
    let file = dir.path().join(EPOCH_FILE);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).expect("epoch file").permissions());
    assert_eq!(mode & 0o777, 0o600);
    first.stop().await;
    assert!(get(&store, &keys().node_alive("n1")).await.is_some(), "a clean stop revokes nothing");

    let second = register(&store, "n1", Some(dir.path())).await;
    assert!(second.resumed(), "the persisted lease is alive: resumed");
    assert_eq!(second.epoch(), Some(epoch));
    second.stop().await;

    // Down longer than the TTL: the lease is gone, a new epoch.
    store.inner.advance(TTL + Duration::from_secs(1));
    let third = register(&store, "n1", Some(dir.path())).await;
    assert!(!third.resumed());
    let new = third.epoch().expect("registered");
    assert_ne!(new, epoch);
    third.leave().await.unwrap_or_else(|e| panic!("leave: {e}"));
    assert!(get(&store, &keys().node_alive("n1")).await.is_none(), "leave revokes the lease");
    assert!(!file.exists(), "leave forgets the persisted epoch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_task_runs_its_status_reaches_the_store_and_unassigning_stops_it() {
    let store = Counting::new();
    let fake = fake();
    let engine = engine(&fake, EngineConfig::default()).await;
    let node = register(&store, "n1", None).await;
    let agent = start_agent(&store, node, &engine, RunnerConfig::new("n1"));

    assign(&store, "n1", "t1", busybox("web"), Desired::Running).await;
    let arn = task_arn(CLUSTER, "t1");
    eventually("t1 RUNNING in the store", async || {
        status(&store, "t1", "n1").await.is_some_and(|s| s.status == "RUNNING")
    })
    .await;
    let record = status(&store, "t1", "n1").await.expect("status");
    assert_eq!(Some(record.epoch), agent.node.epoch());
    assert_eq!(record.containers.len(), 1);
    assert_eq!((record.containers[0].name.as_str(), record.containers[0].status.as_str()), ("web", "RUNNING"));
    assert!(record.seq > 0);
    let held = engine.task(&arn).await.expect("engine").expect("the task is in the engine under its cluster arn");
    assert_eq!(held.family, "web");
    assert!(fake.containers().iter().any(|c| c.state == RunState::Running));

    // Unassigned: stopped, and the STOPPED status written.
    let delete = Txn { compares: vec![], success: vec![Op::delete(keys().assignment("n1", "t1"))], failure: vec![] };
    store.txn(delete).await.expect("delete");
    eventually("t1 STOPPED in the store", async || {
        status(&store, "t1", "n1").await.is_some_and(|s| s.status == "STOPPED")
    })
    .await;
    assert!(fake.containers().iter().all(|c| c.state != RunState::Running));
    agent.stop().await;
    engine.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_stop_in_the_task_record_stops_the_task() {
    let store = Counting::new();
    let fake = fake();
    let engine = engine(&fake, EngineConfig::default()).await;
    let node = register(&store, "n1", None).await;
    let agent = start_agent(&store, node, &engine, RunnerConfig::new("n1"));
    assign(&store, "n1", "t1", busybox("web"), Desired::Running).await;
    eventually("t1 RUNNING", async || status(&store, "t1", "n1").await.is_some_and(|s| s.status == "RUNNING")).await;
    // The API writes desired STOPPED; the scheduler writes the assignment again.
    assign(&store, "n1", "t1", busybox("web"), Desired::Stopped).await;
    eventually("t1 STOPPED", async || status(&store, "t1", "n1").await.is_some_and(|s| s.status == "STOPPED")).await;
    agent.stop().await;
    engine.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_never_fits_here_or_that_the_host_policy_refuses_is_handed_back_with_the_reason() {
    let store = Counting::new();
    let fake = fake();
    let capacity = HostCapacity::new(1024, 256, &Reserve::default());
    let engine = engine(&fake, EngineConfig { capacity: Some(capacity), ..EngineConfig::default() }).await;
    let node = register(&store, "n1", None).await;
    let mut config = RunnerConfig::new("n1");
    config.host_check =
        Some(Arc::new(
            |accepted: &berth_model::input::Accepted| {
                if accepted.task.family == "forbidden" { Err("family forbidden here".into()) } else { Ok(()) }
            },
        ));
    let agent = start_agent(&store, node, &engine, config);

    let big = serde_json::json!({"family": "big", "containerDefinitions": [{"name": "web", "image": "busybox", "memory": 512}]});
    assign(&store, "n1", "big", big, Desired::Running).await;
    assign(&store, "n1", "bad", busybox("forbidden"), Desired::Running).await;
    for (id, why) in [("big", "never fits node n1"), ("bad", "refused by the host policy of node n1")] {
        eventually(&format!("{id} handed back"), async || {
            status(&store, id, "n1").await.is_some_and(|s| s.status == HANDED_BACK)
        })
        .await;
        let record = status(&store, id, "n1").await.expect("status");
        let reason = record.reason.unwrap_or_default();
        assert!(reason.contains(why), "{id}: {reason:?} should say {why:?}");
        assert_eq!(Some(record.epoch), agent.node.epoch());
        assert!(get(&store, &keys().assignment("n1", id)).await.is_none(), "{id}'s assignment is deleted");
        assert!(engine.task(&task_arn(CLUSTER, id)).await.expect("engine").is_none());
    }
    assert!(fake.containers().is_empty(), "nothing was created for either");
    agent.stop().await;
    engine.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_berth_restarted_within_its_lease_resumes_its_epoch_and_restarts_no_container() {
    let node_dir = tempfile::tempdir().expect("temporary directory");
    let engine_dir = tempfile::tempdir().expect("temporary directory");
    let config = || EngineConfig { data_dir: Some(engine_dir.path().to_path_buf()), ..EngineConfig::default() };
    let store = Counting::new();
    let fake = fake();

    let first = engine(&fake, config()).await;
    let node = register(&store, "n1", Some(node_dir.path())).await;
    let epoch = node.epoch();
    let agent = start_agent(&store, node, &first, RunnerConfig::new("n1"));
    for id in ["a", "b"] {
        assign(&store, "n1", id, busybox(id), Desired::Running).await;
    }
    for id in ["a", "b"] {
        eventually("RUNNING", async || status(&store, id, "n1").await.is_some_and(|s| s.status == "RUNNING")).await;
    }
    eventually("written", async || *agent.writer.written().borrow() > 0).await;
    let watermark = *agent.writer.written().borrow();
    agent.stop().await;
    first.shutdown().await.expect("shutdown");
    let starts = fake.calls(DockerOp::StartContainer);
    let creates = fake.calls(DockerOp::CreateContainer);
    assert_eq!(starts, 2);
    let status_txns = store.status_txns();
    let b_written = get(&store, &keys().status("b", "n1")).await.expect("b's status").mod_revision;

    // The same berth again, within the lease.
    let second = engine(&fake, config()).await;
    let node = register(&store, "n1", Some(node_dir.path())).await;
    assert!(node.resumed());
    assert_eq!(node.epoch(), epoch);
    let agent = start_agent(&store, node, &second, RunnerConfig::new("n1"));
    let revision = store.inner.revision();
    let mut applied = agent.runner.applied();
    applied.wait_for(|r| *r >= revision).await.expect("the runner acts on every assignment");
    // The writer resumed from its own records: the watermark is back at once.
    let mut written = agent.writer.written();
    written.wait_for(|w| *w >= watermark).await.expect("the writer resumes");
    for id in ["a", "b"] {
        assert!(second.task(&task_arn(CLUSTER, id)).await.expect("engine").is_some());
    }
    // A change after the restart is still written (the stream resumed, not restarted).
    let delete = Txn { compares: vec![], success: vec![Op::delete(keys().assignment("n1", "a"))], failure: vec![] };
    store.txn(delete).await.expect("delete");
    eventually("a STOPPED", async || status(&store, "a", "n1").await.is_some_and(|s| s.status == "STOPPED")).await;
    assert_eq!(fake.calls(DockerOp::StartContainer), starts, "no container started again");
    assert_eq!(fake.calls(DockerOp::CreateContainer), creates, "no container created again");
    assert!(store.status_txns() > status_txns);
    // Resumed from its watermark: b, unchanged, was not written again (a report of every
    // task from the engine's state would have been written before a's changes).
    let b_now = get(&store, &keys().status("b", "n1")).await.expect("b's status").mod_revision;
    assert_eq!(b_now, b_written, "b's status was written again after the restart");
    assert_eq!(status(&store, "b", "n1").await.map(|s| s.status), Some("RUNNING".to_string()));
    agent.stop().await;
    second.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_are_written_in_batches() {
    const N: usize = 20;
    let store = Counting::new();
    let fake = fake();
    let engine = engine(&fake, EngineConfig::default()).await;
    let node = register(&store, "n1", None).await;
    let agent = start_agent(&store, node, &engine, RunnerConfig::new("n1"));
    // The first status write stays in flight until every task runs: the changes made
    // meanwhile must be coalesced, not written one by one.
    store.hold.send_replace(true);
    for i in 0..N {
        assign(&store, "n1", &format!("t{i}"), busybox(&format!("t{i}")), Desired::Running).await;
    }
    let mut reader = engine.task_events_from(1);
    let mut changes = 0;
    let mut running = 0;
    while running < N {
        match tokio::time::timeout(Duration::from_secs(10), reader.next()).await {
            Ok(Some(berth_engine::LogItem::Change(c))) => {
                changes += 1;
                if c.task_status == berth_model::TaskStatus::Running {
                    running += 1;
                }
            }
            Ok(other) => panic!("the change log ended: {other:?}"),
            Err(_) => panic!("not every task RUNNING: {running} of {N}"),
        }
    }
    store.hold.send_replace(false);
    for i in 0..N {
        let id = format!("t{i}");
        eventually("RUNNING", async || status(&store, &id, "n1").await.is_some_and(|s| s.status == "RUNNING")).await;
    }
    let txns = store.status_txns();
    assert!(changes >= 2 * N, "{changes} changes for {N} tasks");
    assert!((1..=2).contains(&txns), "{txns} status transactions for {changes} changes");
    agent.stop().await;
    engine.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_lists_again_when_the_revision_it_watches_from_was_compacted() {
    let store = Counting::new();
    let fake = fake();
    let engine = engine(&fake, EngineConfig::default()).await;
    let node = register(&store, "n1", None).await;
    let agent = start_agent(&store, node, &engine, RunnerConfig::new("n1"));
    assign(&store, "n1", "t1", busybox("t1"), Desired::Running).await;
    eventually("t1 RUNNING", async || status(&store, "t1", "n1").await.is_some_and(|s| s.status == "RUNNING")).await;
    let lists = store.assignment_lists.load(Ordering::SeqCst);

    // The runner's watch ends (the store is cut off) and its next one waits; meanwhile t1 is
    // unassigned, t2 assigned, and that history compacted away.
    store.hold_watches.send_replace(true);
    store.inner.set_unavailable(true);
    eventually("the runner watches again", async || store.held_watches.load(Ordering::SeqCst) > 0).await;
    store.inner.set_unavailable(false);
    let delete = Txn { compares: vec![], success: vec![Op::delete(keys().assignment("n1", "t1"))], failure: vec![] };
    store.txn(delete).await.expect("delete");
    assign(&store, "n1", "t2", busybox("t2"), Desired::Running).await;
    store.inner.compact(store.inner.revision()).expect("compact");
    store.hold_watches.send_replace(false);

    eventually("t2 RUNNING", async || status(&store, "t2", "n1").await.is_some_and(|s| s.status == "RUNNING")).await;
    eventually("t1 STOPPED", async || status(&store, "t1", "n1").await.is_some_and(|s| s.status == "STOPPED")).await;
    assert!(store.assignment_lists.load(Ordering::SeqCst) > lists, "the runner listed its assignments again");
    agent.stop().await;
    engine.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_are_retried_while_the_store_is_unavailable() {
    let store = Counting::new();
    let fake = fake();
    let engine = engine(&fake, EngineConfig::default()).await;
    let node = register(&store, "n1", None).await;
    let agent = start_agent(&store, node, &engine, RunnerConfig::new("n1"));
    assign(&store, "n1", "t1", busybox("t1"), Desired::Running).await;
    eventually("t1 RUNNING", async || status(&store, "t1", "n1").await.is_some_and(|s| s.status == "RUNNING")).await;

    store.inner.set_unavailable(true);
    let tries = store.status_txns();
    engine.stop_task(&task_arn(CLUSTER, "t1")).await.expect("stop");
    eventually("a write tried again", async || store.status_txns() >= tries + 2).await;
    store.inner.set_unavailable(false);
    eventually("t1 STOPPED", async || status(&store, "t1", "n1").await.is_some_and(|s| s.status == "STOPPED")).await;
    agent.stop().await;
    engine.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_lease_statuses_are_written_under_the_new_epoch() {
    let store = Counting::new();
    let fake = fake();
    let engine = engine(&fake, EngineConfig::default()).await;
    let node = register(&store, "n1", None).await;
    let old = node.epoch().expect("registered");
    let agent = start_agent(&store, node, &engine, RunnerConfig::new("n1"));
    assign(&store, "n1", "t1", busybox("t1"), Desired::Running).await;
    eventually("t1 RUNNING", async || status(&store, "t1", "n1").await.is_some_and(|s| s.status == "RUNNING")).await;
    assert_eq!(status(&store, "t1", "n1").await.map(|s| s.epoch), Some(old));

    store.inner.advance(TTL + Duration::from_secs(1));
    eventually("a new epoch", async || agent.node.epoch().is_some_and(|e| e != old)).await;
    let new = agent.node.epoch().expect("registered again");
    // The unleased assignment stays: the task keeps running, nothing restarted.
    assert!(engine.task(&task_arn(CLUSTER, "t1")).await.expect("engine").is_some());
    assert_eq!(fake.calls(DockerOp::StartContainer), 1);
    engine.stop_task(&task_arn(CLUSTER, "t1")).await.expect("stop");
    eventually("t1 STOPPED under the new epoch", async || {
        status(&store, "t1", "n1").await.is_some_and(|s| s.status == "STOPPED" && s.epoch == new)
    })
    .await;
    agent.stop().await;
    engine.shutdown().await.expect("shutdown");
}
