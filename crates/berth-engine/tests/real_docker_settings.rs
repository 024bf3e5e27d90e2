//! Container settings against the real Docker daemon (SPEC 2–4): ports, volumes,
//! volumesFrom, bind mounts, dependsOn conditions, the essential rule, cleanup, restart,
//! slow readers, limits, environment and labels. Each test drives a task through the
//! engine and checks the effect in Docker itself (inspect, HTTP on 127.0.0.1, exit codes
//! of commands that test what they see), then stops the task and waits until STOPPED.
//! Needs the test environment (`scripts/test-env.sh`); a missing piece fails the test.
//! Tests share the daemon with other tests: each has its own engine instance (and removes
//! that instance's containers and volumes however it ends), a random task arn, and only
//! host ports Docker or the kernel picks.

mod common;

use berth_docker::{ContainerInfo, labels};
use berth_engine::{DockerTaskEngine, EngineConfig, LogItem, TaskEngine};
use berth_model::{ContainerStatus, StateChange, Task, TaskStatus};
use common::real::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// A long runner that ends at once on SIGTERM (with an init process, `sleep` gets the
/// signal and dies of it: exit 143).
const LONG: &str = r#""command": ["sleep", "600"], "linuxParameters": {"initProcessEnabled": true}"#;

/// `sh -c <script>` as a JSON `command` value.
fn sh(script: &str) -> String {
    serde_json::json!(["sh", "-c", script]).to_string()
}

/// A busybox httpd in the foreground on `port`, serving `body` at `/`.
fn httpd(port: u16, body: &str) -> String {
    sh(&format!("mkdir -p /w; echo {body} > /w/index.html; exec httpd -f -p {port} -h /w"))
}

/// A random task number, so parallel runs of these tests never share an arn (nor the task
/// volume names derived from it).
fn n() -> u128 {
    rand::random()
}

/// Add the task `json` describes; its arn and a watcher opened before it was added.
async fn start(engine: &DockerTaskEngine, json: &str) -> (String, Watcher) {
    start_task(engine, task(json, n())).await
}

/// Add `t`; its arn and a watcher opened before it was added.
async fn start_task(engine: &DockerTaskEngine, t: Task) -> (String, Watcher) {
    let events = Watcher::new(engine.task_events().unwrap_or_else(|e| panic!("{e}")));
    let arn = t.arn.clone();
    engine.add_task(t).await.unwrap_or_else(|e| panic!("{e}"));
    (arn, events)
}

/// Stop task `arn` and read until it and every one of its containers are STOPPED; its
/// changes.
async fn stop(engine: &DockerTaskEngine, events: &mut Watcher, arn: &str) -> Vec<StateChange> {
    engine.stop_task(arn).await.unwrap_or_else(|e| panic!("{e}"));
    until_task_stopped(events, arn).await;
    let tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    let t = tasks.iter().find(|t| t.arn == arn).unwrap_or_else(|| panic!("{arn} is known"));
    let names: Vec<&str> = t.containers.iter().map(|c| c.name()).collect();
    until_all(events, arn, &names, ContainerStatus::Stopped).await
}

/// The change of `container` of `arn` to `status` (panics when it was not read).
fn change(events: &Watcher, arn: &str, container: &str, status: ContainerStatus) -> StateChange {
    events.change(arn, container, status).unwrap_or_else(|| panic!("{container} {status}: {:#?}", events.of(arn)))
}

/// The exit code of `container` in its STOPPED change.
fn exit_code(events: &Watcher, arn: &str, container: &str) -> Option<i64> {
    change(events, arn, container, ContainerStatus::Stopped).exit_code
}

/// The distinct host ports of the IPv4 bindings `change` reports for `container_port`: what
/// 127.0.0.1 reaches. Docker also reports an IPv6 binding per mapping, and picks its dynamic
/// port apart (its allocator keeps one cursor per address family, so once anything on the
/// daemon published a port on IPv4 only, the two differ).
fn host_ports(change: &StateChange, container_port: u16) -> BTreeSet<u16> {
    change
        .port_bindings
        .iter()
        .filter(|b| b.container_port == container_port && b.bind_ip.parse::<std::net::Ipv4Addr>().is_ok())
        .map(|b| b.host_port)
        .collect()
}

/// The one host port of `ports`.
fn only(ports: &BTreeSet<u16>) -> u16 {
    assert_eq!(ports.len(), 1, "one host port: {ports:?}");
    ports.first().copied().unwrap_or_default()
}

/// A port the kernel says is free on 127.0.0.1 now (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
}

/// Nothing accepts a connection on 127.0.0.1:`port`.
async fn refused(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    matches!(tokio::time::timeout(Duration::from_secs(2), connect).await, Ok(Err(_)))
}

fn started(info: &ContainerInfo) -> chrono::DateTime<chrono::Utc> {
    info.state.started_at.unwrap_or_else(|| panic!("{} has started: {info:?}", info.name))
}

fn finished(info: &ContainerInfo) -> chrono::DateTime<chrono::Utc> {
    info.state.finished_at.unwrap_or_else(|| panic!("{} has finished: {info:?}", info.name))
}

/// `Mounts` of an inspect, as (destination, name or source, RW).
fn mounts(inspect: &Value) -> Vec<(String, String, bool)> {
    inspect["Mounts"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|m| {
                    let what = m["Name"].as_str().filter(|n| !n.is_empty()).or(m["Source"].as_str()).unwrap_or("");
                    (m["Destination"].as_str().unwrap_or("").to_string(), what.to_string(), m["RW"] == true)
                })
                .collect()
        })
        .unwrap_or_default()
}

