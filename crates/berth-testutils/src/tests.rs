//! The fake against the Docker behaviours berth relies on.

use super::*;
use berth_docker::{
    ContainerConfig, DockerClient, DockerEvent, ErrorKind, EventStream, HealthConfig, HostConfig, LogChunk, LogOptions,
    LogSource, LogStream, PortSpec, VolumeConfig, status_of,
};
use berth_model::{ContainerStatus, HealthStatus};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(3600);

fn config(name: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: "busybox".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        labels: BTreeMap::from([
            ("berth.task-arn".to_string(), "arn:task/1".to_string()),
            ("berth.container-name".to_string(), name.to_string()),
        ]),
        ..ContainerConfig::default()
    }
}

fn with_health(mut c: ContainerConfig) -> ContainerConfig {
    c.health_check = Some(HealthConfig { test: vec!["CMD-SHELL".into(), "true".into()], ..HealthConfig::default() });
    c
}

fn fake() -> FakeDocker {
    let fake = FakeDocker::new();
    fake.add_image("busybox");
    fake
}

async fn run(fake: &FakeDocker, name: &str, command: &[&str]) -> String {
    let id = fake.create_container(&config(name, command)).await.unwrap();
    fake.start_container(&id).await.unwrap();
    id
}

/// The actions of the retained events about `id`.
fn actions(fake: &FakeDocker, id: &str) -> Vec<String> {
    fake.events().into_iter().filter(|e| e.id == id).map(|e| e.action).collect()
}

/// The next `n` items of a stream, failing the test if they take more than a second.
async fn take(stream: &mut EventStream, n: usize) -> Vec<DockerEvent> {
    let mut out = Vec::new();
    for _ in 0..n {
        let item = tokio::time::timeout(Duration::from_secs(1), stream.next()).await.expect("event in time");
        out.push(item.expect("stream open").expect("no error"));
    }
    out
}

/// Nothing more arrives on the stream for a while.
async fn quiet(stream: &mut EventStream) {
    assert!(tokio::time::timeout(Duration::from_millis(50), stream.next()).await.is_err(), "no further event");
}

/// Let spawned behaviour tasks run.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

// --- containers ------------------------------------------------------------------------

#[tokio::test]
async fn ids_are_64_lowercase_hex_and_unique() {
    let fake = fake();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..100 {
        let id = fake.create_container(&config(&format!("c{i}"), &[])).await.unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{id}");
        ids.insert(id[..12].to_string());
    }
    assert_eq!(ids.len(), 100, "short ids differ too");
}

