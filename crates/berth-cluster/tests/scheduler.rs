//! The scheduler on the in-memory store: scenarios, and a property test of random
//! schedules (submits, stops, hand-backs, nodes joining and leaving, leader changes,
//! compactions) checked after every step once the schedulers are quiet.
//!
//! Everything runs on one tokio thread with paused time, so a schedule runs the same way
//! every time: waiting for quiet lets tokio's clock jump ahead while every task waits.

use berth_cluster::ClusterStore;
use berth_cluster::keys::Keys;
use berth_cluster::records::{
    Assignment, Desired, NodeAlive, NodeInfo, PartitionPolicy, Pending, PendingState, Placement, StatusRecord,
    TaskRecord, decode, encode,
};
use berth_cluster::scheduler::{Config, Scheduler, SchedulerHandle};
use berth_cluster::store::{Compare, LeaseId, MemoryStore, Op, Txn};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const TTL: Duration = Duration::from_secs(10);

/// The test's side of the cluster: the store, node leases, schedulers.
struct Cluster {
    store: MemoryStore,
    keys: Keys,
    /// Live node name → its lease.
    nodes: BTreeMap<String, LeaseId>,
    schedulers: Vec<(SchedulerHandle, watch::Sender<LeaseId>, LeaseId)>,
    next_task: usize,
}

impl Cluster {
    async fn new(schedulers: usize) -> Cluster {
        let store = MemoryStore::new();
        let keys = Keys::new("test").expect("valid name");
        let mut cluster = Cluster { store, keys, nodes: BTreeMap::new(), schedulers: Vec::new(), next_task: 0 };
        for i in 0..schedulers {
            let lease = cluster.store.grant(TTL).await.expect("grant").id;
            let (tx, rx) = watch::channel(lease);
            let config = Config { forget_after: Duration::from_secs(3600), ..Config::default() };
            let handle = Scheduler::start(
                Arc::new(cluster.store.clone()),
                cluster.keys.clone(),
                format!("agent-{i}"),
                rx,
                config,
            );
            cluster.schedulers.push((handle, tx, lease));
        }
        cluster
    }

    async fn join(&mut self, name: &str, cpu: u64, memory_mib: u64) {
        if self.nodes.contains_key(name) {
            return;
        }
        let lease = self.store.grant(TTL).await.expect("grant").id;
        let info =
            NodeInfo { cpu, memory_mib, reserved_ports: vec![], attributes: BTreeMap::new(), version: "t".into() };
        let alive = NodeAlive { epoch: lease, started_at: chrono::Utc::now(), address: None };
        let txn = Txn {
            compares: vec![Compare::absent(self.keys.node_alive(name))],
            success: vec![
                Op::put(self.keys.node_info(name), encode(&info)),
                Op::put_leased(self.keys.node_alive(name), encode(&alive), lease),
            ],
            failure: vec![],
        };
        assert!(self.store.txn(txn).await.expect("register").succeeded);
        self.nodes.insert(name.to_string(), lease);
    }

    /// The node's lease ends: revoked, or left to expire on the clock.
    async fn leave(&mut self, name: &str, expire: bool) {
        let Some(lease) = self.nodes.remove(name) else { return };
        if expire {
            // The clock runs on, every other lease kept alive, until this one expires.
            while self.store.lease_remaining(lease).is_some() {
                for keep in self.nodes.values().chain(self.schedulers.iter().map(|s| &s.2)) {
                    self.store.keep_alive(*keep).await.expect("keepalive");
                }
                self.store.advance(Duration::from_secs(1));
            }
        } else {
            self.store.revoke(lease).await.expect("revoke");
        }
    }

    /// Scheduler `i`'s lease is revoked; it gets a new one (its agent re-registered).
    async fn depose(&mut self, i: usize) {
        let Some((_, tx, lease)) = self.schedulers.get_mut(i) else { return };
        self.store.revoke(*lease).await.expect("revoke");
        let new = self.store.grant(TTL).await.expect("grant").id;
        *lease = new;
        tx.send(new).expect("scheduler alive");
    }

