//! The API's own cost (issue "The agent"):
//!
//! - `submit`: 500 one-container tasks submitted by 8 concurrent clients until all are
//!   RUNNING, through `POST /v1/tasks` on the unix socket, against the same definitions
//!   parsed and added to the same agent's engine directly; both on the fake Docker, in
//!   this one process, each round on a fresh agent and data directory (durable store),
//!   the two ways interleaved. Target: API within 1.15× of direct.
//! - `submit-real`: the same with 50 tasks on the real Docker daemon (`busybox:latest`,
//!   prefer-cached pulls); every container removed after each round.
//! - `list`: `GET /v1/tasks` with 1,000 tasks tracked (fake Docker), 300 calls one after
//!   another: p50 and p99.
//! - `metadata`: the task metadata endpoint's `GET /v4/<id>/task` with 1,000 tasks tracked
//!   (fake Docker), 2,000 calls one after another for random tasks over loopback TCP: p50
//!   and p99. Target: p99 under 5 ms.
//! - `rss`: resident memory of an idle agent tracking 1,000 RUNNING tasks on the fake
//!   Docker, in a child process of its own (agent, fake Docker and driver together: an
//!   upper bound on the agent's own). Target: under 60 MB.
//!
//! - `policy`: the host policy's check of one submitted task (3 containers using most of
//!   what the policy judges), against parsing the same body and against one durable group
//!   commit of the task (the fsync every submit waits for), all in this one run. Target: the
//!   check is not measurable next to the commit.
//!
//! `cargo bench -p berth-agent --bench api` runs them all; `-- --only submit|submit-real|list|metadata|rss|policy`
//! one; `-- --rounds N` (default 3) for the submit comparisons.

use berth_agent::{Agent, AgentConfig};
use berth_docker::{BollardClient, DockerClient, labels};
use berth_engine::{LogItem, PullBehavior};
use berth_model::TaskStatus;
use berth_model::input::{ParseOptions, parse};
use berth_testutils::FakeDocker;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const SUBMIT_TASKS: usize = 500;
const REAL_TASKS: usize = 50;
const LIST_TASKS: usize = 1_000;
const LIST_CALLS: usize = 300;
const RSS_TASKS: usize = 1_000;
const METADATA_TASKS: usize = 1_000;
const METADATA_CALLS: usize = 2_000;

fn definition(i: usize) -> Vec<u8> {
    format!(
        r#"{{"family": "bench-{i}", "containerDefinitions": [
            {{"name": "web", "image": "busybox:latest", "memory": 16, "command": ["sleep", "3600"]}}]}}"#
    )
    .into_bytes()
}

fn fake() -> Arc<FakeDocker> {
    let fake = FakeDocker::new();
    fake.add_image("busybox:latest");
    fake.add_registry_image("busybox:latest");
    Arc::new(fake)
}

fn config(dir: &Path) -> AgentConfig {
    let mut config = AgentConfig { data_dir: dir.to_path_buf(), ..AgentConfig::default() };
    config.image_cleanup.enabled = false;
    config.log_level = "warn".into();
    config.metadata_port = Some(0);
    // Admission is accounted, on a host larger than any run's tasks on any machine.
    config.resources.memory = Some(1 << 20);
    config.resources.cpu = Some(1 << 20);
    config
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Way {
    Direct,
    Api,
}

/// Submit `n` tasks with 8 clients one way; the time until the last is RUNNING.
async fn submit_round(agent: &Agent, n: usize, way: Way) -> Duration {
    let mut changes = agent.engine().task_events();
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let engine = agent.engine().clone();
        let http = reqwest::Client::builder().unix_socket(agent.socket_path().to_path_buf()).build().expect("client");
        clients.push(tokio::spawn(async move {
            for i in (client..n).step_by(CLIENTS) {
                let body = definition(i);
                match way {
                    Way::Direct => {
                        let opts = ParseOptions { family: None, arn_random: rand::random() };
                        let accepted = parse(&body, &opts).expect("valid");
                        engine.add_task(accepted.task).await.expect("add");
                    }
                    Way::Api => {
                        let answer = http.post("http://berth/v1/tasks").body(body).send().await.expect("post");
                        assert_eq!(answer.status(), 201);
                        let _ = answer.bytes().await;
                    }
                }
            }
        }));
    }
    let mut running = 0;
    while running < n {
        match tokio::time::timeout(Duration::from_secs(120), changes.next()).await {
            Ok(Some(LogItem::Change(c))) if c.task_status == TaskStatus::Running => running += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("stalled at {running} of {n} RUNNING"),
        }
    }
    let elapsed = started.elapsed();
    for c in clients {
        c.await.expect("client");
    }
    elapsed
}

