//! The crash test's scenario: its tasks, the kill loop, the final start and what the checks
//! read (the tasks' views, Docker's containers and event record, the changes the reader
//! saw). Each property is checked in `main.rs`; findings are collected in [`Findings`],
//! with the (task, container) pairs to show details for.

use crate::proxy::Proxy;
use crate::support;
use berth_docker::{BollardClient, DockerClient, labels};
use berth_store::crash::{CRASH_AT_ENV, POINTS};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many times each crash point is armed.
pub const TURNS: usize = 4;
/// How long a round with a crash point armed may last before it is ended with SIGKILL.
const CRASH_ROUND_LIMIT: Duration = Duration::from_secs(6);
/// How long a round ended by the daemon's first create or start may wait for one before it
/// is ended with SIGKILL anyway.
const CALL_ROUND_LIMIT: Duration = Duration::from_secs(4);
/// How long the final, normal start has to bring every task to its desired status.
pub const CONVERGE: Duration = Duration::from_secs(90);
/// How long a normal start may take to answer `/healthz`.
pub const START: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take to end the daemon.
pub const STOP: Duration = Duration::from_secs(30);
/// The image every container runs.
pub const IMAGE: &str = "busybox:latest";

// ---------------------------------------------------------------------------------------
// The tasks.

/// The shapes of task, one per `i % 10`.
const SHAPES: [&str; 10] = [
    "links",
    "volumes-from",
    "empty-volume",
    "depends-start",
    "depends-complete",
    "depends-success",
    "exit-0",
    "exit-3",
    "single",
    "awsvpc",
];

/// Shapes whose second task (`i / 10 == 1`) is asked to stop.
const STOPPED_SHAPES: [&str; 7] =
    ["links", "volumes-from", "empty-volume", "depends-start", "exit-0", "single", "awsvpc"];

/// What a container must show at the end.
#[derive(Debug, Clone)]
pub struct Expect {
    pub status: &'static str,
    pub exit_code: Option<i64>,
}

/// One task of the scenario.
#[derive(Debug, Clone)]
pub struct Plan {
    pub arn: String,
    pub shape: &'static str,
    body: String,
    submit_round: usize,
    pub stop_round: Option<usize>,
    /// The task's status at the end.
    pub task_status: &'static str,
    /// Every visible container, by name.
    pub containers: BTreeMap<String, Expect>,
}

/// A busybox container running `script` under `sh -c`, 16 MiB, 1 s stop timeout.
fn container(name: &str, script: &str) -> Value {
    json!({
        "name": name,
        "image": IMAGE,
        "command": ["sh", "-c", script],
        "memory": 16,
        "stopTimeout": 1,
    })
}

