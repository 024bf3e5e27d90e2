//! Metrics: what `render` shows after the engine's events and API requests, and what
//! `MeteredDocker` counts of the calls it forwards to the fake Docker (durations, errors
//! by kind, pulls with their bytes) and feeds to the image ledger.

use async_trait::async_trait;
use berth_agent::docker::MeteredDocker;
use berth_agent::images::ImageLedger;
use berth_agent::metrics::Metrics;
use berth_docker::auth::RegistryAuth;
use berth_docker::{
    ContainerConfig, ContainerInfo, ContainerSummary, DockerClient, DockerError, ErrorKind, EventStream, ImageSummary,
    LogOptions, LogStream, ProgressSink, PullProgress, VolumeConfig,
};
use berth_engine::{EngineTelemetry, Telemetry};
use berth_model::{Container, ContainerSpec, ContainerStatus, StateChange, Task, TaskStatus};
use berth_testutils::{FakeDocker, Op};
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The value of the series `series` (name and labels exactly as rendered), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// [`value`], which must be there.
fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("{series} is not in the rendering:\n{text}"))
}

fn container(name: &str, status: ContainerStatus, internal: bool) -> Container {
    let mut c = Container::new(ContainerSpec {
        name: name.into(),
        image: "busybox".into(),
        essential: true,
        internal,
        ..ContainerSpec::default()
    });
    c.known_status = status;
    c
}

fn task(n: u32, status: TaskStatus, containers: Vec<Container>) -> Task {
    let mut t = Task::new(format!("arn:berth:task/{n}"), "f".into(), "1".into(), containers, vec![]);
    t.known_status = status;
    t
}

fn change(name: &str, status: ContainerStatus) -> StateChange {
    StateChange {
        seq: 0,
        time: Utc::now(),
        task_arn: "arn:berth:task/1".into(),
        container_name: name.into(),
        status,
        reason: None,
        exit_code: None,
        port_bindings: vec![],
        task_status: TaskStatus::None,
        task_desired_status: TaskStatus::None,
    }
}

/// Every sample line is `name{labels} value` with a number; every family has a TYPE.
fn assert_well_formed(text: &str) {
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        assert!(name.starts_with("berth_"), "unprefixed: {line}");
        assert!(v == "+Inf" || v.parse::<f64>().is_ok(), "bad value: {line}");
    }
}