// 1. Ports.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_port_answers_and_a_container_without_mapping_is_not_published() {
    let (engine, cleanup) = real().await;
    let port = free_port();
    // Serves on 8080 inside too, checked by its health check, but maps nothing.
    let json = format!(
        r#"{{"family": "static", "containerDefinitions": [
        {{"name": "web", "image": "busybox:latest", "command": {web},
          "portMappings": [{{"containerPort": 8080, "hostPort": {port}}}]}},
        {{"name": "hidden", "image": "busybox:latest", "command": {hidden},
          "healthCheck": {{"command": ["CMD-SHELL", "wget -q -O - http://127.0.0.1:8080/ | grep -q hidden-web"],
                           "interval": 1, "timeout": 1, "retries": 3}}}}]}}"#,
        web = httpd(8080, "static-web"),
        hidden = httpd(8080, "hidden-web"),
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_all(&mut events, &arn, &["web", "hidden"], ContainerStatus::Running).await;

    let web = change(&events, &arn, "web", ContainerStatus::Running);
    assert_eq!(host_ports(&web, 8080), BTreeSet::from([port]), "{web:?}");
    assert!(http_get(port).await.contains("static-web"));
    let web_inspect = cleanup.inspect_json("web").await;
    assert_eq!(web_inspect["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"], port.to_string());

    let hidden = change(&events, &arn, "hidden", ContainerStatus::Running);
    assert!(hidden.port_bindings.is_empty(), "{hidden:?}");
    let hidden_inspect = cleanup.inspect_json("hidden").await;
    let requested = &hidden_inspect["HostConfig"]["PortBindings"];
    assert!(requested.is_null() || requested.as_object().is_some_and(|o| o.is_empty()), "{requested}");
    let bound = &hidden_inspect["NetworkSettings"]["Ports"];
    assert!(bound.is_null() || bound.as_object().is_some_and(|o| o.is_empty()), "{bound}");
    // Its server does run (its health check fetches its page inside the container) ...
    eventually("hidden's server answers inside its container", async || {
        cleanup.inspect_json("hidden").await["State"]["Health"]["Status"] == "healthy"
    })
    .await;
    // ... yet Docker published nothing for it (above); as a plain check from the host, a
    // port the kernel calls free stays closed (no catch-all forwarding).
    let unmapped = free_port();
    assert!(refused(unmapped).await, "nothing listens on 127.0.0.1:{unmapped}");

    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_with_two_mappings_each_answer_on_their_own_ports() {
    let (engine, _cleanup) = real().await;
    let serve_two = |name: &str| {
        sh(&format!(
            "mkdir -p /a /b; echo {name}-8080 > /a/index.html; echo {name}-8081 > /b/index.html; \
             httpd -p 8081 -h /b; exec httpd -f -p 8080 -h /a"
        ))
    };
    let (p1, p2) = (free_port(), free_port());
    let json = format!(
        r#"{{"family": "twoports", "containerDefinitions": [
        {{"name": "one", "image": "busybox:latest", "command": {one},
          "portMappings": [{{"containerPort": 8080, "hostPort": {p1}}}, {{"containerPort": 8081, "hostPort": {p2}}}]}},
        {{"name": "two", "image": "busybox:latest", "command": {two},
          "portMappings": [{{"containerPort": 8080}}, {{"containerPort": 8081, "protocol": "tcp"}}]}}]}}"#,
        one = serve_two("one"),
        two = serve_two("two"),
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_all(&mut events, &arn, &["one", "two"], ContainerStatus::Running).await;

    let one = change(&events, &arn, "one", ContainerStatus::Running);
    assert_eq!(host_ports(&one, 8080), BTreeSet::from([p1]), "{one:?}");
    assert_eq!(host_ports(&one, 8081), BTreeSet::from([p2]), "{one:?}");
    let two = change(&events, &arn, "two", ContainerStatus::Running);
    let (q1, q2) = (only(&host_ports(&two, 8080)), only(&host_ports(&two, 8081)));
    let all: BTreeSet<u16> = [p1, p2, q1, q2].into();
    assert_eq!(all.len(), 4, "four distinct host ports: {all:?}");

    for (port, body) in [(p1, "one-8080"), (p2, "one-8081"), (q1, "two-8080"), (q2, "two-8081")] {
        let answer = http_get(port).await;
        assert!(answer.contains(body), "127.0.0.1:{port} should serve {body}: {answer}");
    }
    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_container_port_mapped_twice_gets_two_host_ports_that_both_answer() {
    let (engine, cleanup) = real().await;
    let json = format!(
        r#"{{"family": "twice", "containerDefinitions": [{{"name": "web", "image": "busybox:latest",
        "command": {}, "portMappings": [{{"containerPort": 8080}}, {{"containerPort": 8080}}]}}]}}"#,
        httpd(8080, "twice-web")
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_all(&mut events, &arn, &["web"], ContainerStatus::Running).await;
    let web = change(&events, &arn, "web", ContainerStatus::Running);
    let ports = host_ports(&web, 8080);
    assert_eq!(ports.len(), 2, "two distinct host ports: {web:?}");
    assert!(!ports.contains(&0));
    for port in ports {
        assert!(http_get(port).await.contains("twice-web"));
    }
    let inspect = cleanup.inspect_json("web").await;
    assert_eq!(inspect["HostConfig"]["PortBindings"]["8080/tcp"].as_array().map(Vec::len), Some(2), "{inspect}");
    stop(&engine, &mut events, &arn).await;
}

