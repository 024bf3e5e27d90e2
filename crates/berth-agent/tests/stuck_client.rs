//! Shutdown with a stuck client (issue 14, item 5): a `GET /v1/events` follower that
//! stopped reading (the server's writes to it block) does not keep the agent from its
//! shutdown: `Agent::shutdown` returns within a bound, the engine gets its shutdown (the
//! data directory is released and the store reopens with every task), and no Docker call
//! starts once shutdown has begun (calls decided then wait for the next start).

mod support;

use berth_agent::Agent;
use berth_store::{DataDir, Saver};
use berth_testutils::{FakeDocker, Op};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Api;

/// Submit `n` tasks of five containers each, whose family names are long (so are their
/// change lines).
async fn submit(api: &Api, prefix: &str, n: usize) -> Vec<String> {
    let mut arns = Vec::new();
    for i in 0..n {
        let family = format!("{prefix}-{i}-{}", "f".repeat(180));
        let containers: Vec<serde_json::Value> = (0..5)
            .map(|c| {
                serde_json::json!({"name": format!("c{c}"), "image": "busybox:latest", "memory": 32,
                    "command": ["sleep", "3600"]})
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({"family": family, "containerDefinitions": containers}))
            .expect("json");
        let answer = api.post("/v1/tasks", body, None).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        arns.push(answer.json()["Arn"].as_str().expect("arn").to_string());
    }
    arns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_clean_with_a_follower_that_stopped_reading() {
    let dir = tempfile::Builder::new().prefix("berth-stuck-").tempdir().expect("tempdir");
    let config = support::config(dir.path());
    let fake = FakeDocker::new();
    fake.add_image("busybox:latest");
    fake.add_registry_image("busybox:latest");
    let agent = Agent::start(&config, Arc::new(fake.clone())).await.expect("start");
    let api = Api::unix(agent.socket_path());

    // A history of more than a megabyte of changes: 400 tasks of 5 running containers.
    let mut arns = submit(&api, "first", 400).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while fake.calls(Op::StartContainer) < 2000 {
        assert!(Instant::now() < deadline, "2,000 containers started: {}", fake.calls(Op::StartContainer));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = api.get("/v1/events?since=0&follow=false").await;
    assert!(history.text.len() > 1 << 20, "more than 1 MiB of changes: {} bytes", history.text.len());

    // The stuck client: asks to follow from the start, then never reads. The server's
    // writes fill the socket's buffers and block.
    let mut stuck = std::os::unix::net::UnixStream::connect(agent.socket_path()).expect("connect");
    stuck.write_all(b"GET /v1/events?since=0 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Slow creates from now on: most of these tasks' creates are still to be made when
    // shutdown begins.
    fake.delay(Op::CreateContainer, Duration::from_secs(1));
    arns.extend(submit(&api, "second", 40).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let creates_at_start = fake.calls(Op::CreateContainer);
    let began = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), agent.shutdown())
        .await
        .expect("shutdown returns within 15 s despite the stuck client")
        .expect("shutdown");
    let took = began.elapsed();
    let creates_at_end = fake.calls(Op::CreateContainer);
    eprintln!("shutdown took {took:?}; creates {creates_at_start} at its start, {creates_at_end} at its end");
    // Calls spawned before shutdown began may reach the fake just after (at most one per
    // place of docker_concurrency); none is started by the engine after that.
    assert!(
        creates_at_end <= creates_at_start + config.docker_concurrency as u64,
        "no create started once shutdown had begun: {creates_at_start} → {creates_at_end}"
    );
    assert!(creates_at_end < 2200, "the second tasks' creates were held: {creates_at_end} of 2,200");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.calls(Op::CreateContainer), creates_at_end, "nothing after shutdown returned");

    // The engine got its shutdown: the data directory is free, and the store holds every
    // task (the last commit is durable).
    let data = DataDir::open(dir.path()).expect("the data directory is released");
    let loaded = data.store().expect("store").load().expect("load");
    let mut stored: Vec<String> = loaded.tasks.into_iter().map(|t| t.arn).collect();
    stored.sort();
    arns.sort();
    assert_eq!(stored, arns, "every task is in the store");
    drop(stuck);
}
