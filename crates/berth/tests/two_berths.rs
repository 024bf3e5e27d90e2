//! Two berths, one instance id (issue 14 item 12): a data directory restored onto a second
//! daemon of the same host carries the first one's instance id. The second must refuse to
//! start, naming the holder, instead of taking the first's containers for orphans of its
//! own and removing them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use support::{unix_request as request, wait_for};

/// Stops the daemons and removes what the instance left, however the test ends.
struct Guard {
    children: Vec<Child>,
    instance: Option<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(instance) = &self.instance {
            berth_testutils::real::remove_instance(instance);
        }
    }
}

#[test]
fn a_second_daemon_with_the_first_ones_instance_id_refuses_to_start_and_touches_nothing() {
    support::require_busybox();
    let dir = tempfile::Builder::new().prefix("b2b-").tempdir_in("/tmp").expect("tempdir");
    let (first_data, second_data): (PathBuf, PathBuf) = (dir.path().join("first"), dir.path().join("second"));
    let mut guard = Guard { children: Vec::new(), instance: None };
    let daemon = |data: &Path, log: &str| {
        let mut cmd = support::daemon(data, &dir.path().join(log));
        cmd.env("BERTH_PULL_BEHAVIOR", "prefer-cached").env("BERTH_ORPHAN_GRACE", "1s");
        cmd.spawn().expect("berth daemon")
    };
    guard.children.push(daemon(&first_data, "first.log"));
    let first_socket = first_data.join("berth.sock");
    let task = r#"{"family": "two-berths", "containerDefinitions": [{"name": "main", "image": "busybox:latest",
        "memory": 16, "command": ["sleep", "600"], "linuxParameters": {"initProcessEnabled": true}}]}"#;
    let submitted = wait_for("the first daemon takes a task", Duration::from_secs(20), || {
        request(&first_socket, "POST", "/v1/tasks", task)
    });
    assert!(submitted.contains(" 201 "), "{submitted}");
    let instance = std::fs::read_to_string(first_data.join("instance-id")).expect("instance id").trim().to_string();
    guard.instance = Some(instance.clone());
    let ours = || {
        let out = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=berth.instance={instance}")])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    wait_for("the first daemon's container runs", Duration::from_secs(30), || (ours() == 1).then_some(()));

    // The second daemon: a data directory of its own, with the first one's instance id.
    std::fs::create_dir_all(&second_data).expect("second data dir");
    std::fs::set_permissions(&second_data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("mode");
    std::fs::copy(first_data.join("instance-id"), second_data.join("instance-id")).expect("copy the instance id");
    let mut second = daemon(&second_data, "second.log");
    let status = wait_for("the second daemon exits", Duration::from_secs(30), || second.try_wait().ok().flatten());
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default();
    assert!(!status.success(), "the second daemon must not run: {status}\n{log}");
    assert!(log.contains("is held by another running berth"), "{log}");
    // Past the second's orphan grace (1 s): the first's container still runs.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ours(), 1, "the first daemon's container was left alone");
}