    async fn submit(&mut self, cpu: u64, memory: u64, port: Option<u16>, partition: PartitionPolicy) -> String {
        let id = format!("t{}", self.next_task);
        self.next_task += 1;
        let mut container = serde_json::json!({"name": "c", "image": "busybox", "cpu": cpu, "memory": memory});
        if let Some(port) = port {
            container["portMappings"] = serde_json::json!([{"containerPort": 80, "hostPort": port}]);
        }
        let record = TaskRecord {
            id: id.clone(),
            definition: serde_json::json!({"family": "fam", "containerDefinitions": [container]}),
            desired: Desired::Running,
            partition,
            constraints: vec![],
            strategy: vec![],
            client_token: None,
            submitted_via: "test".into(),
            submitted_at: chrono::Utc::now(),
        };
        let txn = Txn {
            compares: vec![Compare::absent(self.keys.task(&id))],
            success: vec![Op::put(self.keys.task(&id), encode(&record))],
            failure: vec![],
        };
        assert!(self.store.txn(txn).await.expect("submit").succeeded);
        id
    }

    async fn stop(&mut self, id: &str) {
        let Some(kv) = self.store.get(&self.keys.task(id)).await.expect("get") else { return };
        let mut record: TaskRecord = decode(&kv.key, &kv.value).expect("task record");
        record.desired = Desired::Stopped;
        let txn = Txn {
            compares: vec![Compare::mod_revision(&kv.key, kv.mod_revision)],
            success: vec![Op::put(&kv.key, encode(&record))],
            failure: vec![],
        };
        self.store.txn(txn).await.expect("stop");
    }

    /// The node running `id` hands it back (as the agent does when it does not fit there).
    async fn hand_back(&mut self, id: &str) {
        let Some((node, _)) = self.assignment_of(id).await else { return };
        let Some(&epoch) = self.nodes.get(&node) else { return };
        let status = status("HANDED_BACK", epoch);
        let txn = Txn {
            compares: vec![Compare {
                key: self.keys.node_alive(&node),
                op: berth_cluster::store::CmpOp::Equal,
                target: berth_cluster::store::Target::Lease(epoch.0),
            }],
            success: vec![
                Op::delete(self.keys.assignment(&node, id)),
                Op::put(self.keys.status(id, &node), encode(&status)),
            ],
            failure: vec![],
        };
        self.store.txn(txn).await.expect("hand back");
    }

    async fn assignment_of(&self, id: &str) -> Option<(String, Assignment)> {
        let listing = self.store.list(&self.keys.assignments(), None).await.expect("list");
        listing.kvs.iter().find_map(|kv| {
            let rest = kv.key.strip_prefix(&self.keys.assignments())?;
            let (node, task) = rest.split_once('/')?;
            (task == id).then(|| (node.to_string(), decode(&kv.key, &kv.value).expect("assignment")))
        })
    }

    /// What live agents do on their own: report STOPPED for an assigned task desired
    /// STOPPED. Returns whether it wrote anything.
    async fn agents_report(&mut self) -> bool {
        let tasks = self.tasks().await;
        let mut wrote = false;
        for (node, epoch) in self.nodes.clone() {
            let listing = self.store.list(&self.keys.node_assignments(&node), None).await.expect("list");
            for kv in listing.kvs {
                let a: Assignment = decode(&kv.key, &kv.value).expect("assignment");
                let Some(task) = tasks.get(&a.task) else { continue };
                if task.desired != Desired::Stopped {
                    continue;
                }
                let key = self.keys.status(&a.task, &node);
                let have = self.store.get(&key).await.expect("get");
                if have
                    .is_some_and(|kv| decode::<StatusRecord>(&kv.key, &kv.value).expect("status").status == "STOPPED")
                {
                    continue;
                }
                self.store
                    .txn(Txn {
                        compares: vec![],
                        success: vec![Op::put(key, encode(&status("STOPPED", epoch)))],
                        failure: vec![],
                    })
                    .await
                    .expect("status");
                wrote = true;
            }
        }
        wrote
    }

    async fn tasks(&self) -> BTreeMap<String, TaskRecord> {
        let listing = self.store.list(&self.keys.tasks(), None).await.expect("list");
        listing
            .kvs
            .iter()
            .map(|kv| decode::<TaskRecord>(&kv.key, &kv.value).expect("task"))
            .map(|t| (t.id.clone(), t))
            .collect()
    }

    /// Waits until the leader has decided on the store's latest revision and wants to write
    /// nothing (and the agents have nothing left to report).
    async fn settle(&mut self) {
        for _ in 0..20 {
            self.quiet().await;
            if !self.agents_report().await {
                return;
            }
        }
        panic!("agents kept reporting");
    }

