//! Cluster mode in-process: two agents (each its own data directory and fake Docker) on
//! one in-memory cluster store, through their HTTP APIs: submits through either node are
//! checked as on one host, stored once per client token, placed by capacity and run; the
//! nodes, the leader and the events show; a single-host daemon answers 409.

mod support;

use berth_agent::{Agent, AgentConfig};
use berth_cluster::ClusterStore;
use berth_cluster::store::MemoryStore;
use berth_testutils::FakeDocker;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::Api;

struct Node {
    agent: Agent,
    api: Api,
    _dir: tempfile::TempDir,
}

async fn node(store: &Arc<MemoryStore>, name: &str) -> Node {
    let dir = tempfile::Builder::new().prefix("berth-cluster-fake-").tempdir().expect("tempdir");
    let mut config: AgentConfig = support::config(dir.path());
    config.cluster = "fake".into();
    config.node = Some(name.into());
    config.resources.memory = Some(512);
    config.resources.reserved_memory = 0;
    config.resources.cpu = Some(1024);
    config.node_attributes.insert("zone".into(), format!("z-{name}"));
    let fake = FakeDocker::new();
    fake.add_image("busybox:latest");
    fake.add_registry_image("busybox:latest");
    let store: Arc<dyn ClusterStore> = store.clone();
    let agent = Agent::start_with_store(&config, Arc::new(fake), Some(store)).await.expect("start");
    let api = Api::unix(agent.socket_path());
    Node { agent, api, _dir: dir }
}

