//! Cluster mode for real (issue 17): a three-member etcd on loopback ports of its own and
//! three `berth daemon` processes (each its own data directory, node name and declared
//! capacity, sharing the system Docker). Thirty tasks submitted through different nodes are
//! placed by capacity and run; no node's capacity is exceeded; the leader agent killed
//! with SIGKILL: another leads and the tasks keep running; one etcd member stopped: the
//! cluster goes on; a berth restarted within its lease restarts no container.
//!
//! Everything the test made is removed however it ends (Drop guards): the daemons and the
//! etcd members (`berth_testutils::etcd::EtcdCluster`) are killed, and every container
//! carrying the test's unique label removed.

mod support;

use berth_testutils::etcd::EtcdCluster;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{unix_request, wait_for};

/// The node lease's TTL the daemons run with (short, so the test is).
const LEASE_TTL: &str = "6s";
/// Each node's declared memory: ten tasks of [`TASK_MEMORY`] fit, an eleventh does not.
const NODE_MEMORY: u64 = 512;
const TASK_MEMORY: u64 = 50;
/// Tasks submitted first: the three nodes' memory holds exactly these.
const TASKS: usize = 30;
/// The tasks submitted later fit in what is left on a node (12 MiB).
const SMALL_MEMORY: u64 = 8;

/// What the test started, stopped and removed however it ends.
struct Guard {
    daemons: Vec<Option<Child>>,
    label: String,
    instances: Vec<PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in self.daemons.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=berth-cluster-test={}", self.label)])
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
            }
        }
        for data in &self.instances {
            if let Ok(id) = std::fs::read_to_string(data.join("instance-id")) {
                berth_testutils::real::remove_instance(id.trim());
            }
        }
    }
}

struct Cluster {
    dir: PathBuf,
    endpoints: Vec<String>,
    name: String,
}

impl Cluster {
    fn data(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}"))
    }

    fn start_daemon(&self, i: usize) -> Child {
        let data = self.data(i);
        let config = self.dir.join(format!("n{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "node_lease_ttl = \"{LEASE_TTL}\"\npull_behavior = \"prefer-cached\"\n[node_attributes]\nzone = \"z{i}\"\n\
                 [resources]\ncpu = 1024\nmemory = {NODE_MEMORY}\nreserved_memory = 0\n"
            ),
        )
        .expect("config");
        let mut cmd = support::daemon(&data, &self.dir.join(format!("n{i}.log")));
        // Appended to, not truncated, across restarts.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{i}.log")))
            .expect("log");
        cmd.stderr(Stdio::from(log))
            .arg("--config")
            .arg(&config)
            .args(["--cluster", &format!("etcd://{}", self.endpoints.join(","))])
            .args(["--cluster-name", &self.name, "--node", &format!("n{i}")]);
        cmd.spawn().expect("berth daemon")
    }

    fn socket(&self, i: usize) -> PathBuf {
        self.data(i).join("berth.sock")
    }

    /// `method path` on node `i`: the status code and the JSON body, or None while it does
    /// not answer.
    fn call(&self, i: usize, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
        let answer = unix_request(&self.socket(i), method, path, body)?;
        let code = answer.split(' ').nth(1)?.parse().ok()?;
        let (_, body) = answer.split_once("\r\n\r\n")?;
        Some((code, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    fn tasks(&self, i: usize) -> Option<Vec<Value>> {
        match self.call(i, "GET", "/v1/cluster/tasks", "")? {
            (200, Value::Array(tasks)) => Some(tasks),
            _ => None,
        }
    }

    fn nodes(&self, i: usize) -> Option<Value> {
        match self.call(i, "GET", "/v1/cluster/nodes", "")? {
            (200, nodes) => Some(nodes),
            _ => None,
        }
    }

    fn submit(&self, i: usize, label: &str, memory: u64) -> String {
        let body = serde_json::json!({
            "family": "cluster-it",
            "containerDefinitions": [{"name": "main", "image": "busybox:latest", "memory": memory, "cpu": 64,
                "command": ["sleep", "600"], "linuxParameters": {"initProcessEnabled": true},
                "dockerLabels": {"berth-cluster-test": label}}],
        });
        let (code, answer) = wait_for("a node takes the task", Duration::from_secs(20), || {
            self.call(i, "POST", "/v1/cluster/tasks", &body.to_string())
        });
        assert_eq!(code, 201, "{answer}");
        answer["Task"]["task"]["id"].as_str().expect("the task's id").to_string()
    }
}

/// Each task id with its node, once every task of `ids` reports RUNNING from its node.
fn all_running(cluster: &Cluster, via: usize, ids: &[String]) -> Option<Vec<(String, String)>> {
    let tasks = cluster.tasks(via)?;
    let mut placed = Vec::new();
    for id in ids {
        let t = tasks.iter().find(|t| t["task"]["id"] == id.as_str())?;
        let node = t["placement"]["node"].as_str()?;
        (t["status"][node]["status"] == "RUNNING").then_some(())?;
        placed.push((id.clone(), node.to_string()));
    }
    Some(placed)
}

/// The test's running containers: (id, StartedAt, the task's arn label).
fn containers(label: &str) -> Vec<(String, String)> {
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("label=berth-cluster-test={label}")])
        .output()
        .expect("docker ps");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let out = Command::new("docker")
        .args(["inspect", "--format", "{{.Id}} {{.State.StartedAt}}"])
        .args(&ids)
        .output()
        .expect("docker inspect");
    let mut found: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    found.sort();
    found
}