#[tokio::test]
async fn create_needs_the_image_and_a_free_valid_name() {
    let fake = FakeDocker::new();
    let err = fake.create_container(&config("web", &[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(err.message, "No such image: busybox:latest");
    assert_eq!(err.target, "web");

    fake.add_image("docker.io/library/busybox:latest");
    let id = fake.create_container(&config("web", &[])).await.unwrap();
    let err = fake.create_container(&config("web", &[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains(&id), "{}", err.message);

    let slashed = fake.create_container(&config("/slashed", &[])).await.unwrap();
    assert_eq!(fake.inspect_container("slashed").await.unwrap().id, slashed);
    let err = fake.create_container(&config("x", &[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent, "Docker wants two characters at least");
    let err = fake.create_container(&config("bad name!", &[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert_eq!(fake.containers().len(), 2);
    assert_eq!(actions(&fake, &id), ["create"]);
}

#[tokio::test]
async fn create_keeps_the_whole_config_and_labels() {
    let fake = fake();
    let mut c = config("web", &["nginx"]);
    c.env = vec!["A=1".into()];
    c.host = HostConfig { memory_bytes: Some(1 << 20), binds: vec!["/data:/data:ro".into()], ..HostConfig::default() };
    let id = fake.create_container(&c).await.unwrap();
    let snap = fake.container(&id).unwrap();
    assert_eq!(snap.config, c);
    assert_eq!(snap.labels, c.labels);
    assert_eq!(snap.state, RunState::Created);
    assert_eq!(fake.container("web").unwrap().id, id);
    let info = fake.inspect_container("/web").await.unwrap();
    assert_eq!(info.labels, c.labels);
    assert_eq!(info.image, "busybox");
}

#[tokio::test]
async fn the_request_is_kept_as_given_and_the_behaviour_sees_it_whole() {
    let fake = fake();
    let full = ContainerConfig {
        name: "/given".into(),
        image: "busybox".into(),
        command: vec!["sleep".into(), "1".into()],
        entry_point: vec!["sh".into()],
        env: vec!["A=1".into()],
        labels: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
        working_dir: Some("/w".into()),
        user: Some("u".into()),
        hostname: Some("h".into()),
        health_check: Some(HealthConfig { test: vec!["NONE".into()], retries: Some(3), ..HealthConfig::default() }),
        stop_timeout: Some(5),
        network_disabled: true,
        open_stdin: true,
        tty: true,
        host: HostConfig { cpu_shares: Some(2), binds: vec!["/d:/d".into()], ..HostConfig::default() },
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    fake.set_behaviour(move |c: &ContainerConfig| {
        record.lock().unwrap().push(c.clone());
        Behaviour::forever()
    });
    let id = fake.create_container(&full).await.unwrap();
    fake.start_container("given").await.unwrap();
    let snap = fake.container(&id).unwrap();
    assert_eq!((snap.name.as_str(), &snap.config), ("given", &full), "the name without its `/`, the request as given");
    assert_eq!(snap.health, None, "a NONE health check is none");
    assert_eq!(*seen.lock().unwrap(), std::slice::from_ref(&full));

    // An unnamed container gets a name of Docker's choosing; its request stays unnamed.
    let unnamed = ContainerConfig { name: String::new(), ..config("x", &[]) };
    let id = fake.create_container(&unnamed).await.unwrap();
    let snap = fake.container(&id).unwrap();
    assert_eq!((snap.name.as_str(), &snap.config), ("fake_container_2", &unnamed));
    assert_eq!(fake.container("fake_container_2").unwrap().id, id);
    assert_eq!(fake.inspect_container(&id).await.unwrap().name, "fake_container_2");
    fake.reset_behaviour();
}

#[tokio::test]
async fn start_runs_a_created_container_by_id_or_name() {
    let fake = fake();
    let id = fake.create_container(&config("web", &[])).await.unwrap();
    let info = fake.inspect_container(&id).await.unwrap();
    assert_eq!(info.state.status, "created");
    assert_eq!(info.state.started_at, None);
    assert!(!info.has_run());

    fake.start_container("web").await.unwrap();
    let info = fake.inspect_container(&id).await.unwrap();
    assert_eq!(info.state.status, "running");
    assert!(info.state.started_at.is_some());
    assert_eq!(status_of(&info), ContainerStatus::Running);
    assert_eq!(actions(&fake, &id), ["create", "start"]);
}

#[tokio::test]
async fn starting_a_running_container_changes_nothing() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    let before = fake.inspect_container(&id).await.unwrap();
    fake.start_container(&id).await.unwrap();
    fake.start_container("web").await.unwrap();
    assert_eq!(fake.inspect_container(&id).await.unwrap(), before);
    assert_eq!(actions(&fake, &id), ["create", "start"]);
    assert_eq!(fake.container(&id).unwrap().times_started, 1);
    assert_eq!(fake.starts("web"), 3, "calls are counted by name, by id or not");
}

#[tokio::test]
async fn starting_an_exited_container_runs_it_again() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    assert!(fake.exit(&id, 1));
    let exited = fake.inspect_container(&id).await.unwrap();
    assert_eq!((exited.state.status.as_str(), exited.state.exit_code), ("exited", 1));
    assert!(exited.has_run());

    fake.start_container(&id).await.unwrap();
    let info = fake.inspect_container(&id).await.unwrap();
    assert_eq!(info.state.status, "running");
    assert_eq!(info.state.exit_code, 0);
    let snap = fake.container(&id).unwrap();
    assert_eq!((snap.times_started, snap.restarts_after_exit), (2, 1));
    assert_eq!(fake.restarts_of_exited(), 1);
    assert_eq!(actions(&fake, &id), ["create", "start", "die", "start"]);
}

#[tokio::test]
async fn unknown_containers_are_not_found_except_for_removal() {
    let fake = fake();
    for err in [
        fake.start_container("nope").await.unwrap_err(),
        fake.stop_container("nope", Duration::from_secs(1)).await.unwrap_err(),
        fake.inspect_container("nope").await.unwrap_err(),
    ] {
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.target, "nope");
        assert_eq!(err.message, "No such container: nope");
    }
    fake.remove_container("nope").await.unwrap();
    assert!(fake.get_container_name("nope").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn stop_sends_sigterm_and_the_container_exits_143() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.stop_container(&id, Duration::from_secs(30)).await.unwrap();
    let events: Vec<DockerEvent> = fake.events().into_iter().filter(|e| e.id == id).collect();
    let acts: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(acts, ["create", "start", "kill", "die", "stop"]);
    assert_eq!(events[2].attributes.get("signal").map(String::as_str), Some("15"));
    assert_eq!(events[3].attributes.get("exitCode").map(String::as_str), Some("143"));
    let info = fake.inspect_container(&id).await.unwrap();
    assert_eq!((info.state.status.as_str(), info.state.exit_code), ("exited", 143));
    assert!(info.state.finished_at.is_some());
    assert_eq!(fake.describe_container(&id).await.unwrap(), ContainerStatus::Stopped);

    fake.stop_container(&id, Duration::from_secs(30)).await.unwrap();
    let created = fake.create_container(&config("idle", &[])).await.unwrap();
    fake.stop_container(&created, Duration::from_secs(30)).await.unwrap();
    assert_eq!(actions(&fake, &id).len(), 5, "stopping a stopped one sends nothing");
    assert_eq!(actions(&fake, &created), ["create"]);
    assert_eq!(fake.container(&created).unwrap().state, RunState::Created);
}

#[tokio::test]
async fn remove_forces_a_running_container_and_frees_its_name() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.remove_container("web").await.unwrap();
    let events: Vec<DockerEvent> = fake.events().into_iter().filter(|e| e.id == id).collect();
    let acts: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(acts, ["create", "start", "kill", "die", "destroy"]);
    assert_eq!(events[3].attributes.get("exitCode").map(String::as_str), Some("137"));
    assert!(fake.inspect_container(&id).await.unwrap_err().is_not_found());
    assert!(fake.containers().is_empty());
    fake.remove_container(&id).await.unwrap();

    let again = fake.create_container(&config("web", &[])).await.unwrap();
    assert_ne!(again, id);
    fake.remove_container(&again).await.unwrap();
    assert_eq!(actions(&fake, &again), ["create", "destroy"]);
}

/// A container's events share the one map of attributes made at its create; an event with
/// attributes of its own (`die`, `kill`) has its own map, and the shared one is unchanged.
#[tokio::test]
async fn a_containers_events_share_their_attributes() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.kill(&id, 137);
    let events = fake.events();
    let of = |action: &str| events.iter().find(|e| e.action == action).unwrap();
    assert!(Arc::ptr_eq(&of("create").attributes, &of("start").attributes));
    assert!(!Arc::ptr_eq(&of("create").attributes, &of("die").attributes));
    assert_eq!(of("start").attributes.get("exitCode"), None);
    let mut die = BTreeMap::clone(&of("die").attributes);
    assert_eq!(die.remove("exitCode").as_deref(), Some("137"));
    assert_eq!(&die, &*of("create").attributes);
}

#[tokio::test]
async fn events_carry_name_image_labels_and_codes() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.kill(&id, 137);
    let die = fake.events().into_iter().find(|e| e.action == "die").unwrap();
    assert_eq!(die.id, id);
    assert_eq!(die.attributes.get("name").map(String::as_str), Some("web"));
    assert_eq!(die.attributes.get("image").map(String::as_str), Some("busybox"));
    assert_eq!(die.attributes.get("berth.task-arn").map(String::as_str), Some("arn:task/1"));
    assert_eq!(die.attributes.get("exitCode").map(String::as_str), Some("137"));
    let mapped = berth_docker::events::container_event(&die).unwrap();
    assert_eq!(mapped.kind, berth_docker::EventKind::Stopped { exit_code: Some(137) });
    assert_eq!(mapped.labels.len(), 2);
    let kill = fake.events().into_iter().find(|e| e.action == "kill").unwrap();
    assert_eq!(kill.attributes.get("signal").map(String::as_str), Some("9"));
    let times: Vec<_> = fake.events().iter().map(|e| e.time).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "event times strictly rise");
}

#[tokio::test]
async fn dynamic_ports_are_unique_and_bound_only_while_running() {
    let fake = fake();
    let mut c = config("ca", &[]);
    c.host.ports = vec![
        PortSpec { container_port: 80, host_port: 0, ..PortSpec::default() },
        PortSpec { container_port: 443, host_port: 8443, ..PortSpec::default() },
    ];
    let a = fake.create_container(&c).await.unwrap();
    assert!(fake.inspect_container(&a).await.unwrap().port_bindings.is_empty());
    fake.start_container(&a).await.unwrap();
    let bound = fake.inspect_container(&a).await.unwrap().port_bindings;
    assert_eq!(bound.len(), 2);
    assert_eq!((bound[0].container_port, bound[0].bind_ip.as_str()), (80, "0.0.0.0"));
    assert!(bound[0].host_port >= 32768);
    assert_eq!((bound[1].container_port, bound[1].host_port), (443, 8443));

    let mut seen = std::collections::BTreeSet::from([bound[0].host_port]);
    for i in 0..50 {
        let mut c = config(&format!("b{i}"), &[]);
        c.host.ports = vec![PortSpec { container_port: 80, host_port: 0, ..PortSpec::default() }];
        let id = fake.create_container(&c).await.unwrap();
        fake.start_container(&id).await.unwrap();
        let port = fake.inspect_container(&id).await.unwrap().port_bindings[0].host_port;
        assert!(port >= 32768 && seen.insert(port), "port {port} unique");
    }
    fake.stop_container(&a, Duration::ZERO).await.unwrap();
    assert!(fake.inspect_container(&a).await.unwrap().port_bindings.is_empty());
}

#[tokio::test]
async fn list_containers_filters_by_every_label_pair_in_any_state() {
    let fake = fake();
    let running = run(&fake, "ca", &[]).await;
    let created = fake.create_container(&config("cb", &[])).await.unwrap();
    let mut other = config("cc", &[]);
    other.labels.insert("berth.task-arn".into(), "arn:task/2".into());
    fake.create_container(&other).await.unwrap();
    fake.exit(&running, 0);

    let all = fake.list_containers(&[]).await.unwrap();
    assert_eq!(all.len(), 3);
    let task1 = fake.list_containers(&[("berth.task-arn", "arn:task/1")]).await.unwrap();
    let ids: Vec<&str> = task1.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [running.as_str(), created.as_str()]);
    assert_eq!(task1[0].state, "exited");
    assert_eq!(task1[0].names, ["ca"]);
    let one = fake.list_containers(&[("berth.task-arn", "arn:task/1"), ("berth.container-name", "cb")]).await.unwrap();
    assert_eq!(one.len(), 1);
    assert!(fake.list_containers(&[("berth.instance", "x")]).await.unwrap().is_empty());
}

#[tokio::test]
async fn links_volumes_from_and_network_containers_are_checked_as_docker_does() {
    let fake = fake();
    let mut web = config("web", &[]);
    web.host.links = vec!["db:database".into()];
    let err = fake.create_container(&web).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);

    let db = fake.create_container(&config("db", &[])).await.unwrap();
    let web_id = fake.create_container(&web).await.unwrap();
    let err = fake.start_container(&web_id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(err.message.contains("Cannot link to a non running container: /db AS /web/database"), "{}", err.message);
    fake.start_container(&db).await.unwrap();
    fake.start_container(&web_id).await.unwrap();

    let mut app = config("app", &[]);
    app.host.volumes_from = vec!["missing:ro".into()];
    assert_eq!(fake.create_container(&app).await.unwrap_err().kind, ErrorKind::NotFound);
    app.host.volumes_from = vec!["db:ro".into()];
    fake.create_container(&app).await.unwrap();

    let pause = fake.create_container(&config("pause", &[])).await.unwrap();
    let mut joined = config("joined", &[]);
    joined.host.network_mode = Some(format!("container:{pause}"));
    let joined = fake.create_container(&joined).await.unwrap();
    assert_eq!(fake.start_container(&joined).await.unwrap_err().kind, ErrorKind::Conflict);
    fake.start_container(&pause).await.unwrap();
    fake.start_container(&joined).await.unwrap();
}

// --- behaviour ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn exit_n_exits_right_after_starting() {
    let fake = fake();
    let id = run(&fake, "job", &["sh", "-c", "exit 3"]).await;
    settle().await;
    let info = fake.inspect_container(&id).await.unwrap();
    assert_eq!((info.state.status.as_str(), info.state.exit_code), ("exited", 3));
    assert_eq!(actions(&fake, &id), ["create", "start", "die"]);
}

#[tokio::test(start_paused = true)]
async fn sleep_n_exits_zero_after_n_seconds() {
    let fake = fake();
    let id = run(&fake, "job", &["sleep", "5"]).await;
    let started = fake.inspect_container(&id).await.unwrap().state.started_at.unwrap();
    tokio::time::sleep(Duration::from_millis(4900)).await;
    assert_eq!(fake.container(&id).unwrap().state, RunState::Running);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info = fake.inspect_container(&id).await.unwrap();
    assert_eq!((info.state.status.as_str(), info.state.exit_code), ("exited", 0));
    let ran = info.state.finished_at.unwrap() - started;
    assert_eq!(ran.num_seconds(), 5, "the fake's clock follows tokio time");
}

#[tokio::test(start_paused = true)]
async fn other_commands_run_until_stopped() {
    let fake = fake();
    let id = run(&fake, "web", &["nginx", "-g", "daemon off;"]).await;
    tokio::time::sleep(LONG).await;
    assert_eq!(fake.container(&id).unwrap().state, RunState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_timed_exit_belongs_to_its_run() {
    let fake = fake();
    let id = run(&fake, "job", &["sleep", "5"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    fake.stop_container(&id, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    fake.start_container(&id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.container(&id).unwrap().state, RunState::Running, "the first run's exit does not apply");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let snap = fake.container(&id).unwrap();
    assert_eq!((snap.state, snap.exit_code), (RunState::Exited, Some(0)));
    assert_eq!(actions(&fake, &id), ["create", "start", "kill", "die", "stop", "start", "die"]);
}

#[tokio::test(start_paused = true)]
async fn a_custom_behaviour_decides_exits_and_health() {
    let fake = fake();
    fake.set_behaviour(|c: &ContainerConfig| {
        if c.name == "db" {
            Behaviour::forever().healthy_after(Duration::from_secs(10))
        } else {
            Behaviour::exits_after(Duration::from_secs(1), 7)
        }
    });
    let db = fake.create_container(&with_health(config("db", &[]))).await.unwrap();
    fake.start_container(&db).await.unwrap();
    let job = run(&fake, "job", &[]).await;
    assert_eq!(fake.inspect_container(&db).await.unwrap().state.health, Some(HealthStatus::Unknown));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.container(&job).unwrap().exit_code, Some(7));
    assert_eq!(fake.inspect_container(&db).await.unwrap().state.health, Some(HealthStatus::Unknown));
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(fake.inspect_container(&db).await.unwrap().state.health, Some(HealthStatus::Healthy));
    assert_eq!(actions(&fake, &db), ["create", "start", "health_status: healthy"]);

    fake.reset_behaviour();
    let other = run(&fake, "other", &["exit 4"]).await;
    settle().await;
    assert_eq!(fake.container(&other).unwrap().exit_code, Some(4));
}

#[tokio::test(start_paused = true)]
async fn a_behaviour_may_look_at_the_fake() {
    let fake = fake();
    let seen = fake.clone();
    fake.set_behaviour(move |c: &ContainerConfig| {
        // Called without the fake's lock held: reading the fake does not deadlock.
        let running = seen.containers().iter().filter(|s| s.state == RunState::Running).count();
        if c.name == "second" && running == 2 { Behaviour::exits(running as i64) } else { Behaviour::forever() }
    });
    run(&fake, "first", &[]).await;
    let second = run(&fake, "second", &[]).await;
    settle().await;
    assert_eq!(fake.container(&second).unwrap().exit_code, Some(2));
    fake.reset_behaviour();
}

#[tokio::test(start_paused = true)]
async fn only_containers_with_a_health_check_report_health() {
    let fake = fake();
    let checked = fake.create_container(&with_health(config("checked", &[]))).await.unwrap();
    fake.start_container(&checked).await.unwrap();
    let plain = run(&fake, "plain", &[]).await;
    settle().await;
    assert_eq!(fake.inspect_container(&checked).await.unwrap().state.health, Some(HealthStatus::Healthy));
    assert_eq!(actions(&fake, &checked), ["create", "start", "health_status: healthy"]);
    assert_eq!(fake.inspect_container(&plain).await.unwrap().state.health, None);
    assert_eq!(actions(&fake, &plain), ["create", "start"]);
}

// --- test controls ------------------------------------------------------------------------

#[tokio::test]
async fn kill_exit_and_set_health_act_like_the_outside_world() {
    let fake = fake();
    let a = run(&fake, "ca", &[]).await;
    assert!(fake.kill("ca", 137));
    assert_eq!(actions(&fake, &a), ["create", "start", "kill", "die"]);
    assert!(!fake.kill("ca", 137), "not running any more");
    assert_eq!(fake.container(&a).unwrap().exit_code, Some(137));

    let b = run(&fake, "cb", &[]).await;
    assert!(fake.exit(&b, 2));
    assert_eq!(actions(&fake, &b), ["create", "start", "die"]);

    let c = fake.create_container(&with_health(config("cc", &[]))).await.unwrap();
    assert!(!fake.set_health("cc", HealthStatus::Healthy), "not running");
    fake.start_container(&c).await.unwrap();
    assert!(fake.set_health("cc", HealthStatus::Unhealthy));
    assert_eq!(fake.inspect_container(&c).await.unwrap().state.health, Some(HealthStatus::Unhealthy));
    assert!(actions(&fake, &c).contains(&"health_status: unhealthy".to_string()));
    assert!(!fake.set_health("cb", HealthStatus::Healthy), "no health check");
    assert!(!fake.exit("nope", 1));
}

#[tokio::test]
async fn counters_count_calls_per_operation_and_target() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.start_container("web").await.unwrap();
    let _ = fake.create_container(&config("web", &[])).await;
    fake.fail_next(Op::StopContainer, None, 1, ErrorKind::Transient);
    let _ = fake.stop_container(&id, Duration::ZERO).await;
    fake.stop_container("web", Duration::ZERO).await.unwrap();
    assert_eq!(fake.creates("web"), 2);
    assert_eq!(fake.starts("web"), 2);
    assert_eq!(fake.stops("web"), 2, "failed calls count");
    assert_eq!(fake.calls(Op::CreateContainer), 2);
    assert_eq!(fake.calls(Op::RemoveContainer), 0);
    fake.add_registry_image("nginx");
    fake.pull_image("nginx", None, &|_| {}).await.unwrap();
    fake.pull_image("nginx:latest", None, &|_| {}).await.unwrap();
    assert_eq!(fake.pulls("docker.io/library/nginx"), 2);
}

#[tokio::test]
async fn counters_by_name_count_before_the_container_exists_and_after_it_is_gone() {
    let fake = fake();
    let _ = fake.start_container("/web").await;
    let _ = fake.inspect_container("web").await;
    fake.create_volume(&VolumeConfig { name: "web".into(), ..VolumeConfig::default() }).await.unwrap();
    let id = run(&fake, "web", &[]).await;
    fake.inspect_container(&id).await.unwrap();
    assert_eq!((fake.creates("web"), fake.starts("web"), fake.calls_on(Op::InspectContainer, "web")), (1, 2, 2));
    fake.remove_container(&id).await.unwrap();
    let _ = fake.stop_container(&id, Duration::ZERO).await;
    fake.stop_container("web", Duration::ZERO).await.unwrap_err();
    assert_eq!((fake.starts("web"), fake.removes("web"), fake.stops("web")), (2, 1, 1), "kept after removal");
    assert_eq!(fake.stops(&id), 1, "an id no container has is a name like another");
    assert_eq!(fake.calls_on(Op::CreateVolume, "web"), 1);
    run(&fake, "web", &[]).await;
    assert_eq!((fake.creates("web"), fake.starts("web"), fake.removes("web")), (2, 3, 1), "and go on");
    assert_eq!((fake.starts("/web"), fake.starts(&id)), (0, 0));
}

// --- images and volumes -------------------------------------------------------------------

#[tokio::test]
async fn pulls_succeed_only_for_registry_images() {
    let fake = FakeDocker::new();
    fake.add_registry_image("nginx:1.25");
    assert!(!fake.image_exists("nginx:1.25").await.unwrap());
    fake.pull_image("nginx:1.25", None, &|_| {}).await.unwrap();
    assert!(fake.image_exists("docker.io/library/nginx:1.25").await.unwrap());
    assert!(fake.has_image("nginx:1.25"));

    let err = fake.pull_image("nosuch/image", None, &|_| {}).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permanent);
    assert!(err.message.starts_with("pull access denied for nosuch/image, repository does not exist"));
    assert_eq!(err.target, "nosuch/image");

    fake.add_image("local-only:dev");
    assert_eq!(fake.pull_image("local-only:dev", None, &|_| {}).await.unwrap_err().kind, ErrorKind::Permanent);
    let images = fake.list_images().await.unwrap();
    let tags: Vec<&str> = images.iter().map(|i| i.repo_tags[0].as_str()).collect();
    assert_eq!(tags, ["local-only:dev", "nginx:1.25"]);
    assert!(images.iter().all(|i| i.id.starts_with("sha256:") && i.id.len() == 71));
    assert!(fake.describe_docker_images().await.unwrap().contains("nginx:1.25"));

    assert!(fake.forget_image("nginx:1.25"));
    assert!(!fake.image_exists("nginx:1.25").await.unwrap());
}

#[tokio::test]
async fn volumes_are_idempotent_and_protected_while_mounted() {
    let fake = fake();
    let v = VolumeConfig { name: "data".into(), driver: Some("local".into()), ..VolumeConfig::default() };
    fake.create_volume(&v).await.unwrap();
    fake.create_volume(&v).await.unwrap();
    assert_eq!(fake.volumes(), std::slice::from_ref(&v));
    fake.remove_volume("missing").await.unwrap();

    let mut c = config("db", &[]);
    c.host.binds = vec!["data:/var/lib/data".into(), "/host:/host".into(), "auto:/auto:ro".into()];
    let id = fake.create_container(&c).await.unwrap();
    assert!(fake.has_volume("auto"), "a named volume in binds is created with the container");
    let err = fake.remove_volume("data").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains(&id), "{}", err.message);

    fake.remove_container(&id).await.unwrap();
    fake.remove_volume("data").await.unwrap();
    assert!(!fake.has_volume("data"));
}

// --- output ---------------------------------------------------------------------------------

fn chunk(source: LogSource, text: &str) -> LogChunk {
    LogChunk { source, bytes: berth_docker::Bytes::copy_from_slice(text.as_bytes()) }
}

/// The next chunk of a log stream, failing the test if none comes within a second.
async fn next_chunk(stream: &mut LogStream) -> LogChunk {
    let item = tokio::time::timeout(Duration::from_secs(1), stream.next()).await.expect("output in time");
    item.expect("stream open").expect("no error")
}

/// The stream ends within a second.
async fn ends(stream: &mut LogStream) {
    let item = tokio::time::timeout(Duration::from_secs(1), stream.next()).await.expect("the stream ends in time");
    assert!(item.is_none(), "the stream ends, got {item:?}");
}

#[tokio::test]
async fn logs_without_follow_give_all_the_output_there_is_and_end() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.write_output("web", LogSource::Stdout, b"out\n");
    fake.write_output(&id, LogSource::Stderr, b"err\n");
    fake.write_output("web", LogSource::Stdout, b"partial");
    fake.write_output("web", LogSource::Stdout, b"");
    fake.write_output("missing", LogSource::Stdout, b"to nobody");
    let expected =
        [chunk(LogSource::Stdout, "out\n"), chunk(LogSource::Stderr, "err\n"), chunk(LogSource::Stdout, "partial")];
    for target in [id.as_str(), "web", "/web"] {
        let got: Vec<LogChunk> =
            fake.container_logs(target, LogOptions::all()).await.unwrap().map(|c| c.expect("no error")).collect().await;
        assert_eq!(got, expected, "{target}");
    }
    // A running container's stream without follow ends with what there was.
    let mut stream = fake.container_logs("web", LogOptions::all()).await.unwrap();
    fake.write_output("web", LogSource::Stdout, b"later\n");
    assert_eq!(stream.by_ref().count().await, 3);
    // Output stays readable once the container has exited.
    fake.exit("web", 0);
    assert_eq!(fake.container_logs("web", LogOptions::all()).await.unwrap().count().await, 4);
    assert_eq!(fake.calls_on(Op::ContainerLogs, &id), 0, "counted under the name");
    assert_eq!(fake.calls_on(Op::ContainerLogs, "web"), 5);

    let err = fake.container_logs("nope", LogOptions::all()).await.err().expect("no such container");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(err.operation, "container logs");
    assert_eq!(err.target, "nope");
    assert!(err.message.contains("nope"), "{}", err.message);
}

#[tokio::test]
async fn followed_logs_go_on_with_new_output_until_the_container_stops() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.write_output("web", LogSource::Stdout, b"one\n");
    let mut stream = fake.container_logs("web", LogOptions::following()).await.unwrap();
    let mut other = fake.container_logs(&id, LogOptions::following()).await.unwrap();
    assert_eq!(next_chunk(&mut stream).await, chunk(LogSource::Stdout, "one\n"));
    fake.write_output("web", LogSource::Stderr, b"two\n");
    assert_eq!(next_chunk(&mut stream).await, chunk(LogSource::Stderr, "two\n"));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), stream.next()).await.is_err(),
        "nothing more while the container runs and writes nothing"
    );
    fake.write_output("web", LogSource::Stdout, b"three\n");
    assert!(fake.exit("web", 0));
    fake.write_output("web", LogSource::Stdout, b"after\n");
    assert_eq!(next_chunk(&mut stream).await, chunk(LogSource::Stdout, "three\n"));
    ends(&mut stream).await;
    let all: Vec<LogChunk> = other.by_ref().map(|c| c.expect("no error")).collect().await;
    assert_eq!(all.len(), 3, "a second follower saw the same run: {all:?}");

    // Following a container that is not running gives its output and ends.
    let mut exited = fake.container_logs("web", LogOptions::following()).await.unwrap();
    assert_eq!(exited.by_ref().count().await, 4);
    fake.create_container(&config("fresh", &[])).await.unwrap();
    ends(&mut fake.container_logs("fresh", LogOptions::following()).await.unwrap()).await;

    // A stop, a kill and a removal end the streams that follow too.
    for how in ["stop", "kill", "remove"] {
        let name = format!("c-{how}");
        run(&fake, &name, &[]).await;
        let mut stream = fake.container_logs(&name, LogOptions::following()).await.unwrap();
        match how {
            "stop" => fake.stop_container(&name, Duration::ZERO).await.unwrap(),
            "kill" => assert!(fake.kill(&name, 137)),
            _ => fake.remove_container(&name).await.unwrap(),
        }
        ends(&mut stream).await;
    }
}

