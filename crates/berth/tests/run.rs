//! `berth run` against the real Docker daemon: the runnable files of the corpus end with the
//! exit code `EXPECTED.md` gives and leave no container or volume behind; awsvpc tasks
//! share one network namespace; Ctrl-C, SIGTERM and SIGHUP stop the task, remove
//! everything and exit 128 + the signal; a second signal exits at once and names the
//! cleanup, which works; on a pseudo-terminal every state change stays on the screen after
//! the pull's bars; container output comes in bounded pieces; a task that cannot run exits
//! 125 with the reason; a container reads its own task from the metadata endpoint. Needs `scripts/test-env.sh` (daemon, busybox, the registry on
//! 127.0.0.1:51670); a missing piece fails, never skips.

mod support;

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::pty::{self, Screen};

/// A data directory of the test's own, so its instance id (and so its containers) can be
/// found after the run; what the instance left in Docker is removed at the end.
struct DataDir {
    _tmp: tempfile::TempDir,
    /// `_tmp` itself, or a directory in it that berth makes ([`DataDir::fresh`]).
    path: PathBuf,
    /// The instance id, kept once read (berth may remove the directory).
    instance: RefCell<String>,
}

impl DataDir {
    /// An existing, empty directory (berth keeps it).
    fn new() -> DataDir {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        DataDir { path: tmp.path().to_path_buf(), _tmp: tmp, instance: RefCell::default() }
    }

    /// A directory that does not exist yet: berth makes it, and removes it at a clean end.
    fn fresh() -> DataDir {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        DataDir { path: tmp.path().join("data"), _tmp: tmp, instance: RefCell::default() }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn instance(&self) -> String {
        let mut known = self.instance.borrow_mut();
        if known.is_empty() {
            let read = std::fs::read_to_string(self.path.join("instance-id")).unwrap_or_default();
            *known = read.trim().to_string();
        }
        known.clone()
    }

    /// Containers and volumes of this run's berth still in Docker (none before its
    /// instance id is known).
    /// `berth run --cleanup --data-dir` on this directory: its exit code and its output.
    fn run_cleanup(&self) -> (Option<i32>, String) {
        let cleaned = support::berth()
            .args(["run", "--cleanup", "--data-dir"])
            .arg(&self.path)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        (
            cleaned.status.code(),
            format!("{}{}", String::from_utf8_lossy(&cleaned.stdout), String::from_utf8_lossy(&cleaned.stderr)),
        )
    }

    fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        let instance = self.instance();
        if instance.is_empty() {
            return (vec![], vec![]);
        }
        let filter = format!("label=berth.instance={instance}");
        let list = |args: &[&str]| -> Vec<String> {
            Command::new("docker")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
                .unwrap_or_default()
        };
        (list(&["ps", "-aq", "--filter", &filter]), list(&["volume", "ls", "-q", "--filter", &filter]))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let (containers, volumes) = self.leftovers();
        for c in containers {
            let _ = Command::new("docker").args(["rm", "-f", &c]).output();
        }
        for v in volumes {
            let _ = Command::new("docker").args(["volume", "rm", "-f", &v]).output();
        }
    }
}

fn corpus(file: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/ecs-taskdefs").join(file))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no shared/ecs-taskdefs/{file} beside any ancestor of {}", here.display()))
}

fn berth_run(file: &Path, data: &DataDir, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("run")
        .arg(file)
        .arg("--data-dir")
        .arg(data.path())
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("running berth: {e}"))
}

