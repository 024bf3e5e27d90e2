//! The task metadata endpoint's answers on the fake Docker, key by key against the ECS
//! agent's v3 and v4 shapes (which keys, their types, what is left out), the 404 of an
//! unknown id, and that an id sees its own task only.

mod support;

use berth_agent::{Agent, AgentConfig};
use berth_model::Task;
use berth_testutils::{Behaviour, FakeDocker};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::Api;

const WEB: &str = r#"{"family": "shapes", "cpu": "512", "memory": "256",
  "volumes": [{"name": "data", "host": {"sourcePath": "/tmp"}}, {"name": "scratch"}],
  "containerDefinitions": [
    {"name": "web", "image": "busybox:latest", "cpu": 128, "memory": 64, "essential": true,
     "portMappings": [{"containerPort": 80, "hostPort": 0}],
     "dockerLabels": {"team": "blue"},
     "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}, {"sourceVolume": "scratch", "containerPath": "/s"}],
     "healthCheck": {"command": ["CMD-SHELL", "true"]},
     "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}}},
    {"name": "side", "image": "busybox:latest", "essential": false, "memoryReservation": 16}]}"#;

async fn agent_on_fake(change: impl FnOnce(&mut AgentConfig)) -> (Agent, FakeDocker, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("berth-metadata-").tempdir().expect("tempdir");
    let mut config = support::config(dir.path());
    config.cluster = "shapes-cluster".into();
    // The host volume of the task below.
    config.host.allowed_host_paths = vec!["/tmp".into()];
    change(&mut config);
    let fake = FakeDocker::new();
    fake.add_image("busybox:latest");
    fake.set_behaviour(|_| Behaviour::forever());
    let agent = Agent::start(&config, Arc::new(fake.clone())).await.expect("start");
    (agent, fake, dir)
}

fn endpoint(agent: &Agent) -> Api {
    let host: SocketAddr = agent.metadata_endpoint().and_then(|e| e.host).expect("the endpoint listens on loopback");
    Api::tcp(host)
}

fn parse(json: &str, n: u128) -> Task {
    let options = berth_model::input::ParseOptions { family: None, arn_random: n };
    berth_model::input::parse(json.as_bytes(), &options).map(|a| a.task).unwrap_or_else(|r| panic!("{r}"))
}