fn body(family: &str, memory: u64, extra: Value) -> String {
    let mut b = json!({"family": family, "containerDefinitions": [{"name": "main", "image": "busybox:latest",
        "memory": memory, "command": ["sleep", "600"]}]});
    if let (Value::Object(b), Value::Object(extra)) = (&mut b, extra) {
        b.extend(extra);
    }
    b.to_string()
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_place_by_capacity_and_report_status_through_any_api() {
    let store = Arc::new(MemoryStore::new());
    let n1 = node(&store, "n1").await;
    let n2 = node(&store, "n2").await;

    // Refused as on one host: a definition error and a placement error, each with its path.
    let no_image = json!({"family": "bad", "containerDefinitions": [{"name": "main", "memory": 64}]});
    let bad = n1.api.post("/v1/cluster/tasks", no_image.to_string(), None).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.json()["Code"], "InvalidTask");
    assert!(
        bad.json()["Errors"][0]["Path"].as_str().is_some_and(|p| p.starts_with("containerDefinitions[0]")),
        "{}",
        bad.text
    );
    let bad = n2
        .api
        .post(
            "/v1/cluster/tasks",
            body("bad", 64, json!({"placementStrategy": [{"type": "binpack", "field": "disk"}]})),
            None,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(
        bad.json()["Errors"][0]["Path"].as_str().is_some_and(|p| p.starts_with("placementStrategy[0]")),
        "{}",
        bad.text
    );
    let privileged = json!({"family": "p", "containerDefinitions": [{"name": "main", "image": "busybox:latest",
        "memory": 64, "privileged": true}]});
    let refused = n1.api.post("/v1/cluster/tasks", privileged.to_string(), None).await;
    assert_eq!(refused.status, 400, "the host policy refuses: {}", refused.text);
    let listed = n1.api.get("/v1/cluster/tasks").await.json();
    assert_eq!(listed, json!([]), "nothing refused was stored");

    // Four tasks of 200 MiB through both nodes (512 MiB each): two on each.
    let mut ids = Vec::new();
    for k in 0..4 {
        let api = if k % 2 == 0 { &n1.api } else { &n2.api };
        let answer =
            api.post(&format!("/v1/cluster/tasks?clientToken=tok-{k}"), body("web", 200, json!({})), None).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        ids.push(answer.json()["Task"]["task"]["id"].as_str().expect("id").to_string());
    }
    // A retry with the same token, through the other node: the same task.
    let again = n2.api.post("/v1/cluster/tasks?clientToken=tok-0", body("web", 200, json!({})), None).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["Task"]["task"]["id"], ids[0].as_str());
    let conflict = n2.api.post("/v1/cluster/tasks?clientToken=tok-0", body("web", 100, json!({})), None).await;
    assert_eq!(conflict.status, 409, "{}", conflict.text);

    let placed = wait_for("four tasks RUNNING", async || {
        let tasks = n2.api.get("/v1/cluster/tasks").await.json();
        let tasks = tasks.as_array()?;
        let mut nodes = Vec::new();
        for id in &ids {
            let t = tasks.iter().find(|t| t["task"]["id"] == id.as_str())?;
            let node = t["placement"]["node"].as_str()?.to_string();
            (t["status"][&node]["status"] == "RUNNING").then_some(())?;
            nodes.push(node);
        }
        Some(nodes)
    })
    .await;
    assert_eq!(placed.iter().filter(|n| *n == "n1").count(), 2, "{placed:?}");
    assert_eq!(placed.iter().filter(|n| *n == "n2").count(), 2, "{placed:?}");
    // Each node runs its two in its own engine, visible in its own introspection API.
    for n in [&n1, &n2] {
        let local = n.api.get("/v1/tasks").await.json();
        assert_eq!(local["Tasks"].as_array().map(Vec::len), Some(2), "{local}");
    }

    // A fifth fits nowhere: it waits, with the reason visible.
    let fifth = n1.api.post("/v1/cluster/tasks", body("web", 200, json!({})), None).await;
    let fifth = fifth.json()["Task"]["task"]["id"].as_str().expect("id").to_string();
    let pending = wait_for("the fifth waits", async || {
        let t = n1.api.get(&format!("/v1/cluster/tasks/{fifth}")).await.json();
        (!t["pending"].is_null()).then_some(t["pending"].clone())
    })
    .await;
    assert_eq!(pending["state"], "WAITING", "{pending}");

    let nodes = n1.api.get("/v1/cluster/nodes").await.json();
    assert!(nodes["leader"].is_string(), "{nodes}");
    for n in nodes["nodes"].as_array().expect("nodes") {
        assert_eq!(n["used"]["memoryMib"], 400, "{n}");
        assert!(!n["alive"]["epoch"].is_null());
    }

    // Stopping one makes room: the waiting one is placed.
    let stopped = n2.api.post(&format!("/v1/cluster/tasks/{}/stop", ids[0]), Vec::new(), None).await;
    assert_eq!(stopped.status, 202, "{}", stopped.text);
    wait_for("the fifth placed once the first stopped", async || {
        let t = n1.api.get(&format!("/v1/cluster/tasks/{fifth}")).await.json();
        let node = t["placement"]["node"].as_str()?.to_string();
        (t["status"][&node]["status"] == "RUNNING").then_some(())
    })
    .await;

    // The events from the start: the first task's create, then its placement and status,
    // in revision order.
    let mut events = n2.api.stream("/v1/cluster/events?from=1").await;
    assert_eq!(events.status(), 200);
    let (mut pending, mut seen) = (Vec::new(), Vec::<Value>::new());
    while !seen.iter().any(|e| e["kind"] == "status" && e["task"] == ids[0].as_str()) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
            .await
            .expect("an event within 10 s")
            .expect("the stream")
            .expect("not ended");
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            seen.push(serde_json::from_slice(&line).expect("a JSON line"));
        }
    }
    let revisions: Vec<i64> = seen.iter().map(|e| e["revision"].as_i64().expect("revision")).collect();
    assert!(revisions.windows(2).all(|w| w[0] <= w[1]), "in revision order: {revisions:?}");
    let first = |kind: &str| seen.iter().position(|e| e["kind"] == kind && e["task"] == ids[0].as_str());
    assert!(first("task").is_some(), "{seen:?}");
    assert!(first("task") < first("placement") && first("placement") < first("status"), "{seen:?}");
    drop(events);
    n1.agent.shutdown().await.expect("shutdown n1");
    n2.agent.shutdown().await.expect("shutdown n2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_host_daemon_answers_the_cluster_routes_with_409() {
    let dir = tempfile::Builder::new().prefix("berth-cluster-none-").tempdir().expect("tempdir");
    let config = support::config(dir.path());
    let fake = FakeDocker::new();
    let agent = Agent::start(&config, Arc::new(fake)).await.expect("start");
    let api = Api::unix(agent.socket_path());
    for path in ["/v1/cluster/tasks", "/v1/cluster/nodes", "/v1/cluster/events"] {
        let answer = api.get(path).await;
        assert_eq!(answer.status, 409, "{path}: {}", answer.text);
        assert_eq!(answer.json()["Code"], "NotInCluster");
    }
    agent.shutdown().await.expect("shutdown");
}