/// Runs `file` with a short default stop timeout: its looping `sh` containers ignore
/// SIGTERM (as PID 1) and are killed after it, in reverse dependency order.
fn check_run(file: &str, expected: i32) {
    let data = DataDir::new();
    let out = berth_run(&corpus(file), &data, &["--stop-timeout", "2"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(expected), "{file}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("(task STOPPED)"), "{stdout}");
    assert_eq!(data.leftovers(), (vec![], vec![]), "{file} leaves nothing behind");
}

#[test]
fn corpus_02_links_and_volumes_from_exits_42() {
    check_run("02-agent-network-link-2-2015.json", 42);
}

#[test]
fn corpus_03_data_volume_and_link_exits_42() {
    check_run("03-agent-datavolume2-2015.json", 42);
}

#[test]
fn corpus_09_depends_on_conditions_exits_0() {
    check_run("09-agent-container-ordering.json", 0);
}

#[test]
fn corpus_12_task_scoped_docker_volume_exits_42() {
    check_run("12-agent-task-local-docker-volume.json", 42);
}

#[test]
fn corpus_29_start_dependencies_and_stop_timeouts_exits_0() {
    check_run("29-agent-dependson-start-stop-timeout.json", 0);
}

fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn awsvpc_containers_reach_each_other_on_localhost() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = r#"{"family": "vpc", "networkMode": "awsvpc", "containerDefinitions": [
        {"name": "server", "image": "busybox:latest", "essential": false, "command": ["sh", "-c", "echo 7 | nc -l -p 9000"]},
        {"name": "client", "image": "busybox:latest", "command": ["sh", "-c", "sleep 1; exit `nc 127.0.0.1 9000`"],
         "dependsOn": [{"containerName": "server", "condition": "START"}]}]}"#;
    let data = DataDir::new();
    let out = berth_run(&write(files.path(), "vpc.json", json), &data, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "read over localhost\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("~pause"), "the pause container is hidden");
    assert_eq!(data.leftovers(), (vec![], vec![]));
}

#[test]
fn an_interactive_container_on_a_terminal_gets_nothing_of_berths_stdin() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Its stdin stays open (cat waits until `timeout` ends it) and is attached to nothing:
    // what berth run reads on its own stdin never reaches it.
    let json = r#"{"family": "tty", "containerDefinitions": [{"name": "app", "image": "busybox:latest",
        "interactive": true, "pseudoTerminal": true,
        "command": ["sh", "-c", "timeout 2 cat; test -t 1 && echo on-a-terminal"]}]}"#;
    let data = DataDir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("run")
        .arg(write(files.path(), "tty.json", json))
        .arg("--data-dir")
        .arg(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running berth: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, b"typed-into-berth\n").unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().any(|l| l.ends_with("| on-a-terminal")), "a pseudo-terminal:\n{stdout}");
    assert!(!stdout.contains("typed-into-berth"), "berth's stdin reached the container:\n{stdout}");
    assert!(stderr.contains("\"app\" is interactive") && stderr.contains("docker attach berth-tty-1-app-"), "{stderr}");
    assert_eq!(data.leftovers(), (vec![], vec![]));
}

#[test]
fn env_and_command_override_one_container_and_reach_its_output() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = r#"{"family": "ov", "containerDefinitions": [
        {"name": "main", "image": "busybox:latest", "command": ["sh", "-c", "echo definition; exit 1"],
         "environment": [{"name": "GREETING", "value": "from-definition"}, {"name": "KEPT", "value": "kept"}]},
        {"name": "side", "image": "busybox:latest", "essential": false, "command": ["sh", "-c", "echo side-$GREETING"]}]}"#;
    let file = write(files.path(), "ov.json", json);
    let data = DataDir::new();
    let script = r#"echo "main-$GREETING-$KEPT"; exit 3"#;
    let out = berth_run(&file, &data, &["--env", "GREETING=from-cli", "--command", "sh", "-c", script]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "the only essential container is the one changed\n{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l.ends_with("| main-from-cli-kept")), "{stdout}");
    assert!(stdout.lines().any(|l| l.ends_with("| side-")), "side is not changed: {stdout}");
    assert!(!stdout.contains("definition"), "{stdout}");
    assert_eq!(data.leftovers(), (vec![], vec![]));

    // Two essential containers: which one must be said.
    let two = json.replace(r#""essential": false, "#, "");
    let out = berth_run(&write(files.path(), "two.json", &two), &DataDir::new(), &["--env", "A=b"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name it with --container"), "{out:?}");
    let out = berth_run(&file, &DataDir::new(), &["--container", "nope", "--env", "A=b"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--container nope: the task has no container"), "{out:?}");
}

#[test]
fn exit_code_from_picks_a_container_and_keep_keeps_them() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = r#"{"family": "pick", "containerDefinitions": [
        {"name": "main", "image": "busybox:latest", "command": ["sh", "-c", "sleep 1; exit 0"]},
        {"name": "side", "image": "busybox:latest", "essential": false, "command": ["sh", "-c", "echo side-says-hi; exit 5"]}]}"#;
    let data = DataDir::new();
    let out = berth_run(&write(files.path(), "pick.json", json), &data, &["--exit-code-from", "side", "--keep"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("side") && l.ends_with("| side-says-hi")),
        "output by name:\n{stdout}"
    );
    assert_eq!(data.leftovers().0.len(), 2, "--keep keeps the containers");
}

#[test]
fn a_task_that_cannot_run_exits_125_with_the_reason() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = r#"{"family": "nope", "containerDefinitions": [{"name": "app", "image": "127.0.0.1:51670/no-such:1"}]}"#;
    let data = DataDir::new();
    let out = berth_run(&write(files.path(), "nope.json", json), &data, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr.contains("essential container \"app\" never started") && stderr.contains("no-such"), "{stderr}");
    let invalid =
        berth_run(&write(files.path(), "bad.json", r#"{"family": "x", "containerDefinitions": []}"#), &data, &[]);
    assert_eq!(invalid.status.code(), Some(125));
}

#[test]
fn a_task_larger_than_the_machine_exits_125_naming_the_excess() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // 1 PiB of memory and static host port 22: no machine has the one, the other is reserved.
    let json = r#"{"family": "huge", "memory": "1048576 GB", "containerDefinitions": [{"name": "app",
        "image": "busybox:latest", "portMappings": [{"containerPort": 22, "hostPort": 22}]}]}"#;
    let data = DataDir::new();
    let out = berth_run(&write(files.path(), "huge.json", json), &data, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr
            .contains("cannot run the task: the task can never fit on this host: it reserves 1073741824 MiB of memory")
            && stderr.contains("host port 22/tcp is reserved on this host"),
        "{stderr}"
    );
    assert_eq!(data.leftovers(), (vec![], vec![]), "nothing was made");
}