#[tokio::test(start_paused = true)]
async fn followed_logs_end_when_the_container_exits_on_its_own() {
    let fake = fake();
    let begun = tokio::time::Instant::now();
    run(&fake, "job", &["sh", "-c", "echo hi; sleep 5; echo bye"]).await;
    fake.write_output("job", LogSource::Stdout, b"hi\n");
    let mut stream = fake.container_logs("job", LogOptions::following()).await.unwrap();
    assert_eq!(stream.next().await.expect("open").expect("no error"), chunk(LogSource::Stdout, "hi\n"));
    let writer = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        writer.write_output("job", LogSource::Stdout, b"bye\n");
    });
    assert_eq!(stream.next().await.expect("open").expect("no error"), chunk(LogSource::Stdout, "bye\n"));
    assert_eq!(begun.elapsed(), Duration::from_secs(2));
    assert!(stream.next().await.is_none(), "the stream ends with the run");
    assert_eq!(begun.elapsed(), Duration::from_secs(5));
    assert_eq!(fake.container("job").unwrap().state, RunState::Exited);
}

#[tokio::test(start_paused = true)]
async fn logs_keep_the_last_lines_and_what_was_written_since() {
    let fake = fake();
    run(&fake, "web", &[]).await;
    fake.write_output("web", LogSource::Stdout, b"one\ntw");
    fake.write_output("web", LogSource::Stdout, b"o\n");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = fake.now().timestamp();
    fake.write_output("web", LogSource::Stderr, b"three\n");
    fake.write_output("web", LogSource::Stdout, b"four");
    let read = |options: LogOptions| {
        let fake = fake.clone();
        async move {
            let chunks: Vec<LogChunk> =
                fake.container_logs("web", options).await.unwrap().map(|c| c.expect("no error")).collect().await;
            chunks.iter().map(|c| String::from_utf8_lossy(&c.bytes).into_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(read(LogOptions { tail: Some(2), ..LogOptions::all() }).await, ["three\n", "four"]);
    assert_eq!(read(LogOptions { tail: Some(3), ..LogOptions::all() }).await, ["two\n", "three\n", "four"]);
    assert_eq!(read(LogOptions { tail: Some(0), ..LogOptions::all() }).await, Vec::<String>::new());
    assert_eq!(read(LogOptions { tail: Some(99), ..LogOptions::all() }).await.concat(), "one\ntwo\nthree\nfour");
    assert_eq!(read(LogOptions { since: Some(later), ..LogOptions::all() }).await, ["three\n", "four"]);
    assert_eq!(read(LogOptions { since: Some(later + 1), ..LogOptions::all() }).await, Vec::<String>::new());
    assert_eq!(read(LogOptions { since: Some(later), tail: Some(1), follow: false }).await, ["four"]);
}

#[tokio::test]
async fn container_logs_take_faults() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.fail_next(Op::ContainerLogs, Some("web"), 1, ErrorKind::Transient);
    let err = fake.container_logs(&id, LogOptions::following()).await.err().expect("injected");
    assert_eq!(
        (err.kind, err.operation.as_str(), err.target.as_str()),
        (ErrorKind::Transient, "container logs", id.as_str())
    );
    assert_eq!(fake.container_logs(&id, LogOptions::all()).await.unwrap().count().await, 0);
    assert_eq!(fake.calls(Op::ContainerLogs), 2);
}

// --- image removal and listings -----------------------------------------------------------

#[tokio::test]
async fn remove_image_is_refused_while_a_container_was_created_from_it() {
    let fake = fake();
    fake.add_image("nginx:1.25");
    let busybox = fake.list_images().await.unwrap().into_iter().find(|i| i.repo_tags == ["busybox:latest"]).unwrap();
    let id = fake.create_container(&config("web", &[])).await.unwrap();

    // Created, running and exited containers all hold the image, by reference or id.
    for state in ["created", "running", "exited"] {
        match state {
            "running" => fake.start_container(&id).await.unwrap(),
            "exited" => assert!(fake.exit(&id, 0)),
            _ => {}
        }
        for target in ["busybox", "docker.io/library/busybox:latest", busybox.id.as_str(), &busybox.id[7..19]] {
            let err = fake.remove_image(target).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Conflict, "{state} {target}");
            assert_eq!(err.operation, "remove image");
            assert_eq!(err.target, target);
            assert!(err.message.contains(&id[..12]), "names the container: {}", err.message);
            assert!(err.message.starts_with("conflict: unable to"), "{}", err.message);
        }
        assert!(fake.has_image("busybox"), "{state}: still there");
    }
    assert!(fake.remove_image(&busybox.id).await.unwrap_err().message.contains("must be forced"));
    assert_eq!(fake.calls_on(Op::RemoveImage, "busybox"), 13, "counted under the image, by reference or id");

    // Another image is not held by it.
    fake.remove_image("nginx:1.25").await.unwrap();
    assert!(!fake.has_image("nginx:1.25"));

    fake.remove_container(&id).await.unwrap();
    fake.remove_image("busybox").await.unwrap();
    assert!(!fake.has_image("busybox"));
    assert!(!fake.image_exists(&busybox.id).await.unwrap());
    fake.remove_image("busybox").await.unwrap();
    fake.remove_image(&busybox.id).await.unwrap();
    fake.remove_image("never/was:there").await.unwrap();
}

#[tokio::test]
async fn remove_image_by_id_of_a_running_container_cannot_be_forced() {
    let fake = fake();
    let image = fake.list_images().await.unwrap().remove(0).id;
    run(&fake, "web", &[]).await;
    let err = fake.remove_image(&image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains("(cannot be forced) - image is being used by running container"), "{}", err.message);
    fake.fail_next(Op::RemoveImage, Some("busybox"), 1, ErrorKind::Transient);
    assert_eq!(fake.remove_image("busybox").await.unwrap_err().kind, ErrorKind::Transient);
}

#[tokio::test]
async fn images_have_distinct_ids_that_a_pull_keeps() {
    let fake = fake();
    fake.add_registry_image("nginx");
    fake.add_registry_image("redis:7");
    fake.pull_image("nginx", None, &|_| {}).await.unwrap();
    fake.pull_image("redis:7", None, &|_| {}).await.unwrap();
    let ids = |images: Vec<berth_docker::ImageSummary>| -> BTreeMap<String, String> {
        images.into_iter().map(|i| (i.repo_tags[0].clone(), i.id)).collect()
    };
    let before = ids(fake.list_images().await.unwrap());
    assert_eq!(before.len(), 3);
    let distinct: std::collections::BTreeSet<&String> = before.values().collect();
    assert_eq!(distinct.len(), 3, "{before:?}");
    fake.pull_image("nginx:latest", None, &|_| {}).await.unwrap();
    fake.add_image("busybox:latest");
    assert_eq!(ids(fake.list_images().await.unwrap()), before, "a pull of a present image keeps its id");
    // Removed and pulled again, it is a new image.
    fake.remove_image("nginx").await.unwrap();
    fake.pull_image("nginx", None, &|_| {}).await.unwrap();
    assert_ne!(ids(fake.list_images().await.unwrap())["nginx:latest"], before["nginx:latest"]);
}

#[tokio::test]
async fn list_containers_without_labels_lists_every_container_with_its_image() {
    let fake = fake();
    fake.add_image("nginx:1.25");
    let image_ids: BTreeMap<String, String> =
        fake.list_images().await.unwrap().into_iter().map(|i| (i.repo_tags[0].clone(), i.id)).collect();
    let web = run(&fake, "web", &[]).await;
    let mut other = config("proxy", &[]);
    other.image = "nginx:1.25".into();
    other.labels = BTreeMap::from([("someone.else".to_string(), "yes".to_string())]);
    let proxy = fake.create_container(&other).await.unwrap();
    let mut unlabelled = config("bare", &[]);
    unlabelled.image = "docker.io/library/busybox".into();
    unlabelled.labels.clear();
    let bare = fake.create_container(&unlabelled).await.unwrap();
    fake.exit("web", 3);

    let all = fake.list_containers(&[]).await.unwrap();
    let seen: Vec<(&str, &str, &str, &str)> =
        all.iter().map(|c| (c.id.as_str(), c.image.as_str(), c.image_id.as_str(), c.state.as_str())).collect();
    assert_eq!(
        seen,
        [
            (web.as_str(), "busybox", image_ids["busybox:latest"].as_str(), "exited"),
            (proxy.as_str(), "nginx:1.25", image_ids["nginx:1.25"].as_str(), "created"),
            (bare.as_str(), "docker.io/library/busybox", image_ids["busybox:latest"].as_str(), "created"),
        ]
    );
    assert_eq!(all[1].names, ["proxy"]);
    assert_eq!(fake.list_containers(&[("berth.task-arn", "arn:task/1")]).await.unwrap().len(), 1);
    assert_eq!(fake.list_containers(&[("someone.else", "yes")]).await.unwrap()[0].id, proxy);

    // An image gone from under a container leaves its id unknown.
    assert!(fake.forget_image("nginx:1.25"));
    let all = fake.list_containers(&[]).await.unwrap();
    assert_eq!(all[1].image_id, "");
    assert_eq!(all[1].image, "nginx:1.25");
}

// --- events ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_event_stream_is_live_from_the_call() {
    let fake = fake();
    let early = run(&fake, "early", &[]).await;
    let mut stream = fake.container_events(None).await.unwrap();
    // Events made before the stream is first polled still reach it.
    let id = run(&fake, "web", &[]).await;
    fake.stop_container(&id, Duration::ZERO).await.unwrap();
    let got = take(&mut stream, 5).await;
    assert!(got.iter().all(|e| e.id == id), "nothing from before the call: {early}");
    let acts: Vec<&str> = got.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(acts, ["create", "start", "kill", "die", "stop"]);
    quiet(&mut stream).await;
}