// 2. Volumes.

/// A writer that puts `berth-data` in /data/f of the task volume `data`, and exits 0.
const WRITER: &str = r#"{"name": "writer", "image": "busybox:latest", "essential": false,
    "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
    "command": ["sh", "-c", "echo berth-data > /data/f"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_from_reads_what_the_source_container_wrote() {
    let (engine, cleanup) = real().await;
    let json = format!(
        r#"{{"family": "vfrom", "volumes": [{{"name": "data", "host": {{}}}}], "containerDefinitions": [{WRITER},
        {{"name": "reader", "image": "busybox:latest", "volumesFrom": [{{"sourceContainer": "writer"}}],
          "dependsOn": [{{"containerName": "writer", "condition": "SUCCESS"}}],
          "command": {}}}]}}"#,
        sh(r#"test "$(cat /data/f)" = berth-data"#)
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_task_stopped(&mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "writer"), Some(0));
    assert_eq!(exit_code(&events, &arn, "reader"), Some(0), "the reader read berth-data in /data/f");

    let writer = mounts(&cleanup.inspect_json("writer").await);
    let reader = mounts(&cleanup.inspect_json("reader").await);
    assert_eq!(writer.len(), 1, "{writer:?}");
    assert_eq!(reader, writer, "the reader has the writer's volume, read-write");
    assert!(reader[0].2);
    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_from_read_only_reads_but_cannot_write() {
    let (engine, cleanup) = real().await;
    let after_writer = r#""dependsOn": [{"containerName": "writer", "condition": "SUCCESS"}]"#;
    let json = format!(
        r#"{{"family": "vfromro", "volumes": [{{"name": "data", "host": {{}}}}], "containerDefinitions": [{WRITER},
        {{"name": "ro-read", "image": "busybox:latest", "essential": false, {after_writer},
          "volumesFrom": [{{"sourceContainer": "writer", "readOnly": true}}], "command": {ro_read}}},
        {{"name": "ro-write", "image": "busybox:latest", "essential": false, {after_writer},
          "volumesFrom": [{{"sourceContainer": "writer", "readOnly": true}}], "command": {ro_write}}},
        {{"name": "rw-write", "image": "busybox:latest", "essential": false, {after_writer},
          "volumesFrom": [{{"sourceContainer": "writer"}}], "command": {rw_write}}},
        {{"name": "judge", "image": "busybox:latest",
          "dependsOn": [{{"containerName": "ro-read", "condition": "COMPLETE"}},
                        {{"containerName": "ro-write", "condition": "COMPLETE"}},
                        {{"containerName": "rw-write", "condition": "COMPLETE"}}],
          "mountPoints": [{{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}}],
          "command": {judge}}}]}}"#,
        ro_read = sh(r#"test "$(cat /data/f)" = berth-data"#),
        ro_write = sh("echo ro > /data/ro"),
        rw_write = sh("echo rw > /data/rw"),
        // What the volume holds in the end: the read-write one's file, not the read-only one's.
        judge = sh("test -e /data/rw && test ! -e /data/ro"),
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_task_stopped(&mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "writer"), Some(0));
    assert_eq!(exit_code(&events, &arn, "ro-read"), Some(0), "reads work read-only");
    let ro_write = exit_code(&events, &arn, "ro-write");
    assert!(ro_write.is_some_and(|c| c != 0), "a write through a read-only volumesFrom fails: {ro_write:?}");
    assert_eq!(exit_code(&events, &arn, "rw-write"), Some(0), "the same write without readOnly works");
    assert_eq!(exit_code(&events, &arn, "judge"), Some(0), "the volume has the read-write file only");

    let source = mounts(&cleanup.inspect_json("writer").await);
    for name in ["ro-read", "ro-write"] {
        let m = mounts(&cleanup.inspect_json(name).await);
        assert_eq!(m, [(source[0].0.clone(), source[0].1.clone(), false)], "{name} mounts it read-only");
    }
    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_bind_mount_is_written_by_the_container_and_read_on_the_host() {
    let (engine, cleanup) = real().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("in"), "from-host\n").unwrap_or_else(|e| panic!("{e}"));
    let source = dir.path().to_str().unwrap_or_else(|| panic!("a UTF-8 temp dir"));
    let json = format!(
        r#"{{"family": "bind", "volumes": [{{"name": "h", "host": {{"sourcePath": {}}}}}], "containerDefinitions": [
        {{"name": "app", "image": "busybox:latest", "mountPoints": [{{"sourceVolume": "h", "containerPath": "/h"}}],
          "command": {}}}]}}"#,
        serde_json::json!(source),
        sh(r#"test "$(cat /h/in)" = from-host && echo from-container > /h/out"#)
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_task_stopped(&mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "app"), Some(0), "the container read the host's file");
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out, "from-container\n");
    let inspect = cleanup.inspect_json("app").await;
    assert_eq!(inspect["Mounts"][0]["Type"], "bind", "{inspect}");
    assert_eq!(mounts(&inspect), [("/h".to_string(), source.to_string(), true)]);
    assert!(cleanup.volumes().is_empty(), "a host volume makes no Docker volume: {:?}", cleanup.volumes());
    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_task_volume_is_shared_also_with_a_trailing_slash_in_the_path() {
    let (engine, cleanup) = real().await;
    let json = format!(
        r#"{{"family": "shared", "volumes": [{{"name": "scratch", "host": {{}}}}], "containerDefinitions": [
        {{"name": "first", "image": "busybox:latest", "essential": false,
          "mountPoints": [{{"sourceVolume": "scratch", "containerPath": "/shared"}}], "command": {first}}},
        {{"name": "second", "image": "busybox:latest",
          "mountPoints": [{{"sourceVolume": "scratch", "containerPath": "/shared/"}}],
          "dependsOn": [{{"containerName": "first", "condition": "SUCCESS"}}], "command": {second}}}]}}"#,
        // Empty when it comes, then written.
        first = sh(r#"test -z "$(ls -A /shared)" && echo shared-data > /shared/f"#),
        second = sh(r#"test "$(cat /shared/f)" = shared-data"#),
    );
    let t = task(&json, n());
    let volume = t.docker_volume_name(t.volume("scratch").unwrap_or_else(|| panic!("scratch")));
    let (arn, mut events) = start_task(&engine, t).await;
    until_task_stopped(&mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "first"), Some(0), "the volume was empty, and written");
    assert_eq!(exit_code(&events, &arn, "second"), Some(0), "read through /shared/");

    let v = docker_cli_json(&["volume", "inspect", &volume]);
    assert_eq!(v["Labels"][labels::INSTANCE], cleanup.instance.as_str(), "{v}");
    assert_eq!(v["Labels"][labels::TASK_ARN], arn.as_str(), "{v}");
    for name in ["first", "second"] {
        let m = mounts(&cleanup.inspect_json(name).await);
        assert_eq!(m.len(), 1, "{name}: {m:?}");
        assert_eq!((m[0].0.trim_end_matches('/'), m[0].1.as_str(), m[0].2), ("/shared", volume.as_str(), true));
    }
    stop(&engine, &mut events, &arn).await;
}

