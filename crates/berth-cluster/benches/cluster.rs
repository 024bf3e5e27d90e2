//! The cluster (issue 17): a real three-member etcd on loopback (`EtcdCluster::start(3)`)
//! and three nodes in this one process, each with its own engine on the fake Docker
//! (containers that keep running), wired as berth-agent's `cluster.rs` wires a daemon:
//! `Node` (lease, epoch), `Runner`, `StatusWriter` and `Scheduler`, each node with its own
//! etcd connection. 1,000 one-container tasks are submitted through `ClusterClient`
//! (32 at once, as fast as it takes them). Printed:
//!
//! - placements per second: first submit to the last `placement/<id>` seen by a watcher;
//! - the scheduler alone ("backlog"): in a second cluster (its own key root, same etcd),
//!   1,000 tasks stored before any scheduler starts, then the schedulers started: their
//!   start to the last placement, so submits are not the limit;
//! - what bounds it: the leader's transactions (count, and time spent inside them, timed by
//!   a store wrapper given to the schedulers only) against the rest of the window;
//! - submit → RUNNING: from the start of each `submit` call to the first `status/<id>/<node>`
//!   reading RUNNING seen by the watcher, p50/p99;
//! - etcd writes per state change: the store's revision delta over the run (every write
//!   of every component bumps it once per transaction) divided by the engines' container
//!   state changes (and per task);
//! - peak RSS of the process (three agents, the driver and the fake Dockers; etcd runs in
//!   its own processes), and an estimate per agent (RSS growth from before the nodes
//!   started, divided by three);
//! - beside it, in the same run: submit → RUNNING on one host, one engine on the fake,
//!   `add_task` to its RUNNING change, the same 1,000 tasks with the same concurrency.
//!
//! `cargo bench -p berth-cluster --bench cluster` (needs `/usr/bin/etcd`; about 10 s).
//! `BERTH_CLUSTER_TASKS` changes the count, `BERTH_CLUSTER_IN_FLIGHT` the submits in flight.
//! The etcd members run in a temporary directory and are stopped at the end, also after a
//! panic (the `EtcdCluster` guard).

/// The allocator the `berth` binary uses, so the memory printed is the daemon's kind.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use async_trait::async_trait;
use berth_cluster::client::{ClusterClient, NewTask};
use berth_cluster::keys::Keys;
use berth_cluster::node::{Node, NodeConfig};
use berth_cluster::records::{self, NodeInfo, StatusRecord};
use berth_cluster::runner::{Runner, RunnerConfig};
use berth_cluster::scheduler::{Config as SchedulerConfig, Scheduler, SchedulerHandle};
use berth_cluster::status::{StatusConfig, StatusWriter};
use berth_cluster::store::{
    EtcdStore, KeyValue, Leadership, Lease, LeaseId, Listing, Revision, Txn, TxnResult, WatchStream,
};
use berth_cluster::{ClusterError, ClusterStore};
use berth_engine::{Engine, EngineConfig, EngineHandle, LogItem};
use berth_model::TaskStatus;
use berth_model::input::{ParseOptions, parse};
use berth_testutils::FakeDocker;
use berth_testutils::etcd::EtcdCluster;
use futures_util::{StreamExt, stream};
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const DEFAULT_TASKS: usize = 1_000;
const NODES: usize = 3;
/// Submits (and one-host `add_task`s) in flight at once; `BERTH_CLUSTER_IN_FLIGHT` changes it.
const SUBMITS_IN_FLIGHT: usize = 32;
const IMAGE: &str = "busybox:latest";
/// No progress for this long: the run has stalled.
const STALL: Duration = Duration::from_secs(120);
const DEFINITION: &str =
    r#"{"family": "bench", "containerDefinitions": [{"name": "web", "image": "busybox", "memory": 16}]}"#;

fn ok<T, E: Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

fn in_flight() -> usize {
    env_count("BERTH_CLUSTER_IN_FLIGHT", SUBMITS_IN_FLIGHT)
}