#[test]
fn render_shows_the_families_with_their_values() {
    let metrics = Metrics::new();
    let before = metrics.render(&[]);
    assert!(value(&before, "berth_steady_state_check_age_seconds").is_none(), "no age before the first check");
    assert_eq!(must(&before, "berth_steady_state_check_last_timestamp_seconds"), 0.0);
    assert_eq!(must(&before, "berth_tasks{status=\"RUNNING\"}"), 0.0);

    let ok = EngineTelemetry::StoreCommitted { duration: Duration::from_millis(3), tasks: 2, changes: 3, ok: true };
    metrics.record(&ok);
    metrics.record(&ok);
    metrics.record(&EngineTelemetry::StoreCommitted {
        duration: Duration::from_millis(40),
        tasks: 1,
        changes: 0,
        ok: false,
    });
    let changes = [
        change("a", ContainerStatus::Created),
        change("a", ContainerStatus::Running),
        change("b", ContainerStatus::Running),
    ];
    metrics.record(&EngineTelemetry::ChangesCommitted(&changes));
    metrics.record(&EngineTelemetry::ChangesCommitted(&[change("b", ContainerStatus::Stopped)]));
    metrics.record(&EngineTelemetry::EventStreamReopened);
    metrics.record(&EngineTelemetry::EventStreamReopened);
    let checked = Utc::now().timestamp() as f64;
    metrics.record(&EngineTelemetry::SteadyStateCheck);
    metrics.api_request("/v1/tasks", 200);
    metrics.api_request("/v1/tasks", 200);
    metrics.api_request("/v1/tasks/{arn}", 404);

    let tasks = [
        task(
            1,
            TaskStatus::Running,
            vec![
                container("~pause", ContainerStatus::Running, true),
                container("a", ContainerStatus::Running, false),
                container("b", ContainerStatus::Stopped, false),
            ],
        ),
        task(2, TaskStatus::Created, vec![container("c", ContainerStatus::Created, false)]),
        task(3, TaskStatus::Running, vec![container("d", ContainerStatus::Running, false)]),
    ];
    let text = metrics.render(&tasks);
    assert_well_formed(&text);

    assert_eq!(must(&text, "berth_tasks{status=\"NONE\"}"), 0.0);
    assert_eq!(must(&text, "berth_tasks{status=\"CREATED\"}"), 1.0);
    assert_eq!(must(&text, "berth_tasks{status=\"RUNNING\"}"), 2.0);
    assert_eq!(must(&text, "berth_tasks{status=\"STOPPED\"}"), 0.0);
    // The pause container is internal: not counted.
    assert_eq!(must(&text, "berth_containers{status=\"RUNNING\"}"), 2.0);
    assert_eq!(must(&text, "berth_containers{status=\"CREATED\"}"), 1.0);
    assert_eq!(must(&text, "berth_containers{status=\"STOPPED\"}"), 1.0);
    assert_eq!(must(&text, "berth_containers{status=\"PULLED\"}"), 0.0);

    assert_eq!(must(&text, "berth_store_commits_total{result=\"ok\"}"), 2.0);
    assert_eq!(must(&text, "berth_store_commits_total{result=\"error\"}"), 1.0);
    assert_eq!(must(&text, "berth_store_commit_duration_seconds_count"), 3.0);
    let sum = must(&text, "berth_store_commit_duration_seconds_sum");
    assert!((sum - 0.046).abs() < 1e-9, "sum {sum}");
    assert_eq!(must(&text, "berth_state_changes_total{status=\"CREATED\"}"), 1.0);
    assert_eq!(must(&text, "berth_state_changes_total{status=\"RUNNING\"}"), 2.0);
    assert_eq!(must(&text, "berth_state_changes_total{status=\"STOPPED\"}"), 1.0);
    assert_eq!(must(&text, "berth_event_stream_reopens_total"), 2.0);
    let last = must(&text, "berth_steady_state_check_last_timestamp_seconds");
    assert!((last - checked).abs() < 5.0, "last check at {last}, expected about {checked}");
    let age = must(&text, "berth_steady_state_check_age_seconds");
    assert!((0.0..5.0).contains(&age), "age {age}");
    assert_eq!(must(&text, "berth_api_requests_total{route=\"/v1/tasks\",status=\"200\"}"), 2.0);
    assert_eq!(must(&text, "berth_api_requests_total{route=\"/v1/tasks/{arn}\",status=\"404\"}"), 1.0);
    // Nothing pulled or cleaned up yet: the counters without labels show zero.
    assert_eq!(must(&text, "berth_pull_bytes_total"), 0.0);
    assert_eq!(must(&text, "berth_images_removed_total"), 0.0);
    assert_eq!(must(&text, "berth_image_cleanup_cycles_total"), 0.0);
    for family in [
        "berth_tasks gauge",
        "berth_containers gauge",
        "berth_store_commit_duration_seconds histogram",
        "berth_pull_duration_seconds histogram",
        "berth_steady_state_check_age_seconds gauge",
        "berth_store_commits_total counter",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "no TYPE line for {family}:\n{text}");
    }

    // The gauges follow the tasks given at each render.
    let text = metrics.render(&[]);
    assert_eq!(must(&text, "berth_tasks{status=\"RUNNING\"}"), 0.0);
    assert_eq!(must(&text, "berth_containers{status=\"RUNNING\"}"), 0.0);
}

struct Setup {
    fake: FakeDocker,
    metrics: Arc<Metrics>,
    ledger: Arc<ImageLedger>,
    docker: MeteredDocker,
    _dir: tempfile::TempDir,
}

fn setup_with(inner: Arc<dyn DockerClient>, fake: FakeDocker) -> Setup {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ledger = ImageLedger::open(&dir.path().join("images.json")).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    let docker = MeteredDocker::new(inner, Arc::clone(&metrics), Arc::clone(&ledger));
    Setup { fake, metrics, ledger, docker, _dir: dir }
}

fn setup() -> Setup {
    let fake = FakeDocker::new();
    setup_with(Arc::new(fake.clone()), fake)
}

fn config(name: &str, image: &str) -> ContainerConfig {
    ContainerConfig { name: name.into(), image: image.into(), ..ContainerConfig::default() }
}