#[test]
fn three_daemons_on_three_etcd_members_place_by_capacity_survive_the_leader_and_an_etcd_member() {
    support::require_busybox();
    let dir = tempfile::Builder::new().prefix("berth-cluster-").tempdir_in("/dev/shm").expect("tempdir");
    let label = format!("it-{}-{}", std::process::id(), rand_suffix());
    // Three members on loopback ports of their own, killed and removed on drop (after the
    // daemons: the guard is dropped first).
    let mut etcd = EtcdCluster::start(3);
    let mut guard = Guard { daemons: Vec::new(), label: label.clone(), instances: Vec::new() };
    let endpoints: Vec<String> = etcd.endpoints().iter().map(|e| e.trim_start_matches("http://").to_string()).collect();
    let cluster = Cluster { dir: dir.path().to_path_buf(), endpoints, name: label.clone() };
    for i in 0..3 {
        std::fs::create_dir_all(cluster.data(i)).expect("data dir");
        std::fs::set_permissions(cluster.data(i), std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("mode");
        guard.instances.push(cluster.data(i));
        guard.daemons.push(Some(cluster.start_daemon(i)));
    }
    wait_for("three nodes alive", Duration::from_secs(30), || {
        let nodes = cluster.nodes(0)?;
        let alive = nodes["nodes"].as_array()?.iter().filter(|n| !n["alive"].is_null()).count();
        (alive == 3 && nodes["leader"].is_string()).then_some(())
    });

    // Thirty tasks of 50 MiB through the three nodes in turn: each node (512 MiB) holds ten.
    let mut ids: Vec<String> = (0..TASKS).map(|k| cluster.submit(k % 3, &label, TASK_MEMORY)).collect();
    let placed = wait_for("thirty tasks RUNNING", Duration::from_secs(180), || all_running(&cluster, 1, &ids));
    for node in ["n0", "n1", "n2"] {
        assert_eq!(placed.iter().filter(|(_, n)| n == node).count(), 10, "by capacity, ten on {node}: {placed:?}");
    }
    let nodes = cluster.nodes(2).expect("nodes");
    for n in nodes["nodes"].as_array().expect("nodes") {
        let used = n["used"]["memoryMib"].as_u64().expect("used");
        assert!(used <= NODE_MEMORY, "node {} over its memory: {used}", n["name"]);
    }
    let before = containers(&label);
    assert_eq!(before.len(), TASKS, "one container per task: {before:?}");

    // The leader killed with SIGKILL: another takes over, the tasks keep running.
    let leader = nodes["leader"].as_str().expect("a leader").to_string();
    let dead: usize = leader.trim_start_matches('n').parse().expect("node number");
    let mut child = guard.daemons[dead].take().expect("the leader's process");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let survivor = (dead + 1) % 3;
    let new_leader = wait_for("another leader", Duration::from_secs(30), || {
        let leader = cluster.nodes(survivor)?["leader"].as_str()?.to_string();
        (leader != format!("n{dead}")).then_some(leader)
    });
    assert_ne!(new_leader, leader);
    assert_eq!(containers(&label), before, "no container stopped or restarted when the leader died");
    // The new leader places: a small task submitted through a survivor runs on a survivor.
    let small = cluster.submit(survivor, &label, SMALL_MEMORY);
    ids.push(small.clone());
    let placed = wait_for("the new leader places a task", Duration::from_secs(60), || {
        all_running(&cluster, survivor, std::slice::from_ref(&small))
    });
    assert_ne!(placed[0].1, format!("n{dead}"), "placed on a live node");

    // One etcd member stopped: the cluster goes on.
    etcd.stop_member(0);
    let after_etcd = cluster.submit(survivor, &label, SMALL_MEMORY);
    wait_for("a task placed with two etcd members", Duration::from_secs(60), || {
        all_running(&cluster, survivor, std::slice::from_ref(&after_etcd))
    });
    ids.push(after_etcd);

    // A berth restarted within its lease: no container restarted, the same epoch.
    let other = (survivor + 1) % 3;
    let other = if other == dead { (other + 1) % 3 } else { other };
    let epoch_of = |via: usize, node: usize| -> Option<Value> {
        let nodes = cluster.nodes(via)?;
        let n = nodes["nodes"].as_array()?.iter().find(|n| n["name"] == format!("n{node}").as_str())?.clone();
        (!n["alive"].is_null()).then(|| n["alive"]["epoch"].clone())
    };
    let epoch = epoch_of(survivor, other).expect("the node's epoch");
    let running = containers(&label);
    let mut child = guard.daemons[other].take().expect("a live daemon");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    guard.daemons[other] = Some(cluster.start_daemon(other));
    wait_for("the restarted node answers", Duration::from_secs(30), || cluster.nodes(other).map(|_| ()));
    assert_eq!(epoch_of(survivor, other), Some(epoch), "resumed with its epoch");
    let live: Vec<String> = ids.clone();
    wait_for("every task on a live node still RUNNING", Duration::from_secs(30), || {
        let tasks = cluster.tasks(other)?;
        let ok = live.iter().all(|id| {
            tasks.iter().any(|t| {
                t["task"]["id"] == id.as_str()
                    && t["placement"]["node"].as_str().and_then(|n| t["status"][n]["status"].as_str())
                        == Some("RUNNING")
            })
        });
        ok.then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(containers(&label), running, "the restart restarted no container");
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
    nanos.unwrap_or(0)
}
