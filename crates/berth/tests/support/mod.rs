//! What the tests that run the `berth` binary against the real Docker daemon share: the
//! binary with none of the test environment's `BERTH_*` variables, a `berth daemon`
//! command on a data directory of its own, and the check that Docker is there (a missing
//! piece fails the test, never skips it).
// Each test binary uses part of this module.
#![allow(dead_code)]

pub mod pty;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `berth`, with no `BERTH_*` variable of the environment the tests run in.
pub fn berth() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BERTH_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `berth daemon --data-dir <data> --log-level info`, its stderr to `log`, and nothing of
/// the host's images ever removed (image cleanup off). Callers add what their test needs.
pub fn daemon(data: &Path, log: &Path) -> Command {
    let stderr = File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let mut cmd = berth();
    cmd.arg("daemon")
        .arg("--data-dir")
        .arg(data)
        .args(["--log-level", "info"])
        .env("BERTH_IMAGE_CLEANUP_ENABLED", "false")
        // Daemons of tests running side by side: each metadata endpoint on a free port.
        .env("BERTH_METADATA_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    cmd
}

/// Docker must answer (run `scripts/test-env.sh`).
pub fn require_docker() {
    let info = Command::new("docker").arg("info").output();
    assert!(info.as_ref().is_ok_and(|o| o.status.success()), "Docker must answer (run scripts/test-env.sh): {info:?}");
}

/// Docker must answer and hold `busybox:latest` (`scripts/test-env.sh` makes it).
pub fn require_busybox() {
    require_docker();
    let image = Command::new("docker").args(["image", "inspect", "busybox:latest"]).output();
    assert!(
        image.as_ref().is_ok_and(|o| o.status.success()),
        "busybox:latest must be present (scripts/test-env.sh makes it)"
    );
}

/// `method path` with `body` over the unix socket at `socket` (HTTP/1.0): the whole answer,
/// or `None` when nothing answers there.
pub fn unix_request(socket: &Path, method: &str, path: &str, body: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Poll `check` every 100 ms until it gives a value, `limit` at most.
pub fn wait_for<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll(limit, check).unwrap_or_else(|| panic!("{what}: not within {limit:?}"))
}

/// Poll `check` every 100 ms until it gives a value, `limit` at most; `None` when it never did.
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