// 3. Cleanup.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_task_is_swept_after_the_cleanup_wait() {
    let mut config = real_config();
    config.plan.cleanup_wait = chrono::Duration::seconds(1);
    let (engine, cleanup) = real_with(config).await;
    let json = r#"{"family": "sweep", "volumes": [{"name": "scratch", "host": {}}], "containerDefinitions": [
        {"name": "app", "image": "busybox:latest", "command": ["sleep", "2"],
         "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/s"}]},
        {"name": "side", "image": "busybox:latest", "essential": false, "command": ["sleep", "600"]}]}"#;
    let t = task(json, n());
    let volume = t.docker_volume_name(&t.volumes[0]);
    let (arn, mut events) = start_task(&engine, t).await;
    until_all(&mut events, &arn, &["app", "side"], ContainerStatus::Running).await;
    assert_eq!(cleanup.volumes(), [volume.as_str()], "berth made the task's volume");
    assert_eq!(cleanup.containers_of(&arn).await.len(), 2);
    let changes = until_task_stopped(&mut events, &arn).await;
    let stopped_at = changes.iter().find(|c| c.task_status == TaskStatus::Stopped).map(|c| c.time);
    let stopped_at = stopped_at.unwrap_or_else(|| panic!("{changes:?}"));

    eventually("containers, volume and task gone", async || {
        let tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
        tasks.iter().all(|t| t.arn != arn)
            && cleanup.containers_of(&arn).await.is_empty()
            && cleanup.volumes().is_empty()
    })
    .await;
    let swept_after = chrono::Utc::now() - stopped_at;
    assert!(swept_after >= chrono::Duration::seconds(1), "not before the cleanup wait: {swept_after}");
    let gone = std::process::Command::new("docker").args(["volume", "inspect", &volume]).output();
    assert!(gone.is_ok_and(|o| !o.status.success()), "{volume} is removed");
    assert!(engine.stop_task(&arn).await.is_err(), "the task is no longer known");
}