async fn compare(name: &str, n: usize, rounds: usize, docker: impl Fn() -> Arc<dyn DockerClient>, real: bool) {
    let mut times: Vec<(Way, Duration)> = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 { [Way::Direct, Way::Api] } else { [Way::Api, Way::Direct] };
        for way in order {
            let dir = tempfile::Builder::new().prefix("berth-bench-").tempdir_in(target_dir()).expect("dir");
            let mut config = config(dir.path());
            if real {
                config.pull_behavior = PullBehavior::PreferCached;
            }
            let agent = Agent::start(&config, docker()).await.expect("agent");
            let instance = agent.engine().instance_id().to_string();
            let t = submit_round(&agent, n, way).await;
            agent.shutdown().await.expect("shutdown");
            if real {
                remove_instance(&instance).await;
            }
            println!(
                "  {name} round {round} {way:?}: {:.3} s ({:.0} tasks/s)",
                t.as_secs_f64(),
                n as f64 / t.as_secs_f64()
            );
            times.push((way, t));
        }
    }
    let median = |way| {
        let mut v: Vec<f64> = times.iter().filter(|(w, _)| *w == way).map(|(_, t)| t.as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (direct, api) = (median(Way::Direct), median(Way::Api));
    println!(
        "{name}: {n} tasks, {CLIENTS} clients: direct {direct:.3} s, API {api:.3} s (medians of {rounds}): API/direct {:.3}×",
        api / direct
    );
}

async fn remove_instance(instance: &str) {
    let docker = BollardClient::connect().await.expect("docker");
    for c in docker.list_containers(&[(labels::INSTANCE, instance)]).await.unwrap_or_default() {
        let _ = docker.remove_container(&c.id).await;
    }
}

fn target_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&dir).expect("target dir");
    dir
}

async fn add_direct(agent: &Agent, n: usize) {
    let mut changes = agent.engine().task_events();
    for i in 0..n {
        let opts = ParseOptions { family: None, arn_random: rand::random() };
        agent.engine().add_task(parse(&definition(i), &opts).expect("valid").task).await.expect("add");
    }
    let mut running = 0;
    while running < n {
        if let Some(LogItem::Change(c)) = changes.next().await
            && c.task_status == TaskStatus::Running
        {
            running += 1;
        }
    }
}

async fn list() {
    let dir = tempfile::Builder::new().prefix("berth-bench-").tempdir_in(target_dir()).expect("dir");
    let agent = Agent::start(&config(dir.path()), fake()).await.expect("agent");
    add_direct(&agent, LIST_TASKS).await;
    let http = reqwest::Client::builder().unix_socket(agent.socket_path().to_path_buf()).build().expect("client");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..LIST_CALLS {
        let t = Instant::now();
        let body = http.get("http://berth/v1/tasks").send().await.expect("get").bytes().await.expect("body");
        times.push(t.elapsed());
        size = body.len();
    }
    times.sort();
    let at = |q| quantile_ms(&times, q);
    println!(
        "list: GET /v1/tasks with {LIST_TASKS} tasks ({size} bytes), {LIST_CALLS} calls: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    agent.shutdown().await.expect("shutdown");
}

/// The task metadata endpoint's `/v4/<id>/task` with 1,000 tasks tracked: each call for a
/// container of a task picked at random, one after another on one kept-alive loopback TCP
/// connection, as a program inside a task reads it.
async fn metadata() {
    let dir = tempfile::Builder::new().prefix("berth-bench-").tempdir_in(target_dir()).expect("dir");
    let agent = Agent::start(&config(dir.path()), fake()).await.expect("agent");
    add_direct(&agent, METADATA_TASKS).await;
    let host = agent.metadata_endpoint().and_then(|e| e.host).expect("the endpoint listens on loopback");
    let ids: Vec<String> = agent
        .engine()
        .list_tasks()
        .await
        .expect("tasks")
        .iter()
        .flat_map(|t| t.containers.iter().filter_map(|c| c.metadata_id.clone()))
        .collect();
    let http = reqwest::Client::new();
    let mut times = Vec::with_capacity(METADATA_CALLS);
    let mut size = 0;
    for _ in 0..METADATA_CALLS {
        let id = &ids[rand::random_range(0..ids.len())];
        let url = format!("http://{host}/v4/{id}/task");
        let t = Instant::now();
        let response = http.get(&url).send().await.expect("get");
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        times.push(t.elapsed());
        size = body.len();
    }
    times.sort();
    let at = |q| quantile_ms(&times, q);
    println!(
        "metadata: GET /v4/<id>/task with {METADATA_TASKS} tasks ({size} bytes), {METADATA_CALLS} calls: p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms (target p99 < 5 ms)",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    agent.shutdown().await.expect("shutdown");
}

/// The `q` quantile of the sorted `times`, in milliseconds.
fn quantile_ms(times: &[Duration], q: f64) -> f64 {
    times[((times.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

/// In a child process: 1,000 RUNNING tasks, idle, then VmRSS.
async fn rss_child() {
    let dir = tempfile::Builder::new().prefix("berth-bench-").tempdir_in(target_dir()).expect("dir");
    let agent = Agent::start(&config(dir.path()), fake()).await.expect("agent");
    add_direct(&agent, RSS_TASKS).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "rss: idle agent tracking {RSS_TASKS} RUNNING tasks on the fake Docker: VmRSS {:.1} MB, VmHWM {:.1} MB (target under 60 MB)",
        vm_mb("VmRSS"),
        vm_mb("VmHWM")
    );
    agent.shutdown().await.expect("shutdown");
}

fn vm_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let mut only: Option<String> = None;
    let mut rounds = 3;
    let mut child = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--only" => only = args.next(),
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--child-rss" => child = true,
            other => {
                panic!("unknown argument {other} (--only submit|submit-real|list|metadata|rss|policy, --rounds N)")
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    if child {
        runtime.block_on(rss_child());
        return;
    }
    let wants = |name: &str| only.as_deref().is_none_or(|o| o == name);
    runtime.block_on(async {
        if wants("submit") {
            compare("submit (fake Docker)", SUBMIT_TASKS, rounds, || fake() as Arc<dyn DockerClient>, false).await;
        }
        if wants("submit-real") {
            let docker = BollardClient::connect().await.expect("Docker must answer (scripts/test-env.sh)");
            compare(
                "submit (real Docker)",
                REAL_TASKS,
                rounds,
                move || Arc::new(docker.clone()) as Arc<dyn DockerClient>,
                true,
            )
            .await;
        }
        if wants("list") {
            list().await;
        }
        if wants("metadata") {
            metadata().await;
        }
    });
    if wants("policy") {
        policy();
    }
    if wants("rss") {
        let exe = std::env::current_exe().expect("this binary");
        let status = std::process::Command::new(exe).arg("--child-rss").status().expect("child");
        assert!(status.success(), "the rss child failed");
    }
}

/// A submitted task that exercises the policy: 3 containers with capabilities, security
/// options, ulimits, tmpfs, log options, a host path and a local Docker volume.
const POLICY_TASK: &str = r#"{"family": "policy-bench",
  "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data/app"}},
              {"name": "scratch", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}}],
  "containerDefinitions": [
    {"name": "web", "image": "registry.example/team/web:1.2.3", "memory": 256, "cpu": 128,
     "command": ["run", "--port", "8080"], "dockerSecurityOptions": ["no-new-privileges"],
     "linuxParameters": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL"]},
                         "tmpfs": [{"containerPath": "/tmp", "size": 64, "mountOptions": ["noexec", "nosuid"]}]},
     "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
     "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "5m", "max-file": "3", "tag": "web"}},
     "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}, {"sourceVolume": "scratch", "containerPath": "/s"}],
     "portMappings": [{"containerPort": 8080}]},
    {"name": "worker", "image": "registry.example/team/worker:1.2.3", "memory": 256,
     "linuxParameters": {"capabilities": {"add": ["cap_kill"]}}, "dockerLabels": {"team": "a", "tier": "b"},
     "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/s"}]},
    {"name": "sidecar", "image": "busybox:latest", "memory": 32, "essential": false,
     "logConfiguration": {"logDriver": "local", "options": {"max-size": "1m"}}}]}"#;