    async fn quiet(&self) {
        for _ in 0..2000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let leader = self.store.leader(&self.keys.election()).await.expect("leader");
            let revision = self.store.revision();
            let settled = self.schedulers.iter().any(|(h, _, lease)| {
                let s = h.state();
                let leads = leader.as_ref().is_some_and(|l| l.lease == Some(*lease));
                leads && s.leading && s.idle && s.revision == revision
            });
            if settled {
                return;
            }
        }
        let states: Vec<_> = self.schedulers.iter().map(|s| s.0.state()).collect();
        panic!("schedulers never quiet at revision {}: {states:?}", self.store.revision());
    }

    async fn stop_all(self) {
        for (handle, _, _) in self.schedulers {
            handle.stop().await;
        }
    }
}

fn status(status: &str, epoch: LeaseId) -> StatusRecord {
    StatusRecord {
        epoch,
        seq: 1,
        status: status.to_string(),
        reason: Some("test".into()),
        containers: vec![],
        updated_at: chrono::Utc::now(),
    }
}

/// Everything the store holds that the invariants read.
struct Snapshot {
    tasks: BTreeMap<String, TaskRecord>,
    infos: BTreeMap<String, NodeInfo>,
    alive: BTreeSet<String>,
    placements: BTreeMap<String, Placement>,
    /// (node, task) → assignment.
    assignments: BTreeMap<(String, String), Assignment>,
    handed_back: BTreeSet<(String, String)>,
    pending: BTreeMap<String, Pending>,
}

async fn snapshot(c: &Cluster) -> Snapshot {
    let all = c.store.list(c.keys.root(), None).await.expect("list");
    let mut s = Snapshot {
        tasks: BTreeMap::new(),
        infos: BTreeMap::new(),
        alive: BTreeSet::new(),
        placements: BTreeMap::new(),
        assignments: BTreeMap::new(),
        handed_back: BTreeSet::new(),
        pending: BTreeMap::new(),
    };
    for kv in &all.kvs {
        let rest = kv.key.strip_prefix(c.keys.root()).expect("under root");
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["tasks", id] => {
                s.tasks.insert(id.to_string(), decode(&kv.key, &kv.value).expect("task"));
            }
            ["nodes", n, "info"] => {
                s.infos.insert(n.to_string(), decode(&kv.key, &kv.value).expect("info"));
            }
            ["nodes", n, "alive"] => {
                s.alive.insert(n.to_string());
            }
            ["placement", id] => {
                s.placements.insert(id.to_string(), decode(&kv.key, &kv.value).expect("placement"));
            }
            ["assign", n, id] => {
                s.assignments.insert((n.to_string(), id.to_string()), decode(&kv.key, &kv.value).expect("assignment"));
            }
            ["status", id, n] => {
                let st: StatusRecord = decode(&kv.key, &kv.value).expect("status");
                if st.status == "HANDED_BACK" {
                    s.handed_back.insert((n.to_string(), id.to_string()));
                }
            }
            ["pending", id] => {
                s.pending.insert(id.to_string(), decode(&kv.key, &kv.value).expect("pending"));
            }
            _ => {}
        }
    }
    s
}

/// The invariants of a quiet cluster.
fn check(s: &Snapshot) -> Result<(), String> {
    // One owner per task: at most one assignment, on the placement's node.
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (node, task) in s.assignments.keys() {
        owners.entry(task).or_default().push(node);
    }
    for (task, nodes) in &owners {
        if nodes.len() > 1 {
            return Err(format!("task {task} assigned to {nodes:?}"));
        }
        match s.placements.get(*task) {
            Some(p) if p.node == nodes[0] => {}
            other => return Err(format!("task {task} assigned to {} but placed {other:?}", nodes[0])),
        }
    }
    // No node over its capacity, no static port twice on a node.
    let mut used: BTreeMap<&str, (u64, u64, BTreeSet<&str>)> = BTreeMap::new();
    for ((node, task), a) in &s.assignments {
        let u = used.entry(node).or_default();
        u.0 += a.cpu;
        u.1 += a.memory_mib;
        for p in &a.ports {
            if !u.2.insert(p) {
                return Err(format!("port {p} twice on {node} (task {task})"));
            }
        }
    }
    for (node, (cpu, mem, _)) in &used {
        let info = s.infos.get(*node).ok_or(format!("assignments on unknown node {node}"))?;
        if *cpu > info.cpu || *mem > info.memory_mib {
            return Err(format!("node {node} over capacity: cpu {cpu}/{}, memory {mem}/{}", info.cpu, info.memory_mib));
        }
    }
    // Every running-desired task that fits somewhere is placed.
    for (id, task) in &s.tasks {
        if task.desired != Desired::Running || s.placements.contains_key(id) {
            continue;
        }
        let need = needs(task);
        for node in &s.alive {
            if s.handed_back.contains(&(node.clone(), id.clone())) {
                continue;
            }
            let Some(info) = s.infos.get(node) else { continue };
            let (cpu, mem, ports) = used.get(node.as_str()).cloned().unwrap_or_default();
            let port_free = need.2.as_ref().is_none_or(|p| !ports.contains(p.as_str()));
            if cpu + need.0 <= info.cpu && mem + need.1 <= info.memory_mib && port_free {
                return Err(format!("task {id} fits on {node} but is not placed (pending: {:?})", s.pending.get(id)));
            }
        }
    }
    Ok(())
}