// 4. Dependencies and the essential rule.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_depends_on_condition_orders_real_starts() {
    let (engine, cleanup) = real().await;
    let json = format!(
        r#"{{"family": "depends", "containerDefinitions": [
        {{"name": "base", "image": "busybox:latest", {LONG}}},
        {{"name": "after-start", "image": "busybox:latest", {LONG},
          "dependsOn": [{{"containerName": "base", "condition": "START"}}]}},
        {{"name": "done", "image": "busybox:latest", "essential": false, "command": {done}}},
        {{"name": "after-complete", "image": "busybox:latest", {LONG},
          "dependsOn": [{{"containerName": "done", "condition": "COMPLETE"}}]}},
        {{"name": "ok", "image": "busybox:latest", "essential": false, "command": {ok}}},
        {{"name": "after-success", "image": "busybox:latest", {LONG},
          "dependsOn": [{{"containerName": "ok", "condition": "SUCCESS"}}]}},
        {{"name": "healthy", "image": "busybox:latest", {LONG},
          "healthCheck": {{"command": ["CMD-SHELL", "true"], "interval": 1, "timeout": 1, "retries": 1}}}},
        {{"name": "after-healthy", "image": "busybox:latest", {LONG},
          "dependsOn": [{{"containerName": "healthy", "condition": "HEALTHY"}}]}}]}}"#,
        done = sh("sleep 1; exit 3"),
        ok = sh("sleep 1"),
    );
    let (arn, mut events) = start(&engine, &json).await;
    let dependents = ["after-start", "after-complete", "after-success", "after-healthy"];
    until_all(&mut events, &arn, &dependents, ContainerStatus::Running).await;
    assert_eq!(exit_code(&events, &arn, "done"), Some(3));
    assert_eq!(exit_code(&events, &arn, "ok"), Some(0));

    // Docker's own times.
    let base = cleanup.info("base").await;
    let after_start = cleanup.info("after-start").await;
    assert!(started(&after_start) >= started(&base), "START: {after_start:?} vs {base:?}");
    let done = cleanup.info("done").await;
    let after_complete = cleanup.info("after-complete").await;
    assert_eq!(done.state.exit_code, 3);
    assert!(started(&after_complete) > finished(&done), "COMPLETE: {after_complete:?} vs {done:?}");
    let ok = cleanup.info("ok").await;
    let after_success = cleanup.info("after-success").await;
    assert!(started(&after_success) > finished(&ok), "SUCCESS: {after_success:?} vs {ok:?}");
    let healthy_inspect = cleanup.inspect_json("healthy").await;
    assert_eq!(healthy_inspect["State"]["Health"]["Status"], "healthy");
    let healthy = cleanup.info("healthy").await;
    let after_healthy = cleanup.info("after-healthy").await;
    // Docker runs the first check one interval after the start.
    assert!(
        started(&after_healthy) >= started(&healthy) + chrono::Duration::seconds(1),
        "HEALTHY: {after_healthy:?} vs {healthy:?}"
    );
    // While Docker still keeps the first check's result (it keeps the last 5), the
    // dependent started after it ended.
    let log = healthy_inspect["State"]["Health"]["Log"].as_array().cloned().unwrap_or_default();
    if (1..5).contains(&log.len()) {
        let first_end = log[0]["End"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let first_end = first_end.unwrap_or_else(|| panic!("{log:?}"));
        assert_eq!(log[0]["ExitCode"], 0);
        assert!(started(&after_healthy) > first_end, "HEALTHY after the first check: {log:?}");
    }

    let changes = stop(&engine, &mut events, &arn).await;
    for name in ["base", "after-start", "after-complete", "after-success", "healthy", "after-healthy"] {
        let code = changes.iter().find(|c| c.container_name == name && c.status == ContainerStatus::Stopped);
        assert_eq!(code.and_then(|c| c.exit_code), Some(143), "{name} ends on berth's SIGTERM: {changes:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_essential_exit_stops_the_other_containers() {
    let (engine, cleanup) = real().await;
    let json = format!(
        r#"{{"family": "essential", "containerDefinitions": [
        {{"name": "main", "image": "busybox:latest", "command": {main}}},
        {{"name": "side-term", "image": "busybox:latest", "essential": false, {LONG}}},
        {{"name": "side-kill", "image": "busybox:latest", "essential": false, "command": ["sleep", "600"]}}]}}"#,
        main = sh("sleep 1; exit 5"),
    );
    let (arn, mut events) = start(&engine, &json).await;
    // side-kill is PID 1 without a handler: SIGTERM does nothing, SIGKILL after 2 s.
    until_all(&mut events, &arn, &["main", "side-term", "side-kill"], ContainerStatus::Stopped).await;
    until_task_stopped(&mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "main"), Some(5));
    assert_eq!(exit_code(&events, &arn, "side-term"), Some(143), "stopped by berth's SIGTERM");
    assert_eq!(exit_code(&events, &arn, "side-kill"), Some(137), "killed by Docker after the stop timeout");
    // As ECS reports it: main's exit tells the task to stop, the last stop makes it STOPPED.
    let main_change = change(&events, &arn, "main", ContainerStatus::Stopped);
    assert_eq!((main_change.task_desired_status, main_change.task_status), (TaskStatus::Stopped, TaskStatus::None));
    let stopped: Vec<StateChange> = ["main", "side-term", "side-kill"]
        .iter()
        .map(|name| change(&events, &arn, name, ContainerStatus::Stopped))
        .collect();
    let last = stopped.iter().max_by_key(|c| c.seq).unwrap_or_else(|| panic!("three stops"));
    assert_eq!(last.task_status, TaskStatus::Stopped, "the task is STOPPED with its last container: {stopped:#?}");

    let main = cleanup.info("main").await;
    for (name, code) in [("side-term", 143), ("side-kill", 137)] {
        let side = cleanup.info(name).await;
        assert_eq!((side.state.status.as_str(), side.state.exit_code), ("exited", code), "{side:?}");
        assert!(finished(&side) > finished(&main), "{name} was stopped after main exited");
    }
    stop(&engine, &mut events, &arn).await;
}

