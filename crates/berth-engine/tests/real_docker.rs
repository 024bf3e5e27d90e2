//! The engine against the real Docker daemon (SPEC 3, 4): the seed's integration tests
//! and more. Needs the test environment (`scripts/test-env.sh`: a daemon, `busybox:latest`,
//! the registry on 127.0.0.1:51670); a missing piece fails the test, never skips it.
//! Each test has its own engine (its own instance id), host ports chosen by Docker or
//! the kernel, and removes what it made, also when it fails.

mod common;

use berth_engine::TaskEngine;
use berth_model::{ContainerStatus, TaskStatus};
use common::real::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_stop_an_image_pulled_from_the_registry() {
    let (engine, cleanup) = real().await;
    // A tag of its own in the registry, absent locally, so the pull really happens.
    let image = format!("127.0.0.1:51670/berth-pull-test:{:016x}", rand::random::<u64>());
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(args).output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    docker(&["tag", "busybox:latest", &image]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);
    let local = std::process::Command::new("docker").args(["image", "inspect", &image]).output();
    assert!(local.is_ok_and(|o| !o.status.success()), "the image is not local before the task");
    let mut events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let json = format!(
        r#"{{"family": "pull", "containerDefinitions": [{{"name": "web", "image": "{image}", "command": ["httpd", "-f", "-p", "8080"]}}]}}"#
    );
    let t = task(&json, 1);
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut events, &arn, &["web"], ContainerStatus::Running).await;
    engine.stop_task(&arn).await.unwrap_or_else(|e| panic!("{e}"));
    let changes = until_task_stopped(&mut events, &arn).await;
    let steps: Vec<TaskStatus> = changes.iter().map(|c| c.task_status).filter(|s| *s != TaskStatus::None).collect();
    assert_eq!(steps, [TaskStatus::Created, TaskStatus::Running, TaskStatus::Stopped]);
    assert!(matches!(cleanup.info("web").await.state.exit_code, 137 | 143));
    let pulled = std::process::Command::new("docker").args(["image", "inspect", &image]).output();
    assert!(pulled.is_ok_and(|o| o.status.success()), "berth pulled it");
    drop(cleanup);
    docker(&["rmi", &image]);
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
    // The IPv4 binding (what 127.0.0.1 reaches): Docker may give the IPv6 one another port.
    let binding = running
        .port_bindings
        .iter()
        .find(|p| p.container_port == 8080 && p.bind_ip.parse::<std::net::Ipv4Addr>().is_ok())
        .unwrap_or_else(|| panic!("{running:?}"));
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
    let stopped =
        changes.iter().find(|c| c.status == ContainerStatus::Stopped).unwrap_or_else(|| panic!("{changes:?}"));
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
    let stopped =
        changes.iter().find(|c| c.status == ContainerStatus::Stopped).unwrap_or_else(|| panic!("{changes:?}"));
    assert_eq!(stopped.exit_code, Some(137));
    assert_eq!(stopped.reason.as_deref(), Some("killed by signal 9 outside berth"));
}