#[tokio::test]
async fn a_stream_read_late_gets_every_event_in_order_as_published() {
    let fake = fake();
    let mut stream = fake.container_events(None).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..1000 {
        let id = run(&fake, &format!("c{i}"), &[]).await;
        fake.stop_container(&id, Duration::ZERO).await.unwrap();
        fake.remove_container(&id).await.unwrap();
        ids.push(id);
    }
    // Nothing was read until every container was gone; each event still tells all.
    let got = take(&mut stream, 1000 * 6).await;
    quiet(&mut stream).await;
    for (i, (events, id)) in got.chunks(6).zip(&ids).enumerate() {
        let acts: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(acts, ["create", "start", "kill", "die", "stop", "destroy"]);
        let name = format!("c{i}");
        for e in events {
            assert_eq!((&e.id, &e.attributes["name"], &e.attributes["image"]), (id, &name, &"busybox".to_string()));
            assert_eq!(e.attributes["berth.container-name"], name);
        }
        assert_eq!((events[2].attributes["signal"].as_str(), events[3].attributes["exitCode"].as_str()), ("15", "143"));
    }
    assert!(got.windows(2).all(|w| w[0].time < w[1].time), "times strictly rise");
    assert_eq!(fake.events(), got[got.len() - EVENT_HISTORY..], "the history holds the same events");
}

