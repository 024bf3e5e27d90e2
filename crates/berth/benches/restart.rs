//! Restart recovery (issue "Crash safety"): a `berth daemon` whose state holds 200 tasks
//! with RUNNING containers on the real Docker daemon is started, and timed from process
//! start until its API answers and every task is reconciled (`GET /healthz` says Docker
//! answers and `Reconciling` is 0: every container berth knew has been inspected since it
//! started). Measured after SIGTERM (a clean restart) and after SIGKILL (a crash), rounds
//! interleaved. Target: under 2 s.
//!
//! At the end it reports the resident memory of the idle daemon tracking those tasks.
//!
//! `cargo bench -p berth --bench restart` (needs `scripts/test-env.sh`; takes a few minutes,
//! most of it creating the 200 containers once). Options after `--`: `--tasks N` (200),
//! `--rounds N` (5 of each), `--compare PATH` (another build's `berth` binary, e.g. the
//! code before a change: every round then restarts both, one after the other on the same
//! state, and the idle memory is reported for each, side by side in one run). Every
//! container is removed at the end, also on failure.

use berth_docker::{BollardClient, DockerClient, labels};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(binary: &Path, dir: &Path) -> Daemon {
        let child = Command::new(binary)
            .args(["daemon", "--data-dir"])
            .arg(dir)
            .env("BERTH_LOG_LEVEL", "warn")
            .env("BERTH_IMAGE_CLEANUP_ENABLED", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("berth daemon starts");
        Daemon { child }
    }

    fn signal(&mut self, signal: &str) {
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the instance's containers at the end.
struct Cleanup {
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(instance) = std::fs::read_to_string(self.dir.join("instance-id")) else { return };
        let instance = instance.trim().to_string();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let Ok(docker) = BollardClient::connect().await else { return };
            let ours = docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await.unwrap_or_default();
            for c in ours {
                let _ = docker.remove_container(&c.id).await;
            }
        });
    }
}

fn client(dir: &Path) -> reqwest::Client {
    reqwest::Client::builder().unix_socket(dir.join("berth.sock")).build().expect("client")
}

/// Poll `/healthz` until Docker answers and nothing waits to be reconciled; the time from
/// `started`.
async fn until_reconciled(http: &reqwest::Client, started: Instant, tasks: usize) -> Duration {
    loop {
        if let Ok(answer) = http.get("http://berth/healthz").send().await
            && let Ok(health) = answer.json::<serde_json::Value>().await
            && health["Docker"] == "ok"
            && health["Reconciling"] == 0
            && health["Tasks"] == tasks
        {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not reconciled after 2 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}

/// A `/proc/<pid>/status` field of the daemon, in MB (0 when unreadable).
fn status_mb(daemon: &Daemon, name: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let (mut tasks, mut rounds) = (200usize, 5usize);
    let mut binaries = vec![("this build", PathBuf::from(env!("CARGO_BIN_EXE_berth")))];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--tasks" => tasks = args.next().and_then(|v| v.parse().ok()).expect("--tasks N"),
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--compare" => binaries.push(("compared", args.next().map(PathBuf::from).expect("--compare PATH"))),
            other => panic!("unknown argument {other} (--tasks N, --rounds N, --compare PATH)"),
        }
    }
    let dir = tempfile::Builder::new().prefix("berth-restart-").tempdir_in("/tmp").expect("dir");
    let _cleanup = Cleanup { dir: dir.path().to_path_buf() };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut daemon = Daemon::start(&binaries[0].1, dir.path());
        let http = client(dir.path());
        until_reconciled(&http, Instant::now(), 0).await;
        let setup = Instant::now();
        for i in 0..tasks {
            let body = format!(
                r#"{{"family": "restart-{i}", "containerDefinitions": [
                    {{"name": "main", "image": "busybox:latest", "memory": 16, "command": ["sleep", "3600"]}}]}}"#
            );
            let answer = http.post("http://berth/v1/tasks").body(body).send().await.expect("submit");
            assert_eq!(answer.status(), 201);
        }
        loop {
            let all: serde_json::Value =
                http.get("http://berth/v1/tasks").send().await.expect("list").json().await.expect("json");
            let running = all["Tasks"].as_array().map_or(0, |t| t.iter().filter(|t| t["KnownStatus"] == "RUNNING").count());
            if running == tasks {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("setup: {tasks} tasks RUNNING on the real Docker in {:.1} s", setup.elapsed().as_secs_f64());
        let mut times: Vec<(&str, &str, Duration)> = Vec::new();
        let mut memory: Vec<(&str, f64, f64)> = Vec::new();
        for round in 0..rounds * 2 {
            let how = if round % 2 == 0 { "TERM" } else { "KILL" };
            for (name, binary) in &binaries {
                daemon.signal(how);
                let started = Instant::now();
                daemon = Daemon::start(binary, dir.path());
                let took = until_reconciled(&http, started, tasks).await;
                println!("  {name}, after SIG{how}: reconciled and answering in {:.3} s", took.as_secs_f64());
                times.push((name, how, took));
                if binaries.len() > 1 || round == rounds * 2 - 1 {
                    // The daemon, idle, tracking every task.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let (rss, hwm) = (status_mb(&daemon, "VmRSS"), status_mb(&daemon, "VmHWM"));
                    println!("  {name}: idle 5 s after its restart: VmRSS {rss:.1} MB, VmHWM {hwm:.1} MB");
                    memory.push((name, rss, hwm));
                }
            }
        }
        for (name, _) in &binaries {
            for how in ["TERM", "KILL"] {
                let v = sorted(times.iter().filter(|(n, h, _)| n == name && *h == how).map(|(_, _, t)| t.as_secs_f64()));
                println!(
                    "{name}: restart after SIG{how} with {tasks} RUNNING containers: median {:.3} s, max {:.3} s ({} rounds; target < 2 s)",
                    v[v.len() / 2],
                    v[v.len() - 1],
                    v.len()
                );
            }
            let rss = sorted(memory.iter().filter(|(n, _, _)| n == name).map(|(_, rss, _)| *rss));
            let hwm = sorted(memory.iter().filter(|(n, _, _)| n == name).map(|(_, _, hwm)| *hwm));
            println!(
                "{name}: idle berth daemon tracking {tasks} RUNNING tasks (real Docker), 5 s after a restart: VmRSS median {:.1} MB (range {:.1}-{:.1}), VmHWM median {:.1} MB",
                rss[rss.len() / 2],
                rss[0],
                rss[rss.len() - 1],
                hwm[hwm.len() / 2]
            );
        }
        daemon.signal("TERM");
    });
}
