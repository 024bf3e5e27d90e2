//! The task metadata endpoint on the real Docker daemon, read from inside containers with
//! busybox `wget` through the variables berth sets: each container reads its own
//! `/v4/<id>` and `/v4/<id>/task` in bridge, host and awsvpc mode, gets a 404 for the id
//! of another berth's task, and still reads its own after the daemon restarted.

mod support;

use berth_agent::Agent;
use berth_model::{Task, TaskStatus};
use serde_json::Value;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::{Cleanup, docker};

/// The container's script: its own container and task, then the other task's id.
const SCRIPT: &str = r#"base="$ECS_CONTAINER_METADATA_URI_V4"; echo "URI $base"; echo "V3 $ECS_CONTAINER_METADATA_URI";
echo "IP $(ip -o -4 addr show eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)";
wget -q -O - "$base"; echo; echo ===; wget -q -O - "$base/task"; echo; echo ===;
if wget -q -O - "${base%/*}/$OTHER" >/dev/null 2>/tmp/err; then echo OTHER-VISIBLE; else echo "OTHER-REFUSED $(cat /tmp/err)"; fi"#;

fn task_json(family: &str, mode: &str, command: &str, other: &str) -> String {
    serde_json::json!({
        "family": family, "networkMode": mode,
        "containerDefinitions": [{
            "name": "main", "image": "busybox:latest", "memory": 32, "essential": true,
            "command": ["sh", "-c", command],
            "environment": [{"name": "OTHER", "value": other}],
        }],
    })
    .to_string()
}

fn parse(json: &str) -> Task {
    let options = berth_model::input::ParseOptions { family: None, arn_random: rand::random() };
    berth_model::input::parse(json.as_bytes(), &options).map(|a| a.task).unwrap_or_else(|r| panic!("{r}"))
}

async fn start(dir: &std::path::Path, port: u16) -> (Agent, Cleanup) {
    let mut config = support::config(dir);
    config.metadata_port = Some(port);
    config.host.allow_host_network = true;
    let agent = Agent::start(&config, Arc::new(docker().await)).await.unwrap_or_else(|e| panic!("start: {e}"));
    let instance = std::fs::read_to_string(dir.join("instance-id")).expect("instance id").trim().to_string();
    (agent, Cleanup { instance })
}

