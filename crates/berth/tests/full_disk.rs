//! A full disk during a run (issue 14, items 1 and 2), for real: `berth daemon` on a data
//! directory on a small tmpfs, the rest of it filled, tasks submitted until a commit fails
//! with ENOSPC. The daemon exits non-zero naming the cause, a following `berth events`
//! ends, and once space is freed the daemon starts again on the same directory, with no
//! container created twice. Needs root (mount) and Docker with busybox; a missing piece
//! fails the test, never skips it.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted on a new directory under /tmp, unmounted when dropped (also when the
/// test fails).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new().prefix("bfd-").tempdir_in("/tmp").unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        assert!(status.as_ref().is_ok_and(ExitStatus::success), "mount -t tmpfs (the test needs root): {status:?}");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Removes every container of a berth instance when dropped.
struct Containers(String);

impl Containers {
    /// Task arn → how many containers of this instance carry it.
    fn per_task(&self) -> BTreeMap<String, usize> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--filter", &format!("label=berth.instance={}", self.0)])
            .args(["--format", "{{.Label \"berth.task-arn\"}}"])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker ps: {out:?}");
        let mut counts = BTreeMap::new();
        for arn in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
            *counts.entry(arn.to_string()).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=berth.instance={}", self.0)])
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
            }
        }
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_socket(child: &mut Child, socket: &Path, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("berth daemon ended ({status}) before it started:\n{}", fs::read_to_string(log).unwrap());
        }
        assert!(Instant::now() < deadline, "no socket after 60 s:\n{}", fs::read_to_string(log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fill the file system of `dir` with `filler`, leaving about `leave` bytes.
fn fill_leaving(dir: &Path, leave: u64) -> PathBuf {
    let filler = dir.join("filler");
    let out = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output().unwrap();
    let avail: u64 = String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![0xa5u8; 4096];
    let mut left = avail.saturating_sub(leave);
    while left > 0 {
        let n = usize::try_from(left.min(4096)).unwrap();
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
    filler
}

/// Wait until a follower holds a connection of the daemon's unix socket: the daemon counts
/// two open ones (the follower's and this request's) while it answers `/metrics`.
fn wait_follower(socket: &Path) {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut answer = String::new();
        if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) {
            let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let _ = stream.read_to_string(&mut answer);
        }
        let open = answer
            .lines()
            .find_map(|l| l.strip_prefix("berth_api_connections{listener=\"unix\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if open >= 2 {
            return;
        }
        assert!(Instant::now() < deadline, "the events follower never connected; last metrics:\n{answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_disk_stops_the_daemon_loudly_and_it_starts_again_once_space_is_freed() {
    support::require_busybox();
    let logs = tempfile::Builder::new().prefix("bfd-logs-").tempdir_in("/tmp").unwrap();
    let fs_ = Tmpfs::mount("4m");
    let data = fs_.0.path().join("data");
    let socket = data.join("berth.sock");
    let log = logs.path().join("daemon.log");
    let mut daemon = Killed(support::daemon(&data, &log).spawn().unwrap());
    wait_socket(&mut daemon.0, &socket, &log);
    let instance = fs::read_to_string(data.join("instance-id")).unwrap().trim().to_string();
    let containers = Containers(instance);

    // A follower of the change log, reading all along.
    let events_out = logs.path().join("events.out");
    let mut events = Killed(
        support::berth()
            .args(["events", "--json", "-H"])
            .arg(&socket)
            .stdout(Stdio::from(fs::File::create(&events_out).unwrap()))
            .stderr(Stdio::from(fs::File::create(logs.path().join("events.err")).unwrap()))
            .spawn()
            .unwrap(),
    );
    wait_follower(&socket);

    // Each task record carries 32 KB of environment: a few commits fill what is left.
    let big = "x".repeat(32 * 1024);
    let filler = fill_leaving(fs_.0.path(), 192 * 1024);
    let mut submitted = Vec::new();
    let mut refused = None;
    for n in 0..200 {
        let file = logs.path().join(format!("task-{n}.json"));
        let def = serde_json::json!({"family": format!("full-{n}"), "containerDefinitions": [{
            "name": "main", "image": "busybox:latest", "command": ["sleep", "3600"],
            "environment": [{"name": "BIG", "value": big}]}]});
        fs::write(&file, def.to_string()).unwrap();
        let out = support::berth().args(["submit", "-H"]).arg(&socket).arg(&file).output().unwrap();
        if out.status.success() {
            submitted.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        } else {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    // The failed commit may be a submit's or one the engine made on its own (a container's
    // change): the refused submit either names the cause, or finds the daemon gone (before
    // it connected, or while its request was in flight: the daemon exits).
    let refused = refused.expect("a submit failed once the disk was full");
    eprintln!("{} tasks taken; the refused submit said: {refused}", submitted.len());
    assert!(
        refused.contains("No space left")
            || refused.contains("no berth daemon answers")
            || refused.contains("talking to the daemon"),
        "{refused}"
    );

    // The daemon exits non-zero, naming the cause.
    let status = wait_exit(&mut daemon.0, Duration::from_secs(30), "berth daemon after the failed commit");
    let stderr = fs::read_to_string(&log).unwrap();
    eprintln!("daemon: {status}\n{stderr}");
    assert!(!status.success(), "non-zero exit: {status}");
    assert!(stderr.contains("No space left on device"), "the cause is named: {stderr}");
    assert!(stderr.contains("free space"), "what to do is said: {stderr}");
    assert!(!stderr.contains("--reset-state"), "no reset advice: {stderr}");
    // The follower ended, its last line saying why.
    let events_status = wait_exit(&mut events.0, Duration::from_secs(10), "berth events after the daemon died");
    let lines = fs::read_to_string(&events_out).unwrap();
    assert!(!events_status.success(), "berth events says the stream ended: {events_status}");
    let last = lines.lines().last().unwrap_or_default();
    assert!(last.contains("\"Error\"") && last.contains("No space left"), "last line: {last}");

    // No container twice so far.
    let counts = containers.per_task();
    assert!(counts.values().all(|&n| n == 1), "one container per task at most: {counts:?}");

    // Space freed: the same directory opens, and every task taken runs, each created once.
    fs::remove_file(&filler).unwrap();
    let log2 = logs.path().join("daemon2.log");
    let mut again = Killed(support::daemon(&data, &log2).spawn().unwrap());
    wait_socket(&mut again.0, &socket, &log2);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = containers.per_task();
        assert!(counts.values().all(|&n| n == 1), "one container per task: {counts:?}");
        if submitted.iter().all(|arn| counts.contains_key(arn)) {
            break;
        }
        assert!(Instant::now() < deadline, "not every task taken has its container: {counts:?} of {submitted:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let kill = Command::new("kill").arg("-TERM").arg(again.0.id().to_string()).status().unwrap();
    assert!(kill.success());
    let status = wait_exit(&mut again.0, Duration::from_secs(30), "berth daemon after SIGTERM");
    assert!(status.success(), "a clean stop: {status}\n{}", fs::read_to_string(&log2).unwrap());
    assert!(containers.per_task().values().all(|&n| n == 1), "still one container per task");
}