fn main() {
    let tasks = env_count("BERTH_CLUSTER_TASKS", DEFAULT_TASKS);
    let etcd = EtcdCluster::start(3);
    let runtime = ok(tokio::runtime::Builder::new_multi_thread().enable_all().build(), "runtime");
    let cluster = runtime.block_on(cluster(&etcd, tasks));
    let backlog = runtime.block_on(backlog(&etcd, tasks));
    let host = runtime.block_on(one_host(tasks));
    drop(runtime);
    drop(etcd);
    report(tasks, &cluster, backlog, &host);
}

/// Transactions made through [`TimedStore`]s, and the time spent inside them.
#[derive(Default)]
struct TxnCounters {
    txns: AtomicU64,
    nanos: AtomicU64,
}

/// A node's store, with its transactions counted and timed (given to the schedulers only;
/// only the leader's makes any).
struct TimedStore {
    inner: Arc<dyn ClusterStore>,
    counters: Arc<TxnCounters>,
}

#[async_trait]
impl ClusterStore for TimedStore {
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
        self.inner.list(prefix, revision).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResult, ClusterError> {
        let start = Instant::now();
        let result = self.inner.txn(txn).await;
        self.counters.txns.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream, ClusterError> {
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

/// One node as the daemon wires it.
struct Agent {
    node: Node,
    runner: Runner,
    status: StatusWriter,
    scheduler: Option<SchedulerHandle>,
    epochs: JoinHandle<()>,
    engine: EngineHandle,
    changes: Arc<Changes>,
    client: ClusterClient,
    /// What the scheduler needs, for [`Agent::start_scheduler`].
    store: Arc<dyn ClusterStore>,
    keys: Keys,
    name: String,
    epoch: watch::Receiver<LeaseId>,
    counters: Arc<TxnCounters>,
}

impl Agent {
    /// Starts the node's scheduler, its transactions timed into the shared counters.
    fn start_scheduler(&mut self) {
        let timed = TimedStore { inner: Arc::clone(&self.store), counters: Arc::clone(&self.counters) };
        self.scheduler = Some(Scheduler::start(
            Arc::new(timed),
            self.keys.clone(),
            self.name.clone(),
            self.epoch.clone(),
            SchedulerConfig::default(),
        ));
    }

    fn leading(&self) -> bool {
        self.scheduler.as_ref().is_some_and(|s| s.state().leading)
    }

    async fn stop(self) {
        let Agent { node, runner, status, scheduler, epochs, engine, .. } = self;
        if let Some(scheduler) = scheduler {
            scheduler.stop().await;
        }
        runner.stop().await;
        status.stop().await;
        epochs.abort();
        if let Err(e) = node.leave().await {
            eprintln!("leave: {e}");
        }
        if let Err(e) = engine.shutdown().await {
            eprintln!("engine shutdown: {e}");
        }
    }
}

/// State changes an engine logged (containers), and the task-level ones among them.
#[derive(Default)]
struct Changes {
    container: AtomicU64,
    task: AtomicU64,
}

async fn start_agent(endpoints: &[String], keys: &Keys, name: &str, counters: &Arc<TxnCounters>) -> Agent {
    let store: Arc<dyn ClusterStore> =
        Arc::new(ok(EtcdStore::connect(endpoints, Duration::from_secs(5)).await, "connect"));
    let info = NodeInfo {
        cpu: 1 << 20,
        memory_mib: 1 << 20,
        reserved_ports: vec![],
        attributes: Default::default(),
        version: "bench".into(),
    };
    let node = ok(
        Node::register(Arc::clone(&store), keys.clone(), NodeConfig::new(name, info, Duration::from_secs(10))).await,
        "register",
    );
    let fake = FakeDocker::new();
    fake.add_registry_image(IMAGE);
    let engine = ok(Engine::builder(EngineConfig::default(), Arc::new(fake)).start().await, "engine");
    let changes = Arc::new(Changes::default());
    count_changes(&engine, &changes);
    let runner =
        Runner::start(Arc::clone(&store), keys.clone(), node.liveness(), engine.clone(), RunnerConfig::new(name));
    let status =
        StatusWriter::start(Arc::clone(&store), keys.clone(), node.liveness(), engine.clone(), StatusConfig::new(name));
    // The scheduler follows the node's epoch, as in berth-agent's cluster.rs.
    let mut liveness = node.liveness();
    let first = liveness.borrow().epoch.unwrap_or(LeaseId(0));
    let (epoch_tx, epoch_rx) = watch::channel(first);
    let epochs = tokio::spawn(async move {
        while liveness.changed().await.is_ok() {
            let epoch = liveness.borrow().epoch;
            if let Some(epoch) = epoch {
                epoch_tx.send_if_modified(|current| std::mem::replace(current, epoch) != epoch);
            }
        }
    });
    let client = ClusterClient::new(Arc::clone(&store), keys.clone(), name);
    Agent {
        node,
        runner,
        status,
        scheduler: None,
        epochs,
        engine,
        changes,
        client,
        store,
        keys: keys.clone(),
        name: name.to_string(),
        epoch: epoch_rx,
        counters: Arc::clone(counters),
    }
}

fn count_changes(engine: &EngineHandle, changes: &Arc<Changes>) {
    let mut reader = engine.task_events();
    let changes = Arc::clone(changes);
    tokio::spawn(async move {
        while let Some(item) = reader.next().await {
            if let LogItem::Change(change) = item {
                changes.container.fetch_add(1, Ordering::Relaxed);
                if change.task_status != TaskStatus::None {
                    changes.task.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
}

/// What the cluster run measured.
struct ClusterResults {
    /// First submit to the last placement seen.
    placed: Duration,
    /// First submit to the last submit answered.
    submitted: Duration,
    /// First submit to the last RUNNING status seen.
    running: Duration,
    /// Submit → RUNNING of each task.
    latencies: Vec<Duration>,
    /// The schedulers' transactions and the time inside them.
    txns: u64,
    txn_time: Duration,
    /// The leader's own count of applied and stale transactions, and of tasks placed.
    leader_writes: u64,
    leader_stale: u64,
    leader_placed: u64,
    /// Store revisions from just before the first submit to a second after the last RUNNING.
    revisions: i64,
    /// The engines' state changes over the same span.
    container_changes: u64,
    task_changes: u64,
    /// VmRSS before the nodes started, and VmRSS / VmHWM once every task ran (MB).
    rss_before: f64,
    rss_after: f64,
    peak: f64,
}

/// What the watcher saw: when each task's placement, and its first RUNNING status, appeared.
#[derive(Default)]
struct Seen {
    placed: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
}

async fn cluster(etcd: &EtcdCluster, tasks: usize) -> ClusterResults {
    let endpoints = etcd.endpoints();
    let keys = ok(Keys::new("bench"), "keys");
    let monitor = Arc::new(ok(EtcdStore::connect(&endpoints, Duration::from_secs(5)).await, "connect"));
    let rss_before = vm_mb("VmRSS");
    let counters = Arc::new(TxnCounters::default());
    let mut agents = Vec::new();
    for i in 0..NODES {
        let mut agent = start_agent(&endpoints, &keys, &format!("n{i}"), &counters).await;
        agent.start_scheduler();
        agents.push(agent);
    }
    let leading = Instant::now();
    while !agents.iter().any(Agent::leading) {
        assert!(leading.elapsed() < STALL, "no scheduler leads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let start_revision = ok(monitor.revision().await, "revision");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (progress_tx, mut progress) = watch::channel(0usize);
    let (placed_tx, _placed) = watch::channel(0usize);
    let watcher = tokio::spawn(watch_cluster(
        Arc::clone(&monitor),
        keys.clone(),
        start_revision + 1,
        Arc::clone(&seen),
        progress_tx,
        placed_tx,
    ));
    let txns_before = counters.txns.load(Ordering::Relaxed);
    let nanos_before = counters.nanos.load(Ordering::Relaxed);
    let changes_before: (u64, u64) = agents.iter().fold((0, 0), |(c, t), a| {
        (c + a.changes.container.load(Ordering::Relaxed), t + a.changes.task.load(Ordering::Relaxed))
    });

    let clients: Vec<ClusterClient> = agents.iter().map(|a| a.client.clone()).collect();
    let first = Instant::now();
    let answered = submit_all(&clients, tasks).await;
    let submitted = first.elapsed();
    loop {
        if *progress.borrow_and_update() >= tasks {
            break;
        }
        match tokio::time::timeout(STALL, progress.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("stalled: {} of {tasks} tasks RUNNING", *progress.borrow()),
        }
    }
    // Let the status writers' last batches land before the revision is read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end_revision = ok(monitor.revision().await, "revision");
    let peak = vm_mb("VmHWM");
    let rss_after = vm_mb("VmRSS");
    let changes_after: (u64, u64) = agents.iter().fold((0, 0), |(c, t), a| {
        (c + a.changes.container.load(Ordering::Relaxed), t + a.changes.task.load(Ordering::Relaxed))
    });
    let txns = counters.txns.load(Ordering::Relaxed) - txns_before;
    let txn_time = Duration::from_nanos(counters.nanos.load(Ordering::Relaxed) - nanos_before);
    let leader =
        agents.iter().filter_map(|a| a.scheduler.as_ref()).map(|s| s.state()).find(|s| s.leading).unwrap_or_default();
    watcher.abort();

    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
    let last_placed = seen.placed.values().max().copied().unwrap_or(first);
    let last_running = seen.running.values().max().copied().unwrap_or(first);
    let latencies = answered
        .iter()
        .filter_map(|(id, t0)| seen.running.get(id).map(|at| at.saturating_duration_since(*t0)))
        .collect();

    for agent in agents {
        agent.stop().await;
    }
    ClusterResults {
        placed: last_placed - first,
        submitted,
        running: last_running - first,
        latencies,
        txns,
        txn_time,
        leader_writes: leader.writes,
        leader_stale: leader.stale_writes,
        leader_placed: leader.placed,
        revisions: end_revision - start_revision,
        container_changes: changes_after.0 - changes_before.0,
        task_changes: changes_after.1 - changes_before.1,
        rss_before,
        rss_after,
        peak,
    }
}

/// Submits `tasks` tasks through the clients in turn, [`in_flight`] at once; each
/// task's id and when its submit began.
async fn submit_all(clients: &[ClusterClient], tasks: usize) -> Vec<(String, Instant)> {
    stream::iter(0..tasks)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            async move {
                let definition = ok(serde_json::from_str(DEFINITION), "definition");
                let t0 = Instant::now();
                let submitted = ok(
                    client.submit(NewTask { definition, placing: Default::default(), client_token: None }).await,
                    "submit",
                );
                (submitted.task.id, t0)
            }
        })
        .buffer_unordered(in_flight())
        .collect()
        .await
}

/// The scheduler alone: `tasks` tasks submitted while no scheduler runs (nodes registered,
/// runners up), then the three schedulers started: from the start to the last placement
/// seen, and the transactions made. What the scheduler can do when submits are not the
/// limit.
async fn backlog(etcd: &EtcdCluster, tasks: usize) -> Backlog {
    let endpoints = etcd.endpoints();
    let keys = ok(Keys::new("backlog"), "keys");
    let monitor = Arc::new(ok(EtcdStore::connect(&endpoints, Duration::from_secs(5)).await, "connect"));
    let counters = Arc::new(TxnCounters::default());
    let mut agents = Vec::new();
    for i in 0..NODES {
        agents.push(start_agent(&endpoints, &keys, &format!("b{i}"), &counters).await);
    }
    let clients: Vec<ClusterClient> = agents.iter().map(|a| a.client.clone()).collect();
    submit_all(&clients, tasks).await;
    let from = ok(monitor.revision().await, "revision") + 1;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (placed_tx, mut placed) = watch::channel(0usize);
    let (running_tx, _running) = watch::channel(0usize);
    let watcher =
        tokio::spawn(watch_cluster(Arc::clone(&monitor), keys.clone(), from, Arc::clone(&seen), running_tx, placed_tx));
    let start = Instant::now();
    for agent in &mut agents {
        agent.start_scheduler();
    }
    loop {
        if *placed.borrow_and_update() >= tasks {
            break;
        }
        match tokio::time::timeout(STALL, placed.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("stalled: {} of {tasks} tasks placed", *placed.borrow()),
        }
    }
    watcher.abort();
    let (first, last) = {
        let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        (seen.placed.values().min().copied().unwrap_or(start), seen.placed.values().max().copied().unwrap_or(start))
    };
    let txns = counters.txns.load(Ordering::Relaxed);
    let txn_time = Duration::from_nanos(counters.nanos.load(Ordering::Relaxed));
    for agent in agents {
        agent.stop().await;
    }
    Backlog { window: last - start, placing: last - first, txns, txn_time }
}

/// What the backlog run measured.
struct Backlog {
    /// The schedulers' start (election included) to the last placement seen.
    window: Duration,
    /// The first placement seen to the last.
    placing: Duration,
    /// The schedulers' transactions and the time inside them.
    txns: u64,
    txn_time: Duration,
}

/// Watches the cluster's keys from `from`, noting when each placement and each first RUNNING
/// status appears; `progress` is the count of tasks RUNNING.
async fn watch_cluster(
    store: Arc<EtcdStore>,
    keys: Keys,
    from: Revision,
    seen: Arc<Mutex<Seen>>,
    progress: watch::Sender<usize>,
    placed: watch::Sender<usize>,
) {
    let placements = keys.placements();
    let statuses = keys.statuses();
    let mut watch = ok(store.watch(keys.root(), from).await, "watch");
    while let Some(batch) = watch.next().await {
        let batch = ok(batch, "watch");
        let now = Instant::now();
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        for event in batch.events {
            if event.kind != berth_cluster::store::EventKind::Put {
                continue;
            }
            if let Some(id) = event.kv.key.strip_prefix(&placements) {
                seen.placed.entry(id.to_string()).or_insert(now);
            } else if let Some((id, _node)) = event.kv.key.strip_prefix(&statuses).and_then(|r| r.split_once('/')) {
                let record: StatusRecord = ok(records::decode(&event.kv.key, &event.kv.value), "status record");
                if record.status == "RUNNING" {
                    seen.running.entry(id.to_string()).or_insert(now);
                }
            }
        }
        progress.send_replace(seen.running.len());
        placed.send_replace(seen.placed.len());
    }
}

/// The same submit → RUNNING on one host: one engine on the fake, `add_task` to the task's
/// RUNNING change.
async fn one_host(tasks: usize) -> Vec<Duration> {
    let fake = FakeDocker::new();
    fake.add_registry_image(IMAGE);
    let engine = ok(Engine::builder(EngineConfig::default(), Arc::new(fake)).start().await, "engine");
    let running = Arc::new(Mutex::new(HashMap::<String, Instant>::new()));
    let (progress_tx, mut progress) = watch::channel(0usize);
    let mut reader = engine.task_events();
    let seen = Arc::clone(&running);
    let follower = tokio::spawn(async move {
        while let Some(item) = reader.next().await {
            if let LogItem::Change(change) = item
                && change.task_status == TaskStatus::Running
            {
                let mut running = seen.lock().unwrap_or_else(PoisonError::into_inner);
                running.entry(change.task_arn.clone()).or_insert_with(Instant::now);
                progress_tx.send_replace(running.len());
            }
        }
    });
    let added: Vec<(String, Instant)> = stream::iter(0..tasks)
        .map(|i| {
            let engine = engine.clone();
            async move {
                let opts = ParseOptions { family: None, arn_random: 0xc1_0000_0000 + i as u128 };
                let task = ok(parse(DEFINITION.as_bytes(), &opts).map_err(|r| r.to_string()), "parse").task;
                let arn = task.arn.clone();
                let t0 = Instant::now();
                ok(engine.add_task(task).await, "add_task");
                (arn, t0)
            }
        })
        .buffer_unordered(in_flight())
        .collect()
        .await;
    loop {
        if *progress.borrow_and_update() >= tasks {
            break;
        }
        match tokio::time::timeout(STALL, progress.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("stalled: {} of {tasks} tasks RUNNING on one host", *progress.borrow()),
        }
    }
    follower.abort();
    let running = running.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if let Err(e) = engine.shutdown().await {
        eprintln!("engine shutdown: {e}");
    }
    added.iter().filter_map(|(arn, t0)| running.get(arn).map(|at| at.saturating_duration_since(*t0))).collect()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(tasks: usize, c: &ClusterResults, backlog: Backlog, host: &[Duration]) {
    let mut cluster = c.latencies.clone();
    cluster.sort();
    let mut host = host.to_vec();
    host.sort();
    println!(
        "the cluster: {NODES} nodes (one process, fake Docker each), 3-member etcd on loopback, {tasks} one-container tasks, {} submits in flight",
        in_flight()
    );
    println!(
        "submits answered: {:.2} s ({:.0}/s)",
        c.submitted.as_secs_f64(),
        tasks as f64 / c.submitted.as_secs_f64()
    );
    println!(
        "placements: last seen {:.2} s after the first submit: {:.0} placements/s",
        c.placed.as_secs_f64(),
        tasks as f64 / c.placed.as_secs_f64()
    );
    println!(
        "scheduler: {} transactions ({} applied, {} stale, {} placed by the leader), {:.2} s inside them ({:.1} ms each, {:.0}% of the placement window)",
        c.txns,
        c.leader_writes,
        c.leader_stale,
        c.leader_placed,
        c.txn_time.as_secs_f64(),
        if c.txns > 0 { ms(c.txn_time) / c.txns as f64 } else { 0.0 },
        100.0 * c.txn_time.as_secs_f64() / c.placed.as_secs_f64()
    );
    let Backlog { window, placing, txns, txn_time } = backlog;
    println!(
        "backlog ({tasks} tasks stored before any scheduler starts): placed {:.2} s after the schedulers start (election included): {:.0} placements/s; first to last placement {:.2} s: {:.0}/s; {txns} transactions, {:.2} s inside them ({:.1} ms each, {:.0}% of the window)",
        window.as_secs_f64(),
        tasks as f64 / window.as_secs_f64(),
        placing.as_secs_f64(),
        tasks as f64 / placing.as_secs_f64(),
        txn_time.as_secs_f64(),
        if txns > 0 { ms(txn_time) / txns as f64 } else { 0.0 },
        100.0 * txn_time.as_secs_f64() / window.as_secs_f64()
    );
    println!("all RUNNING (status in etcd): {:.2} s after the first submit", c.running.as_secs_f64());
    println!(
        "submit → RUNNING  cluster: p50 {:.1} ms  p99 {:.1} ms  ({} tasks)   one host: p50 {:.1} ms  p99 {:.1} ms  ({} tasks)",
        ms(percentile(&cluster, 50)),
        ms(percentile(&cluster, 99)),
        cluster.len(),
        ms(percentile(&host, 50)),
        ms(percentile(&host, 99)),
        host.len()
    );
    println!(
        "etcd revisions: {} over the run = {:.2} per container state change ({} changes), {:.2} per task-level change ({}), {:.1} per task",
        c.revisions,
        c.revisions as f64 / c.container_changes.max(1) as f64,
        c.container_changes,
        c.revisions as f64 / c.task_changes.max(1) as f64,
        c.task_changes,
        c.revisions as f64 / tasks as f64
    );
    let by_status = c.revisions - tasks as i64 - c.txns as i64;
    println!(
        "  of which: {tasks} submits, {} scheduler transactions, {by_status} by the status writers and runners ({:.2} per container state change)",
        c.txns,
        by_status as f64 / c.container_changes.max(1) as f64
    );
    println!(
        "memory: peak RSS {:.1} MB (the whole process: {NODES} agents, their fake Dockers, the driver); RSS {:.1} MB before the nodes, {:.1} MB with every task running: ≈ {:.1} MB per agent tracking {:.0} tasks",
        c.peak,
        c.rss_before,
        c.rss_after,
        (c.rss_after - c.rss_before) / NODES as f64,
        tasks as f64 / NODES as f64
    );
}

/// A field of `/proc/self/status` in MB (`VmHWM`, `VmRSS`).
fn vm_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
