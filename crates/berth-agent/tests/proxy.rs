//! berth against the real Docker daemon reached through a proxy the test controls
//! (`support::proxy`): the event stream cut again and again while containers start and
//! die (SPEC 4: reopened from the last event seen, nothing missed, nothing twice), and
//! Docker unreachable at start and again while tasks run (SPEC 6: the API answers at once,
//! Docker calls wait, the state is reconciled, no container is created twice).

mod support;

use berth_docker::{BollardClient, ContainerSummary, DockerClient, labels};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::proxy::{Proxy, RequestLines};
use support::{Api, encode, task};

/// The warnings of berth's event-stream watcher (the engine's telemetry, logged by
/// `berth_engine::telemetry`: "ended; reopening", "cannot reopen"), one per attempt to
/// (re)open the stream, counted whatever the level.
static WATCH_WARNINGS: AtomicU64 = AtomicU64::new(0);

/// The agent's "docker event stream reopened" lines (`berth_agent::telemetry`).
static REOPENED_LINES: AtomicU64 = AtomicU64::new(0);

/// Only the first of each of these is printed (a busy loop prints millions).
const REPEATS_PRINTED: u64 = 20;

fn is_watch_warning(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == "berth_engine::telemetry"
        && *meta.level() == tracing::Level::WARN
        && matches!(meta.name(), "event_stream_ended" | "event_stream_reopen_failed")
}

/// The agent's one INFO event of that target with nothing but a message.
fn is_reopened_line(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == "berth_agent::telemetry" && *meta.level() == tracing::Level::INFO && meta.fields().len() == 1
}