/// [`container`] with `extra` fields.
fn with(mut c: Value, extra: Value) -> Value {
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

const FOREVER: &str = "exec sleep 3600";

fn running() -> Expect {
    Expect { status: "RUNNING", exit_code: None }
}

fn exited(code: i64) -> Expect {
    Expect { status: "STOPPED", exit_code: Some(code) }
}

fn stopped() -> Expect {
    Expect { status: "STOPPED", exit_code: None }
}

/// The 30 tasks; `tag` (of the run) in every arn, so that the task volumes' names (made from
/// the arn) of runs side by side on one Docker daemon never meet.
pub fn plans(tag: &str) -> Vec<Plan> {
    (0..30usize)
        .map(|i| {
            let shape = SHAPES[i % 10];
            let arn = format!("arn:berth:task/c{i:02}-{shape}-{tag}");
            let mut volumes = json!([]);
            let mut network = "bridge";
            let (containers, expect): (Vec<Value>, Vec<(&str, Expect)>) = match shape {
                "links" => (
                    vec![container("db", FOREVER), with(container("web", FOREVER), json!({"links": ["db"]}))],
                    vec![("db", running()), ("web", running())],
                ),
                "volumes-from" => (
                    vec![
                        with(container("data", "exit 0"), json!({"essential": false})),
                        with(container("app", FOREVER), json!({"volumesFrom": [{"sourceContainer": "data"}]})),
                    ],
                    vec![("data", exited(0)), ("app", running())],
                ),
                "empty-volume" => {
                    volumes = json!([{"name": "v", "host": {}}]);
                    let mount = json!([{"sourceVolume": "v", "containerPath": "/v"}]);
                    (
                        vec![
                            with(
                                container("writer", "echo hello > /v/f"),
                                json!({"essential": false, "mountPoints": mount}),
                            ),
                            with(
                                container("reader", "test -f /v/f && exec sleep 3600"),
                                json!({"mountPoints": mount,
                                       "dependsOn": [{"containerName": "writer", "condition": "SUCCESS"}]}),
                            ),
                        ],
                        vec![("writer", exited(0)), ("reader", running())],
                    )
                }
                "depends-start" => (
                    vec![
                        container("a", FOREVER),
                        with(
                            container("b", FOREVER),
                            json!({"dependsOn": [{"containerName": "a", "condition": "START"}]}),
                        ),
                    ],
                    vec![("a", running()), ("b", running())],
                ),
                "depends-complete" => (
                    vec![
                        with(container("init", "sleep 1; exit 5"), json!({"essential": false})),
                        with(
                            container("main", FOREVER),
                            json!({"dependsOn": [{"containerName": "init", "condition": "COMPLETE"}]}),
                        ),
                    ],
                    vec![("init", exited(5)), ("main", running())],
                ),
                "depends-success" => (
                    vec![
                        with(container("migrate", "sleep 1; exit 0"), json!({"essential": false})),
                        with(
                            container("app", FOREVER),
                            json!({"dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]}),
                        ),
                    ],
                    vec![("migrate", exited(0)), ("app", running())],
                ),
                "exit-0" => (
                    vec![
                        container("job", "sleep 2; exit 0"),
                        with(container("side", FOREVER), json!({"essential": false})),
                    ],
                    vec![("job", exited(0)), ("side", stopped())],
                ),
                "exit-3" => (vec![container("job", "exit 3")], vec![("job", exited(3))]),
                "single" => (vec![container("main", FOREVER)], vec![("main", running())]),
                "awsvpc" => {
                    network = "awsvpc";
                    (
                        vec![
                            container("a", FOREVER),
                            with(
                                container("b", FOREVER),
                                json!({"dependsOn": [{"containerName": "a", "condition": "START"}]}),
                            ),
                        ],
                        vec![("a", running()), ("b", running())],
                    )
                }
                other => panic!("unknown shape {other}"),
            };
            let body = json!({
                "arn": arn,
                "family": format!("crash-{shape}"),
                "version": "1",
                "networkMode": network,
                "volumes": volumes,
                "containers": containers,
            })
            .to_string();
            // The crash rounds are the even ones: two tasks in each of rounds 0, 2, ..., 28.
            let submit_round = 2 * (i / 2);
            let asked_to_stop = i / 10 == 1 && STOPPED_SHAPES.contains(&shape);
            let stop_round = asked_to_stop.then_some(submit_round + 2 + i % 3);
            let mut containers: BTreeMap<String, Expect> =
                expect.into_iter().map(|(name, e)| (name.to_owned(), e)).collect();
            let self_stopping = matches!(shape, "exit-0" | "exit-3");
            let task_status = if asked_to_stop || self_stopping { "STOPPED" } else { "RUNNING" };
            if asked_to_stop {
                // Stopped by the test: every container STOPPED, exit codes whatever they were
                // (a container may have been stopped before it ever ran).
                for e in containers.values_mut() {
                    *e = stopped();
                }
            }
            Plan { arn, shape, body, submit_round, stop_round, task_status, containers }
        })
        .collect()
}

/// An arn (or any path segment) percent-encoded.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The rounds.

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `BERTH_CRASH_AT=<point>:<n>`.
    Crash(&'static str, u64),
    /// SIGKILL this long after the start.
    Kill(Duration),
    /// SIGKILL as soon as the daemon has sent a create or start, which the proxy holds back
    /// from Docker until the next daemon sends its rival (or 2 s passed): a create still in
    /// flight when the next daemon looks, one that lands after it looked.
    KillOnCall,
}

/// [`TURNS`] × 4 crash rounds (each point with n = 1, 2, 3 and one more from 1–3, in a
/// random order) alternating with as many SIGKILL rounds, every other one of them at the
/// daemon's first create or start ([`Kind::KillOnCall`]).
fn schedule(rng: &mut StdRng) -> Vec<Kind> {
    let mut nths: Vec<Vec<u64>> = POINTS
        .iter()
        .map(|_| {
            let mut n = vec![1, 2, 3, rng.random_range(1..=3)];
            n.shuffle(rng);
            n
        })
        .collect();
    let mut rounds = Vec::new();
    for _ in 0..TURNS {
        for (point, nth) in POINTS.iter().zip(&mut nths) {
            rounds.push(Kind::Crash(point, nth.pop().unwrap_or(1)));
            rounds.push(if rounds.len() % 4 == 1 {
                Kind::Kill(Duration::from_millis(rng.random_range(100..=3000)))
            } else {
                Kind::KillOnCall
            });
        }
    }
    rounds
}

/// What happened in one round.
#[derive(Debug)]
pub struct Round {
    pub kind: Kind,
    /// Unix nanoseconds at the start and at the end (to place Docker's events).
    pub from: i128,
    pub to: i128,
    /// The API answered `/healthz`.
    pub up: bool,
    /// The crash point the daemon said it reached.
    pub reached: Option<String>,
    /// It was ended by SIGKILL (from the test).
    pub killed: bool,
    /// A create or start of it was held back from Docker (a [`Kind::KillOnCall`] round).
    pub held: bool,
    pub submits: usize,
    pub stops: usize,
    pub log: PathBuf,
}

fn now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// HTTP.

/// HTTP to the daemon's socket.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    stream: reqwest::Client,
}

impl Api {
    fn new(socket: &Path) -> Api {
        let http = reqwest::Client::builder()
            .unix_socket(socket.to_path_buf())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let stream = reqwest::Client::builder()
            .unix_socket(socket.to_path_buf())
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        Api { http, stream }
    }

    async fn healthy(&self) -> bool {
        match self.http.get("http://berth/healthz").timeout(Duration::from_secs(2)).send().await {
            Ok(r) => r.status().as_u16() == 200,
            Err(_) => false,
        }
    }

    async fn post(&self, path: &str, body: String) -> Result<(u16, String), String> {
        let r = self.http.post(format!("http://berth{path}")).body(body).send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let r = self.http.get(format!("http://berth{path}")).send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    /// `GET /v1/tasks/{arn}` as JSON.
    pub async fn task(&self, arn: &str) -> Result<Value, String> {
        let (status, text) = self.get(&format!("/v1/tasks/{}", encode(arn))).await?;
        if status != 200 {
            return Err(format!("GET task {arn}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET task {arn}: {e}: {text}"))
    }
}

/// What the event reader saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub changes: Vec<Value>,
    /// Gap markers and lines that are not changes.
    pub odd: Vec<String>,
    pub connections: usize,
    pub last: u64,
}

/// Follows `GET /v1/events?since=<last>` whenever the daemon answers, forever.
async fn read_events(api: Api, seen: Arc<Mutex<Seen>>) {
    loop {
        let since = seen.lock().unwrap().last;
        let url = format!("http://berth/v1/events?since={since}");
        if let Ok(mut response) = api.stream.get(url).send().await
            && response.status().as_u16() == 200
        {
            seen.lock().unwrap().connections += 1;
            let mut buf: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buf.extend_from_slice(&chunk);
                while let Some(at) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=at).collect();
                    let text = String::from_utf8_lossy(&line).trim().to_owned();
                    let mut seen = seen.lock().unwrap();
                    match serde_json::from_str::<Value>(&text) {
                        Ok(v) if v.get("Seq").and_then(Value::as_u64).is_some() => {
                            seen.last = v["Seq"].as_u64().unwrap_or(0);
                            seen.changes.push(v);
                        }
                        _ => {
                            let note = format!("after Seq {}: {text}", seen.last);
                            seen.odd.push(note);
                        }
                    }
                }
            }
            // A line cut by the connection's end is incomplete: dropped (it is read again
            // from `since`).
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole change log, read without following.
async fn whole_log(api: &Api) -> Result<Vec<Value>, String> {
    let (status, text) = api.get("/v1/events?since=0&follow=false").await?;
    if status != 200 {
        return Err(format!("GET /v1/events?since=0&follow=false: {status} {text}"));
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}")))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Processes and cleanup.

/// Kills the daemon and the `docker events` child, and removes every container and volume
/// of the instance, however the test ends. On failure the directory is kept.
pub struct Guard {
    dir: Option<tempfile::TempDir>,
    instance: String,
    pub daemon: Option<Child>,
    events: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut child) = self.events.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let filter = format!("label={}={}", labels::INSTANCE, self.instance);
        let list = |args: &[&str]| -> Vec<String> {
            Command::new("docker")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let containers = list(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f", "-v"]).args(&containers).output();
        }
        let volumes = list(&["volume", "ls", "-q", "--filter", &filter]);
        if !volumes.is_empty() {
            let _ = Command::new("docker").args(["volume", "rm", "-f"]).args(&volumes).output();
        }
        if let Some(dir) = self.dir.take()
            && std::thread::panicking()
        {
            let kept = dir.keep();
            eprintln!("crash test failed: daemon logs kept in {}", kept.display());
        }
    }
}

/// `berth daemon` on `data` ([`support::daemon`]) reaching Docker through `proxy`, stderr
/// to `log`.
pub fn spawn_daemon(data: &Path, proxy: &Proxy, crash_at: Option<String>, log: &Path) -> Child {
    let mut cmd = support::daemon(data, log);
    cmd.env("DOCKER_HOST", proxy.endpoint());
    // Orphans are left alone, so that a duplicate, if one were made, is seen here rather
    // than quietly removed; STOPPED tasks stay for the checks.
    cmd.env("BERTH_ORPHAN_GRACE", "1h")
        .env("BERTH_TASK_CLEANUP_WAIT", "3h")
        .env("BERTH_STEADY_STATE_CHECK", "30s")
        .env("BERTH_DEFAULT_STOP_TIMEOUT", "1s")
        // busybox:latest is local and never pulled.
        .env("BERTH_PULL_BEHAVIOR", "prefer-cached");
    if let Some(at) = crash_at {
        cmd.env(CRASH_AT_ENV, at);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("starting berth daemon: {e}"))
}

/// `kill -TERM pid`.
pub fn sigterm(child: &Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).output();
}

/// Waits (polling) for `child` to exit, at most `limit`.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the API answers; false when the daemon exits first.
pub async fn wait_up(api: &Api, child: &mut Child) -> bool {
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if api.healthy().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of a log.
pub fn tail(path: &Path, n: usize) -> String {
    let text = plain(&fs::read_to_string(path).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `text` without the terminal colour sequences of the daemon's human log format.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The crash point a daemon's stderr says it reached.
fn reached(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    POINTS.iter().find(|p| text.contains(&format!("crash point {p} reached"))).map(|p| (*p).to_owned())
}

/// The Docker event recorder: `docker events` for the instance, one JSON object a line.
fn record_docker_events(instance: &str, since: u64) -> (Child, std::thread::JoinHandle<Vec<Value>>) {
    let mut child = Command::new("docker")
        .args(["events", "--since", &since.to_string(), "--format", "{{json .}}"])
        .args(["--filter", "type=container", "--filter", &format!("label={}={instance}", labels::INSTANCE)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("docker events: {e}"));
    let stdout = child.stdout.take().unwrap();
    let thread = std::thread::spawn(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect()
    });
    (child, thread)
}

// ---------------------------------------------------------------------------------------
// The driver: submits and stops, resent until answered.

pub struct Driver {
    plans: Vec<Plan>,
    submitted: Vec<bool>,
    stop_answered: Vec<bool>,
    pub submit_sends: usize,
    pub stop_sends: usize,
}

/// What the checks found: failures, and the (task, container) pairs whose details (Docker's
/// record, berth's view, the daemon's lines) the report shows.
#[derive(Debug, Default)]
pub struct Findings {
    pub failures: Vec<String>,
    pub suspects: BTreeSet<(String, String)>,
}

impl Driver {
    /// Sends what is due by round `r` (all of it when `r` is None) and not yet answered;
    /// returns (submits, stops) answered.
    async fn send(&mut self, api: &Api, r: Option<usize>, findings: &mut Findings) -> (usize, usize) {
        let due = |round: usize| r.is_none_or(|r| round <= r);
        let mut answered = (0, 0);
        for i in 0..self.plans.len() {
            if self.submitted[i] || !due(self.plans[i].submit_round) {
                continue;
            }
            self.submit_sends += 1;
            match api.post("/v1/tasks", self.plans[i].body.clone()).await {
                Ok((200 | 201, _)) => {
                    self.submitted[i] = true;
                    answered.0 += 1;
                }
                Ok((400, text)) => panic!("berth refused task {}: {text}", self.plans[i].arn),
                Ok(_) | Err(_) => {}
            }
        }
        for i in 0..self.plans.len() {
            let Some(stop_round) = self.plans[i].stop_round else { continue };
            if self.stop_answered[i] || !self.submitted[i] || !due(stop_round) {
                continue;
            }
            self.stop_sends += 1;
            let arn = self.plans[i].arn.clone();
            match api.post(&format!("/v1/tasks/{}/stop", encode(&arn)), String::new()).await {
                Ok((202, _)) => {
                    self.stop_answered[i] = true;
                    answered.1 += 1;
                }
                Ok((404, text)) => {
                    self.stop_answered[i] = true;
                    findings.failures.push(format!(
                        "task {arn}: a stop in round {r:?} answered 404 although its submit had been answered: {text}"
                    ));
                }
                Ok(_) | Err(_) => {}
            }
        }
        answered
    }
}

/// One round: start, do what is due while the daemon lives, end it.
#[allow(clippy::too_many_arguments)]
async fn run_round(
    guard: &mut Guard,
    proxy: &Proxy,
    api: &Api,
    driver: &mut Driver,
    findings: &mut Findings,
    data: &Path,
    r: usize,
    kind: Kind,
) -> Round {
    let log = guard.dir.as_ref().unwrap().path().join(format!("round-{r:02}.log"));
    let crash_at = match kind {
        Kind::Crash(point, n) => Some(format!("{point}:{n}")),
        Kind::Kill(_) | Kind::KillOnCall => None,
    };
    let from = now_nanos();
    let held_before = proxy.counts().calls_held;
    proxy.hold_next_call(matches!(kind, Kind::KillOnCall));
    guard.daemon = Some(spawn_daemon(data, proxy, crash_at, &log));
    let child = guard.daemon.as_mut().unwrap();
    let limit = match kind {
        Kind::Crash(..) => CRASH_ROUND_LIMIT,
        Kind::Kill(after) => after,
        Kind::KillOnCall => CALL_ROUND_LIMIT,
    };
    let mut up = false;
    let mut answered = (0, 0);
    let work = async {
        if !wait_up(api, child).await {
            return;
        }
        up = true;
        answered = driver.send(api, Some(r), findings).await;
        match kind {
            // Let the daemon reach its crash point.
            Kind::Crash(..) => {
                let _ = wait_exit(child, Duration::from_secs(3600)).await;
            }
            Kind::Kill(_) => std::future::pending::<()>().await,
            Kind::KillOnCall => {
                while proxy.counts().calls_held == held_before {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(limit, work).await;
    let mut child = guard.daemon.take().unwrap();
    let exited = child.try_wait().ok().flatten();
    let killed = exited.is_none();
    if killed {
        let _ = child.kill();
        let _ = child.wait();
    }
    proxy.hold_next_call(false);
    let held = proxy.counts().calls_held > held_before;
    let to = now_nanos();
    let reached = reached(&log);
    if let Some(status) = exited {
        let expected = match kind {
            Kind::Crash(point, _) => status.signal() == Some(6) && reached.as_deref() == Some(point),
            Kind::Kill(_) | Kind::KillOnCall => false,
        };
        if !expected {
            findings.failures.push(format!(
                "round {r} ({kind:?}): the daemon exited by itself ({status}), crash point reached: {reached:?}; its \
                 stderr ends:\n{}",
                tail(&log, 30)
            ));
        }
    }
    Round { kind, from, to, up, reached, killed, held, submits: answered.0, stops: answered.1, log }
}

/// Whether `view` (GET /v1/tasks/{arn}) shows `plan` at its desired end; else why not.
pub fn converged(plan: &Plan, view: &Value) -> Result<(), String> {
    let known = view["KnownStatus"].as_str().unwrap_or("?");
    let desired = view["DesiredStatus"].as_str().unwrap_or("?");
    let mut wrong = Vec::new();
    if known != plan.task_status || desired != plan.task_status {
        wrong.push(format!("task known {known} desired {desired}, expected {}", plan.task_status));
    }
    let containers = view["Containers"].as_array().cloned().unwrap_or_default();
    let names: BTreeSet<String> = containers.iter().filter_map(|c| c["Name"].as_str().map(str::to_owned)).collect();
    let expected: BTreeSet<String> = plan.containers.keys().cloned().collect();
    if names != expected {
        wrong.push(format!("containers {names:?}, expected {expected:?}"));
    }
    for c in &containers {
        let name = c["Name"].as_str().unwrap_or("?");
        let Some(e) = plan.containers.get(name) else { continue };
        let known = c["KnownStatus"].as_str().unwrap_or("?");
        if known != e.status {
            wrong.push(format!("{name}: known {known}, expected {} ({c})", e.status));
        }
        if let Some(code) = e.exit_code
            && known == "STOPPED"
            && c["ExitCode"].as_i64() != Some(code)
        {
            wrong.push(format!("{name}: exit code {}, expected {code} ({c})", c["ExitCode"]));
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(wrong.join("; ")) }
}

/// Every task's view, by arn.
pub async fn views(api: &Api, plans: &[Plan]) -> Result<BTreeMap<String, Value>, String> {
    let mut all = BTreeMap::new();
    for p in plans {
        all.insert(p.arn.clone(), api.task(&p.arn).await?);
    }
    Ok(all)
}

/// (task arn, container name) → Docker id, of every task container with one.
pub fn docker_ids(views: &BTreeMap<String, Value>) -> BTreeMap<(String, String), String> {
    let mut ids = BTreeMap::new();
    for (arn, view) in views {
        for c in view["Containers"].as_array().cloned().unwrap_or_default() {
            if let (Some(name), Some(id)) = (c["Name"].as_str(), c["DockerId"].as_str()) {
                ids.insert((arn.clone(), name.to_owned()), id.to_owned());
            }
        }
    }
    ids
}

/// The round an event at `nanos` happened in ("final" after the rounds).
pub fn round_of(rounds: &[Round], nanos: i128) -> String {
    rounds
        .iter()
        .position(|r| nanos >= r.from && nanos <= r.to)
        .map(|r| format!("round {r}"))
        .unwrap_or_else(|| if rounds.last().is_some_and(|r| nanos > r.to) { "final".into() } else { "between".into() })
}

pub fn attr<'a>(event: &'a Value, key: &str) -> &'a str {
    event["Actor"]["Attributes"][key].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// The run: setup, the kill loop, the final start, and what the checks read.

/// One run of the scenario: everything the properties are checked on.
pub struct Run {
    pub began: Instant,
    pub seed: u64,
    pub guard: Guard,
    pub data: PathBuf,
    pub instance: String,
    pub docker: BollardClient,
    /// Between every daemon and Docker.
    pub proxy: Proxy,
    pub api: Api,
    seen: Arc<Mutex<Seen>>,
    reader: tokio::task::JoinHandle<()>,
    events_thread: Option<std::thread::JoinHandle<Vec<Value>>>,
    pub plans: Vec<Plan>,
    pub driver: Driver,
    pub findings: Findings,
    pub rounds: Vec<Round>,
    /// How long the kill loop took.
    pub loop_time: Duration,
    /// The final daemon's stderr.
    pub final_log: PathBuf,
}

/// The state at the end of the final start's convergence.
pub struct End {
    /// Tasks not at their desired status (arn, why).
    pub pending: Vec<(String, String)>,
    /// Every task's last view, by arn.
    pub views: BTreeMap<String, Value>,
    /// (task arn, container name) → Docker id, from those views.
    pub ids: BTreeMap<(String, String), String>,
    pub converge_time: Duration,
}

impl Run {
    /// Checks the test environment, makes the data directory (its instance id written
    /// beforehand), starts Docker's event record and the change reader.
    pub async fn start() -> Run {
        let began = Instant::now();
        // Docker must answer and hold the image: fail, never skip.
        let info = Command::new("docker").arg("info").output();
        assert!(
            info.as_ref().is_ok_and(|o| o.status.success()),
            "Docker must answer (run scripts/test-env.sh): {info:?}"
        );
        let image = Command::new("docker").args(["image", "inspect", IMAGE]).output();
        assert!(image.as_ref().is_ok_and(|o| o.status.success()), "{IMAGE} must be present (scripts/test-env.sh)");
        let docker = BollardClient::connect().await.unwrap_or_else(|e| panic!("Docker must answer: {e}"));

        let seed =
            std::env::var("BERTH_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
        eprintln!("crash test: seed {seed} (BERTH_CRASH_SEED={seed} replays the schedule)");

        // The data directory, with its instance id written beforehand.
        let top = tempfile::Builder::new().prefix("bcr-").tempdir_in("/tmp").unwrap();
        let data = top.path().join("data");
        fs::create_dir(&data).unwrap();
        let instance = format!("{:032x}", rand::random::<u128>());
        fs::write(data.join("instance-id"), format!("{instance}\n")).unwrap();
        let mut guard = Guard { dir: Some(top), instance: instance.clone(), daemon: None, events: None };
        let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0).saturating_sub(1);
        let (events_child, events_thread) = record_docker_events(&instance, since);
        guard.events = Some(events_child);
        tokio::time::sleep(Duration::from_millis(300)).await;

        let api = Api::new(&data.join("berth.sock"));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = tokio::spawn(read_events(api.clone(), seen.clone()));

        let plans = plans(&instance[..8]);
        let n = plans.len();
        let driver = Driver {
            plans: plans.clone(),
            submitted: vec![false; n],
            stop_answered: vec![false; n],
            submit_sends: 0,
            stop_sends: 0,
        };
        let final_log = guard.dir.as_ref().unwrap().path().join("final-1.log");
        Run {
            began,
            seed,
            guard,
            data,
            instance,
            docker,
            proxy: Proxy::start(),
            api,
            seen,
            reader,
            events_thread: Some(events_thread),
            plans,
            driver,
            findings: Findings::default(),
            rounds: Vec::new(),
            loop_time: Duration::ZERO,
            final_log,
        }
    }

    /// The kill loop: every round of the seed's schedule.
    pub async fn kill_loop(&mut self) {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let schedule = schedule(&mut rng);
        for (r, kind) in schedule.iter().enumerate() {
            let round = run_round(
                &mut self.guard,
                &self.proxy,
                &self.api,
                &mut self.driver,
                &mut self.findings,
                &self.data,
                r,
                *kind,
            )
            .await;
            eprintln!(
                "round {r:2}: {:<28} up={:<5} reached={:<14} killed={:<5} held={:<5} submits={} stops={} ({:.1} s)",
                format!("{:?}", round.kind),
                round.up,
                round.reached.as_deref().unwrap_or("-"),
                round.killed,
                round.held,
                round.submits,
                round.stops,
                (round.to - round.from) as f64 / 1e9
            );
            self.rounds.push(round);
        }
        self.loop_time = self.began.elapsed();
    }

    /// The final, normal start: what was not answered is sent again, and every task must
    /// reach its desired status (waited for until [`CONVERGE`] is over).
    pub async fn final_start(&mut self) -> End {
        let api = &self.api;
        let driver = &mut self.driver;
        self.guard.daemon = Some(spawn_daemon(&self.data, &self.proxy, None, &self.final_log));
        let up = tokio::time::timeout(START, wait_up(api, self.guard.daemon.as_mut().unwrap())).await;
        assert!(
            matches!(up, Ok(true)),
            "the final start did not answer (the store does not load?); stderr:\n{}",
            tail(&self.final_log, 40)
        );
        let deadline = Instant::now() + CONVERGE;
        while driver.submitted.iter().any(|s| !s)
            || driver.plans.iter().enumerate().any(|(i, p)| p.stop_round.is_some() && !driver.stop_answered[i])
        {
            driver.send(api, None, &mut self.findings).await;
            assert!(Instant::now() < deadline, "the final daemon does not answer submits and stops");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let converge_from = Instant::now();
        let mut last_views = BTreeMap::new();
        let mut pending: Vec<(String, String)>;
        loop {
            pending = Vec::new();
            match views(api, &self.plans).await {
                Ok(all) => {
                    for p in &self.plans {
                        if let Err(why) = converged(p, &all[&p.arn]) {
                            pending.push((p.arn.clone(), why));
                        }
                    }
                    last_views = all;
                }
                Err(e) => pending.push(("(API)".into(), e)),
            }
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let converge_time = converge_from.elapsed();
        let ids = docker_ids(&last_views);
        End { pending, views: last_views, ids, converge_time }
    }

    /// The whole change log, once the reader has caught up with it (or 15 s passed), and
    /// its last Seq.
    pub async fn whole_log_read(&self) -> (Vec<Value>, u64) {
        let log = whole_log(&self.api).await.unwrap_or_else(|e| panic!("{e}"));
        let log_last = log.last().and_then(|c| c["Seq"].as_u64()).unwrap_or(0);
        let catch_up = Instant::now() + Duration::from_secs(15);
        while self.seen.lock().unwrap().last < log_last && Instant::now() < catch_up {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (log, log_last)
    }

    /// Docker's containers of this instance.
    pub async fn listed(&self) -> Vec<berth_docker::ContainerSummary> {
        self.docker.list_containers(&[(labels::INSTANCE, self.instance.as_str())]).await.unwrap()
    }

    /// What the reader saw across every reconnection; the reader stops.
    pub fn stop_reader(&mut self) -> Seen {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        self.reader.abort();
        seen
    }

    /// Docker's own record of the instance's containers, from the start to now; the
    /// recorder stops.
    pub async fn docker_record(&mut self) -> Vec<Value> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(mut child) = self.guard.events.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.events_thread.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }

    /// The path of a daemon log in the test's directory.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.guard.dir.as_ref().unwrap().path().join(name)
    }
}
