//! Registry credentials through the engine, against the real daemon and the htpasswd
//! registry on 127.0.0.1:51671 that `scripts/test-env.sh` runs (users in
//! `/var/lib/berth-test/registry-51671/users.json`): the seed's two auth tests (the
//! `dockercfg` source, and the `docker` source with a key written `http://127.0.0.1:51671`,
//! matched without its scheme), a password whose standard base64 header has `+`, a wrong
//! password, and no password anywhere in the changes or the store. Fails, never skips,
//! when the registry is missing.

mod common;

use berth_docker::auth::{AuthSource, DockerAuth};
use berth_docker::labels;
use berth_engine::{DockerTaskEngine, EngineConfig, TaskEngine};
use berth_model::{ContainerStatus, StateChange};
use common::*;
use std::process::Command;
use std::sync::Arc;

const REGISTRY: &str = "127.0.0.1:51671";

fn users() -> Vec<(String, String)> {
    let path = "/var/lib/berth-test/registry-51671/users.json";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run scripts/test-env.sh)"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    json["users"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| {
                    (
                        u["username"].as_str().unwrap_or_default().to_string(),
                        u["password"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn user(name: &str) -> (String, String) {
    users().into_iter().find(|(u, _)| u == name).unwrap_or_else(|| panic!("test user {name} (scripts/test-env.sh)"))
}

/// Push busybox to the auth registry under a tag of this test's own, absent locally.
fn pushed_image(what: &str) -> String {
    let image = format!("{REGISTRY}/berth-engine-auth:{what}-{:016x}", rand::random::<u64>());
    let config = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (name, password) = user("berth");
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .arg("--config")
            .arg(config.path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&["login", "-u", &name, "-p", &password, REGISTRY]);
    docker(&["tag", "busybox:latest", &image]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);
    image
}

async fn run_with(auth: DockerAuth, image: &str, data: &std::path::Path) -> (Vec<StateChange>, String) {
    let docker = berth_docker::BollardClient::connect().await.unwrap_or_else(|e| panic!("{e}"));
    let config = EngineConfig { data_dir: Some(data.to_path_buf()), auth: Arc::new(auth), ..EngineConfig::default() };
    let mut engine = DockerTaskEngine::new(config, Arc::new(docker.clone()));
    engine.init().await.unwrap_or_else(|e| panic!("{e}"));
    let instance = engine.instance_id().map(str::to_string).unwrap_or_default();
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = format!(
        r#"{{"family": "auth", "containerDefinitions": [{{"name": "app", "image": "{image}", "command": ["sh", "-c", "exit 0"]}}]}}"#
    );
    let t = task(&json, rand::random());
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    engine.clean_up_now(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    eventually("the task is cleaned up", async || engine.list_tasks().await.map(|t| t.is_empty()).unwrap_or(false))
        .await;
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let _ = Command::new("docker").args(["rmi", image]).output();
    let leftovers = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={}={instance}", labels::INSTANCE)])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    (changes, leftovers)
}

/// The image was pulled and the container ran to its own exit 0.
fn ran(changes: &[StateChange]) -> bool {
    changes.iter().any(|c| c.status == ContainerStatus::Pulled)
        && changes.iter().any(|c| c.status == ContainerStatus::Stopped && c.exit_code == Some(0) && c.reason.is_none())
}

/// No password in any change or any file of the data directory.
fn assert_no_secret(changes: &[StateChange], data: &std::path::Path, secrets: &[&str]) {
    let text = serde_json::to_string(changes).unwrap_or_default();
    let mut files = String::new();
    for entry in std::fs::read_dir(data).unwrap_or_else(|e| panic!("{e}")).filter_map(Result::ok) {
        files.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap_or_default()));
    }
    for secret in secrets {
        assert!(!text.contains(secret), "a password in the state changes");
        assert!(!files.contains(secret), "a password in the store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dockercfg_source_authenticates_a_pull() {
    let image = pushed_image("dockercfg");
    let (name, password) = user("berth");
    let token = base64_of(&format!("{name}:{password}"));
    let dockercfg = format!(r#"{{"{REGISTRY}": {{"auth": "{token}", "email": "berth@example.invalid"}}}}"#);
    let source = AuthSource::parse_dockercfg(&dockercfg).unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (changes, leftovers) = run_with(DockerAuth::new(source), &image, data.path()).await;
    assert!(ran(&changes), "pulled with the credentials and ran: {changes:#?}");
    assert!(leftovers.is_empty());
    assert_no_secret(&changes, data.path(), &[&password, &token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_source_matches_a_key_written_with_its_scheme_and_a_plus_header_works() {
    let image = pushed_image("docker");
    // berth-plus: its standard base64 X-Registry-Auth has a `+` (scripts/test-env.sh).
    let (name, password) = user("berth-plus");
    let docker = format!(
        r#"{{"http://{REGISTRY}": {{"username": "{name}", "password": "{password}", "email": "x@example.invalid"}}}}"#
    );
    let source = AuthSource::parse_docker(&docker).unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (changes, leftovers) = run_with(DockerAuth::new(source), &image, data.path()).await;
    assert!(ran(&changes), "the key matched without its scheme: {changes:#?}");
    assert!(leftovers.is_empty());
    assert_no_secret(&changes, data.path(), &[&password]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_gives_a_clear_authentication_error() {
    let image = pushed_image("wrong");
    let docker = format!(r#"{{"{REGISTRY}": {{"username": "berth", "password": "not-the-password", "email": ""}}}}"#);
    let source = AuthSource::parse_docker(&docker).unwrap_or_else(|e| panic!("{e}"));
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (changes, _) = run_with(DockerAuth::new(source), &image, data.path()).await;
    assert!(!ran(&changes));
    let reason = changes.iter().filter_map(|c| c.reason.clone()).next().unwrap_or_default();
    assert!(reason.contains("pull image") && reason.contains("unauthorized"), "{reason}");
    assert!(!reason.contains("not-the-password"));
    assert_no_secret(&changes, data.path(), &["not-the-password"]);
}

/// Standard base64 of `text` (the legacy `auth` field).
fn base64_of(text: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("printf %s '{}' | base64 -w0", text.replace('\'', "'\\''"))])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
