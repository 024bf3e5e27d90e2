//! Bring-up on the real daemon (issue 5): 40 one-container tasks to RUNNING, then stopped
//! and removed, side by side in one run by
//!
//! - **berth**: the engine (`EngineHandle`) on `BollardClient`, durable store on disk, pull
//!   behaviour prefer-cached (the image is present: no registry is touched);
//! - **floor**: the same create → start and stop → remove calls made directly through
//!   `BollardClient`, with the very create requests berth sends (`settings::container_config`),
//!   all 40 containers at once in each phase: what Docker itself costs;
//! - **compose**: Debian's `docker-compose` (1.29) `up -d` / `down` of 40 equivalent
//!   services (its parallel limit, 64, is above 40).
//!
//! Every container is `busybox:latest` running `sh -c "trap 'exit 0' TERM; sleep 3600 &
//! wait"` (PID 1 exits at once on SIGTERM), stop timeout 10 s, bridge network, no ports,
//! CPU shares 2 (what berth sends for a container without `cpu`). One untimed warm-up
//! round, then 5 rounds with the order of the three rotated each round. Prints the medians
//! (up, down, up + down), berth's ratios to the floor and to compose, whether the targets
//! (berth ≤ 1.10 × floor, berth < compose) are met, and where the time goes by Docker's own
//! event timestamps.
//!
//! `cargo bench -p berth-engine --bench bringup` (needs `scripts/test-env.sh` and
//! `docker-compose`). `BERTH_BRINGUP_ROUNDS` and `BERTH_BRINGUP_TASKS` change the counts.
//! Everything it makes carries the label `bringup-bench.run=<run id>` and is removed at the
//! end, also after a failure.

use berth_docker::{BollardClient, ContainerConfig, DockerClient};
use berth_engine::bench_support::container_config;
use berth_engine::{ChangeReader, Engine, EngineConfig, EngineHandle, LogItem, PullBehavior};
use berth_model::input::{ParseOptions, parse};
use berth_model::{ContainerStatus, Task};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::future::join_all;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const IMAGE: &str = "busybox:latest";
/// PID 1 with a TERM trap: `wait` returns at once on the signal (a `sleep 1` loop would
/// delay the trap by up to a second).
const SCRIPT: &str = "trap 'exit 0' TERM; sleep 3600 & wait";
const STOP_TIMEOUT_SECS: u64 = 10;
/// What berth sends for a container without `cpu` (the kernel's smallest shares).
const CPU_SHARES: u64 = 2;
const RUN_LABEL: &str = "bringup-bench.run";
const CONFIG_LABEL: &str = "bringup-bench.config";
/// No phase may take longer than this (the bench fails rather than hangs).
const PHASE_LIMIT: Duration = Duration::from_secs(120);

fn ok<T, E: Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

fn main() {
    let run = format!("{:x}{:04x}", std::process::id(), rand::random::<u16>());
    // Declared before the runtime, so it runs after the runtime (and every task) is gone,
    // on success and after a panic alike.
    let _cleanup = Cleanup { run: run.clone() };
    let runtime = ok(tokio::runtime::Builder::new_multi_thread().enable_all().build(), "runtime");
    runtime.block_on(bench(&run));
}

/// Removes every container of this run (berth's, the floor's, compose's), by label, with
/// the `docker` command line (so it works from `Drop`, after a panic too).
struct Cleanup {
    run: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={RUN_LABEL}={}", self.run);
        let Ok(listed) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() else { return };
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout).split_whitespace().map(String::from).collect();
        if !ids.is_empty() {
            eprintln!("cleanup: removing {} leftover containers", ids.len());
            let _ = Command::new("docker").args(["rm", "-f", "-v"]).args(&ids).output();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Berth,
    Floor,
    Compose,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Berth, Kind::Floor, Kind::Compose];

    fn name(self) -> &'static str {
        match self {
            Kind::Berth => "berth",
            Kind::Floor => "floor",
            Kind::Compose => "compose",
        }
    }
}

/// One configuration's round: the two phases, and Docker's own milestones in each.
#[derive(Debug, Clone, Copy)]
struct Sample {
    up: Duration,
    down: Duration,
    up_marks: Marks,
    down_marks: Marks,
    /// Per container, from its `create` to its `start` event: the median and the longest.
    create_to_start: (Duration, Duration),
    /// Per container, from its `die` to its `destroy` event: the median and the longest.
    die_to_destroy: (Duration, Duration),
}

