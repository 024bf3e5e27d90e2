//! What the tests against the real Docker daemon share: an engine with its own instance id,
//! a guard that removes that instance's containers and volumes however the test ends,
//! Docker's own view of a container, and HTTP on 127.0.0.1.

use berth_docker::{BollardClient, ContainerInfo, ContainerSummary, DockerClient, labels};
use berth_engine::{DockerTaskEngine, EngineConfig, TaskEngine};
use std::sync::Arc;
use std::time::Duration;

/// The configuration of the real-daemon tests: the defaults, with a 2 s stop timeout so that
/// a container that ignores SIGTERM does not hold a test up for 30 s.
pub fn real_config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.plan.default_stop_timeout_secs = 2;
    config
}

/// A client of the test daemon, which must answer and hold `busybox:latest`.
pub async fn docker() -> BollardClient {
    let docker =
        BollardClient::connect().await.unwrap_or_else(|e| panic!("Docker must answer (scripts/test-env.sh): {e}"));
    assert!(
        docker.image_exists("busybox:latest").await.unwrap_or(false),
        "busybox:latest must be present (scripts/test-env.sh makes it)"
    );
    docker
}

/// A started engine on the real daemon, and a guard that removes its containers and
/// volumes when the test ends, however it ends.
pub async fn real() -> (DockerTaskEngine, Cleanup) {
    real_with(real_config()).await
}

/// [`real`] with `config`.
pub async fn real_with(config: EngineConfig) -> (DockerTaskEngine, Cleanup) {
    let docker = docker().await;
    let mut engine = DockerTaskEngine::new(config, Arc::new(docker.clone()));
    engine.init().await.unwrap_or_else(|e| panic!("init: {e}"));
    let instance = engine.instance_id().map(str::to_string).unwrap_or_default();
    (engine, Cleanup { docker, instance })
}

/// Removes every container and volume of one engine instance on drop.
pub struct Cleanup {
    /// The daemon.
    pub docker: BollardClient,
    /// The engine instance whose containers and volumes are removed.
    pub instance: String,
}

impl Cleanup {
    /// Every container of the instance, running or not.
    pub async fn containers(&self) -> Vec<ContainerSummary> {
        self.docker.list_containers(&[(labels::INSTANCE, self.instance.as_str())]).await.unwrap_or_default()
    }

    /// The containers of the instance that belong to task `arn`.
    pub async fn containers_of(&self, arn: &str) -> Vec<ContainerSummary> {
        self.docker
            .list_containers(&[(labels::INSTANCE, self.instance.as_str()), (labels::TASK_ARN, arn)])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Inspect of the instance's container named `container` in its task (panics when
    /// there is none, or more than one).
    pub async fn info(&self, container: &str) -> ContainerInfo {
        let found = self.containers().await;
        let mut named =
            found.iter().filter(|c| c.labels.get(labels::CONTAINER_NAME).map(String::as_str) == Some(container));
        let c = named.next().unwrap_or_else(|| panic!("{container} exists"));
        assert!(named.next().is_none(), "one container named {container} in this instance");
        self.docker.inspect_container(&c.id).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `docker inspect` of the instance's container named `container`: every field Docker
    /// reports, as JSON (`HostConfig`, `Mounts`, `NetworkSettings`, `State.Health`, ...).
    pub async fn inspect_json(&self, container: &str) -> serde_json::Value {
        let id = self.info(container).await.id;
        docker_cli_json(&["container", "inspect", &id])
    }

    /// The instance's Docker volumes, by name.
    pub fn volumes(&self) -> Vec<String> {
        volumes_labelled(&self.instance)
    }
}

/// `docker <args>` whose output is a JSON array of one object: that object.
pub fn docker_cli_json(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new("docker").args(args).output().unwrap_or_else(|e| panic!("docker: {e}"));
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut all: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("docker {args:?} gave no JSON: {e}"));
    assert_eq!(all.len(), 1, "docker {args:?}: one object");
    all.remove(0)
}

/// The Docker volumes labelled with berth instance `instance`.
pub fn volumes_labelled(instance: &str) -> Vec<String> {
    berth_testutils::real::volumes_of(instance)
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        berth_testutils::real::remove_instance(&self.instance);
    }
}

/// GET / on 127.0.0.1:`port`, retried briefly while the server comes up.
pub async fn http_get(port: u16) -> String {
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