// 5. Restart.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_never_starts_an_exited_container_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = EngineConfig { data_dir: Some(dir.path().to_path_buf()), ..real_config() };
    let (mut first, cleanup) = real_with(config.clone()).await;
    // early exits while the first engine runs; late exits while no engine runs.
    let json = format!(
        r#"{{"family": "restart", "containerDefinitions": [
        {{"name": "early", "image": "busybox:latest", "essential": false, "command": ["true"]}},
        {{"name": "late", "image": "busybox:latest", "essential": false, "command": ["sleep", "3"]}},
        {{"name": "keep", "image": "busybox:latest", {LONG}}}]}}"#
    );
    let (arn, mut events) = start(&first, &json).await;
    until_all(&mut events, &arn, &["early"], ContainerStatus::Stopped).await;
    until_all(&mut events, &arn, &["late", "keep"], ContainerStatus::Running).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
    let last_seq = events.seen.last().map_or(0, |c| c.seq);

    eventually("late exits while no engine runs", async || cleanup.info("late").await.state.status == "exited").await;
    let before: Vec<ContainerInfo> =
        futures_util::future::join_all(["early", "late", "keep"].map(|n| cleanup.info(n))).await;

    let mut second = DockerTaskEngine::new(config, Arc::new(docker().await));
    second.init().await.unwrap_or_else(|e| panic!("init: {e}"));
    assert_eq!(second.instance_id(), Some(cleanup.instance.as_str()));
    // The whole log: the first engine's changes, then the second's.
    let mut events = Watcher::new(second.task_events_from(1).unwrap_or_else(|e| panic!("{e}")));
    until_all(&mut events, &arn, &["late"], ContainerStatus::Stopped).await;
    assert_eq!(exit_code(&events, &arn, "late"), Some(0), "what happened while down is reported");
    // Settled: nothing in flight, nothing left to inspect; then a little longer.
    eventually("the second engine settles", async || {
        let tasks = second.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
        tasks.iter().flat_map(|t| &t.containers).all(|c| !c.in_flight && !c.needs_inspect)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    for b in &before {
        let name = b.labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_default();
        let now = cleanup.info(&name).await;
        assert_eq!(now.state.started_at, b.state.started_at, "{name} was not started again");
        assert_eq!(now.state.status, b.state.status, "{name}");
    }
    assert_eq!(cleanup.containers_of(&arn).await.len(), 3, "nothing created twice");
    let log = events.of(&arn);
    let since_restart: Vec<_> = log.iter().filter(|c| c.seq > last_seq).collect();
    assert!(since_restart.iter().all(|c| c.status != ContainerStatus::Running), "nothing runs again: {log:#?}");
    let distinct: BTreeSet<(&str, ContainerStatus)> =
        log.iter().map(|c| (c.container_name.as_str(), c.status)).collect();
    assert_eq!(distinct.len(), log.len(), "no change is reported twice: {log:#?}");

    stop(&second, &mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "keep"), Some(143));
    second.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

// 6. Readers.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_does_not_stall_the_engine() {
    let (engine, _cleanup) = real().await;
    let mut stalled = engine.task_events().unwrap_or_else(|e| panic!("{e}"));
    let json = format!(
        r#"{{"family": "stall", "containerDefinitions": [
        {{"name": "a", "image": "busybox:latest", "essential": false, "command": ["true"]}},
        {{"name": "b", "image": "busybox:latest", "essential": false, "command": ["true"]}},
        {{"name": "c", "image": "busybox:latest", "essential": false, "command": ["true"]}},
        {{"name": "main", "image": "busybox:latest", "command": {}}}]}}"#,
        sh("sleep 1")
    );
    let (arn, mut events) = start(&engine, &json).await;
    let changes = until_task_stopped(&mut events, &arn).await;
    for name in ["a", "b", "c", "main"] {
        assert_eq!(exit_code(&events, &arn, name), Some(0));
    }
    // A second task goes through too, while the first reader still has read nothing.
    let (arn2, mut events2) = start(
        &engine,
        r#"{"family": "stall2", "containerDefinitions": [
        {"name": "main", "image": "busybox:latest", "command": ["true"]}]}"#,
    )
    .await;
    until_task_stopped(&mut events2, &arn2).await;
    // The one that never read still has everything, from the first change on.
    match stalled.try_next() {
        Some(LogItem::Change(c)) => assert_eq!(c, changes[0]),
        other => panic!("the stalled reader starts at the first change: {other:?}"),
    }
    stop(&engine, &mut events, &arn).await;
    stop(&engine, &mut events2, &arn2).await;
}

