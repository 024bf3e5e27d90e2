//! The daemon's file descriptors and memory with 1,500 idle TCP connections (issue 13): a
//! `berth daemon` process listening on 127.0.0.1 is measured (`/proc/<pid>/fd` entries,
//! `VmRSS` of `/proc/<pid>/status`) before and after this process opens 1,500 connections
//! that send nothing, once with the default `tcp_max_connections` (256: the rest wait in
//! the backlog, unaccepted) and once with a cap above 1,500 (every one served), so that the
//! cost of a served idle connection shows. Meanwhile the unix socket's `/healthz` is timed.
//!
//! `cargo bench -p berth --bench idle_connections` (options after `--`: `--connections N`).
//! The daemon needs no Docker answer to start; its data directory is a temporary one.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// `GET /healthz` over the unix socket: the time to the whole answer, if 200.
fn healthz(socket: &Path) -> Option<Duration> {
    let begun = Instant::now();
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.1 200").then(|| begun.elapsed())
}

/// Open descriptors and resident memory (KB) of `pid`.
fn measure(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn round(connections: usize, cap: Option<usize>) {
    let dir = tempfile::Builder::new().prefix("bic-").tempdir_in("/tmp").expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(["daemon", "--data-dir"])
        .arg(&data)
        .arg("--tcp")
        .arg(format!("127.0.0.1:{port}"))
        .env("BERTH_LOG_LEVEL", "warn")
        .env("BERTH_IMAGE_CLEANUP_ENABLED", "false")
        // The connections stay for the measurement, not closed by a timeout.
        .env("BERTH_TCP_HEADER_TIMEOUT", "10m")
        .env("BERTH_TCP_IDLE_TIMEOUT", "10m")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(cap) = cap {
        cmd.env("BERTH_TCP_MAX_CONNECTIONS", cap.to_string());
    }
    let daemon = Daemon { child: cmd.spawn().expect("berth daemon starts") };
    let socket = data.join("berth.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthz(&socket).is_none() {
        assert!(Instant::now() < deadline, "the daemon did not answer in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let pid = daemon.child.id();
    let before = measure(pid);
    let idle: Vec<std::net::TcpStream> = (0..connections)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect (the backlog holds the rest)"))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let after = measure(pid);
    let mut times: Vec<Duration> = (0..20).map(|_| healthz(&socket).expect("/healthz answers")).collect();
    times.sort();
    let cap_text = cap.map_or_else(|| "256 (default)".to_string(), |c| c.to_string());
    println!(
        "cap {cap_text:>14}: {connections} idle connections: fds {} -> {} (+{}), VmRSS {:.1} -> {:.1} MB (+{:.1} MB), \
         unix /healthz p50 {:.2} ms, max {:.2} ms",
        before.0,
        after.0,
        after.0 - before.0,
        before.1 as f64 / 1024.0,
        after.1 as f64 / 1024.0,
        (after.1 as f64 - before.1 as f64) / 1024.0,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    drop(idle);
    drop(daemon);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connections = args
        .iter()
        .position(|a| a == "--connections")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500);
    // One end of every connection is in this process (the other in the daemon): room for them.
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let want = connections as u64 + 1024;
    if limit.current.is_some_and(|c| c < want) {
        let raised = limit.maximum.map_or(want, |m| m.min(want));
        setrlimit(Resource::Nofile, Rlimit { current: Some(raised), maximum: limit.maximum }).expect("setrlimit");
    }
    round(connections, None);
    round(connections, Some(connections + 500));
}