fn needs(task: &TaskRecord) -> (u64, u64, Option<String>) {
    let c = &task.definition["containerDefinitions"][0];
    let port = c["portMappings"][0]["hostPort"].as_u64().map(|p| format!("{p}/tcp"));
    (c["cpu"].as_u64().unwrap_or(0), c["memory"].as_u64().unwrap_or(0), port)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime")
}

#[test]
fn tasks_are_placed_within_capacity_and_wait_with_a_reason() {
    runtime().block_on(async {
        let mut c = Cluster::new(2).await;
        c.join("a", 1024, 1024).await;
        c.join("b", 1024, 1024).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(c.submit(512, 256, None, PartitionPolicy::Keep).await);
        }
        c.settle().await;
        let s = snapshot(&c).await;
        check(&s).expect("invariants");
        assert_eq!(s.placements.len(), 4, "two 512-cpu tasks fit each 1024-cpu node");
        let waiting: Vec<_> = ids.iter().filter(|id| !s.placements.contains_key(*id)).collect();
        assert_eq!(waiting.len(), 1);
        let note = s.pending.get(waiting[0].as_str()).expect("a waiting task has a pending note");
        assert_eq!(note.state, PendingState::Waiting);
        assert!(note.nodes.values().all(|r| r.contains("cpu")), "{note:?}");

        // Stopping one: its node reports STOPPED, the placement goes, the waiting one is placed.
        c.stop(&ids[0]).await;
        c.settle().await;
        let s = snapshot(&c).await;
        check(&s).expect("invariants");
        assert!(!s.placements.contains_key(&ids[0]));
        assert!(s.placements.contains_key(waiting[0].as_str()));
        assert!(!s.pending.contains_key(waiting[0].as_str()), "the note goes once placed");
        c.stop_all().await;
    });
}

#[test]
fn a_task_no_node_could_hold_is_refused() {
    runtime().block_on(async {
        let mut c = Cluster::new(1).await;
        c.join("a", 1024, 1024).await;
        let id = c.submit(4096, 256, None, PartitionPolicy::Keep).await;
        c.settle().await;
        let s = snapshot(&c).await;
        assert!(!s.placements.contains_key(&id));
        assert_eq!(s.pending.get(&id).map(|p| p.state), Some(PendingState::Failed));
        c.stop_all().await;
    });
}

#[test]
fn a_handed_back_task_is_placed_elsewhere() {
    runtime().block_on(async {
        let mut c = Cluster::new(1).await;
        c.join("a", 1024, 1024).await;
        c.join("b", 1024, 1024).await;
        let id = c.submit(256, 256, None, PartitionPolicy::Exclusive).await;
        c.settle().await;
        let (first, _) = c.assignment_of(&id).await.expect("placed");
        c.hand_back(&id).await;
        c.settle().await;
        let (second, a) = c.assignment_of(&id).await.expect("placed again");
        assert_ne!(first, second);
        assert_eq!(a.generation, 2);
        // Handed back by both: it waits, naming why.
        c.hand_back(&id).await;
        c.settle().await;
        let s = snapshot(&c).await;
        assert!(!s.placements.contains_key(&id));
        let note = s.pending.get(&id).expect("note");
        assert!(note.nodes.values().all(|r| r.contains("handed")), "{note:?}");
        c.stop_all().await;
    });
}