#[tokio::test]
async fn since_replays_the_retained_history_then_goes_live() {
    let fake = fake();
    run(&fake, "ca", &[]).await;
    let history = fake.events();
    let since = history[1].time;
    let mut stream = fake.container_events(Some(since)).await.unwrap();
    let b = run(&fake, "cb", &[]).await;
    let got = take(&mut stream, 3).await;
    assert_eq!(got[0], history[1], "an event at exactly `since` is replayed");
    assert_eq!((got[1].id.as_str(), got[1].action.as_str()), (b.as_str(), "create"));
    assert_eq!(got[2].action, "start");
    quiet(&mut stream).await;
}

#[tokio::test]
async fn only_the_last_256_events_are_kept() {
    let fake = fake();
    for i in 0..200 {
        run(&fake, &format!("c{i}"), &[]).await;
    }
    let history = fake.events();
    assert_eq!(history.len(), EVENT_HISTORY);
    let mut stream = fake.container_events(Some(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)).await.unwrap();
    let got = take(&mut stream, EVENT_HISTORY).await;
    assert_eq!(got, history);
    quiet(&mut stream).await;
}

// --- faults ---------------------------------------------------------------------------------

#[tokio::test]
async fn fail_next_fails_matching_calls_without_doing_the_work() {
    let fake = fake();
    fake.fail_next(Op::CreateContainer, Some("web"), 2, ErrorKind::Transient);
    let err = fake.create_container(&config("berth-fam-1-web-ab12", &[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(err.operation, "create container");
    assert_eq!(err.target, "berth-fam-1-web-ab12");
    assert!(err.message.contains("berth-fam-1-web-ab12"));
    assert!(fake.containers().is_empty(), "nothing was created");
    fake.create_container(&config("db", &[])).await.unwrap();
    assert!(fake.create_container(&config("web", &[])).await.is_err());
    fake.create_container(&config("web", &[])).await.unwrap();
    assert_eq!(fake.containers().len(), 2);

    // A container call's filter matches the container's name even when called by id.
    let id = fake.container("web").unwrap().id;
    fake.fail_next(Op::StartContainer, Some("web"), 1, ErrorKind::Permanent);
    assert_eq!(fake.start_container(&id).await.unwrap_err().kind, ErrorKind::Permanent);
    assert_eq!(fake.container(&id).unwrap().state, RunState::Created);
    fake.fail_next(Op::InspectContainer, None, 1, ErrorKind::NotFound);
    assert!(fake.inspect_container("db").await.unwrap_err().is_not_found());
    fake.start_container(&id).await.unwrap();
    fake.inspect_container("db").await.unwrap();

    fake.fail_next(Op::PullImage, None, 5, ErrorKind::Transient);
    fake.clear_faults();
    fake.add_registry_image("nginx");
    fake.pull_image("nginx", None, &|_| {}).await.unwrap();
}

#[tokio::test]
async fn time_out_next_does_the_work_then_answers_timeout() {
    let fake = fake();
    fake.time_out_next(Op::CreateContainer, Some("web"), 1);
    let err = fake.create_container(&config("web", &[])).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(err.target, "web");
    let id = fake.container("web").expect("the daemon created it").id;

    fake.time_out_next(Op::StartContainer, None, 1);
    assert_eq!(fake.start_container(&id).await.unwrap_err().kind, ErrorKind::Timeout);
    assert_eq!(fake.container(&id).unwrap().state, RunState::Running);

    fake.time_out_next(Op::StopContainer, None, 1);
    assert_eq!(fake.stop_container(&id, Duration::ZERO).await.unwrap_err().kind, ErrorKind::Timeout);
    assert_eq!(fake.container(&id).unwrap().exit_code, Some(143));
    assert_eq!(actions(&fake, &id), ["create", "start", "kill", "die", "stop"]);
}

#[tokio::test]
async fn lose_answer_next_does_the_work_then_answers_lost() {
    let fake = fake();
    let id = fake.create_container(&config("web", &[])).await.unwrap();
    fake.lose_answer_next(Op::StartContainer, Some("web"), 1);
    let err = fake.start_container(&id).await.unwrap_err();
    assert_eq!((err.kind, err.target.as_str()), (ErrorKind::Lost, id.as_str()));
    assert_eq!(fake.container(&id).unwrap().state, RunState::Running, "the daemon started it");
    fake.start_container(&id).await.unwrap();
    assert_eq!(fake.starts("web"), 2);
    assert_eq!(actions(&fake, &id), ["create", "start"]);
}

#[tokio::test(start_paused = true)]
async fn delay_holds_every_call_of_the_operation() {
    let fake = fake();
    fake.delay(Op::CreateContainer, Duration::from_secs(10));
    let begun = tokio::time::Instant::now();
    let id = fake.create_container(&config("web", &[])).await.unwrap();
    assert_eq!(begun.elapsed().as_secs(), 10);

    // A call dropped during its delay did nothing.
    let slow = tokio::time::timeout(Duration::from_secs(1), fake.create_container(&config("late", &[]))).await;
    assert!(slow.is_err());
    assert!(fake.container("late").is_none());

    let begun = tokio::time::Instant::now();
    fake.start_container(&id).await.unwrap();
    assert_eq!(begun.elapsed(), Duration::ZERO, "other operations are not delayed");
    fake.delay(Op::CreateContainer, Duration::ZERO);
    let begun = tokio::time::Instant::now();
    fake.create_container(&config("now", &[])).await.unwrap();
    assert_eq!(begun.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn held_calls_wait_in_flight_until_released_and_the_most_in_flight_is_kept() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    fake.track_in_flight(&[Op::InspectContainer, Op::StopContainer]);
    fake.hold(Op::InspectContainer);
    let spawn_inspect = || {
        let (fake, id) = (fake.clone(), id.clone());
        tokio::spawn(async move { fake.inspect_container(&id).await })
    };
    let (first, second) = (spawn_inspect(), spawn_inspect());
    settle().await;
    assert_eq!(fake.in_flight(Op::InspectContainer), 2, "both held, in flight");
    assert!(!first.is_finished() && !second.is_finished());
    // Other operations are not held, and count with the tracked ones while in flight.
    fake.delay(Op::StopContainer, Duration::from_secs(1));
    let stop = {
        let (fake, id) = (fake.clone(), id.clone());
        tokio::spawn(async move { fake.stop_container(&id, Duration::ZERO).await })
    };
    settle().await;
    assert_eq!(fake.max_in_flight(), 3);
    stop.await.unwrap().unwrap();

    // A release lets the waiting calls go; a later one is held again.
    fake.release_held(Op::InspectContainer);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(fake.in_flight(Op::InspectContainer), 0);
    let third = spawn_inspect();
    settle().await;
    assert_eq!(fake.in_flight(Op::InspectContainer), 1);
    // A held call dropped is no longer in flight.
    third.abort();
    let _ = third.await;
    assert_eq!(fake.in_flight(Op::InspectContainer), 0);
    fake.stop_holding(Op::InspectContainer);
    fake.inspect_container(&id).await.unwrap();
    assert_eq!(fake.max_in_flight(), 3, "the most at once is kept");
    fake.track_in_flight(&[Op::InspectContainer]);
    assert_eq!(fake.max_in_flight(), 0, "tracking again starts from the calls in flight now");
}

#[tokio::test]
async fn dropped_events_miss_the_streams_but_stay_in_history() {
    let fake = fake();
    let since = fake.now();
    let mut stream = fake.container_events(None).await.unwrap();
    fake.drop_events(2);
    let id = run(&fake, "web", &[]).await;
    fake.exit(&id, 0);
    let got = take(&mut stream, 1).await;
    assert_eq!(got[0].action, "die");
    quiet(&mut stream).await;
    assert_eq!(actions(&fake, &id), ["create", "start", "die"]);
    let mut replay = fake.container_events(Some(since)).await.unwrap();
    assert_eq!(take(&mut replay, 3).await.len(), 3, "a reopen from `since` recovers them");
}

#[tokio::test]
async fn cut_event_streams_ends_every_open_stream_with_a_transient_error() {
    let fake = fake();
    let mut one = fake.container_events(None).await.unwrap();
    let mut two = fake.container_events(None).await.unwrap();
    assert_eq!(fake.open_event_streams(), 2);
    run(&fake, "web", &[]).await;
    fake.cut_event_streams();
    for stream in [&mut one, &mut two] {
        assert_eq!(take(stream, 2).await.len(), 2, "events before the cut arrive");
        let err = stream.next().await.expect("an error").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(stream.next().await.is_none(), "then the stream ends");
    }
    assert_eq!(fake.open_event_streams(), 0);
    let mut three = fake.container_events(None).await.unwrap();
    run(&fake, "db", &[]).await;
    assert_eq!(take(&mut three, 2).await.len(), 2, "new streams work");
}

#[tokio::test]
async fn an_unreachable_daemon_refuses_every_call() {
    let fake = fake();
    let id = run(&fake, "web", &[]).await;
    let mut stream = fake.container_events(None).await.unwrap();
    fake.set_unreachable(true);
    // An open stream is cut (the connection was there); new calls reach nothing.
    let err = stream.next().await.expect("an error").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(stream.next().await.is_none());

    let errors = [
        fake.ping().await.unwrap_err(),
        fake.container_events(None).await.err().expect("refused"),
        fake.pull_image("busybox", None, &|_| {}).await.unwrap_err(),
        fake.image_exists("busybox").await.unwrap_err(),
        fake.create_container(&config("db", &[])).await.unwrap_err(),
        fake.start_container(&id).await.unwrap_err(),
        fake.stop_container(&id, Duration::ZERO).await.unwrap_err(),
        fake.remove_container(&id).await.unwrap_err(),
        fake.inspect_container(&id).await.unwrap_err(),
        fake.list_containers(&[]).await.unwrap_err(),
        fake.create_volume(&VolumeConfig { name: "v1".into(), ..VolumeConfig::default() }).await.unwrap_err(),
        fake.remove_volume("v1").await.unwrap_err(),
        fake.volume_labels("v1").await.unwrap_err(),
        fake.list_images().await.unwrap_err(),
        fake.container_logs(&id, LogOptions::all()).await.err().expect("refused"),
        fake.remove_image("busybox").await.unwrap_err(),
        fake.container_stats(&id).await.unwrap_err(),
        fake.network_gateway("bridge").await.unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind, ErrorKind::Unreachable, "{err}");
        assert_eq!(err.message, "connection refused");
    }
    assert_eq!(fake.container(&id).unwrap().state, RunState::Running, "nothing was done");
    // Each operation was called once while unreachable, after `run` and the first
    // `container_events`, and refused calls are counted.
    let before = |op: Op| u64::from(matches!(op, Op::CreateContainer | Op::StartContainer | Op::ContainerEvents));
    for op in Op::ALL {
        assert_eq!(fake.calls(op), before(op) + 1, "{op:?}");
    }

    fake.set_unreachable(false);
    fake.ping().await.unwrap();
    fake.stop_container(&id, Duration::ZERO).await.unwrap();
}

// --- scale and sharing ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clones_share_one_daemon_across_tasks() {
    let fake = fake();
    let mut stream = fake.container_events(None).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let fake = fake.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let name = format!("t{t}-c{i}");
                let id = fake.create_container(&config(&name, &[])).await.unwrap();
                fake.start_container(&id).await.unwrap();
                fake.stop_container(&name, Duration::ZERO).await.unwrap();
                fake.remove_container(&id).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(fake.containers().is_empty());
    assert_eq!(fake.calls(Op::CreateContainer), 400);
    assert_eq!(take(&mut stream, 400 * 6).await.len(), 2400);
    quiet(&mut stream).await;
}

#[tokio::test(start_paused = true)]
async fn thirty_thousand_containers_run_through_it() {
    let fake = fake();
    let mut stream = fake.container_events(None).await.unwrap();
    let n = 30_000;
    let begun = std::time::Instant::now();
    for i in 0..n {
        let mut c = config(&format!("c{i}"), &["sleep", "1"]);
        if i % 10 == 0 {
            c.host.ports = vec![PortSpec { container_port: 80, host_port: 0, ..PortSpec::default() }];
        }
        let id = fake.create_container(&c).await.unwrap();
        fake.start_container(&id).await.unwrap();
        fake.inspect_container(&id).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(fake.containers().iter().all(|c| c.state == RunState::Exited && c.exit_code == Some(0)));
    let mut seen = 0;
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(10), stream.next()).await {
        item.unwrap();
        seen += 1;
    }
    assert_eq!(seen, n * 3);
    for i in 0..n {
        fake.remove_container(&format!("c{i}")).await.unwrap();
    }
    assert!(fake.containers().is_empty());
    assert!(begun.elapsed() < Duration::from_secs(60), "took {:?}", begun.elapsed());
}