#[tokio::test]
async fn metered_docker_counts_every_call_and_errors_by_kind() {
    let s = setup();
    s.fake.add_image("busybox");
    s.docker.ping().await.unwrap_or_else(|e| panic!("{e}"));
    let id = s.docker.create_container(&config("one", "busybox")).await.unwrap_or_else(|e| panic!("{e}"));
    s.docker.start_container(&id).await.unwrap_or_else(|e| panic!("{e}"));
    s.fake.fail_next(Op::InspectContainer, None, 2, ErrorKind::Transient);
    for _ in 0..2 {
        let e = s.docker.inspect_container(&id).await.err().unwrap_or_else(|| panic!("the fault hits"));
        assert_eq!(e.kind, ErrorKind::Transient);
    }
    s.docker.inspect_container(&id).await.unwrap_or_else(|e| panic!("{e}"));
    let e = s.docker.inspect_container("nobody").await.err().unwrap_or_else(|| panic!("no such container"));
    assert_eq!(e.kind, ErrorKind::NotFound);
    s.fake.fail_next(Op::ListImages, None, 1, ErrorKind::Timeout);
    assert!(s.docker.list_images().await.is_err());
    assert_eq!(s.docker.list_images().await.map(|i| i.len()).unwrap_or_default(), 1);
    // Forwarded as is: the calls reached the fake.
    assert_eq!(s.fake.calls(Op::InspectContainer), 4);
    assert_eq!(s.fake.calls(Op::StartContainer), 1);

    let text = s.metrics.render(&[]);
    assert_well_formed(&text);
    let count =
        |op: &str| value(&text, &format!("berth_docker_operation_duration_seconds_count{{operation=\"{op}\"}}"));
    assert_eq!(count("ping"), Some(1.0));
    assert_eq!(count("create_container"), Some(1.0));
    assert_eq!(count("start_container"), Some(1.0));
    assert_eq!(count("inspect_container"), Some(4.0));
    assert_eq!(count("list_images"), Some(2.0));
    assert_eq!(count("stop_container"), None);
    let errors = |op: &str, kind: &str| {
        value(&text, &format!("berth_docker_errors_total{{operation=\"{op}\",kind=\"{kind}\"}}"))
    };
    assert_eq!(errors("inspect_container", "transient"), Some(2.0));
    assert_eq!(errors("inspect_container", "not_found"), Some(1.0));
    assert_eq!(errors("list_images", "timeout"), Some(1.0));
    assert_eq!(errors("ping", "transient"), None);
    assert_eq!(errors("create_container", "transient"), None);
    // A create from an image berth did not pull leaves the ledger empty.
    assert!(s.ledger.entries().is_empty());
}

#[tokio::test]
async fn provided_methods_are_forwarded_not_rebuilt_from_metered_calls() {
    let s = setup();
    s.fake.add_image("busybox");
    let id = s.docker.create_container(&config("named", "busybox")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.docker.get_container_name(&id).await.ok().as_deref(), Some("named"));
    assert_eq!(s.docker.describe_container(&id).await.ok(), Some(ContainerStatus::Created));
    assert!(s.docker.describe_docker_images().await.is_ok_and(|json| json.contains("busybox:latest")));
    // The fake has no pause image and keeps the trait's default: it looks, and fails.
    let e = s.docker.ensure_pause_image().await.err().unwrap_or_else(|| panic!("no pause image in the fake"));
    assert_eq!(e.kind, ErrorKind::Permanent);

    let text = s.metrics.render(&[]);
    let count =
        |op: &str| value(&text, &format!("berth_docker_operation_duration_seconds_count{{operation=\"{op}\"}}"));
    for op in ["get_container_name", "describe_container", "describe_docker_images", "ensure_pause_image"] {
        assert_eq!(count(op), Some(1.0), "{op}");
    }
    // Forwarded to the inner client's own implementation, so not counted as the calls
    // the trait's defaults would have made through the wrapper.
    assert_eq!(count("inspect_container"), None);
    assert_eq!(count("image_exists"), None);
    assert_eq!(count("list_images"), None);
    assert_eq!(
        value(&text, "berth_docker_errors_total{operation=\"ensure_pause_image\",kind=\"permanent\"}"),
        Some(1.0)
    );
}

/// The fake Docker, with pulls that report layer progress as Docker does: one layer
/// present already, two downloaded (one of them without totals), then the fake's pull.
#[derive(Clone)]
struct Progressing(FakeDocker);

fn step(image: &str, layer: &str, status: &str, current: Option<u64>, total: Option<u64>) -> PullProgress {
    PullProgress { image: image.into(), layer: layer.into(), status: status.into(), current, total }
}