/// Median of `rounds` timings of `f` run `n` times each, per call.
fn per_call(rounds: usize, n: u32, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let begun = Instant::now();
            for _ in 0..n {
                f();
            }
            begun.elapsed() / n
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn policy() {
    use berth_agent::config::HostPolicy;
    use berth_store::{Group, RedbStore, STATE_FILE, Saver};
    let host = HostPolicy { allowed_host_paths: vec!["/srv/data".into()], ..HostPolicy::default() };
    let opts = ParseOptions { family: None, arn_random: 1 };
    let accepted = parse(POLICY_TASK.as_bytes(), &opts).expect("the bench task parses");
    assert!(berth_agent::policy::refusals(&accepted.task, &accepted.paths, &host).is_empty(), "the policy allows it");

    let check = per_call(7, 20_000, || {
        std::hint::black_box(berth_agent::policy::refusals(&accepted.task, &accepted.paths, &host));
    });
    let parsing = per_call(7, 2_000, || {
        std::hint::black_box(parse(POLICY_TASK.as_bytes(), &opts).is_ok());
    });
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let mut store = RedbStore::open(dir.path().join(STATE_FILE)).expect("open the store");
    let task = Arc::new(accepted.task.clone());
    let commit = per_call(7, 30, || {
        let group = Group { tasks: vec![(task.arn.clone(), Some(Arc::clone(&task)))], changes: vec![] };
        store.save(group).expect("save");
    });
    println!("policy check of one task (3 containers): {:>9.2} µs", check.as_secs_f64() * 1e6);
    println!("parsing the same body:                  {:>9.2} µs", parsing.as_secs_f64() * 1e6);
    println!("one durable group commit of the task:   {:>9.2} µs", commit.as_secs_f64() * 1e6);
    println!(
        "check / commit: {:.4} ({:.2} % of the commit); check / parse: {:.3}",
        check.as_secs_f64() / commit.as_secs_f64(),
        100.0 * check.as_secs_f64() / commit.as_secs_f64(),
        check.as_secs_f64() / parsing.as_secs_f64()
    );
}