/// Counts [`WATCH_WARNINGS`] and [`REOPENED_LINES`].
struct CountRepeats;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountRepeats {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if is_watch_warning(meta) {
            WATCH_WARNINGS.fetch_add(1, Ordering::SeqCst);
        } else if is_reopened_line(meta) {
            REOPENED_LINES.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Lets through only the first [`REPEATS_PRINTED`] of each repeated line (asked for each
/// event: the answer changes as they are counted).
struct FewRepeats;

impl<S> tracing_subscriber::layer::Filter<S> for FewRepeats {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        let seen = if is_watch_warning(meta) {
            WATCH_WARNINGS.load(Ordering::SeqCst)
        } else if is_reopened_line(meta) {
            REOPENED_LINES.load(Ordering::SeqCst)
        } else {
            0
        };
        seen < REPEATS_PRINTED
    }

    fn callsite_enabled(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

/// berth's log in the test output (shown when a test fails); `RUST_LOG` overrides the level.
fn logs() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,berth_engine=debug,berth_agent=debug".into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(berth_agent::logging::filter(&level).expect("log filter"))
        .with_filter(FewRepeats);
    let _ = tracing_subscriber::registry().with(CountRepeats).with(fmt).try_init();
}

/// The watcher's warnings so far.
fn watch_warnings() -> u64 {
    WATCH_WARNINGS.load(Ordering::SeqCst)
}

/// Where a test is: printed in its output, and named when it does not finish in time.
#[derive(Clone, Default)]
struct Stages(Arc<std::sync::Mutex<String>>);

impl Stages {
    fn enter(&self, what: &str) {
        eprintln!("=== {what}");
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what.to_string();
    }

    fn current(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Run a test's scenario, `limit` at most: a berth that stops answering fails the test,
/// naming the stage, instead of hanging it (the cleanup guard runs as the scenario drops).
async fn scenario(limit: Duration, stages: &Stages, run: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(limit, run).await.is_err() {
        panic!("the test did not finish within {limit:?}; stuck at stage {:?} (berth's log above)", stages.current());
    }
}

/// Docker unreachable since `started`: API calls must still answer, within 10 s.
struct Down {
    started: Instant,
    /// [`watch_warnings`] then.
    warned: u64,
}

impl Down {
    async fn answer<T>(&self, what: &str, call: impl std::future::Future<Output = T>) -> T {
        let limit = Duration::from_secs(10);
        let Ok(value) = tokio::time::timeout(limit, call).await else {
            let attempts = watch_warnings() - self.warned;
            let spin = if attempts > 50 {
                "; it spins without backoff and without yielding, and the engine's loop, which API calls wait on \
                 (and which that spin keeps waking with Resync inputs), apparently gets no turn"
            } else {
                ""
            };
            panic!(
                "berth bug: {what} got no answer within {limit:?} while Docker was unreachable (the API must answer \
                 without Docker: SPEC 6, Agent::start). Meanwhile berth's event-stream watcher logged {attempts} \
                 attempts to reopen the stream in {:?} (berth_engine::watch warnings){spin}",
                self.started.elapsed()
            );
        };
        value
    }
}

/// A bollard client of berth that goes through `proxy` (its API version is negotiated
/// through it, so the proxy must pass).
async fn through(proxy: &Proxy) -> BollardClient {
    BollardClient::connect_to(&proxy.endpoint())
        .await
        .unwrap_or_else(|e| panic!("Docker must answer through the proxy at {}: {e}", proxy.endpoint()))
}

/// Submit over the socket; the answer must be 201. Returns the arn.
async fn submit(api: &Api, body: Vec<u8>) -> String {
    let answer = api.post("/v1/tasks", body, None).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json()["Arn"].as_str().expect("Arn").to_string()
}

/// `GET /v1/tasks/{arn}`.
async fn view(api: &Api, arn: &str) -> Value {
    let answer = api.get(&format!("/v1/tasks/{}", encode(arn))).await;
    assert_eq!(answer.status, 200, "{arn}: {}", answer.text);
    answer.json()
}

/// Poll `check` every 100 ms until it gives `Some`, `limit` at most.
async fn poll<T, F>(what: &str, limit: Duration, mut check: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{what}: not within {limit:?}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Every state change so far.
async fn changes(api: &Api) -> Vec<Value> {
    let answer = api.get("/v1/events?since=0&follow=false").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// The changes of one task's `main` container, in order: (status, exit code).
fn of(changes: &[Value], arn: &str) -> Vec<(String, Option<i64>)> {
    changes
        .iter()
        .filter(|c| c["TaskArn"] == arn && c["ContainerName"] == "main")
        .map(|c| (c["Status"].as_str().unwrap_or_default().to_string(), c["ExitCode"].as_i64()))
        .collect()
}

/// A counter of `GET /metrics`.
async fn metric(api: &Api, name: &str) -> f64 {
    let answer = api.get("/metrics").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer
        .text
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{}", answer.text))
}

/// This instance's containers, as the real daemon lists them (stopped ones too).
async fn ours(real: &BollardClient, instance: &str) -> Vec<ContainerSummary> {
    real.list_containers(&[(labels::INSTANCE, instance)]).await.expect("list containers on the real daemon")
}

/// The containers by task arn.
fn by_task(listed: &[ContainerSummary]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in listed {
        map.entry(c.labels.get(labels::TASK_ARN).cloned().unwrap_or_default()).or_default().push(c.id.clone());
    }
    map
}

#[test]
fn the_proxy_finds_events_requests_on_reused_connections() {
    let mut requests = RequestLines::default();
    let mut found = requests.feed(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\nGET /v1.41/eve");
    found.extend(requests.feed(b"nts?since=1.5&filters=%7B%7D HTTP/1.1\r\nHost: docker\r\n\r\n"));
    // A body without a newline, then the next request right after it.
    found.extend(
        requests.feed(b"POST /containers/create HTTP/1.1\r\ncontent-length: 23\r\n\r\n{\"Cmd\":[\"GET /events\"]}"),
    );
    found.extend(requests.feed(b"GET /events HTTP/1.1\r\n\r\n"));
    // A chunked body whose data looks like a request line.
    found.extend(requests.feed(b"POST /images/load HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    found.extend(requests.feed(b"16\r\nGET /events HTTP/1.1\r\n\r\n0\r\n\r\n"));
    found.extend(requests.feed(b"GET /containers/x/json HTTP/1.1\r\n\r\nGET /v1.41/events?x=1 HTTP/1.1\r\n\r\n"));
    assert_eq!(found, vec![false, true, false, true, false, false, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_event_stream_is_cut_while_containers_start_and_die() {
    logs();
    let stages = Stages::default();
    scenario(Duration::from_secs(150), &stages, event_stream_cut(stages.clone())).await;
}

async fn event_stream_cut(stages: Stages) {
    stages.enter("start the agent through the proxy");
    let real = support::docker().await; // fails, never skips, without Docker
    let proxy = Arc::new(Proxy::start());
    let docker = through(&proxy).await;
    // No periodic check within the test: what berth learns, it learns from the event
    // stream and from the re-inspection after each reopen.
    let r = support::start_with(docker, |c| c.steady_state_check = Duration::from_secs(600)).await;
    poll("berth opens the event stream through the proxy", Duration::from_secs(10), || async {
        let n = proxy.counts().events_connections;
        if n >= 1 { Ok(()) } else { Err(format!("{:?}", proxy.counts())) }
    })
    .await;

    // Cut the stream every 300 ms while the containers start, run and die.
    stages.enter("cut the event stream while four tasks start and die");
    let cutting = Arc::new(AtomicBool::new(true));
    let cutter = tokio::spawn({
        let (proxy, cutting) = (Arc::clone(&proxy), Arc::clone(&cutting));
        async move {
            let mut cuts = 0u64;
            while cutting.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(300)).await;
                cuts += proxy.cut_events();
            }
            cuts
        }
    });
    let mut arns = Vec::new();
    for i in 0..4 {
        arns.push(submit(&r.unix, task(&format!("proxy-cut-{i}"), "sleep 2; exit 3", Value::Null)).await);
    }
    for arn in &arns {
        let stopped = poll(&format!("task {arn} reaches STOPPED"), Duration::from_secs(60), || async {
            let v = view(&r.unix, arn).await;
            if v["KnownStatus"] == "STOPPED" { Ok(v) } else { Err(v.to_string()) }
        })
        .await;
        assert_eq!(stopped["Containers"][0]["ExitCode"], 3, "the exit code Docker reported: {stopped}");
    }
    // A few more cuts after the last exit, then the stream stays up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cutting.store(false, Ordering::SeqCst);
    let cuts = cutter.await.expect("cutter");

    stages.enter("check the change log, the proxy, the metric and Docker");
    // The changes reach the log once durable, a moment after the views: wait for every
    // STOPPED, then a little longer, so that a late duplicate would show.
    poll("every STOPPED change is in the log", Duration::from_secs(10), || async {
        let all = changes(&r.unix).await;
        let stopped = arns.iter().filter(|a| of(&all, a).iter().any(|(s, _)| s == "STOPPED")).count();
        if stopped == arns.len() { Ok(()) } else { Err(format!("{stopped} of {}", arns.len())) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = changes(&r.unix).await;
    for arn in &arns {
        let mine = of(&all, arn);
        let statuses: Vec<&str> = mine.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == "RUNNING").count(),
            1,
            "exactly one RUNNING change for {arn}: {mine:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == "STOPPED").count(),
            1,
            "exactly one STOPPED change for {arn}: {mine:?}"
        );
        let running = statuses.iter().position(|s| *s == "RUNNING").expect("RUNNING");
        let stopped = statuses.iter().position(|s| *s == "STOPPED").expect("STOPPED");
        assert!(running < stopped, "RUNNING then STOPPED for {arn}: {mine:?}");
        assert_eq!(mine[stopped].1, Some(3), "the STOPPED change carries exit code 3: {mine:?}");
    }

    // The stream was really cut and reopened, and berth counted it.
    let counts = proxy.counts();
    assert!(cuts >= 1 && counts.events_cut >= 1, "the proxy cut the event stream: {counts:?}");
    assert!(counts.events_connections > 1, "berth reopened the event stream after the cuts: {counts:?}");
    let reopens = metric(&r.unix, "berth_event_stream_reopens_total").await;
    assert!(reopens > 0.0, "berth_event_stream_reopens_total counts the reopens: {reopens}");
    eprintln!("cuts: {cuts}; reopens counted by berth: {reopens}; proxy: {counts:?}");

    // One container per task, each exited with 3: none created twice.
    let listed = ours(&real, &r.cleanup.instance).await;
    let tasks = by_task(&listed);
    assert_eq!(tasks.len(), arns.len(), "one container per task: {listed:?}");
    for arn in &arns {
        let ids = tasks.get(arn).unwrap_or_else(|| panic!("{arn} has a container: {listed:?}"));
        assert_eq!(ids.len(), 1, "exactly one container for {arn}: {listed:?}");
        let info = real.inspect_container(&ids[0]).await.expect("inspect");
        assert_eq!(info.state.exit_code, 3, "{arn}: {:?}", info.state);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_unreachable_for_a_while_then_back() {
    logs();
    let stages = Stages::default();
    scenario(Duration::from_secs(180), &stages, docker_unreachable(stages.clone())).await;
}

async fn docker_unreachable(stages: Stages) {
    let real = support::docker().await; // fails, never skips, without Docker
    let proxy = Proxy::start();
    let docker = through(&proxy).await;
    proxy.set_refusing(true).await;
    assert!(!proxy.path().exists(), "refusing: the socket is gone, as with a stopped daemon");
    assert!(BollardClient::connect_to(&proxy.endpoint()).await.is_err(), "refusing: Docker is unreachable");

    // berth starts without Docker, and its API answers at once.
    stages.enter("start the agent while Docker is unreachable");
    let started = Instant::now();
    let warned = watch_warnings();
    let mut r = support::start_with(docker, |c| c.steady_state_check = Duration::from_secs(2)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "the agent started without Docker: {:?}", started.elapsed());
    let down = Down { started, warned };
    let asked = Instant::now();
    let health = down.answer("GET /healthz", r.unix.get("/healthz")).await;
    assert_eq!(health.status, 200, "{}", health.text);
    let health = health.json();
    assert_eq!((&health["Status"], &health["Docker"]), (&Value::from("ok"), &Value::from("unreachable")), "{health}");
    let tasks = down.answer("GET /v1/tasks", r.unix.get("/v1/tasks")).await;
    assert_eq!(tasks.status, 200, "{}", tasks.text);
    assert_eq!(tasks.json()["Tasks"], serde_json::json!([]));
    assert!(asked.elapsed() < Duration::from_secs(4), "the API answered at once: {:?}", asked.elapsed());

    // Tasks are taken (durable: 201 once saved) and wait for Docker, without an error.
    stages.enter("submit two tasks while Docker is unreachable");
    let a = down.answer("POST /v1/tasks", submit(&r.unix, task("proxy-down-a", "sleep 300", Value::Null))).await;
    let b = down.answer("POST /v1/tasks", submit(&r.unix, task("proxy-down-b", "sleep 300", Value::Null))).await;
    let warned_before = watch_warnings();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warned_while_down = watch_warnings() - warned_before;
    // berth does not spin on a Docker it cannot reach: reopening the event stream backs off
    // (100 ms doubling up to 10 s would be about 5 attempts in 2 s).
    assert!(
        warned_while_down <= 50,
        "berth bug: while Docker was unreachable, berth's event-stream watcher tried to reopen the stream \
         {warned_while_down} times in 2 s (berth_engine::watch warnings 'Docker event stream ended; reopening'): \
         BollardClient::container_events returns Ok without connecting (bollard's stream connects when first \
         polled), so watch() resets its backoff, the stream's first item is the connect error, and it reopens \
         at once, in a loop that never sleeps (the log shows each 'reopened' followed at once by 'ended')"
    );
    let instance = r.cleanup.instance.clone();
    assert_eq!(ours(&real, &instance).await.len(), 0, "nothing reached Docker while it was unreachable");
    for arn in [&a, &b] {
        let v = down.answer("GET /v1/tasks/{arn}", view(&r.unix, arn)).await;
        assert_eq!(v["DesiredStatus"], "RUNNING", "{v}");
        assert_ne!(v["KnownStatus"], "RUNNING", "{v}");
        assert!(v.get("StoppedReason").is_none(), "no stop reason while waiting for Docker: {v}");
        let c = &v["Containers"][0];
        assert!(c.get("Reason").is_none(), "no error while waiting for Docker: {v}");
        assert!(c.get("DockerId").is_none(), "no container yet: {v}");
    }
    let health = down.answer("GET /healthz", r.unix.get("/healthz")).await.json();
    assert_eq!(health["Docker"], "unreachable", "{health}");

    // Docker comes (back): both tasks run, one container each.
    stages.enter("Docker answers: both tasks run");
    proxy.set_refusing(false).await;
    let mut ids = BTreeMap::new();
    for arn in [&a, &b] {
        let v = r.unix.wait_known(arn, "RUNNING").await;
        ids.insert(arn.clone(), v["Containers"][0]["DockerId"].as_str().expect("DockerId").to_string());
    }
    let listed = ours(&real, &instance).await;
    let tasks = by_task(&listed);
    assert_eq!(listed.len(), 2, "exactly one container per task: {listed:?}");
    for arn in [&a, &b] {
        assert_eq!(tasks.get(arn), Some(&vec![ids[arn].clone()]), "{arn}'s one container: {listed:?}");
    }
    assert_eq!(r.unix.get("/healthz").await.json()["Docker"], "ok");

    // Docker goes away while they run; one task is stopped meanwhile.
    stages.enter("Docker goes away; stop task a");
    proxy.set_refusing(true).await;
    let down = Down { started: Instant::now(), warned: watch_warnings() };
    let stop = down
        .answer("POST /v1/tasks/{arn}/stop", r.unix.post(&format!("/v1/tasks/{}/stop", encode(&a)), "", None))
        .await;
    assert_eq!(stop.status, 202, "{}", stop.text);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = real.inspect_container(&ids[&a]).await.expect("inspect a");
    assert_eq!(still.state.status, "running", "the stop waits for Docker");
    let va = down.answer("GET /v1/tasks/{arn}", view(&r.unix, &a)).await;
    assert_eq!(va["DesiredStatus"], "STOPPED", "{va}");
    assert_eq!(va["Containers"][0]["KnownStatus"], "RUNNING", "berth does not guess a stop it could not see: {va}");
    let vb = down.answer("GET /v1/tasks/{arn}", view(&r.unix, &b)).await;
    assert_eq!(vb["KnownStatus"], "RUNNING", "{vb}");

    // Docker is back: the stop is made, the other task is left alone.
    stages.enter("Docker is back: a stops, b runs on");
    proxy.set_refusing(false).await;
    let stopped = r.unix.wait_known(&a, "STOPPED").await;
    assert_eq!(stopped["Containers"][0]["DockerId"], ids[&a].as_str(), "{stopped}");
    tokio::time::sleep(Duration::from_secs(3)).await; // a steady-state check or so later
    let vb = view(&r.unix, &b).await;
    assert_eq!(vb["KnownStatus"], "RUNNING", "{vb}");
    assert_eq!(vb["Containers"][0]["DockerId"], ids[&b].as_str(), "the same container: {vb}");
    assert!(vb["Containers"][0].get("Reason").is_none(), "{vb}");
    let listed = ours(&real, &instance).await;
    assert_eq!(listed.len(), 2, "no container was created twice: {listed:?}");
    for (arn, id) in &ids {
        assert_eq!(by_task(&listed).get(arn), Some(&vec![id.clone()]), "{arn}: {listed:?}");
        let inspected = real.bollard().inspect_container(id, None).await.expect("inspect");
        assert_eq!(inspected.restart_count, Some(0), "{arn}'s container was not restarted");
    }
    let state_b = real.inspect_container(&ids[&b]).await.expect("inspect b").state;
    assert_eq!(state_b.status, "running", "{state_b:?}");
    let state_a = real.inspect_container(&ids[&a]).await.expect("inspect a").state;
    assert_eq!(state_a.status, "exited", "{state_a:?}");

    // Each container changed to RUNNING once; a's one STOPPED.
    let all = changes(&r.unix).await;
    for arn in [&a, &b] {
        let mine = of(&all, arn);
        assert_eq!(mine.iter().filter(|(s, _)| s == "RUNNING").count(), 1, "{arn}: {mine:?}");
        let stops = mine.iter().filter(|(s, _)| s == "STOPPED").count();
        assert_eq!(stops, usize::from(arn == &a), "{arn}: {mine:?}");
    }

    let reopens = metric(&r.unix, "berth_event_stream_reopens_total").await;
    eprintln!("event stream reopens: {reopens} (berth's metric), watcher warnings: {}", watch_warnings());
    eprintln!("proxy: {:?}", proxy.counts());

    // Stop the other one, shut down: nothing is left.
    stages.enter("stop b, shut down");
    assert_eq!(r.unix.post(&format!("/v1/tasks/{}/stop", encode(&b)), "", None).await.status, 202);
    r.unix.wait_known(&b, "STOPPED").await;
    r.shutdown().await;
    drop(r); // the cleanup guard removes this instance's containers
    assert_eq!(ours(&real, &instance).await.len(), 0, "nothing is left");
}

/// Issue 14 item 3: Docker started the container, but the connection broke before its
/// answer came back (and its events are late). The outcome is unknown, so berth inspects before anything else and
/// never starts it again (Docker would run an exited container once more): the job, which
/// appends a line to a host file, ran exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_answer_is_lost_runs_the_job_exactly_once() {
    let proxy = Proxy::start();
    let docker = through(&proxy).await;
    let host = tempfile::tempdir().expect("host dir");
    let host_dir = host.path().canonicalize().expect("real path");
    let allowed = host_dir.clone();
    let r = support::start_with(docker, move |c| c.host.allowed_host_paths = vec![allowed]).await;
    let body = serde_json::to_vec(&serde_json::json!({
        "family": "lost-answer",
        "volumes": [{"name": "out", "host": {"sourcePath": host_dir.display().to_string()}}],
        "containerDefinitions": [{"name": "job", "image": "busybox:latest", "memory": 16,
            "command": ["sh", "-c", "echo ran >> /out/runs"],
            "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}]}],
    }))
    .expect("json");
    // Docker's events come late (held until the job has long exited), so only an inspect can
    // tell berth that the start happened: a blind retry would run the job again.
    proxy.hold_events(true);
    proxy.lose_answer_of_next("/start");
    let arn = submit(&r.unix, body).await;
    let runs = host_dir.join("runs");
    poll("the job to have run", Duration::from_secs(30), || async {
        if runs.exists() { Ok(()) } else { Err("no runs file yet".to_string()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.hold_events(false);
    let stopped = r.unix.wait_known_within(&arn, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(proxy.counts().answers_lost, 1, "the start's answer was kept from berth");
    assert_eq!(stopped["Containers"][0]["ExitCode"], 0, "{stopped}");
    let runs = std::fs::read_to_string(host_dir.join("runs")).expect("the job ran");
    assert_eq!(runs, "ran\n", "the job ran exactly once");
}
