//! A crash during a restart (docs/restart-policy.md): the real `berth daemon` runs a task
//! whose container exits after its restart period (real time: 60 s) and is restarted; the
//! daemon aborts at the crash point `after-start` on its second passage, just after Docker
//! started the container again and before that outcome is committed. Started again, berth
//! must find the restart done (the count, committed before the start was sent, is 1) and
//! never start the container a third time: Docker's own event record shows two starts, before
//! and after the task is stopped (a stopping task is not restarted). The count shows in
//! `berth ps` and `berth inspect`. About 75 s.

use crate::support::{self, require_busybox, require_docker, unix_request, wait_for};
use berth_store::crash::CRASH_AT_ENV;
use berth_testutils::real::StartRecord;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// The restart period of the test's container; it exits 3 s after the period.
const PERIOD_SECS: u64 = 60;
/// How long Docker's events may take to arrive.
const WAIT: Duration = Duration::from_secs(10);

/// Kills the daemon and removes the instance's containers however the test ends.
struct Guard {
    instance: String,
    daemon: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        berth_testutils::real::remove_instance(&self.instance);
    }
}

/// The status code of an HTTP answer.
fn status_of(answer: &str) -> Option<u16> {
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// The body of an HTTP answer whose status is `status`, as JSON.
fn json_answer(answer: &str, status: u16) -> Option<Value> {
    let (_, body) = answer.split_once("\r\n\r\n")?;
    (status_of(answer) == Some(status)).then(|| serde_json::from_str(body).ok()).flatten()
}

fn start_daemon(data: &Path, log: &Path, crash_at: Option<&str>) -> Child {
    let mut cmd = support::daemon(data, log);
    cmd.env("BERTH_PULL_BEHAVIOR", "prefer-cached").env("BERTH_DEFAULT_STOP_TIMEOUT", "1s");
    if let Some(at) = crash_at {
        cmd.env(CRASH_AT_ENV, at);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("starting berth daemon: {e}"))
}

fn wait_up(socket: &Path) {
    wait_for("the daemon answers", Duration::from_secs(60), || {
        unix_request(socket, "GET", "/healthz", "").filter(|a| status_of(a) == Some(200))
    });
}

fn berth_client(socket: &Path, args: &[&str]) -> String {
    let out = support::berth()
        .args(args)
        .args(["-H", &format!("unix://{}", socket.display())])
        .output()
        .unwrap_or_else(|e| panic!("berth {args:?}: {e}"));
    assert!(out.status.success(), "berth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_crash_during_a_restart_does_not_run_it_twice() {
    require_docker();
    require_busybox();
    let dir = tempfile::Builder::new().prefix("bcr-restart-").tempdir_in("/tmp").unwrap_or_else(|e| panic!("{e}"));
    let data: PathBuf = dir.path().join("data");
    std::fs::create_dir(&data).unwrap_or_else(|e| panic!("{e}"));
    let instance = format!("{:032x}", rand::random::<u128>());
    std::fs::write(data.join("instance-id"), format!("{instance}\n")).unwrap_or_else(|e| panic!("{e}"));
    let socket = data.join("berth.sock");
    let first_log = dir.path().join("first.log");
    let mut guard = Guard { instance: instance.clone(), daemon: None, _dir: dir };
    let record = StartRecord::follow(&instance);

    // The first daemon aborts right after Docker restarted the container.
    guard.daemon = Some(start_daemon(&data, &first_log, Some("after-start:2")));
    wait_up(&socket);
    let script = format!("sleep {}; exit 1", PERIOD_SECS + 3);
    let task = json!({"family": "crash-restart", "containerDefinitions": [{
        "name": "app", "image": "busybox:latest", "command": ["sh", "-c", script],
        "restartPolicy": {"enabled": true, "restartAttemptPeriod": PERIOD_SECS}}]});
    let answer = unix_request(&socket, "POST", "/v1/tasks", &task.to_string()).unwrap_or_default();
    let view = json_answer(&answer, 201).unwrap_or_else(|| panic!("submitted: {answer}"));
    let arn = view["Arn"].as_str().unwrap_or_default().to_owned();
    let short = arn.rsplit('/').next().unwrap_or_default().to_owned();
    let status = wait_for("the daemon aborts at the restart", Duration::from_secs(PERIOD_SECS + 60), || {
        guard.daemon.as_mut().and_then(|c| c.try_wait().ok().flatten())
    });
    guard.daemon = None;
    let log = std::fs::read_to_string(&first_log).unwrap_or_default();
    assert!(log.contains("crash point after-start reached"), "aborted at the crash point ({status}): {log}");
    assert_eq!(record.settled_starts("app", 2, WAIT), 2, "Docker started it, then restarted it");

    // Started again: the restart is found done, counted once, and not done again.
    guard.daemon = Some(start_daemon(&data, &dir_log(&first_log, "second.log"), None));
    wait_up(&socket);
    let path = format!("/v1/tasks/{short}");
    let mut last = String::new();
    let found = support::poll(Duration::from_secs(30), || {
        last = unix_request(&socket, "GET", &path, "")?;
        let v = json_answer(&last, 200)?;
        let app = &v["Containers"][0];
        (v["KnownStatus"] == "RUNNING" && app["KnownStatus"] == "RUNNING" && app["RestartCount"] == 1).then_some(v)
    });
    let view = found.unwrap_or_else(|| panic!("the task is RUNNING with one restart; last answer: {last}"));
    assert_eq!(view["DesiredStatus"], "RUNNING", "{view}");
    let ps = berth_client(&socket, &["ps"]);
    let row: Vec<&str> = ps.lines().find(|l| l.starts_with(&short)).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row.get(4), Some(&"1"), "RESTARTS in berth ps:\n{ps}");
    let inspected: Value = serde_json::from_str(&berth_client(&socket, &["inspect", &short]))
        .unwrap_or_else(|e| panic!("berth inspect: {e}"));
    assert_eq!(inspected["Containers"][0]["RestartCount"], 1, "{inspected}");
    assert_eq!(record.settled_starts("app", 2, WAIT), 2, "no third start after the crash");

    // Stopped by the user: a stopping task is not restarted.
    let answer = unix_request(&socket, "POST", &format!("{path}/stop"), "").unwrap_or_default();
    assert!(status_of(&answer).is_some_and(|s| (200..300).contains(&s)), "stop: {answer}");
    wait_for("the task STOPPED", Duration::from_secs(30), || {
        let v = json_answer(&unix_request(&socket, "GET", &path, "")?, 200)?;
        (v["Containers"][0]["KnownStatus"] == "STOPPED").then_some(())
    });
    assert_eq!(record.settled_starts("app", 2, WAIT), 2, "not restarted when stopped");
}

/// A file beside `log`, named `name`.
fn dir_log(log: &Path, name: &str) -> PathBuf {
    log.with_file_name(name)
}