#[test]
fn a_deposed_leader_hands_over_and_exclusive_tasks_follow_their_node_lease() {
    runtime().block_on(async {
        let mut c = Cluster::new(2).await;
        c.join("a", 1024, 1024).await;
        c.join("b", 1024, 1024).await;
        let id = c.submit(256, 256, None, PartitionPolicy::Exclusive).await;
        c.settle().await;
        let (node, _) = c.assignment_of(&id).await.expect("placed");
        let leader = c.store.leader(&c.keys.election()).await.expect("leader").expect("one leads");
        let i = c.schedulers.iter().position(|s| Some(s.2) == leader.lease).expect("a scheduler leads");
        c.depose(i).await;
        c.leave(&node, false).await;
        c.settle().await;
        let (moved, _) = c.assignment_of(&id).await.expect("placed again");
        assert_ne!(moved, node);
        let terms: u64 = c.schedulers.iter().map(|s| s.0.state().terms).sum();
        assert!(terms >= 2, "another scheduler took over");
        c.stop_all().await;
    });
}

#[derive(Debug, Clone)]
enum Step {
    Submit {
        cpu: u64,
        memory: u64,
        port: Option<u16>,
        partition: u8,
    },
    Stop(usize),
    HandBack(usize),
    Join(usize),
    Leave {
        node: usize,
        expire: bool,
    },
    Depose(usize),
    Compact,
    /// The store answers nothing for a while (watches end, writes fail).
    Outage,
    /// The next writes are applied but their answers lost.
    LoseAnswers(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u64..=8, 1u64..=8, prop::option::weighted(0.3, 8000u16..8004), 0u8..3).prop_map(|(cpu, memory, port, partition)| {
            Step::Submit { cpu: cpu * 128, memory: memory * 128, port, partition }
        }),
        2 => (0usize..64).prop_map(Step::Stop),
        1 => (0usize..64).prop_map(Step::HandBack),
        2 => (0usize..4).prop_map(Step::Join),
        1 => (0usize..4, any::<bool>()).prop_map(|(node, expire)| Step::Leave { node, expire }),
        1 => (0usize..3).prop_map(Step::Depose),
        1 => Just(Step::Compact),
        1 => Just(Step::Outage),
        1 => (1u32..4).prop_map(Step::LoseAnswers),
    ]
}

const NODE_SIZES: [(u64, u64); 4] = [(1024, 1024), (2048, 1024), (1024, 2048), (4096, 4096)];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_keep_the_invariants(schedulers in 2usize..=3, steps in prop::collection::vec(step(), 1..30)) {
        let result: Result<(), String> = runtime().block_on(async {
            let mut c = Cluster::new(schedulers).await;
            c.join("n0", 1024, 1024).await;
            for (i, step) in steps.iter().enumerate() {
                match step {
                    Step::Submit { cpu, memory, port, partition } => {
                        let partition = [PartitionPolicy::Keep, PartitionPolicy::Exclusive, PartitionPolicy::Replace][*partition as usize];
                        c.submit(*cpu, *memory, *port, partition).await;
                    }
                    Step::Stop(k) => {
                        if c.next_task > 0 {
                            c.stop(&format!("t{}", k % c.next_task)).await;
                        }
                    }
                    Step::HandBack(k) => {
                        if c.next_task > 0 {
                            c.hand_back(&format!("t{}", k % c.next_task)).await;
                        }
                    }
                    Step::Join(n) => {
                        let (cpu, mem) = NODE_SIZES[*n];
                        c.join(&format!("n{n}"), cpu, mem).await;
                    }
                    Step::Leave { node, expire } => c.leave(&format!("n{node}"), *expire).await,
                    Step::Depose(k) => c.depose(k % c.schedulers.len()).await,
                    Step::Outage => {
                        // A submit the schedulers only learn of after the outage.
                        c.submit(128, 128, None, PartitionPolicy::Replace).await;
                        c.store.set_unavailable(true);
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        c.store.set_unavailable(false);
                    }
                    Step::LoseAnswers(n) => {
                        c.submit(128, 128, None, PartitionPolicy::Keep).await;
                        c.submit(128, 128, Some(8000), PartitionPolicy::Exclusive).await;
                        c.store.fail_next_after_applying(*n);
                        c.quiet().await;
                        c.store.fail_next_after_applying(0); // the test's own writes must land
                    }
                    Step::Compact => {
                        // A write the schedulers have not read yet, compacted away at once:
                        // the leader's watch is behind the compaction and must list again.
                        c.submit(128, 128, None, PartitionPolicy::Keep).await;
                        c.store.compact(c.store.revision()).expect("compact");
                    }
                }
                c.settle().await;
                let s = snapshot(&c).await;
                if let Err(e) = check(&s) {
                    return Err(format!("after step {i} ({step:?}): {e}"));
                }
            }
            c.stop_all().await;
            Ok(())
        });
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}