#[test]
fn ctrl_c_stops_the_task_cleanly_and_exits_130() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = r#"{"family": "int", "containerDefinitions": [{"name": "app", "image": "busybox:latest", "command": ["sleep", "600"], "stopTimeout": 1}]}"#;
    let data = DataDir::new();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("run")
        .arg(write(files.path(), "int.json", json))
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // Wait until the container runs.
    for _ in 0..100 {
        if !data.instance().is_empty() && !data.leftovers().0.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().map(|s| s.success());
    assert_eq!(sent.ok(), Some(true));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(data.leftovers(), (vec![], vec![]), "stopped and removed");
}

#[test]
fn secrets_come_from_the_local_source_and_never_reach_output_or_state() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let value = format!("s3cr3t-{}-{}", std::process::id(), line!());
    // The container checks the secret against its md5, so the task file never holds it.
    let md5 = Command::new("sh")
        .args(["-c", &format!("printf %s '{value}' | md5sum | cut -c1-32")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(md5.len(), 32);
    let json = format!(
        r#"{{"family": "sec", "containerDefinitions": [{{"name": "app", "image": "busybox:latest",
        "command": ["sh", "-c", "test \"$(printf %s \"$TOKEN\" | md5sum | cut -c1-32)\" = {md5} && test \"$FROM_FILE\" = yes"],
        "secrets": [{{"name": "TOKEN", "valueFrom": "/app/token"}}],
        "environmentFiles": [{{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}}]}}]}}"#
    );
    let task = write(files.path(), "sec.json", &json);
    let source = serde_json::json!({"/app/token": value, "arn:aws:s3:::bucket/app.env": "FROM_FILE=yes\n"});
    let secrets = write(files.path(), "secrets.json", &source.to_string());
    let data = DataDir::new();
    let out = berth_run(&task, &data, &["--secrets", &secrets.to_string_lossy(), "--keep"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "the container saw the secret and the file\n{stdout}\n{stderr}");
    assert!(!stdout.contains(&value) && !stderr.contains(&value), "no secret in berth's output");
    let mut state = Vec::new();
    for entry in std::fs::read_dir(data.path()).unwrap_or_else(|e| panic!("{e}")).filter_map(Result::ok) {
        state.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    let state = String::from_utf8_lossy(&state);
    assert!(!state.contains(&value), "no secret in berth's state files");
    assert!(state.contains("/app/token"), "only where it comes from is kept");

    let missing = write(files.path(), "none.json", "{}");
    let out = berth_run(&task, &DataDir::new(), &["--secrets", &missing.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr.contains("TOKEN (valueFrom /app/token)"), "the reason names the missing secret: {stderr}");
}

#[test]
fn a_container_reads_its_own_task_from_the_metadata_endpoint() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // One key of the answer a line, so each line stays short of the output's piece bound.
    let json = r#"{"family": "meta-run", "containerDefinitions": [{"name": "app", "image": "busybox:latest",
        "command": ["sh", "-c", "wget -qO- \"$ECS_CONTAINER_METADATA_URI_V4/task\" | tr ',' '\\n'"]}]}"#;
    let data = DataDir::new();
    // Kept, so Docker can say which task berth ran; the data directory's drop removes it.
    let out = berth_run(&write(files.path(), "meta.json", json), &data, &["--pull", "prefer-cached", "--keep"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "wget reached the endpoint\n{stdout}\n{stderr}");
    let answer: Vec<&str> =
        stdout.lines().filter(|l| l.starts_with("app")).filter_map(|l| l.split_once("| ").map(|(_, v)| v)).collect();
    let arn = answer
        .iter()
        .find_map(|l| l.strip_prefix(r#""TaskARN":""#))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no TaskARN in the answer:\n{stdout}"));
    assert!(answer.contains(&r#""Family":"meta-run""#), "{stdout}");
    assert!(answer.iter().any(|l| l.starts_with(r#""PullStartedAt":""#)), "{stdout}");
    assert!(answer.iter().any(|l| l.starts_with(r#""PullStoppedAt":""#)), "{stdout}");

    // The task Docker holds the container for, by berth's label, is the one answered.
    let (containers, _) = data.leftovers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let inspect = Command::new("docker")
        .args(["inspect", "-f", r#"{{.Id}} {{index .Config.Labels "berth.task-arn"}}"#, &containers[0]])
        .output()
        .unwrap_or_else(|e| panic!("docker inspect: {e}"));
    let inspected = String::from_utf8_lossy(&inspect.stdout);
    let (docker_id, label) = inspected.trim().split_once(' ').unwrap_or_else(|| panic!("inspect: {inspect:?}"));
    assert_eq!(label, arn, "{stdout}");
    assert!(answer.iter().any(|l| l.ends_with(&format!(r#""DockerId":"{docker_id}""#))), "{stdout}");
}

#[test]
fn bridge_host_and_none_network_modes_are_honoured() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // none: only the loopback interface; host: the host's own, Docker's bridge among them
    // (a bridge-mode container sees only lo and its eth0).
    let count = r#"ls /sys/class/net | wc -l"#;
    let bridge = r#"test -e /sys/class/net/docker0"#;
    for (mode, check) in
        [("none", format!("test $({count}) = 1")), ("host", bridge.to_string()), ("bridge", format!("! {bridge}"))]
    {
        let json = format!(
            r#"{{"family": "net-{mode}", "networkMode": "{mode}", "containerDefinitions": [{{"name": "app", "image": "busybox:latest", "command": ["sh", "-c", "{check}"]}}]}}"#
        );
        let data = DataDir::new();
        let out = berth_run(&write(files.path(), &format!("{mode}.json"), &json), &data, &[]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(data.leftovers(), (vec![], vec![]));
    }
}

#[test]
fn pull_progress_is_shown_as_plain_lines_off_a_terminal() {
    let image = format!("127.0.0.1:51670/berth-run-progress:{}-{}", std::process::id(), line!());
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    docker(&["tag", "busybox:latest", &image]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = format!(
        r#"{{"family": "progress", "containerDefinitions": [{{"name": "app", "image": "{image}", "command": ["sh", "-c", "exit 0"]}}]}}"#
    );
    let data = DataDir::new();
    let out = berth_run(&write(files.path(), "progress.json", &json), &data, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = Command::new("docker").args(["rmi", &image]).output();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let pull_lines: Vec<&str> = stdout.lines().filter(|l| l.contains(&format!("| pull {image}"))).collect();
    assert!(pull_lines.iter().any(|l| l.contains("Downloaded newer image")), "{stdout}");
    assert!(pull_lines.len() < 20, "a line per step, not per chunk: {pull_lines:#?}");
}

/// The test users of the auth registry on 127.0.0.1:51671 (scripts/test-env.sh).
fn auth_user(name: &str) -> String {
    let path = "/var/lib/berth-test/registry-51671/users.json";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e} (run scripts/test-env.sh)"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    json["users"]
        .as_array()
        .and_then(|users| users.iter().find(|u| u["username"] == name))
        .and_then(|u| u["password"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("test user {name}"))
}

/// busybox pushed to the auth registry under a tag of the test's own, absent locally.
fn pushed_to_auth_registry(what: &str) -> String {
    let image = format!("127.0.0.1:51671/berth-run-auth:{what}-{}", std::process::id());
    let config = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password = auth_user("berth");
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .arg("--config")
            .arg(config.path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "docker {:?}: {}", args.first(), String::from_utf8_lossy(&out.stderr));
    };
    docker(&["login", "-u", "berth", "-p", &password, "127.0.0.1:51671"]);
    docker(&["tag", "busybox:latest", &image]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);
    image
}

/// `berth run` with `DOCKER_CONFIG` (and `PATH`) of the test's own; checks the password
/// appears in no output line and no state file.
fn run_with_docker_config(image: &str, config_dir: &Path, path: Option<&str>, password: &str) {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = format!(
        r#"{{"family": "auth", "containerDefinitions": [{{"name": "app", "image": "{image}", "command": ["sh", "-c", "exit 0"]}}]}}"#
    );
    let data = DataDir::new();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .arg("run")
        .arg(write(files.path(), "auth.json", &json))
        .arg("--data-dir")
        .arg(data.path())
        .env("DOCKER_CONFIG", config_dir);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let out = command.output().unwrap_or_else(|e| panic!("{e}"));
    let _ = Command::new("docker").args(["rmi", image]).output();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "pulled with the user's Docker configuration\n{stdout}\n{stderr}");
    assert!(!stdout.contains(password) && !stderr.contains(password), "no password in berth's output");
    let mut state = Vec::new();
    for entry in std::fs::read_dir(data.path()).unwrap_or_else(|e| panic!("{e}")).filter_map(Result::ok) {
        state.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    assert!(!String::from_utf8_lossy(&state).contains(password), "no password in berth's state");
}

#[test]
fn the_users_docker_config_with_inline_auths_authenticates_pulls() {
    let image = pushed_to_auth_registry("inline");
    let password = auth_user("berth-slash"); // its standard base64 header has a `/`
    let auth = Command::new("sh")
        .args(["-c", &format!("printf %s 'berth-slash:{password}' | base64 -w0")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let config = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::json!({"auths": {"127.0.0.1:51671": {"auth": auth}}});
    std::fs::write(config.path().join("config.json"), json.to_string()).unwrap_or_else(|e| panic!("{e}"));
    run_with_docker_config(&image, config.path(), None, &password);
}

#[test]
fn a_credential_helper_of_the_users_docker_config_authenticates_pulls() {
    let image = pushed_to_auth_registry("helper");
    let password = auth_user("berth");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let helper = dir.path().join("docker-credential-berthruntest");
    let answer = serde_json::json!({"ServerURL": "127.0.0.1:51671", "Username": "berth", "Secret": password});
    let script = format!("#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat >/dev/null\ncat <<'EOF'\n{answer}\nEOF\n");
    std::fs::write(&helper, script).unwrap_or_else(|e| panic!("{e}"));
    Command::new("chmod").arg("+x").arg(&helper).status().unwrap_or_else(|e| panic!("{e}"));
    let config = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::json!({"credHelpers": {"127.0.0.1:51671": "berthruntest"}});
    std::fs::write(config.path().join("config.json"), json.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    run_with_docker_config(&image, config.path(), Some(&path), &password);
}

/// An image of busybox plus a layer of its own (1 MB of random bytes), pushed to the
/// registry on 127.0.0.1:51670 and removed locally: its pull downloads that layer.
fn pushed_image_with_a_new_layer(what: &str) -> String {
    let image = format!("127.0.0.1:51670/berth-run-{what}:{}-layer", std::process::id());
    let container = format!("berth-run-{what}-{}", std::process::id());
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    docker(&["run", "--name", &container, "busybox:latest", "sh", "-c", "head -c 1000000 /dev/urandom > /blob"]);
    docker(&["commit", &container, &image]);
    docker(&["rm", &container]);
    docker(&["push", &image]);
    docker(&["rmi", &image]);
    image
}

#[test]
fn the_screen_drops_what_a_redraw_erased() {
    // Two lines, then a bar drawn below them that goes up one line and clears it.
    let screen = Screen::of(b"one\r\ntwo\r\nbar 1\x1b[1A\r\x1b[2K\x1b[1B\r\x1b[2K\x1b[1Abar 2\r\n");
    assert_eq!(screen.text(), ["one", "bar 2", ""]);
    // A line padded to the width ends there: what follows starts the next one.
    let padded = format!("{:width$}next\r\n", "full", width = usize::from(pty::COLUMNS));
    assert_eq!(Screen::of(padded.as_bytes()).text(), ["full", "next", ""]);
}

#[test]
fn on_a_terminal_every_state_change_line_stays_after_the_pull_bars() {
    support::require_busybox();
    let image = pushed_image_with_a_new_layer("pty");
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = format!(
        r#"{{"family": "pty", "containerDefinitions": [{{"name": "a", "image": "{image}", "command": ["sh", "-c", "echo hello; exit 3"]}}]}}"#
    );
    let data = DataDir::fresh();
    let mut cmd = support::berth();
    cmd.arg("run").arg(write(files.path(), "pty.json", &json)).arg("--data-dir").arg(data.path()).env("TERM", "xterm");
    let (status, raw) = pty::run(cmd, Duration::from_secs(120));
    let _ = Command::new("docker").args(["rmi", &image]).output();
    let shown = Screen::of(&raw).text();
    let all = shown.join("\n");
    assert_eq!(status.code(), Some(3), "{all}");
    assert!(raw.windows(2).any(|w| w == b"\x1b["), "the pull drew bars on the terminal:\n{all}");
    for line in ["a PULLED", "a CREATED (task CREATED)", "a RUNNING (task RUNNING)", "a STOPPED exit 3 (task STOPPED)"]
    {
        let wanted = format!("berth | {line}");
        assert!(shown.contains(&wanted), "{wanted:?} is on the screen:\n{all}");
    }
    assert!(shown.iter().any(|l| l == "a     | hello"), "the container's output is on the screen:\n{all}");
    assert!(!all.contains(" 0 B/0 B"), "messages without byte counts are not bars:\n{all}");
    assert!(all.contains(&format!("pull {image}: Status: Downloaded newer image")), "{all}");
    let drawn = String::from_utf8_lossy(&raw);
    assert!(drawn.contains("Downloading") && drawn.contains("KiB/"), "the layer's bar counted bytes:\n{drawn}");
    assert!(!shown.iter().any(|l| l.starts_with(&image)), "the bars are gone after the pull:\n{all}");
    assert!(!data.path().exists(), "a data directory berth made is removed at a clean end");
}

#[test]
fn long_output_without_newlines_comes_in_bounded_pieces_and_carriage_returns_end_lines() {
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let json = r#"{"family": "pieces", "containerDefinitions": [{"name": "a", "image": "busybox:latest",
        "command": ["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' x; echo; printf 'p1\\rp2\\rp3\\r\\n'; printf end"]}]}"#;
    let data = DataDir::new();
    let out = berth_run(&write(files.path(), "pieces.json", json), &data, &["--pull", "prefer-cached"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Each line as itself, or a run of x as "x*<count>" (the whole line would be too long
    // to read in a failure).
    let lines: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("a     | "))
        .map(|l| {
            if !l.is_empty() && l.chars().all(|c| c == 'x') {
                format!("x*{}", l.len())
            } else {
                l.escape_debug().to_string()
            }
        })
        .collect();
    assert_eq!(
        lines,
        ["x*8192", "x*8192", "x*3616", "p1", "p2", "p3", "end"],
        "8 KiB pieces, then one line per carriage return (\\r\\n is one line end)"
    );
}

/// A `berth run` in the background, its stdout and stderr read line by line.
struct Running {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(file: &Path, data: &DataDir) -> Running {
        let mut child = support::berth()
            .arg("run")
            .arg(file)
            .arg("--data-dir")
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let err = child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for stream in [out, err].into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Running { child, lines, seen: Vec::new() }
    }

    /// Read lines until one contains `needle`; fails the test after `limit`.
    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {needle:?} within {limit:?}:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name}");
    }

    /// Wait for the exit (failing the test after `limit`): the exit code and every line.
    fn exit(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("berth run did not exit within {limit:?}:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The readers end when the pipes close.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }
}

/// A task whose container sleeps under an init process (which passes SIGTERM on).
const SLEEPER: &str = r#"{"family": "sleeper", "containerDefinitions": [{"name": "app", "image": "busybox:latest",
    "command": ["sleep", "600"], "linuxParameters": {"initProcessEnabled": true}, "stopTimeout": 20}]}"#;

fn check_stopped_by(signal: &str, code: i32) {
    support::require_busybox();
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = DataDir::fresh();
    let mut run = Running::start(&write(files.path(), "sleeper.json", SLEEPER), &data);
    run.wait_for("app RUNNING", Duration::from_secs(60));
    let instance = data.instance();
    assert_eq!(instance.len(), 32, "the instance id is known");
    assert_eq!(data.leftovers().0.len(), 1, "the container runs");
    run.signal(signal);
    let (exit, output) = run.exit(Duration::from_secs(60));
    assert_eq!(exit, Some(code), "SIG{signal} gives 128 + its number:\n{output}");
    assert!(output.contains("berth | app STOPPED"), "the task was stopped:\n{output}");
    assert_eq!(data.leftovers(), (vec![], vec![]), "no container or volume of instance {instance} is left");
    assert!(!data.path().exists(), "the data directory is removed:\n{output}");
}

#[test]
fn sigterm_stops_the_task_removes_everything_and_exits_143() {
    check_stopped_by("TERM", 143);
}

#[test]
fn sighup_stops_the_task_removes_everything_and_exits_129() {
    check_stopped_by("HUP", 129);
}

#[test]
fn a_second_sigint_exits_at_once_naming_the_data_directory_and_its_cleanup() {
    support::require_busybox();
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Without an init process `sleep`, as PID 1, ignores SIGTERM: the stop takes the
    // whole stop timeout, so the second signal comes while berth is still stopping it.
    let json = r#"{"family": "stubborn", "containerDefinitions": [{"name": "app", "image": "busybox:latest",
        "command": ["sleep", "600"], "stopTimeout": 60}]}"#;
    let data = DataDir::fresh();
    let mut run = Running::start(&write(files.path(), "stubborn.json", json), &data);
    run.wait_for("app RUNNING", Duration::from_secs(60));
    let instance = data.instance();
    assert_eq!(instance.len(), 32, "the instance id is known");
    run.signal("INT");
    run.wait_for("stopping the task", Duration::from_secs(10));
    let second = Instant::now();
    run.signal("INT");
    let (exit, output) = run.exit(Duration::from_secs(10));
    assert!(second.elapsed() < Duration::from_secs(5), "exited at once: {:?}", second.elapsed());
    assert_eq!(exit, Some(130), "{output}");
    let dir = data.path().display().to_string();
    let cleanup = format!("berth run --cleanup --data-dir {dir}");
    assert!(output.contains(&cleanup), "the output names the directory and the cleanup:\n{output}");
    assert!(data.path().join("instance-id").is_file(), "the data directory is kept");
    assert_eq!(data.leftovers().0.len(), 1, "the container is still there (berth did not wait)");

    let (code, said) = data.run_cleanup();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(data.leftovers(), (vec![], vec![]), "the cleanup removed instance {instance}'s container:\n{said}");
    assert!(!data.path().exists(), "and the data directory:\n{said}");
    let again = support::berth().args(["run", "--cleanup", "--data-dir"]).arg(data.path()).output();
    assert!(again.is_ok_and(|o| o.status.code() == Some(1)), "a directory that is not there: nothing to clean up");
}

/// Removes a container the test made (not berth's) when the test ends, also on failure.
struct TestContainer(String);

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[test]
fn a_cleanup_that_cannot_finish_keeps_the_data_directory_and_names_its_cleanup() {
    support::require_busybox();
    let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The task's own Docker volume, which a container that is not berth's then holds: its
    // removal fails ("volume is in use") for as long as that container exists. The task
    // ends once the holder has marked the volume (or after a minute).
    let json = r#"{"family": "held", "containerDefinitions": [{"name": "app", "image": "busybox:latest",
        "command": ["sh", "-c", "i=0; while [ ! -e /data/held ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"],
        "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]}],
        "volumes": [{"name": "data", "dockerVolumeConfiguration": {"scope": "task"}}]}"#;
    let data = DataDir::fresh();
    let mut run = Running::start(&write(files.path(), "held.json", json), &data);
    run.wait_for("app RUNNING", Duration::from_secs(60));
    let instance = data.instance();
    let volume = data.leftovers().1.into_iter().find(|v| !v.starts_with("berth-holder-"));
    let volume = volume.unwrap_or_else(|| panic!("the task volume of instance {instance} exists"));
    // Declared after `data`, so it goes first: the volume can then be removed.
    let holder = TestContainer(format!("berth-test-holder-{instance}"));
    let made = Command::new("docker")
        .args(["run", "-d", "--name", &holder.0, "-v", &format!("{volume}:/held"), "busybox:latest"])
        .args(["sh", "-c", "touch /held/held; sleep 600"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(made.status.success(), "docker run: {}", String::from_utf8_lossy(&made.stderr));

    let (exit, output) = run.exit(Duration::from_secs(150));
    assert_eq!(exit, Some(0), "the task's exit code, whatever the cleanup did:\n{output}");
    assert!(output.contains("not all removed in time"), "the run says the cleanup did not finish:\n{output}");
    let dir = data.path().display().to_string();
    assert!(
        output.contains(&format!("berth run --cleanup --data-dir {dir}")),
        "the output names the directory and the cleanup:\n{output}"
    );
    assert!(data.path().join("instance-id").is_file(), "the data directory is kept");
    assert!(data.leftovers().1.contains(&volume), "the held volume is still there");

    drop(holder);
    let (code, said) = data.run_cleanup();
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(data.leftovers(), (vec![], vec![]), "the cleanup removed what instance {instance} left:\n{said}");
    assert!(!data.path().exists(), "and the data directory:\n{said}");
}

/// `berth run --cleanup` on a Docker that accepts and never answers (a listener this test
/// holds and never reads) ends, non-zero, naming the call that hung, and keeps the
/// directory: its connect is bounded as the engine bounds one (30 s), not by bollard's
/// hours.
#[test]
fn a_cleanup_whose_docker_never_answers_ends_naming_the_call() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("instance-id"), "0123456789abcdef0123456789abcdef\n").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = support::berth();
    cmd.args(["run", "--cleanup", "--data-dir"]).arg(&dir);
    let (ended, code, said) = against_a_docker_that_never_answers(tmp.path(), cmd);
    assert!(ended, "berth run --cleanup never ended on a Docker that never answers");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("connect to Docker: Docker did not answer in 30s"), "the hung call is named:\n{said}");
    assert!(dir.join("instance-id").is_file(), "the data directory is kept:\n{said}");
}

#[test]
fn a_run_whose_docker_never_answers_ends_naming_the_call() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let task = tmp.path().join("task.json");
    std::fs::write(&task, r#"{"family":"hang","containerDefinitions":[{"name":"a","image":"busybox:latest"}]}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = support::berth();
    cmd.args(["run", "--data-dir"]).arg(tmp.path().join("data")).arg(&task);
    let (ended, code, said) = against_a_docker_that_never_answers(tmp.path(), cmd);
    assert!(ended, "berth run never ended on a Docker that never answers");
    assert_eq!(code, Some(125), "{said}");
    assert!(said.contains("connect to Docker: Docker did not answer in 30s"), "the hung call is named:\n{said}");
}

/// Runs `cmd` with `DOCKER_HOST` on a unix listener in `dir` that accepts connections into
/// its backlog and never answers them: whether it ended (within a 120 s hang guard, not a
/// speed limit: unbounded, the connect waited bollard's 3 hours), its exit code, and what it
/// printed.
fn against_a_docker_that_never_answers(
    dir: &std::path::Path,
    mut cmd: std::process::Command,
) -> (bool, Option<i32>, String) {
    let socket = dir.join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap_or_else(|e| panic!("{e}"));
    let mut child = cmd
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let ended = support::poll(Duration::from_secs(120), || child.try_wait().ok().flatten());
    if ended.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (ended.is_some(), out.status.code(), said)
}