/// From the phase's start, by Docker's event timestamps: the first event of the phase and
/// the last one that completes it (`start` going up, `destroy` going down).
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    first: Duration,
    last: Duration,
}

/// A container event of this run, as Docker stamped it.
struct SeenEvent {
    time: DateTime<Utc>,
    action: String,
    config: String,
    id: String,
}

/// Docker's container events of this run, as they arrive.
type Seen = Arc<Mutex<Vec<SeenEvent>>>;

async fn bench(run: &str) {
    let tasks = env_count("BERTH_BRINGUP_TASKS", 40);
    let rounds = env_count("BERTH_BRINGUP_ROUNDS", 5);
    let docker = ok(BollardClient::connect().await, "Docker must answer");
    assert!(ok(docker.image_exists(IMAGE).await, "inspect image"), "{IMAGE} must be present (scripts/test-env.sh)");
    let compose_version = ok(Command::new("docker-compose").arg("version").arg("--short").output(), "docker-compose");
    let server = ok(docker.bollard().version().await, "Docker version");
    println!(
        "Docker {}, docker-compose {}, {tasks} tasks, {rounds} rounds (+1 warm-up), run {run}",
        server.version.unwrap_or_default(),
        String::from_utf8_lossy(&compose_version.stdout).trim()
    );

    // Docker's own view, for the breakdown.
    let seen: Seen = Arc::default();
    let mut events = ok(docker.container_events(None).await, "Docker events");
    let recorder = {
        let seen = Arc::clone(&seen);
        let run = run.to_string();
        tokio::spawn(async move {
            while let Some(Ok(e)) = events.next().await {
                if e.attributes.get(RUN_LABEL) == Some(&run)
                    && let Some(config) = e.attributes.get(CONFIG_LABEL)
                {
                    let event = SeenEvent { time: e.time, action: e.action, config: config.clone(), id: e.id };
                    seen.lock().unwrap_or_else(PoisonError::into_inner).push(event);
                }
            }
        })
    };

    // berth: one engine for the whole run, its store on disk.
    let data = ok(tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")), "data dir");
    let config = EngineConfig {
        data_dir: Some(data.path().to_path_buf()),
        pull_behavior: PullBehavior::PreferCached,
        ..EngineConfig::default()
    };
    let client = Arc::new(ok(BollardClient::connect().await, "connect"));
    let engine = ok(Engine::builder(config, client).start().await, "engine init");
    let mut reader = engine.task_events();
    let floor_docker = ok(BollardClient::connect().await, "connect");

    // compose: one file, a project per round.
    let compose_dir = ok(tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")), "compose dir");
    let compose_file = compose_dir.path().join("docker-compose.yml");
    ok(std::fs::write(&compose_file, compose_yaml(run, tasks)), "write compose file");

    let mut samples: Vec<(usize, Kind, Sample)> = Vec::new();
    for round in 0..=rounds {
        let mut order = Kind::ALL;
        order.rotate_left(round % 3);
        for kind in order {
            let sample = match kind {
                Kind::Berth => berth_round(&engine, &mut reader, run, round, tasks, &seen).await,
                Kind::Floor => floor_round(&floor_docker, run, round, tasks, &seen).await,
                Kind::Compose => compose_round(&compose_file, run, round, tasks, &seen).await,
            };
            let label = if round == 0 { "warm-up".to_string() } else { format!("round {round}") };
            println!("{label:>8} {:>7}: up {:>6.0} ms, down {:>6.0} ms", kind.name(), ms(sample.up), ms(sample.down));
            if round > 0 {
                samples.push((round, kind, sample));
            }
            // Nothing of this configuration may be left for the next.
            let left =
                ok(docker.list_containers(&[(RUN_LABEL, run), (CONFIG_LABEL, kind.name())]).await, "list containers");
            assert!(left.is_empty(), "{} left {} containers", kind.name(), left.len());
        }
    }
    let _ = engine.shutdown().await;
    recorder.abort();
    report(&samples, tasks);
}

/// The task every configuration runs, as berth reads it.
fn task_json(run: &str, kind: Kind) -> String {
    let labels: BTreeMap<&str, &str> = [(RUN_LABEL, run), (CONFIG_LABEL, kind.name())].into();
    serde_json::json!({
        "family": "bringup",
        "networkMode": "bridge",
        "containerDefinitions": [{
            "name": "app",
            "image": IMAGE,
            "essential": true,
            "command": ["sh", "-c", SCRIPT],
            "stopTimeout": STOP_TIMEOUT_SECS,
            "dockerLabels": labels,
        }],
    })
    .to_string()
}

fn task(run: &str, kind: Kind, arn_random: u128) -> Task {
    parse(task_json(run, kind).as_bytes(), &ParseOptions { family: None, arn_random })
        .map(|a| a.task)
        .unwrap_or_else(|r| panic!("{r}"))
}

async fn berth_round(
    engine: &EngineHandle,
    reader: &mut ChangeReader,
    run: &str,
    round: usize,
    count: usize,
    seen: &Seen,
) -> Sample {
    let batch: Vec<Task> =
        (0..count).map(|i| task(run, Kind::Berth, ((round as u128) << 32) | (i as u128 + 1))).collect();
    let arns: HashSet<String> = batch.iter().map(|t| t.arn.clone()).collect();

    let up_at = Utc::now();
    let started = Instant::now();
    for r in join_all(batch.into_iter().map(|t| engine.add_task(t))).await {
        ok(r, "add task");
    }
    wait_for(reader, &arns, ContainerStatus::Running).await;
    let up = started.elapsed();

    let down_at = Utc::now();
    let started = Instant::now();
    let stops = arns.iter().map(|arn| async move {
        ok(engine.stop_task(arn).await, "stop task");
        ok(engine.clean_up_now(arn).await, "clean up now");
    });
    join_all(stops).await;
    wait_for(reader, &arns, ContainerStatus::Stopped).await;
    // Removed: the task leaves the engine once its container is gone.
    let gone = async {
        while ok(engine.list_tasks().await, "list tasks").iter().any(|t| arns.contains(&t.arn)) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    ok(tokio::time::timeout(PHASE_LIMIT, gone).await, "berth: tasks still listed");
    let down = started.elapsed();
    sample(Kind::Berth, seen, up, down, up_at, down_at).await
}

/// Read changes until every task of `arns` has reached `status`; a container that stops
/// on the way up fails the bench.
async fn wait_for(reader: &mut ChangeReader, arns: &HashSet<String>, status: ContainerStatus) {
    let mut reached = HashSet::new();
    let wait = async {
        while reached.len() < arns.len() {
            match reader.next().await {
                Some(LogItem::Change(c)) if arns.contains(&c.task_arn) => {
                    if c.status == ContainerStatus::Stopped && status != ContainerStatus::Stopped {
                        panic!("{} stopped on the way up: {:?}", c.task_arn, c.reason);
                    }
                    if c.status == status {
                        reached.insert(c.task_arn);
                    }
                }
                Some(_) => {}
                None => panic!("the engine stopped"),
            }
        }
    };
    ok(tokio::time::timeout(PHASE_LIMIT, wait).await, "berth: waiting for changes");
}

async fn floor_round(docker: &BollardClient, run: &str, round: usize, count: usize, seen: &Seen) -> Sample {
    // The create requests berth would send, built before the clock starts.
    let configs: Vec<ContainerConfig> = (0..count)
        .map(|i| {
            let mut t = task(run, Kind::Floor, 1);
            t.containers[0].docker_name = Some(format!("berth-bringup-floor-{run}-{round}-{i}"));
            container_config(
                &t,
                &t.containers[0],
                &format!("floor-{run}"),
                &BTreeMap::new(),
                &Default::default(),
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{e:?}"))
        })
        .collect();

    let up_at = Utc::now();
    let started = Instant::now();
    let ups = configs.iter().map(|config| async move {
        let id = ok(docker.create_container(config).await, "create");
        ok(docker.start_container(&id).await, "start");
        id
    });
    let ids = ok(tokio::time::timeout(PHASE_LIMIT, join_all(ups)).await, "floor up");
    let up = started.elapsed();

    let down_at = Utc::now();
    let started = Instant::now();
    let downs = ids.iter().map(|id| async move {
        ok(docker.stop_container(id, Duration::from_secs(STOP_TIMEOUT_SECS)).await, "stop");
        ok(docker.remove_container(id).await, "remove");
    });
    ok(tokio::time::timeout(PHASE_LIMIT, join_all(downs)).await, "floor down");
    let down = started.elapsed();
    sample(Kind::Floor, seen, up, down, up_at, down_at).await
}

/// 40 services equivalent to berth's task: same image, command, stop timeout, bridge
/// network (so compose makes no network of its own, as berth makes none), CPU shares,
/// labels; no ports.
fn compose_yaml(run: &str, count: usize) -> String {
    let mut y = String::from("version: \"2.4\"\nservices:\n");
    for i in 0..count {
        y.push_str(&format!(
            "  app{i}:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"{SCRIPT}\"]\n    \
             stop_grace_period: {STOP_TIMEOUT_SECS}s\n    network_mode: bridge\n    cpu_shares: {CPU_SHARES}\n    \
             labels:\n      {RUN_LABEL}: \"{run}\"\n      {CONFIG_LABEL}: \"compose\"\n"
        ));
    }
    y
}

async fn compose(file: &Path, project: &str, args: &[&str]) -> Output {
    let file: PathBuf = file.to_path_buf();
    let mut command = Command::new("docker-compose");
    command.arg("-p").arg(project).arg("-f").arg(&file).args(args);
    let output = ok(tokio::task::spawn_blocking(move || command.output()).await, "join");
    let output = ok(output, "run docker-compose");
    assert!(output.status.success(), "docker-compose {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

async fn compose_round(file: &Path, run: &str, round: usize, count: usize, seen: &Seen) -> Sample {
    let project = format!("bringup{run}r{round}");

    let up_at = Utc::now();
    let started = Instant::now();
    compose(file, &project, &["up", "-d"]).await;
    // `up -d` returns once every container is started; the check below is outside the
    // time unless it has to wait.
    let mut up = started.elapsed();
    let check = async {
        let mut waited = false;
        loop {
            let ps = compose(file, &project, &["ps", "--services", "--filter", "status=running"]).await;
            if String::from_utf8_lossy(&ps.stdout).lines().filter(|l| !l.trim().is_empty()).count() == count {
                if waited {
                    up = started.elapsed();
                }
                return;
            }
            waited = true;
        }
    };
    ok(tokio::time::timeout(PHASE_LIMIT, check).await, "compose: services not all running");

    let down_at = Utc::now();
    let started = Instant::now();
    compose(file, &project, &["down"]).await;
    let down = started.elapsed();
    sample(Kind::Compose, seen, up, down, up_at, down_at).await
}

/// The round's sample, with Docker's milestones (events may arrive a little after the
/// calls return: waited for briefly).
async fn sample(
    kind: Kind,
    seen: &Seen,
    up: Duration,
    down: Duration,
    up_at: DateTime<Utc>,
    down_at: DateTime<Utc>,
) -> Sample {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events: Vec<SeenEvent> = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner))
        .into_iter()
        .filter(|e| e.config == kind.name())
        .collect();
    let marks = |from: DateTime<Utc>, to: Option<DateTime<Utc>>, last_action: &str| {
        let window: Vec<&SeenEvent> =
            events.iter().filter(|e| e.time >= from && to.is_none_or(|to| e.time < to)).collect();
        let since = |t: DateTime<Utc>| (t - from).to_std().unwrap_or_default();
        Marks {
            first: window.iter().map(|e| e.time).min().map(since).unwrap_or_default(),
            last: window
                .iter()
                .filter(|e| e.action == last_action)
                .map(|e| e.time)
                .max()
                .map(since)
                .unwrap_or_default(),
        }
    };
    // Each container's time between two of its events.
    let gaps = |from: &str, to: &str| {
        let at = |id: &str, action: &str| events.iter().find(|e| e.id == id && e.action == action).map(|e| e.time);
        let ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let mut gaps: Vec<Duration> =
            ids.into_iter().filter_map(|id| Some((at(id, to)? - at(id, from)?).to_std().unwrap_or_default())).collect();
        gaps.sort_unstable();
        (gaps.get(gaps.len() / 2).copied().unwrap_or_default(), gaps.last().copied().unwrap_or_default())
    };
    Sample {
        up,
        down,
        up_marks: marks(up_at, Some(down_at), "start"),
        down_marks: marks(down_at, None, "destroy"),
        create_to_start: gaps("create", "start"),
        die_to_destroy: gaps("die", "destroy"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn report(samples: &[(usize, Kind, Sample)], tasks: usize) {
    let of = |kind: Kind, f: &dyn Fn(&Sample) -> f64| {
        median(samples.iter().filter(|(_, k, _)| *k == kind).map(|(_, _, s)| f(s)).collect())
    };
    let up = |k| of(k, &|s| ms(s.up));
    let down = |k| of(k, &|s| ms(s.down));
    let total = |k| of(k, &|s| ms(s.up + s.down));
    println!();
    println!("Per round (ms, up / down):");
    println!();
    println!("| round | berth | floor | compose |");
    println!("| --- | ---: | ---: | ---: |");
    let rounds: Vec<usize> = {
        let mut r: Vec<usize> = samples.iter().map(|(r, _, _)| *r).collect();
        r.dedup();
        r
    };
    for round in rounds {
        let cell = |kind: Kind| {
            samples
                .iter()
                .find(|(r, k, _)| *r == round && *k == kind)
                .map_or(String::new(), |(_, _, s)| format!("{:.0} / {:.0}", ms(s.up), ms(s.down)))
        };
        println!("| {round} | {} | {} | {} |", cell(Kind::Berth), cell(Kind::Floor), cell(Kind::Compose));
    }
    println!();
    println!("Medians over the rounds, {tasks} one-container tasks:");
    println!();
    println!("| configuration | up (to RUNNING) | down (stopped + removed) | up + down |");
    println!("| --- | ---: | ---: | ---: |");
    for kind in Kind::ALL {
        println!("| {} | {:.0} ms | {:.0} ms | {:.0} ms |", kind.name(), up(kind), down(kind), total(kind));
    }
    let (b, f, c) = (total(Kind::Berth), total(Kind::Floor), total(Kind::Compose));
    println!();
    println!("| ratio | up | down | up + down | target | met |");
    println!("| --- | ---: | ---: | ---: | --- | --- |");
    println!(
        "| berth / floor | {:.3} | {:.3} | {:.3} | ≤ 1.10 | {} |",
        up(Kind::Berth) / up(Kind::Floor),
        down(Kind::Berth) / down(Kind::Floor),
        b / f,
        if b / f <= 1.10 { "yes" } else { "no" }
    );
    println!(
        "| berth / compose | {:.3} | {:.3} | {:.3} | < 1 | {} |",
        up(Kind::Berth) / up(Kind::Compose),
        down(Kind::Berth) / down(Kind::Compose),
        b / c,
        if b < c { "yes" } else { "no" }
    );
    // Paired within each round (the three ran back to back): how much of the ratio is noise.
    let paired = |other: Kind| {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|(_, k, _)| *k == Kind::Berth)
            .filter_map(|(r, _, b)| {
                let o = samples.iter().find(|(r2, k, _)| r2 == r && *k == other)?;
                Some(ms(b.up + b.down) / ms(o.2.up + o.2.down))
            })
            .collect();
        v.sort_by(f64::total_cmp);
        let (lo, hi) = (v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0));
        (median(v), lo, hi)
    };
    println!();
    for other in [Kind::Floor, Kind::Compose] {
        let (m, lo, hi) = paired(other);
        println!("berth / {} per round (up + down): median {m:.3}, range {lo:.3} – {hi:.3}", other.name());
    }
    println!();
    println!("Where the time goes, by Docker's event timestamps (medians, ms from the phase's start):");
    println!();
    println!(
        "| configuration | up: first event (create) | up: last `start` | up: end | down: first event (kill) | down: last `destroy` | down: end |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for kind in Kind::ALL {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            kind.name(),
            of(kind, &|s| ms(s.up_marks.first)),
            of(kind, &|s| ms(s.up_marks.last)),
            up(kind),
            of(kind, &|s| ms(s.down_marks.first)),
            of(kind, &|s| ms(s.down_marks.last)),
            down(kind),
        );
    }
    println!();
    println!(
        "Per container, by Docker's event timestamps (medians over the rounds of each round's median and longest, ms):"
    );
    println!();
    println!("| configuration | `create` → `start`: median | longest | `die` → `destroy`: median | longest |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for kind in Kind::ALL {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            kind.name(),
            of(kind, &|s| ms(s.create_to_start.0)),
            of(kind, &|s| ms(s.create_to_start.1)),
            of(kind, &|s| ms(s.die_to_destroy.0)),
            of(kind, &|s| ms(s.die_to_destroy.1)),
        );
    }
}