/// Wait until the engine holds `arn` at `status` (60 s at most).
async fn wait_for(agent: &Agent, arn: &str, status: TaskStatus) -> Task {
    for _ in 0..600 {
        if let Some(t) = agent.engine().task(arn).await.expect("engine")
            && t.known_status >= status
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{arn} never reached {status}");
}

fn docker_logs(id: &str) -> String {
    let out = Command::new("docker").args(["logs", id]).output().expect("docker logs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn json_part(part: &str) -> Value {
    serde_json::from_str(part.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {part}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_reads_its_own_metadata_from_inside_in_bridge_host_and_awsvpc_mode() {
    let dir = tempfile::Builder::new().prefix("berth-metadata-real-").tempdir().expect("tempdir");
    let (agent, _cleanup) = start(dir.path(), 0).await;
    let endpoint = agent.metadata_endpoint().cloned().expect("the endpoint is on");
    let bridge = endpoint.bridge.expect("Docker gave its bridge gateway");
    let host = endpoint.host.expect("loopback");

    // A task of another berth on the same host, whose id the containers of this one try
    // on their own endpoint.
    let other_dir = tempfile::Builder::new().prefix("berth-metadata-other-").tempdir().expect("tempdir");
    let (other_berth, _other_cleanup) = start(other_dir.path(), 0).await;
    let other = parse(&task_json("meta-other", "bridge", "sleep 30", ""));
    let other_arn = other.arn.clone();
    other_berth.engine().add_task(other).await.expect("add");
    let other_task = wait_for(&other_berth, &other_arn, TaskStatus::Running).await;
    let other_id = other_task.containers[0].metadata_id.clone().expect("id");

    for (mode, address) in [("bridge", bridge), ("host", host), ("awsvpc", bridge)] {
        let task = parse(&task_json(&format!("meta-{mode}"), mode, SCRIPT, &other_id));
        let arn = task.arn.clone();
        agent.engine().add_task(task).await.expect("add");
        let task = wait_for(&agent, &arn, TaskStatus::Stopped).await;
        let main = task.container("main").expect("main");
        let docker_id = main.docker_id.clone().expect("created");
        let id = main.metadata_id.clone().expect("id");
        let output = docker_logs(&docker_id);
        assert_eq!(main.known_exit_code, Some(0), "{mode}: {output}");
        let mut lines = output.lines();
        assert_eq!(lines.next(), Some(format!("URI http://{address}/v4/{id}").as_str()), "{mode}: {output}");
        assert_eq!(lines.next(), Some(format!("V3 http://{address}/v3/{id}").as_str()), "{mode}: {output}");
        let own_ip = lines.next().and_then(|l| l.strip_prefix("IP ")).unwrap_or_else(|| panic!("{mode}: {output}"));
        let rest: String = lines.collect::<Vec<_>>().join("\n");
        let parts: Vec<&str> = rest.split("===").collect();
        assert_eq!(parts.len(), 3, "{mode}: {output}");
        let own = json_part(parts[0]);
        assert_eq!(own["DockerId"], docker_id.as_str(), "{mode}: {own:#}");
        assert_eq!(own["Name"], "main");
        // Running already; berth may not have seen its start yet.
        assert!(matches!(own["KnownStatus"].as_str(), Some("CREATED" | "RUNNING")), "{own:#}");
        assert_eq!(own["ContainerARN"], format!("{arn}/main"));
        let network = &own["Networks"][0];
        match mode {
            "host" => assert_eq!(network["NetworkMode"], "host", "{own:#}"),
            _ => {
                assert_eq!(network["NetworkMode"], mode, "{own:#}");
                // The address the container has on its eth0 (awsvpc: the pause container's namespace).
                assert!(!own_ip.is_empty(), "{mode}: {output}");
                assert_eq!(network["IPv4Addresses"], serde_json::json!([own_ip]), "{own:#}");
            }
        }
        let t = json_part(parts[1]);
        assert_eq!(t["TaskARN"], arn.as_str(), "{mode}: {t:#}");
        assert_eq!((t["LaunchType"].as_str(), t["Revision"].is_string()), (Some("EXTERNAL"), true));
        // main's pull ended before it was created (the pause image's making is no pull).
        assert!(t["PullStartedAt"].is_string() && t["PullStoppedAt"].is_string(), "{mode}: {t:#}");
        let names: Vec<&str> =
            t["Containers"].as_array().expect("containers").iter().filter_map(|c| c["Name"].as_str()).collect();
        let expected: &[&str] = if mode == "awsvpc" { &["main", "~pause"] } else { &["main"] };
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected, "{mode}: its own containers only");
        assert!(!t.to_string().contains(&other_arn), "{mode}: nothing of the other task");
        let verdict = parts[2].trim();
        assert!(
            verdict.starts_with("OTHER-REFUSED") && verdict.contains("404"),
            "{mode}: another berth's task id: {verdict}"
        );
    }
    other_berth.engine().stop_task(&other_arn).await.expect("stop");
    other_berth.shutdown().await.expect("shutdown");
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_survive_a_daemon_restart() {
    let dir = tempfile::Builder::new().prefix("berth-metadata-restart-").tempdir().expect("tempdir");
    // A port both runs use: the running container keeps the address it was created with.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let (first, _cleanup) = start(dir.path(), port).await;
    let task = parse(&task_json("meta-restart", "bridge", "sleep 120", ""));
    let arn = task.arn.clone();
    first.engine().add_task(task).await.expect("add");
    let before = wait_for(&first, &arn, TaskStatus::Running).await;
    let id = before.containers[0].metadata_id.clone().expect("id");
    let docker_id = before.containers[0].docker_id.clone().expect("created");
    let read_path = |suffix: &str| {
        let script = format!(r#"wget -q -O - "$ECS_CONTAINER_METADATA_URI_V4{suffix}""#);
        let out = Command::new("docker").args(["exec", &docker_id, "sh", "-c", &script]).output().expect("docker exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let read = || read_path("");
    let (ok, answer, err) = read();
    assert!(ok, "before the restart: {err}");
    assert_eq!(json_part(&answer)["DockerId"], docker_id.as_str());
    first.shutdown().await.expect("shutdown");
    let (down, _, _) = read();
    assert!(!down, "nothing answers while the daemon is down");

    let (second, _cleanup2) = start(dir.path(), port).await;
    let after = wait_for(&second, &arn, TaskStatus::Running).await;
    assert_eq!(after.containers[0].metadata_id.as_deref(), Some(id.as_str()), "the same id");
    let (ok, answer, err) = read();
    assert!(ok, "after the restart: {err}");
    let own = json_part(&answer);
    assert_eq!((own["DockerId"].as_str(), own["KnownStatus"].as_str()), (Some(docker_id.as_str()), Some("RUNNING")));

    // Docker's stats, one sample each; the second with ECS's network rates.
    let (ok, first, err) = read_path("/stats");
    assert!(ok, "stats: {err}");
    let first = json_part(&first);
    assert_eq!(first["id"], docker_id.as_str(), "{first:#}");
    assert!(first["cpu_stats"]["cpu_usage"]["total_usage"].is_u64() && first["networks"].is_object(), "{first:#}");
    let (ok, again, err) = read_path("/stats");
    assert!(ok, "stats: {err}");
    let again = json_part(&again);
    let rates = &again["network_rate_stats"];
    assert!(rates["rx_bytes_per_sec"].is_f64() && rates["tx_bytes_per_sec"].is_f64(), "{again:#}");
    let (ok, all, err) = read_path("/task/stats");
    assert!(ok, "task stats: {err}");
    assert!(json_part(&all)[docker_id.as_str()]["memory_stats"].is_object(), "{all}");
    second.engine().stop_task(&arn).await.expect("stop");
    wait_for(&second, &arn, TaskStatus::Stopped).await;
    second.shutdown().await.expect("shutdown");
}