/// Add `task` and wait until every container is RUNNING; the task as the engine holds it.
async fn running(agent: &Agent, task: Task) -> Task {
    let arn = task.arn.clone();
    agent.engine().add_task(task).await.expect("add");
    for _ in 0..300 {
        let t = agent.engine().task(&arn).await.expect("engine").expect("held");
        if t.known_status == berth_model::TaskStatus::Running
            && t.containers.iter().all(|c| c.known_status == berth_model::ContainerStatus::Running)
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = agent.engine().task(&arn).await.expect("engine");
    panic!("{arn} never ran: {t:#?}");
}

fn id_of(task: &Task, name: &str) -> String {
    task.container(name).and_then(|c| c.metadata_id.clone()).expect("metadata id")
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

/// RFC 3339 in UTC with nanoseconds.
fn assert_time(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert!(chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z'), "{what}: {s}");
    assert_eq!(s.split('.').nth(1).map(|f| f.len()), Some(10), "{what}: nanoseconds: {s}");
}

const CONTAINER_V3: &[&str] = &[
    "DockerId",
    "Name",
    "DockerName",
    "Image",
    "ImageID",
    "Labels",
    "DesiredStatus",
    "KnownStatus",
    "Limits",
    "CreatedAt",
    "StartedAt",
    "Type",
    "Networks",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_and_v3_answers_have_ecs_s_keys_types_and_omissions() {
    let (agent, fake, _dir) = agent_on_fake(|_| {}).await;
    let task = running(&agent, parse(WEB, 1)).await;
    let api = endpoint(&agent);
    let web = task.container("web").expect("web");
    let side = task.container("side").expect("side");

    let answer = api.get(&format!("/v4/{}", id_of(&task, "web"))).await;
    assert_eq!((answer.status, answer.content_type.as_str()), (200, "application/json"));
    let c = answer.json();
    let mut expected = set(CONTAINER_V3);
    expected.extend(["Ports", "Health", "Volumes", "LogDriver", "LogOptions", "ContainerARN"]);
    assert_eq!(keys(&c), expected, "{c:#}");
    assert_eq!(c["DockerId"], web.docker_id.as_deref().expect("id"));
    assert_eq!(c["Name"], "web");
    assert_eq!(c["DockerName"], web.docker_name.as_deref().expect("name"));
    assert_eq!(c["Image"], "busybox:latest");
    assert!(c["ImageID"].as_str().is_some_and(|i| i.starts_with("sha256:")), "{}", c["ImageID"]);
    let docker_port = web.known_port_bindings[0].host_port;
    assert_eq!(
        c["Ports"],
        serde_json::json!([{"ContainerPort": 80, "Protocol": "tcp", "HostPort": docker_port, "HostIp": web.known_port_bindings[0].bind_ip}])
    );
    assert_eq!(c["Labels"]["team"], "blue");
    assert_eq!((c["DesiredStatus"].as_str(), c["KnownStatus"].as_str()), (Some("RUNNING"), Some("RUNNING")));
    assert_eq!(keys(&c["Limits"]), set(&["CPU", "Memory"]));
    assert_eq!((c["Limits"]["CPU"].as_f64(), c["Limits"]["Memory"].as_u64()), (Some(128.0), Some(64)));
    assert_time(&c["CreatedAt"], "CreatedAt");
    assert_time(&c["StartedAt"], "StartedAt");
    assert_eq!(c["Type"], "NORMAL");
    assert_eq!(c["Networks"].as_array().map(Vec::len), Some(1));
    assert_eq!(keys(&c["Networks"][0]), set(&["NetworkMode", "IPv4Addresses"]));
    assert_eq!(c["Networks"][0]["NetworkMode"], "bridge");
    assert!(c["Networks"][0]["IPv4Addresses"][0].as_str().is_some_and(|ip| ip.starts_with("172.17.")));
    assert_eq!(c["Health"], serde_json::json!({"status": "UNKNOWN"}), "lower-case keys");
    assert_eq!(
        c["Volumes"],
        serde_json::json!([{"Source": "/tmp", "Destination": "/data"},
            {"DockerName": task.docker_volume_name(task.volume("scratch").expect("scratch")), "Destination": "/s"}])
    );
    assert_eq!(
        (c["LogDriver"].as_str(), &c["LogOptions"]),
        (Some("json-file"), &serde_json::json!({"max-size": "1m"}))
    );
    assert_eq!(c["ContainerARN"], format!("{}/web", task.arn));

    // v3: the same without what v4 added.
    let c3 = api.get(&format!("/v3/{}", id_of(&task, "web"))).await.json();
    let mut expected3 = set(CONTAINER_V3);
    expected3.extend(["Ports", "Health", "Volumes"]);
    assert_eq!(keys(&c3), expected3, "{c3:#}");

    // The task: every container, task-level limits in vCPU, the always-present keys.
    for (version, extra) in [("v4", vec!["FaultInjectionEnabled"]), ("v3", vec![])] {
        let t = api.get(&format!("/{version}/{}/task", id_of(&task, "side"))).await.json();
        let mut expected = set(&[
            "Cluster",
            "TaskARN",
            "Family",
            "Revision",
            "DesiredStatus",
            "KnownStatus",
            "Containers",
            "Limits",
            "PullStartedAt",
            "PullStoppedAt",
            "LaunchType",
        ]);
        expected.extend(extra);
        assert_eq!(keys(&t), expected, "{version}: {t:#}");
        assert_eq!(t["Cluster"], "shapes-cluster");
        assert_eq!(t["TaskARN"], task.arn.as_str());
        assert_eq!(t["Family"], "shapes");
        assert!(t["Revision"].is_string(), "Revision is a string: {}", t["Revision"]);
        assert_eq!(t["Revision"], task.version.as_str());
        assert_eq!((t["DesiredStatus"].as_str(), t["KnownStatus"].as_str()), (Some("RUNNING"), Some("RUNNING")));
        assert_eq!(t["Limits"], serde_json::json!({"CPU": 0.5, "Memory": 256}));
        assert_eq!(t["LaunchType"], "EXTERNAL");
        assert_time(&t["PullStartedAt"], "PullStartedAt");
        assert_time(&t["PullStoppedAt"], "PullStoppedAt");
        let pull_time = |key: &str| t[key].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        assert!(pull_time("PullStartedAt") <= pull_time("PullStoppedAt"), "{t:#}");
        if version == "v4" {
            assert_eq!(t["FaultInjectionEnabled"], false);
        }
        let containers = t["Containers"].as_array().expect("containers");
        let names: BTreeSet<&str> = containers.iter().filter_map(|c| c["Name"].as_str()).collect();
        assert_eq!(names, set(&["side", "web"]));
        let s = containers.iter().find(|c| c["Name"] == "side").expect("side");
        // No ports, labels of its own only (Docker's), no health check, volumes or driver.
        let mut side_keys = set(CONTAINER_V3);
        if version == "v4" {
            side_keys.insert("ContainerARN");
        }
        assert_eq!(keys(s), side_keys, "{s:#}");
        assert_eq!(s["DockerId"], side.docker_id.as_deref().expect("id"));
        assert_eq!((s["Limits"]["CPU"].as_f64(), s["Limits"]["Memory"].as_u64()), (Some(0.0), Some(0)));
    }

    // Stopped: exit codes and finish times appear, and the task's stop time.
    agent.engine().stop_task(&task.arn).await.expect("stop");
    let mut stopped = Value::Null;
    for _ in 0..300 {
        stopped = api.get(&format!("/v4/{}/task", id_of(&task, "web"))).await.json();
        if stopped["KnownStatus"] == "STOPPED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stopped["KnownStatus"], "STOPPED", "{stopped:#}");
    assert_eq!(stopped["DesiredStatus"], "STOPPED");
    assert_time(&stopped["ExecutionStoppedAt"], "ExecutionStoppedAt");
    for c in stopped["Containers"].as_array().expect("containers") {
        assert!(c["ExitCode"].is_i64(), "{c:#}");
        assert_time(&c["FinishedAt"], "FinishedAt");
        assert!(
            c.get("Networks").is_none_or(|n| n[0].get("IPv4Addresses").is_none()),
            "no address once stopped: {c:#}"
        );
    }
    drop(fake);
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_in_flight_shows_when_it_started_and_no_stop_time() {
    let (agent, fake, _dir) = agent_on_fake(|_| {}).await;
    fake.delay(berth_testutils::Op::PullImage, Duration::from_secs(600));
    let task = parse(WEB, 3);
    let arn = task.arn.clone();
    agent.engine().add_task(task).await.expect("add");
    let mut held = None;
    for _ in 0..300 {
        held = agent.engine().task(&arn).await.expect("engine");
        if held.as_ref().is_some_and(|t| t.pull_started_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = held.filter(|t| t.pull_started_at.is_some()).expect("a pull was issued");
    let t = endpoint(&agent).get(&format!("/v4/{}/task", id_of(&held, "web"))).await.json();
    assert_time(&t["PullStartedAt"], "PullStartedAt");
    assert!(t.get("PullStoppedAt").is_none(), "no pull has ended: {t:#}");
    fake.delay(berth_testutils::Op::PullImage, Duration::ZERO);
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_is_ecs_s_404_and_an_id_sees_its_own_task_only() {
    let (agent, _fake, _dir) = agent_on_fake(|_| {}).await;
    let a = running(&agent, parse(WEB, 1)).await;
    let b = running(&agent, parse(&WEB.replace("\"shapes\"", "\"other\""), 2)).await;
    let api = endpoint(&agent);
    let unknowns =
        ["00000000000000000000000000000000".to_string(), "x".into(), a.arn.replace('/', "%2F"), "web".into()];
    for id in &unknowns {
        for (version, upper) in [("v4", "V4"), ("v3", "V3")] {
            for (suffix, handler) in [
                ("", "container metadata"),
                ("/task", "task metadata"),
                ("/stats", "container stats"),
                ("/task/stats", "task stats"),
            ] {
                let answer = api.get(&format!("/{version}/{id}{suffix}")).await;
                assert_eq!(
                    (answer.status, answer.content_type.as_str()),
                    (404, "application/json"),
                    "{version}{suffix} {id}"
                );
                let body = answer.json();
                let message = body.as_str().unwrap_or_else(|| panic!("a JSON string: {body}"));
                assert!(message.starts_with(&format!("{upper} {handler} handler: unable to get ")), "{message}");
                assert!(message.ends_with(&id.replace("%2F", "/")), "{message}");
            }
        }
    }
    assert_eq!(api.get(&format!("/v2/{}", id_of(&a, "web"))).await.status, 404, "only v3 and v4");

    // Each id answers about its own task, and nothing of the other is in the answer.
    for (own, other) in [(&a, &b), (&b, &a)] {
        for name in ["web", "side"] {
            let t = api.get(&format!("/v4/{}/task", id_of(own, name))).await;
            assert_eq!(t.json()["TaskARN"], own.arn.as_str());
            for c in &other.containers {
                for secret in
                    [c.docker_id.as_deref(), c.metadata_id.as_deref(), Some(other.arn.as_str())].into_iter().flatten()
                {
                    assert!(!t.text.contains(secret), "{}'s answer shows {secret} of the other task", own.arn);
                }
            }
            let c = api.get(&format!("/v4/{}", id_of(own, name))).await.json();
            assert_eq!(c["DockerId"], own.container(name).and_then(|c| c.docker_id.as_deref()).expect("id"));
        }
    }
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_docker_s_sample_with_ecs_s_network_rates() {
    let (agent, _fake, _dir) = agent_on_fake(|_| {}).await;
    let task = running(&agent, parse(WEB, 1)).await;
    let api = endpoint(&agent);
    let web_id = task.container("web").and_then(|c| c.docker_id.clone()).expect("id");
    let path = format!("/v4/{}/stats", id_of(&task, "web"));
    let first = api.get(&path).await.json();
    for key in ["read", "preread", "cpu_stats", "precpu_stats", "memory_stats", "networks", "pids_stats", "blkio_stats"]
    {
        assert!(first.get(key).is_some(), "{key} in {first:#}");
    }
    assert_eq!(first["id"], web_id.as_str());
    assert!(first.get("network_rate_stats").is_none(), "no earlier sample to compare with");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = api.get(&path).await.json();
    let rates = &second["network_rate_stats"];
    assert_eq!(keys(rates), set(&["rx_bytes_per_sec", "tx_bytes_per_sec"]), "{second:#}");
    // The fake's counters grew by 1,000 and 500 bytes between the two samples.
    let (rx, tx) = (rates["rx_bytes_per_sec"].as_f64().expect("rx"), rates["tx_bytes_per_sec"].as_f64().expect("tx"));
    assert!(rx > 0.0 && (rx / tx - 2.0).abs() < 1e-9, "{rates}");

    let v3 = api.get(&format!("/v3/{}/stats", id_of(&task, "web"))).await.json();
    assert!(v3.get("network_rate_stats").is_none() && v3.get("cpu_stats").is_some(), "v3: Docker's sample as it is");

    let all = api.get(&format!("/v4/{}/task/stats", id_of(&task, "side"))).await.json();
    let ids: BTreeSet<String> = task.containers.iter().filter_map(|c| c.docker_id.clone()).collect();
    assert_eq!(all.as_object().expect("object").keys().cloned().collect::<BTreeSet<_>>(), ids);
    for (id, sample) in all.as_object().expect("object") {
        assert_eq!(sample["id"], id.as_str());
    }
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_can_be_off_and_then_containers_get_no_variables() {
    let (agent, fake, _dir) = agent_on_fake(|c| c.metadata_port = None).await;
    assert!(agent.metadata_endpoint().is_none());
    let task = running(&agent, parse(WEB, 1)).await;
    for c in fake.containers() {
        assert!(!c.config.env.iter().any(|e| e.starts_with("ECS_CONTAINER_METADATA_URI")), "{:?}", c.config.env);
    }
    drop(task);
    agent.shutdown().await.expect("shutdown");
}

/// `RestartCount` is v4's, and only on a container whose restart policy is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_count_is_shown_in_v4_only_with_a_restart_policy() {
    const POLICY: &str = r#"{"family": "restarts", "containerDefinitions": [
      {"name": "app", "image": "busybox:latest", "essential": true, "restartPolicy": {"enabled": true}},
      {"name": "plain", "image": "busybox:latest", "essential": false}]}"#;
    let (agent, _fake, _dir) = agent_on_fake(|_| {}).await;
    let task = running(&agent, parse(POLICY, 7)).await;
    let api = endpoint(&agent);
    let app = api.get(&format!("/v4/{}", id_of(&task, "app"))).await.json();
    assert_eq!(app["RestartCount"], 0, "{app:#}");
    let v3 = api.get(&format!("/v3/{}", id_of(&task, "app"))).await.json();
    assert!(v3.get("RestartCount").is_none(), "{v3:#}");
    let plain = api.get(&format!("/v4/{}", id_of(&task, "plain"))).await.json();
    assert!(plain.get("RestartCount").is_none(), "{plain:#}");
    agent.shutdown().await.expect("shutdown");
}
