//! Real etcd members for tests: [`EtcdCluster`] starts `/usr/bin/etcd` (3.4, installed by
//! `scripts/test-env.sh`) on loopback ports the OS hands out (never the default 2379/2380),
//! with data in a temporary directory under `/dev/shm` (etcd 3.4 cannot skip fsync), and
//! kills every member and removes the data when dropped, also when a test fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary the tests run.
pub const ETCD: &str = "/usr/bin/etcd";
/// How long a member may take to answer healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);
/// How long a member may take to stop on SIGTERM before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster of one or more members on loopback.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    /// `--initial-cluster`.
    initial: String,
    token: String,
    extra: Vec<String>,
}

impl std::fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCluster").field("dir", &self.dir.path()).field("endpoints", &self.endpoints()).finish()
    }
}

/// Ports the OS hands out, all held at once so none is handed out twice.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a free loopback port: {e}")))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("local address of a listener: {e}")))
        .collect();
    assert!(!ports.iter().any(|p| matches!(p, 2379 | 2380)), "the OS handed out an etcd default port: {ports:?}");
    ports
}

impl EtcdCluster {
    /// Starts `members` members and waits until each answers healthy (it has a leader).
    /// Panics (failing the test) when etcd is missing or does not come up.
    pub fn start(members: usize) -> EtcdCluster {
        EtcdCluster::start_with(members, &[])
    }

    /// As [`EtcdCluster::start`], with more flags for every member (e.g.
    /// `--auto-compaction-retention=1`).
    pub fn start_with(members: usize, extra: &[&str]) -> EtcdCluster {
        assert!(members > 0, "an etcd cluster needs a member");
        assert!(Path::new(ETCD).exists(), "{ETCD} is missing: run scripts/test-env.sh (it installs etcd-server)");
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new().prefix("berth-etcd-").tempdir_in(if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        });
        let dir = builder.unwrap_or_else(|e| panic!("temporary directory for etcd: {e}"));
        let ports = free_ports(2 * members);
        let members: Vec<Member> = (0..members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut cluster =
            EtcdCluster { dir, members, initial, token, extra: extra.iter().map(|s| s.to_string()).collect() };
        for i in 0..cluster.members.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.members.len() {
            cluster.wait_healthy(i);
        }
        cluster
    }

    /// Every member's client URL (`http://127.0.0.1:PORT`), stopped ones included.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// The members' data and logs (`<name>/`, `<name>.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.members[i].name))
    }

    fn spawn(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} runs already");
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap_or_else(|e| panic!("etcd log file: {e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("etcd log file: {e}"));
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new(ETCD)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--pre-vote=true", "--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {ETCD}: {e}"));
        self.members[i].child = Some(child);
    }

    /// Waits until member `i` answers `/health` with `"health":"true"` (it sees a leader).
    /// Panics with its log's last lines when it exits or takes longer than 30 s.
    pub fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.members[i].client_port));
        loop {
            if healthy(addr) {
                return;
            }
            if let Some(child) = self.members[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.members[i].child = None;
                panic!("etcd member {i} exited ({status}); its log:\n{}", self.log_tail(i));
            }
            assert!(
                Instant::now() < deadline,
                "etcd member {i} not healthy in {HEALTHY_WITHIN:?}; its log:\n{}",
                self.log_tail(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops member `i` with SIGTERM (killed if it takes over 10 s); its data stays.
    pub fn stop_member(&mut self, i: usize) {
        let Some(mut child) = self.members[i].child.take() else { return };
        let pid = rustix::process::Pid::from_child(&child);
        if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok() {
            let deadline = Instant::now() + STOP_WITHIN;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills member `i` (SIGKILL); its data stays.
    pub fn kill_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data and ports; waits until it is healthy.
    pub fn start_member(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i);
    }

    /// Whether member `i` runs (as far as this cluster knows).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
        // The data directory goes with `self.dir`.
    }
}

/// Whether `/health` on `addr` says healthy (HTTP/1.0 by hand: no client crate needed).
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.contains("\"health\":\"true\"")
}