// 7. Settings.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_cpu_are_raised_to_dockers_minimums() {
    let (engine, cleanup) = real().await;
    const MIB: i64 = 1024 * 1024;
    // The limit the kernel applies, read inside the container (cgroup v1 or v2).
    let limit_is = |bytes: i64| {
        sh(&format!(
            "f=/sys/fs/cgroup/memory.max; [ -f $f ] || f=/sys/fs/cgroup/memory/memory.limit_in_bytes; \
             test \"$(cat $f)\" = {bytes}"
        ))
    };
    let json = format!(
        r#"{{"family": "limits", "containerDefinitions": [
        {{"name": "small", "image": "busybox:latest", "essential": false, "memory": 4, "cpu": 0, "command": {small}}},
        {{"name": "sized", "image": "busybox:latest", "essential": false, "memory": 64, "memoryReservation": 32,
          "cpu": 512, "command": {sized}}},
        {{"name": "soft", "image": "busybox:latest", "essential": false, "memoryReservation": 2, "command": ["true"]}},
        {{"name": "judge", "image": "busybox:latest", "command": ["true"],
          "dependsOn": [{{"containerName": "small", "condition": "COMPLETE"}},
                        {{"containerName": "sized", "condition": "COMPLETE"}},
                        {{"containerName": "soft", "condition": "COMPLETE"}}]}}]}}"#,
        small = limit_is(6 * MIB),
        sized = limit_is(64 * MIB),
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_task_stopped(&mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "small"), Some(0), "the kernel's limit is 6 MiB");
    assert_eq!(exit_code(&events, &arn, "sized"), Some(0), "the kernel's limit is 64 MiB");
    let host = |v: &Value, key: &str| v["HostConfig"][key].as_i64();
    let small = cleanup.inspect_json("small").await;
    assert_eq!((host(&small, "Memory"), host(&small, "CpuShares")), (Some(6 * MIB), Some(2)), "memory 4, cpu 0");
    let sized = cleanup.inspect_json("sized").await;
    assert_eq!(
        (host(&sized, "Memory"), host(&sized, "MemoryReservation"), host(&sized, "CpuShares")),
        (Some(64 * MIB), Some(32 * MIB), Some(512))
    );
    let soft = cleanup.inspect_json("soft").await;
    assert_eq!((host(&soft, "Memory"), host(&soft, "MemoryReservation")), (Some(0), Some(6 * MIB)));
    assert_eq!(host(&soft, "CpuShares"), Some(2), "cpu absent");
    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_working_directory_reach_the_process() {
    let (engine, cleanup) = real().await;
    let check = sh(r#"test "$X" = y && test "$(pwd)" = /tmp"#);
    let json = format!(
        r#"{{"family": "env", "containerDefinitions": [
        {{"name": "set", "image": "busybox:latest", "essential": false, "command": {check},
          "environment": [{{"name": "X", "value": "y"}}], "workingDirectory": "/tmp"}},
        {{"name": "unset", "image": "busybox:latest", "essential": false, "command": {check}}},
        {{"name": "judge", "image": "busybox:latest", "command": ["true"],
          "dependsOn": [{{"containerName": "set", "condition": "COMPLETE"}},
                        {{"containerName": "unset", "condition": "COMPLETE"}}]}}]}}"#
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_task_stopped(&mut events, &arn).await;
    assert_eq!(exit_code(&events, &arn, "set"), Some(0), "X=y and /tmp reached the process");
    assert_eq!(exit_code(&events, &arn, "unset"), Some(1), "the same check fails without them");
    let set = cleanup.inspect_json("set").await;
    let env: Vec<&str> = set["Config"]["Env"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert!(env.contains(&"X=y"), "{env:?}");
    assert_eq!(set["Config"]["WorkingDir"], "/tmp");
    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_labels_of_the_task_and_berths_own_are_on_the_container() {
    let (engine, cleanup) = real().await;
    let json = format!(
        r#"{{"family": "labels", "containerDefinitions": [{{"name": "app", "image": "busybox:latest", {LONG},
        "dockerLabels": {{"com.example.team": "berth", "tier": "test tier"}}}}]}}"#
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_all(&mut events, &arn, &["app"], ContainerStatus::Running).await;
    let info = cleanup.info("app").await;
    let expected = [
        ("com.example.team", "berth"),
        ("tier", "test tier"),
        (labels::INSTANCE, cleanup.instance.as_str()),
        (labels::TASK_ARN, arn.as_str()),
        (labels::CONTAINER_NAME, "app"),
        (labels::FAMILY, "labels"),
        (labels::VERSION, "1"),
    ];
    for (key, value) in expected {
        assert_eq!(info.labels.get(key).map(String::as_str), Some(value), "{key}: {:?}", info.labels);
    }
    // berth-<family>-<version>-<name>-<16 hex>
    let hex = info.name.strip_prefix("berth-labels-1-app-").unwrap_or_else(|| panic!("{}", info.name));
    assert!(hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()), "{}", info.name);
    stop(&engine, &mut events, &arn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_networking_interactive_and_pseudo_terminal_reach_the_container() {
    let (engine, cleanup) = real().await;
    // "acted" has only the loopback interface, a terminal, and a stdin that stays open (cat
    // waits on it until `timeout` kills it); "plain" has a network, no terminal, and an
    // empty stdin (cat ends at once).
    let check = |acted: bool| {
        let (net, tty, stdin) = if acted { ("= lo", "", "-ne 0") } else { ("!= lo", "!", "= 0") };
        sh(&format!(
            "test \"$(ls /sys/class/net)\" {net} && {tty} test -t 1 && {{ timeout 3 cat > /dev/null; test $? {stdin}; }}"
        ))
    };
    let json = format!(
        r#"{{"family": "tty", "containerDefinitions": [
        {{"name": "acted", "image": "busybox:latest", "essential": false, "command": {acted},
          "disableNetworking": true, "interactive": true, "pseudoTerminal": true}},
        {{"name": "plain", "image": "busybox:latest", "essential": false, "command": {plain}}},
        {{"name": "judge", "image": "busybox:latest", "command": ["true"],
          "dependsOn": [{{"containerName": "acted", "condition": "COMPLETE"}},
                        {{"containerName": "plain", "condition": "COMPLETE"}}]}}]}}"#,
        acted = check(true),
        plain = check(false),
    );
    let (arn, mut events) = start(&engine, &json).await;
    until_task_stopped(&mut events, &arn).await;
    let config = |v: &Value| {
        let c = &v["Config"];
        (c["NetworkDisabled"].as_bool(), c["OpenStdin"].as_bool(), c["Tty"].as_bool())
    };
    let acted = cleanup.inspect_json("acted").await;
    assert_eq!(config(&acted), (Some(true), Some(true), Some(true)), "{}", acted["Config"]);
    let plain = cleanup.inspect_json("plain").await;
    assert_ne!(plain["Config"]["NetworkDisabled"], true, "{}", plain["Config"]);
    assert_eq!((config(&plain).1, config(&plain).2), (Some(false), Some(false)), "{}", plain["Config"]);
    assert_eq!(exit_code(&events, &arn, "acted"), Some(0), "only lo, a terminal, stdin open");
    assert_eq!(exit_code(&events, &arn, "plain"), Some(0), "a network, no terminal, stdin at its end");
    stop(&engine, &mut events, &arn).await;
}