#[async_trait]
impl DockerClient for Progressing {
    async fn ping(&self) -> Result<(), DockerError> {
        self.0.ping().await
    }
    async fn container_events(&self, since: Option<chrono::DateTime<Utc>>) -> Result<EventStream, DockerError> {
        self.0.container_events(since).await
    }
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &ProgressSink,
    ) -> Result<(), DockerError> {
        for p in [
            step(image, "", "Pulling from test", None, None),
            step(image, "l0", "Already exists", None, None),
            step(image, "l1", "Pulling fs layer", None, None),
            step(image, "l2", "Pulling fs layer", None, None),
            step(image, "l1", "Downloading", Some(100), Some(1000)),
            step(image, "l2", "Downloading", Some(70), None),
            step(image, "l1", "Downloading", Some(1000), Some(1000)),
            step(image, "l2", "Downloading", Some(300), None),
            step(image, "l1", "Download complete", None, None),
            step(image, "l1", "Extracting", Some(4000), Some(4000)),
            step(image, "l1", "Pull complete", None, None),
            step(image, "l2", "Pull complete", None, None),
        ] {
            progress(p);
        }
        self.0.pull_image(image, auth, progress).await
    }
    async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        self.0.image_exists(image).await
    }
    async fn create_container(&self, config: &ContainerConfig) -> Result<String, DockerError> {
        self.0.create_container(config).await
    }
    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        self.0.start_container(id).await
    }
    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        self.0.stop_container(id, timeout).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        self.0.remove_container(id).await
    }
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, DockerError> {
        self.0.inspect_container(id).await
    }
    async fn container_logs(&self, id: &str, options: LogOptions) -> Result<LogStream, DockerError> {
        self.0.container_logs(id, options).await
    }
    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, DockerError> {
        self.0.list_containers(labels).await
    }
    async fn create_volume(&self, config: &VolumeConfig) -> Result<(), DockerError> {
        self.0.create_volume(config).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        self.0.remove_volume(name).await
    }
    async fn volume_labels(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, DockerError> {
        self.0.volume_labels(name).await
    }
    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        self.0.remove_image(image).await
    }
    async fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        self.0.list_images().await
    }
    async fn container_stats(&self, id: &str) -> Result<serde_json::Value, DockerError> {
        self.0.container_stats(id).await
    }
    async fn network_gateway(&self, network: &str) -> Result<Option<std::net::Ipv4Addr>, DockerError> {
        self.0.network_gateway(network).await
    }
}

#[tokio::test]
async fn pulls_are_counted_with_their_bytes_and_enter_the_ledger() {
    let fake = FakeDocker::new();
    let s = setup_with(Arc::new(Progressing(fake.clone())), fake);
    s.fake.add_registry_image("127.0.0.1:51670/app:1");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = Arc::clone(&seen);
        move |p: PullProgress| seen.lock().unwrap_or_else(PoisonError::into_inner).push(p)
    };
    s.docker.pull_image("127.0.0.1:51670/app:1", None, &sink).await.unwrap_or_else(|e| panic!("{e}"));
    // Every report reached the caller, in order (the fake's own last).
    let seen = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert_eq!(seen.len(), 13);
    assert_eq!(seen.first().map(|p| p.status.as_str()), Some("Pulling from test"));
    assert_eq!(seen.get(6).map(|p| (p.layer.as_str(), p.current)), Some(("l1", Some(1000))));

    let e = s.docker.pull_image("nowhere/app:1", None, &|_| {}).await.err().unwrap_or_else(|| panic!("not pullable"));
    assert_eq!(e.kind, ErrorKind::Permanent);

    let text = s.metrics.render(&[]);
    assert_well_formed(&text);
    assert_eq!(must(&text, "berth_pulls_total{result=\"ok\"}"), 1.0);
    assert_eq!(must(&text, "berth_pulls_total{result=\"error\"}"), 1.0);
    // l1: its total, 1000; l2: how far it got, 300; each of the two pulls.
    assert_eq!(must(&text, "berth_pull_bytes_total"), 2.0 * 1300.0);
    assert_eq!(must(&text, "berth_pull_duration_seconds_count"), 2.0);
    assert_eq!(must(&text, "berth_docker_operation_duration_seconds_count{operation=\"pull_image\"}"), 2.0);
    assert_eq!(must(&text, "berth_docker_errors_total{operation=\"pull_image\",kind=\"permanent\"}"), 1.0);

    // The pulled image is in the ledger, the failed one is not.
    let entries = s.ledger.entries();
    assert_eq!(entries.iter().map(|e| e.image.as_str()).collect::<Vec<_>>(), ["127.0.0.1:51670/app:1"]);
    assert_eq!(entries.first().and_then(|e| e.last_used), None);
    // A create from it marks it used; a failed create does not.
    s.fake.fail_next(Op::CreateContainer, None, 1, ErrorKind::Transient);
    assert!(s.docker.create_container(&config("app", "127.0.0.1:51670/app:1")).await.is_err());
    assert_eq!(s.ledger.entries().first().and_then(|e| e.last_used), None);
    s.docker.create_container(&config("app", "127.0.0.1:51670/app:1")).await.unwrap_or_else(|e| panic!("{e}"));
    let used = s.ledger.entries().first().and_then(|e| e.last_used);
    assert!(used.is_some_and(|t| (Utc::now() - t).num_seconds().abs() < 5), "last used {used:?}");
}
