//! API behaviour that needs control over Docker (the in-memory fake): an ambiguous short
//! docker id, the task sweep and image cleanup showing in the metrics, and the caps on
//! the errors and warnings of a submission.

mod support;

use berth_agent::{Agent, AgentConfig};
use berth_testutils::{Behaviour, FakeDocker};
use std::sync::Arc;
use std::time::Duration;
use support::{Api, encode, task};

async fn agent_on_fake(change: impl FnOnce(&mut AgentConfig)) -> (Agent, Api, FakeDocker, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("berth-api-fake-").tempdir().expect("tempdir");
    let mut config = support::config(dir.path());
    change(&mut config);
    let fake = FakeDocker::new();
    fake.add_image("busybox:latest");
    fake.add_registry_image("busybox:latest");
    let agent = Agent::start(&config, Arc::new(fake.clone())).await.expect("start");
    let api = Api::unix(agent.socket_path());
    (agent, api, fake, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_short_docker_id_is_400_and_a_unique_one_answers() {
    let (agent, api, _fake, _dir) = agent_on_fake(|_| {}).await;
    let mut arns = Vec::new();
    // 17 containers: two of them share their first hex digit.
    for i in 0..17 {
        let answer = api.post("/v1/tasks", task(&format!("amb-{i}"), "sleep 60", serde_json::Value::Null), None).await;
        assert_eq!(answer.status, 201);
        arns.push(answer.json()["Arn"].as_str().expect("arn").to_string());
    }
    let mut ids = Vec::new();
    for arn in &arns {
        let view = api.wait_known(arn, "RUNNING").await;
        ids.push(view["Containers"][0]["DockerId"].as_str().expect("id").to_string());
    }
    let shared = ids
        .iter()
        .map(|id| &id[..1])
        .find(|first| ids.iter().filter(|id| id.starts_with(*first)).count() >= 2)
        .expect("pigeonhole");
    let ambiguous = api.get(&format!("/v1/tasks?dockerid={shared}")).await;
    assert_eq!(ambiguous.status, 400, "{}", ambiguous.text);
    assert!(ambiguous.json()["Message"].as_str().is_some_and(|m| m.contains("ambiguous")));
    let one = api.get(&format!("/v1/tasks?dockerid={}", &ids[3][..12])).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["Arn"], arns[3].as_str());
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_and_image_cleanup_show_in_the_metrics() {
    let (agent, api, fake, _dir) = agent_on_fake(|c| {
        c.task_cleanup_wait = Duration::from_secs(1);
        c.image_cleanup.interval = Duration::from_millis(200);
    })
    .await;
    fake.set_behaviour(|_| Behaviour::exits_after(Duration::from_millis(100), 0));
    let answer = api.post("/v1/tasks", task("sweep", "true", serde_json::Value::Null), None).await;
    assert_eq!(answer.status, 201);
    let arn = answer.json()["Arn"].as_str().expect("arn").to_string();
    api.wait_known(&arn, "STOPPED").await;
    // Swept after the wait: the task is gone, the container removed, and it is counted.
    let mut gone = false;
    for _ in 0..100 {
        if api.get(&format!("/v1/tasks/{}", encode(&arn))).await.status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the task was swept");
    assert!(fake.containers().is_empty(), "its container was removed");
    let metrics = api.get("/metrics").await.text;
    assert!(metrics.contains("berth_tasks_swept_total 1"), "{metrics}");
    let cycles = metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_image_cleanup_cycles_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(cycles >= 1.0, "image cleanup ran: {metrics}");
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_with_50000_errors_lists_100_and_counts_the_rest() {
    // The default body limit (the tests' configuration has a smaller one).
    let (agent, api, _fake, _dir) = agent_on_fake(|c| c.body_limit = 1024 * 1024).await;
    // 50 containers of 1,000 environment entries with an invalid name each.
    let containers: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            let env: Vec<serde_json::Value> = (0..1000).map(|_| serde_json::json!({"name": "="})).collect();
            serde_json::json!({"name": format!("c{i}"), "image": "busybox", "environment": env})
        })
        .collect();
    let body = serde_json::json!({"family": "many", "containerDefinitions": containers}).to_string();
    assert!(body.len() < 1024 * 1024, "within the body limit: {} bytes", body.len());
    let answer = api.post("/v1/tasks", body, None).await;
    assert_eq!(answer.status, 400, "{}", &answer.text[..answer.text.len().min(500)]);
    let json = answer.json();
    assert_eq!(json["Code"], "InvalidTask");
    assert_eq!(json["Errors"].as_array().map(Vec::len), Some(100));
    assert_eq!(json["ErrorsOmitted"], 49_900);
    assert_eq!(json["Errors"][0]["Path"], "containerDefinitions[0].environment[0].name");
    assert_eq!(
        json["Message"],
        "invalid task definition: containerDefinitions[0].environment[0].name: \"=\" is not a valid environment \
         variable name (and 99 more in Errors), and 49900 more not listed (ErrorsOmitted)"
    );
    assert!(answer.text.len() < 20_000, "the answer stays small: {} bytes", answer.text.len());

    // Warnings: 20,000 unknown keys, accepted with the first 100 listed.
    let mut container = serde_json::json!({"name": "main", "image": "busybox:latest", "command": ["sleep", "60"]});
    if let Some(c) = container.as_object_mut() {
        c.extend((0..20_000).map(|i| (format!("unknown{i}"), serde_json::json!(1))));
    }
    let body = serde_json::json!({"family": "noisy", "containerDefinitions": [container]}).to_string();
    let answer = api.post("/v1/tasks", body, None).await;
    assert_eq!(answer.status, 201, "{}", &answer.text[..answer.text.len().min(500)]);
    let json = answer.json();
    assert_eq!(json["Warnings"].as_array().map(Vec::len), Some(100));
    assert_eq!(json["WarningsOmitted"], 19_900);
    agent.shutdown().await.expect("shutdown");
}

/// Issue 14 item 8: `POST /v1/tasks?clientToken=` is idempotent, across a restart too: a
/// retry gives the same task, never a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_retried_with_its_client_token_gives_the_same_task_across_restarts() {
    let (agent, api, fake, dir) = agent_on_fake(|_| {}).await;
    let body = || task("idem", "sleep 60", serde_json::Value::Null);
    let first = api.post("/v1/tasks?clientToken=retry-1", body(), None).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let arn = first.json()["Arn"].as_str().expect("arn").to_string();
    let again = api.post("/v1/tasks?clientToken=retry-1", body(), None).await;
    assert_eq!((again.status, again.json()["Arn"].as_str()), (200, Some(arn.as_str())), "{}", again.text);
    let other =
        api.post("/v1/tasks?clientToken=retry-1", task("idem", "sleep 61", serde_json::Value::Null), None).await;
    assert_eq!(other.status, 409, "a different definition under the same token: {}", other.text);
    for bad in ["", "%20spaces%20", &"x".repeat(65)] {
        let answer = api.post(&format!("/v1/tasks?clientToken={bad}"), body(), None).await;
        assert_eq!(answer.status, 400, "{bad:?}: {}", answer.text);
    }
    let without = api.post("/v1/tasks", body(), None).await;
    assert_eq!(without.status, 201, "no token: a task of its own");
    assert_eq!(api.get("/v1/tasks").await.json()["Tasks"].as_array().map(Vec::len), Some(2));
    api.wait_known(&arn, "RUNNING").await;
    // Both containers exist before the restart, so the count after it says "none twice"
    // (the task without a token was still being created in about 1 run in 10 otherwise).
    let other_arn = without.json()["Arn"].as_str().expect("arn").to_string();
    api.wait_known(&other_arn, "RUNNING").await;
    agent.shutdown().await.expect("shutdown");

    let config = support::config(dir.path());
    let agent = Agent::start(&config, Arc::new(fake.clone())).await.expect("restart");
    let api = Api::unix(agent.socket_path());
    let after = api.post("/v1/tasks?clientToken=retry-1", body(), None).await;
    assert_eq!((after.status, after.json()["Arn"].as_str()), (200, Some(arn.as_str())), "{}", after.text);
    assert_eq!(api.get("/v1/tasks").await.json()["Tasks"].as_array().map(Vec::len), Some(2));
    assert_eq!(fake.containers().len(), 2, "one container per task, none twice");
    agent.shutdown().await.expect("shutdown");
}

/// Issue 14 item 13: every answered request is counted by the router's own middleware, by
/// route pattern and status (refusals and unknown paths included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_through_the_router_is_counted_by_route_and_status() {
    let (agent, api, _fake, _dir) = agent_on_fake(|_| {}).await;
    let created = api.post("/v1/tasks", task("counted", "sleep 60", serde_json::Value::Null), None).await;
    assert_eq!(created.status, 201);
    let arn = created.json()["Arn"].as_str().expect("arn").to_string();
    assert_eq!(api.get(&format!("/v1/tasks/{}", encode(&arn))).await.status, 200);
    assert_eq!(api.get("/v1/tasks/arn%3Anope").await.status, 404);
    assert_eq!(api.get("/v1/nothing-here").await.status, 404);
    assert_eq!(api.post("/v1/tasks", b"{".to_vec(), None).await.status, 400);
    let text = api.get("/metrics").await.text;
    for (route, status, n) in [
        ("/v1/tasks", 201, 1),
        ("/v1/tasks", 400, 1),
        ("/v1/tasks/{arn}", 200, 1),
        ("/v1/tasks/{arn}", 404, 1),
        ("unmatched", 404, 1),
    ] {
        let line = format!("berth_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n");
        assert!(text.contains(&line), "{line}in:\n{text}");
    }
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_does_not_fit_waits_with_its_reason_and_one_that_never_fits_is_422() {
    let (agent, api, _fake, _dir) = agent_on_fake(|c| {
        c.resources.cpu = Some(1024);
        c.resources.memory = Some(356);
    })
    .await;
    // The default reserve keeps 256 MiB and port 22: 100 MiB for tasks.
    let too_big = api.post("/v1/tasks", task("big", "sleep 60", serde_json::json!({"memory": 101})), None).await;
    assert_eq!(too_big.status, 422, "{}", too_big.text);
    assert_eq!(too_big.json()["Code"], "NeverFits");
    assert_eq!(
        too_big.json()["Message"],
        "the task can never fit on this host: it reserves 101 MiB of memory and the host has 100 MiB"
    );
    let ssh = serde_json::json!({"portMappings": [{"containerPort": 22, "hostPort": 22}]});
    let port = api.post("/v1/tasks", task("ssh", "sleep 60", ssh), None).await;
    assert_eq!(port.status, 422, "{}", port.text);
    assert!(port.json()["Message"].as_str().is_some_and(|m| m.ends_with("host port 22/tcp is reserved on this host")));
    assert_eq!(api.get("/v1/tasks").await.json()["Tasks"], serde_json::json!([]), "nothing was added");

    let first = api.post("/v1/tasks", task("first", "sleep 60", serde_json::json!({"memory": 60})), None).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json().get("WaitingReason"), None, "admitted at once");
    let first = first.json()["Arn"].as_str().expect("arn").to_string();
    api.wait_known(&first, "RUNNING").await;
    let second = api.post("/v1/tasks", task("second", "sleep 60", serde_json::json!({"memory": 60})), None).await;
    assert_eq!(second.status, 201, "{}", second.text);
    let reason = "waiting for 60 MiB of memory: 40 free of 100";
    assert_eq!(second.json()["WaitingReason"], reason, "the submit answer says it waits");
    let second = second.json()["Arn"].as_str().expect("arn").to_string();
    let view = api.get(&format!("/v1/tasks/{}", encode(&second))).await.json();
    assert_eq!(view["WaitingReason"], reason);
    assert_eq!(view["KnownStatus"], "NONE");
    assert!(view["Containers"][0].get("DockerId").is_none(), "nothing created: {view}");

    let stopped = api.post(&format!("/v1/tasks/{}/stop", encode(&first)), Vec::new(), None).await;
    assert_eq!(stopped.status, 202, "{}", stopped.text);
    let running = api.wait_known(&second, "RUNNING").await;
    assert_eq!(running.get("WaitingReason"), None);
    agent.shutdown().await.expect("shutdown");
}
