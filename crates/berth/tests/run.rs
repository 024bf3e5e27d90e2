//! `berth run` against the real Docker daemon: the runnable files of the corpus end with the
//! exit code `EXPECTED.md` gives and leave no container or volume behind; awsvpc tasks
//! share one network namespace; Ctrl-C stops the task and exits 130; a task that cannot
//! run exits 125 with the reason. Needs `scripts/test-env.sh` (daemon, busybox, the
//! registry on 127.0.0.1:51670); a missing piece fails, never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A data directory of the test's own, so its instance id (and so its containers) can be
/// found after the run; removed at the end.
struct DataDir(tempfile::TempDir);

impl DataDir {
    fn new() -> DataDir {
        DataDir(tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn instance(&self) -> String {
        std::fs::read_to_string(self.0.path().join("instance-id")).map(|s| s.trim().to_string()).unwrap_or_default()
    }

    /// Containers and volumes of this run's berth still in Docker.
    fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        let filter = format!("label=berth.instance={}", self.instance());
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
