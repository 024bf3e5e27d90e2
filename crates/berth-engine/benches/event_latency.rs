//! Event latency on the real Docker daemon: from a container's `die` event, by Docker's own
//! timestamp, to berth's STOPPED change reaching a reader of `task_events()` (durable store:
//! the change is committed, fsync included, before any reader sees it). Docker's own
//! kill-to-die time is measured beside it. 50 trials; prints p50, p99 and max.
//!
//! `cargo bench -p berth-engine --bench event_latency` (needs `scripts/test-env.sh`);
//! `BERTH_LATENCY_STORE=memory` for the same without the durable store.

use berth_docker::{BollardClient, DockerClient, labels};
use berth_engine::{Engine, EngineConfig, LogItem};
use berth_model::input::{ParseOptions, parse};
use berth_model::{ContainerStatus, StateChange};
use bollard::query_parameters::KillContainerOptionsBuilder;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const TRIALS: usize = 50;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(run());
}

async fn run() {
    let docker = BollardClient::connect().await.unwrap_or_else(|e| panic!("Docker must answer: {e}"));
    assert!(docker.image_exists("busybox:latest").await.unwrap_or(false), "busybox:latest (scripts/test-env.sh)");
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // BERTH_LATENCY_STORE=memory measures without the fsync of the durable store.
    let durable = std::env::var("BERTH_LATENCY_STORE").map_or(true, |v| v != "memory");
    let data_dir = durable.then(|| data.path().to_path_buf());
    println!("store: {}", if durable { "durable (redb in a temp dir)" } else { "memory" });
    let config = EngineConfig { data_dir, ..EngineConfig::default() };
    let engine = Engine::builder(config, Arc::new(docker.clone())).start().await.unwrap_or_else(|e| panic!("{e}"));
    let instance = engine.instance_id().to_string();
    // A reader of its own, stamping each change as it arrives (the loop below may be busy
    // in a Docker call when it does).
    let mut changes = engine.task_events();
    let (stamped_tx, mut reader) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(item) = changes.next().await {
            if let LogItem::Change(c) = item
                && stamped_tx.send((c, Utc::now())).is_err()
            {
                return;
            }
        }
    });
    // Docker's own view: the die events, by container id, with their timestamps.
    let mut raw = docker.container_events(None).await.unwrap_or_else(|e| panic!("{e}"));
    let (raw_tx, mut docker_events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(e)) = raw.next().await {
            if raw_tx.send((e, Utc::now())).is_err() {
                return;
            }
        }
    });

    let mut latencies = Vec::new();
    let mut kill_to_die = Vec::new();
    let mut delivery = Vec::new();
    let mut decided = Vec::new();
    for n in 0..TRIALS {
        let json = r#"{"family": "latency", "containerDefinitions": [{"name": "app", "image": "busybox:latest", "command": ["sleep", "600"]}]}"#;
        let task = parse(json.as_bytes(), &ParseOptions { family: None, arn_random: n as u128 + 1 })
            .map(|a| a.task)
            .unwrap_or_else(|r| panic!("{r}"));
        let arn = task.arn.clone();
        engine.add_task(task).await.unwrap_or_else(|e| panic!("{e}"));
        next_change(&mut reader, &arn, ContainerStatus::Running).await;
        let id = engine
            .task(&arn)
            .await
            .ok()
            .flatten()
            .and_then(|t| t.containers[0].docker_id.clone())
            .unwrap_or_else(|| panic!("running container has an id"));
        let kill_at = Utc::now();
        let options = KillContainerOptionsBuilder::new().signal("KILL").build();
        docker.bollard().kill_container(&id, Some(options)).await.unwrap_or_else(|e| panic!("{e}"));
        let (stopped, seen_at) = next_change(&mut reader, &arn, ContainerStatus::Stopped).await;
        let (die_at, raw_at) = die_time(&mut docker_events, &id).await;
        latencies.push(micros(seen_at - die_at));
        delivery.push(micros(raw_at - die_at));
        decided.push(micros(stopped.time - die_at));
        kill_to_die.push(micros(die_at - kill_at));
        engine.clean_up_now(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    }
    // Leave nothing behind.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for c in docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await.unwrap_or_default() {
        let _ = docker.remove_container(&c.id).await;
    }
    let _ = engine.shutdown().await;
    report("die event → STOPPED change at a reader", &mut latencies);
    report("Docker: kill call → die event", &mut kill_to_die);
    report("Docker: die event → received by a plain subscriber", &mut delivery);
    report("berth: die event → STOPPED change decided", &mut decided);
}

async fn next_change(
    reader: &mut tokio::sync::mpsc::UnboundedReceiver<(StateChange, DateTime<Utc>)>,
    arn: &str,
    status: ContainerStatus,
) -> (StateChange, DateTime<Utc>) {
    let wait = async {
        while let Some((c, at)) = reader.recv().await {
            if c.task_arn == arn && c.status == status {
                return (c, at);
            }
        }
        panic!("the engine stopped");
    };
    tokio::time::timeout(Duration::from_secs(60), wait).await.unwrap_or_else(|_| panic!("no {status} for {arn}"))
}

/// The die event's own timestamp, and when a plain subscriber of Docker's stream received
/// it. This subscriber is read only after berth's change arrived, so its receive time is
/// taken from a task that drains the stream as it comes.
async fn die_time(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<(berth_docker::DockerEvent, DateTime<Utc>)>,
    id: &str,
) -> (DateTime<Utc>, DateTime<Utc>) {
    while let Some((e, received)) = events.recv().await {
        if e.id == id && e.action == "die" {
            return (e.time, received);
        }
    }
    panic!("no die event for {id}");
}

fn micros(d: chrono::Duration) -> i64 {
    d.num_microseconds().unwrap_or(i64::MAX)
}

fn report(what: &str, samples: &mut [i64]) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{what}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        at(0.50) as f64 / 1000.0,
        at(0.99) as f64 / 1000.0,
        samples.last().copied().unwrap_or(0) as f64 / 1000.0
    );
}