// 8. Isolation of task volumes between engine instances.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_volume_of_another_berth_is_refused_never_shared() {
    let (first, first_cleanup) = real().await;
    let (second, second_cleanup) = real().await;
    let n = n();
    let writer = task(
        r#"{"family": "isolated", "volumes": [{"name": "v", "host": {}}], "containerDefinitions": [
        {"name": "w", "image": "busybox:latest", "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}],
         "command": ["sh", "-c", "echo first > /v/f; exec sleep 600"], "linuxParameters": {"initProcessEnabled": true}}]}"#,
        n,
    );
    // The same arn (a task file with its own arn, run by a daemon and by `berth run`): the
    // task volume's name is the same, `berth-<task id>-v`.
    let reader = task(
        r#"{"family": "isolated", "volumes": [{"name": "v", "host": {}}], "containerDefinitions": [
        {"name": "r", "image": "busybox:latest", "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}],
         "command": ["sh", "-c", "test -z \"$(ls -A /v)\""]}]}"#,
        n,
    );
    assert_eq!(writer.arn, reader.arn);
    let (arn, mut first_events) = start_task(&first, writer).await;
    until_all(&mut first_events, &arn, &["w"], ContainerStatus::Running).await;
    let (_, mut second_events) = start_task(&second, reader).await;
    until_task_stopped(&mut second_events, &arn).await;
    let r = second_events.change(&arn, "r", ContainerStatus::Stopped).unwrap_or_else(|| panic!("r stopped"));
    assert!(second_events.change(&arn, "r", ContainerStatus::Running).is_none(), "the second task never ran on it");
    let tasks = second.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    let reason = tasks
        .iter()
        .find(|t| t.arn == arn)
        .and_then(|t| t.stop_reason.clone())
        .or(r.reason.clone())
        .unwrap_or_default();
    assert!(reason.contains("belongs to another berth"), "the reason says whose it is: {reason}");
    assert!(second_cleanup.volumes().is_empty(), "the second berth made no volume");
    assert_eq!(first_cleanup.volumes().len(), 1, "the first berth's volume is left alone");
    stop(&first, &mut first_events, &arn).await;
}

/// A seed-shape task with arn `arn`, one empty task volume `v` mounted at `/v`, running
/// `script` in container `c`.
fn with_volume(arn: &str, script: &str) -> Task {
    let json = format!(
        r#"{{"arn": "{arn}", "family": "volnames", "version": "1", "volumes": [{{"name": "v", "host": {{}}}}],
        "containers": [{{"name": "c", "image": "busybox:latest", "essential": true, "command": {},
          "mountPoints": [{{"sourceVolume": "v", "containerPath": "/v"}}]}}]}}"#,
        sh(script)
    );
    task(&json, n())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_volumes_of_arns_that_end_alike_are_kept_apart() {
    let (engine, cleanup) = real().await;
    let n = n();
    // Two arns with the same last part: SPEC 1's `berth-<task id>-<volume>` would be one name.
    let first = with_volume(&format!("arn:aws:ecs:eu-west-1:1:task/a-{n:x}/job"), "echo first > /v/f; exec sleep 600");
    let second = with_volume(&format!("arn:aws:ecs:eu-west-1:1:task/b-{n:x}/job"), r#"test -z "$(ls -A /v)""#);
    let (first_name, second_name) =
        (first.docker_volume_name(&first.volumes[0]), second.docker_volume_name(&second.volumes[0]));
    assert_ne!(first_name, second_name);
    let (a, mut a_events) = start_task(&engine, first).await;
    until_all(&mut a_events, &a, &["c"], ContainerStatus::Running).await;
    let (b, mut b_events) = start_task(&engine, second).await;
    until_task_stopped(&mut b_events, &b).await;
    assert_eq!(exit_code(&b_events, &b, "c"), Some(0), "the second task's volume was its own, empty");
    let volumes: BTreeSet<String> = cleanup.volumes().into_iter().collect();
    assert_eq!(volumes, BTreeSet::from([first_name, second_name]));
    stop(&engine, &mut a_events, &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_whose_labels_name_another_task_is_refused_and_left_alone() {
    let (engine, cleanup) = real().await;
    let t = with_volume(&format!("arn:aws:ecs:eu-west-1:1:task/c-{:x}/job", n()), "true");
    let name = t.docker_volume_name(&t.volumes[0]);
    let other = format!("{}-other", t.arn);
    let made = std::process::Command::new("docker")
        .args(["volume", "create", "--label", &format!("{}={}", labels::INSTANCE, cleanup.instance)])
        .args(["--label", &format!("{}={other}", labels::TASK_ARN), &name])
        .output()
        .unwrap_or_else(|e| panic!("docker volume create: {e}"));
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (arn, mut events) = start_task(&engine, t).await;
    until_task_stopped(&mut events, &arn).await;
    assert!(events.change(&arn, "c", ContainerStatus::Running).is_none(), "the task never ran on it");
    let tasks = engine.list_tasks().await.unwrap_or_else(|e| panic!("{e}"));
    let reason = tasks.iter().find(|t| t.arn == arn).and_then(|t| t.stop_reason.clone()).unwrap_or_default();
    assert!(reason.contains(&format!("belongs to another task ({other})")), "{reason}");
    let v = docker_cli_json(&["volume", "inspect", &name]);
    assert_eq!(v["Labels"][labels::TASK_ARN], other.as_str(), "the other task's volume is untouched: {v}");
}
