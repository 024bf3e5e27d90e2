//! The engine against the real Docker daemon (SPEC 3, 4): the seed's integration tests
//! and more. Needs the test environment (`scripts/test-env.sh`: a daemon, `busybox:latest`,
//! the registry on 127.0.0.1:51670); a missing piece fails the test, never skips it.
//! Each test has its own engine (its own instance id), host ports chosen by Docker or
//! the kernel, and removes what it made, also when it fails.

mod common;

use berth_docker::{BollardClient, DockerClient, labels};
use berth_engine::{DockerTaskEngine, EngineConfig, TaskEngine};
use berth_model::{ContainerStatus, TaskStatus};
use common::*;
use std::sync::Arc;
use std::time::Duration;

/// A started engine on the real daemon, and a guard that removes its containers and
/// volumes when the test ends, however it ends.
async fn real() -> (DockerTaskEngine, Cleanup) {
    let docker = BollardClient::connect().await.unwrap_or_else(|e| panic!("Docker must answer (scripts/test-env.sh): {e}"));
    assert!(
        docker.image_exists("busybox:latest").await.unwrap_or(false),
        "busybox:latest must be present (scripts/test-env.sh makes it)"
    );
    let mut config = EngineConfig::default();
    config.plan.default_stop_timeout_secs = 2;
    let mut engine = DockerTaskEngine::new(config, Arc::new(docker.clone()));
    engine.init().await.unwrap_or_else(|e| panic!("init: {e}"));
    let instance = engine.instance_id().map(str::to_string).unwrap_or_default();
    (engine, Cleanup { docker, instance })
}

/// Removes every container and volume of one engine instance on drop.
struct Cleanup {
    docker: BollardClient,
    instance: String,
}

impl Cleanup {
    async fn containers(&self) -> Vec<berth_docker::ContainerSummary> {
        self.docker.list_containers(&[(labels::INSTANCE, self.instance.as_str())]).await.unwrap_or_default()
    }

    async fn info(&self, container: &str) -> berth_docker::ContainerInfo {
        let found = self.containers().await;
        let c = found
            .iter()
            .find(|c| c.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some(container))
            .unwrap_or_else(|| panic!("{container} exists"));
        self.docker.inspect_container(&c.id).await.unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let instance = self.instance.clone();
        // A plain thread with its own runtime: drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                let Ok(docker) = BollardClient::connect().await else { return };
                let ours = docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await.unwrap_or_default();
                for c in ours {
                    let _ = docker.remove_container(&c.id).await;
                }
                let names: Vec<String> = std::process::Command::new("docker")
                    .args(["volume", "ls", "-q", "--filter", &format!("label={}={instance}", labels::INSTANCE)])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
                    .unwrap_or_default();
                for v in names {
                    let _ = docker.remove_volume(&v).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_stop_an_image_pulled_from_the_registry() {
    let (engine, cleanup) = real().await;
    // A tag of its own, so the pull really happens even if another test pulled before.
    let image = "127.0.0.1:51670/busybox:latest";
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = format!(r#"{{"family": "pull", "containerDefinitions": [{{"name": "web", "image": "{image}", "command": ["httpd", "-f", "-p", "8080"]}}]}}"#);
    let t = task(&json, 1);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["web"], ContainerStatus::Running).await;
    engine.stop_task(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    let steps: Vec<TaskStatus> = changes.iter().map(|c| c.task_status).filter(|s| *s != TaskStatus::None).collect();
    assert_eq!(steps, [TaskStatus::Created, TaskStatus::Running, TaskStatus::Stopped]);
    assert!(matches!(cleanup.info("web").await.state.exit_code, 137 | 143));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_port_arrives_in_the_running_change_and_answers() {
    let (engine, _cleanup) = real().await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = r#"{"family": "port", "containerDefinitions": [{"name": "web", "image": "busybox:latest",
        "command": ["sh", "-c", "echo hello-berth > /tmp/index.html; httpd -f -p 8080 -h /tmp"],
        "portMappings": [{"containerPort": 8080}]}]}"#;
    let t = task(json, 2);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["web"], ContainerStatus::Running).await;
    let running = events.change(&arn, "web", ContainerStatus::Running).unwrap_or_else(|| panic!("RUNNING change"));
    let binding = running.port_bindings.iter().find(|p| p.container_port == 8080).unwrap_or_else(|| panic!("{running:?}"));
    assert_ne!(binding.host_port, 0);
    let body = http_get(binding.host_port).await;
    assert!(body.contains("hello-berth"), "{body}");
    engine.stop_task(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    until_task_stopped(&mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_with_an_alias_carry_data_and_an_essential_exit_gives_its_code() {
    let (engine, _cleanup) = real().await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = r#"{"family": "link", "containerDefinitions": [
        {"name": "server", "image": "busybox:latest", "essential": false, "command": ["sh", "-c", "echo 42 | nc -l -p 9000"]},
        {"name": "client", "image": "busybox:latest", "links": ["server:db"], "command": ["sh", "-c", "sleep 1; exit `nc db 9000`"]}]}"#;
    let t = task(json, 3);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["client"], ContainerStatus::Stopped).await;
    let client = events.change(&arn, "client", ContainerStatus::Stopped).unwrap_or_else(|| panic!("client stopped"));
    assert_eq!(client.exit_code, Some(42), "read through the link alias");
    until_task_stopped(&mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_stops_the_container_with_a_reason() {
    let (engine, _cleanup) = real().await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = r#"{"family": "missing", "containerDefinitions": [{"name": "app", "image": "127.0.0.1:51670/no-such-image:1"}]}"#;
    let t = task(json, 4);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    let stopped = changes.iter().find(|c| c.status == ContainerStatus::Stopped).unwrap_or_else(|| panic!("{changes:?}"));
    let reason = stopped.reason.clone().unwrap_or_default();
    assert!(reason.contains("no-such-image"), "the reason says what failed on what: {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_kill_from_outside_gives_stopped_with_the_exit_code() {
    let (engine, cleanup) = real().await;
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = r#"{"family": "kill", "containerDefinitions": [{"name": "app", "image": "busybox:latest", "command": ["sleep", "600"]}]}"#;
    let t = task(json, 5);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["app"], ContainerStatus::Running).await;
    let id = cleanup.info("app").await.id;
    let killed = std::process::Command::new("docker").args(["kill", &id]).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(killed.status.success());
    let changes = until_task_stopped(&mut events, &arn).await;
    let stopped = changes.iter().find(|c| c.status == ContainerStatus::Stopped).unwrap_or_else(|| panic!("{changes:?}"));
    assert_eq!(stopped.exit_code, Some(137));
    assert_eq!(stopped.reason.as_deref(), Some("killed by signal 9 outside berth"));
}

/// GET / on 127.0.0.1:`port`, retried briefly while the server comes up.
async fn http_get(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..50 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await;
            let mut body = String::new();
            if s.read_to_string(&mut body).await.is_ok() && body.contains("200") {
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing answers on 127.0.0.1:{port}");
}
