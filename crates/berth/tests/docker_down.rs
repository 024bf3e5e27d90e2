//! `berth daemon` started while Docker does not answer (issue 14 item 7): it serves its API
//! at once, takes tasks, and runs them when Docker answers. Docker is "down" by
//! `DOCKER_HOST` naming a socket nothing listens on yet; it "comes up" when the test starts
//! a forwarder there to the real daemon's socket.

mod support;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use support::wait_for;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// `GET path` over the unix socket at `socket`.
fn get(socket: &Path, path: &str) -> Option<String> {
    support::unix_request(socket, "GET", path, "")
}

/// Pipes every connection made to `path` to the real Docker socket, until the process ends.
fn forward_to_docker(path: &Path) {
    let listener = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = UnixStream::connect(DOCKER_SOCKET) else { continue };
            let (Ok(mut client_in), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else { continue };
            let (mut client_out, mut server_out) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
                let _ = server_out.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

/// Stops the daemon and removes what its instance left on Docker, however the test ends.
struct Guard {
    child: Child,
    data: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(instance) = std::fs::read_to_string(self.data.join("instance-id")) {
            berth_testutils::real::remove_instance(instance.trim());
        }
    }
}

#[test]
fn the_daemon_serves_while_docker_is_down_at_boot_and_runs_tasks_once_it_answers() {
    support::require_busybox();
    let dir = tempfile::Builder::new().prefix("bdd-").tempdir_in("/tmp").expect("tempdir");
    let (data, docker_socket) = (dir.path().join("data"), dir.path().join("docker.sock"));
    let mut cmd = support::daemon(&data, &dir.path().join("daemon.log"));
    cmd.env("DOCKER_HOST", format!("unix://{}", docker_socket.display()))
        .env("BERTH_PULL_BEHAVIOR", "prefer-cached")
        .env("BERTH_DEFAULT_STOP_TIMEOUT", "1s");
    let child = cmd.spawn().expect("berth daemon");
    let guard = Guard { child, data: data.clone() };
    let socket = data.join("berth.sock");

    // The API answers at once, saying Docker is unreachable.
    let health = wait_for("the API answers while Docker is down", Duration::from_secs(10), || get(&socket, "/healthz"));
    assert!(health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"Docker\":\"unreachable\""), "{health}");

    // It takes a task meanwhile.
    let file = dir.path().join("task.json");
    std::fs::write(
        &file,
        r#"{"family": "docker-down", "containerDefinitions": [{"name": "main", "image": "busybox:latest",
            "memory": 16, "command": ["sleep", "600"], "linuxParameters": {"initProcessEnabled": true}}]}"#,
    )
    .expect("task file");
    let submitted = support::berth()
        .env("BERTH_HOST", format!("unix://{}", socket.display()))
        .arg("submit")
        .arg(&file)
        .output()
        .expect("berth submit");
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let arn = String::from_utf8_lossy(&submitted.stdout).trim().to_string();

    // Docker comes up: the task runs.
    forward_to_docker(&docker_socket);
    let short = arn.rsplit('/').next().unwrap_or_default().to_string();
    wait_for("the task reaches RUNNING once Docker answers", Duration::from_secs(60), || {
        let view = get(&socket, &format!("/v1/tasks/{short}"))?;
        view.contains("\"KnownStatus\":\"RUNNING\"").then_some(())
    });
    let health = get(&socket, "/healthz").unwrap_or_default();
    assert!(health.contains("\"Docker\":\"ok\""), "{health}");
    drop(guard);
}
