//! The host boundary through the daemon's API on the real Docker daemon (issue 13,
//! `docs/host-policy.md`): every task of the hostile corpus (`corpus/hostile.json`: one way
//! around the policy, a list or string past its limit, or a label that would rewrite Docker's
//! events, each) is refused at `POST /v1/tasks` with its path and the setting that
//! would allow it, and nothing is added; every task of the harmless corpus
//! (`corpus/harmless.json`) is accepted and runs to exit 0, with the host's default limits
//! (pids limit, log rotation) on its container; a symlink planted under an allowed host
//! path is caught when the container is created.

mod support;

use serde_json::Value;
use support::{Running, start};

/// One case of a corpus file.
fn corpus(file: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text) {
        Ok(Value::Array(cases)) => cases,
        other => panic!("{}: expected an array of cases, got {other:?}", path.display()),
    }
}

/// `docker inspect` of one container, as JSON.
fn docker_inspect(id: &str) -> Value {
    let out = std::process::Command::new("docker").args(["inspect", id]).output().expect("docker inspect");
    assert!(out.status.success(), "docker inspect {id}: {}", String::from_utf8_lossy(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    all[0].clone()
}

/// Poll `GET /v1/tasks/{arn}` until the task is STOPPED (60 s at most).
async fn until_stopped(r: &Running, arn: &str) -> Value {
    r.unix.wait_known_within(arn, "STOPPED", std::time::Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_around_the_policy_is_refused_with_its_path() {
    // The daemon's default body limit (the tests' is smaller): oversized strings must reach the parser.
    let r = start(|c| c.body_limit = berth_agent::config::DEFAULT_BODY_LIMIT).await;
    let cases = corpus("hostile.json");
    assert!(cases.len() >= 40, "the hostile corpus has {} cases", cases.len());
    for case in &cases {
        let name = case["case"].as_str().expect("case name");
        let body = serde_json::to_vec(&case["task"]).expect("json");
        let answer = r.unix.post("/v1/tasks", body, None).await;
        assert_eq!(answer.status, 400, "{name}: {}", answer.text);
        let json = answer.json();
        let errors = json["Errors"].as_array().unwrap_or_else(|| panic!("{name}: no Errors: {json}"));
        let expected = case["path"].as_str().expect("path");
        let error = errors
            .iter()
            .find(|e| e["Path"] == expected)
            .unwrap_or_else(|| panic!("{name}: no error at {expected}: {json}"));
        let message = error["Message"].as_str().unwrap_or_default();
        match case["words"].as_str() {
            // A limit or a rule of the input: what the case says the message says.
            Some(words) => assert!(message.contains(words), "{name}: {message}"),
            None => assert!(
                message.contains("(host.") || message.contains("berth's own"),
                "{name}: the refusal names the setting that would allow it (or says it is berth's own): {message}"
            ),
        }
    }
    assert_eq!(r.unix.get("/v1/tasks").await.json()["Tasks"], serde_json::json!([]), "nothing was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harmless_tasks_are_accepted_and_run_with_the_hosts_limits() {
    let r = start(|_| {}).await;
    let mut arns = Vec::new();
    for case in corpus("harmless.json") {
        let name = case["case"].as_str().expect("case name").to_string();
        let answer = r.unix.post("/v1/tasks", serde_json::to_vec(&case["task"]).expect("json"), None).await;
        assert_eq!(answer.status, 201, "{name}: {}", answer.text);
        arns.push((name, answer.json()["Arn"].as_str().expect("arn").to_string(), case["task"].clone()));
    }
    for (name, arn, task) in &arns {
        let view = until_stopped(&r, arn).await;
        let container = &view["Containers"][0];
        assert_eq!(container["ExitCode"], 0, "{name}: {view}");
        let inspect = docker_inspect(container["DockerId"].as_str().expect("docker id"));
        let host = &inspect["HostConfig"];
        assert_eq!(host["PidsLimit"], 4096, "{name}: the default pids limit");
        let log = &host["LogConfig"];
        let given = &task["containerDefinitions"][0]["logConfiguration"]["options"]["max-size"];
        let max_size = if given.is_null() { "10m" } else { given.as_str().expect("max-size") };
        assert_eq!(log["Type"], "json-file", "{name}: {log}");
        assert_eq!(log["Config"]["max-size"], max_size, "{name}: {log}");
        assert!(log["Config"]["max-file"].is_string(), "{name}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_under_an_allowed_path_is_caught_at_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("real path");
    let (allowed, outside) = (root.join("allowed"), root.join("outside"));
    std::fs::create_dir_all(&allowed).expect("allowed");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret"), "secret").expect("secret");
    let prefix = allowed.clone();
    let r = start(move |c| c.host.allowed_host_paths = vec![prefix]).await;
    let with_source = |source: &std::path::Path| {
        serde_json::to_vec(&serde_json::json!({
            "family": "symlink-escape",
            "volumes": [{"name": "v", "host": {"sourcePath": source.display().to_string()}}],
            "containerDefinitions": [{"name": "main", "image": "busybox:latest", "memory": 16,
                "command": ["cat", "/v/secret"], "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}]}],
        }))
        .expect("json")
    };
    // The text passes at submit: the path lies under the allowed prefix.
    std::os::unix::fs::symlink(&outside, allowed.join("escape")).expect("symlink");
    let answer = r.unix.post("/v1/tasks", with_source(&allowed.join("escape")), None).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let arn = answer.json()["Arn"].as_str().expect("arn").to_string();
    let view = until_stopped(&r, &arn).await;
    let container = &view["Containers"][0];
    assert!(container["DockerId"].is_null(), "no container was made: {view}");
    let reason = container["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("resolves to {}", outside.display())), "{reason}");
    assert!(reason.contains("host.allowed_host_paths"), "{reason}");

    // A real directory under the prefix, reached through a symlink inside it, runs, bound
    // by its resolved path.
    std::fs::create_dir_all(allowed.join("real")).expect("real");
    std::fs::write(allowed.join("real/secret"), "fine").expect("file");
    std::os::unix::fs::symlink(allowed.join("real"), allowed.join("inside")).expect("symlink");
    let answer = r.unix.post("/v1/tasks", with_source(&allowed.join("inside")), None).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let arn = answer.json()["Arn"].as_str().expect("arn").to_string();
    let view = until_stopped(&r, &arn).await;
    assert_eq!(view["Containers"][0]["ExitCode"], 0, "{view}");
    let inspect = docker_inspect(view["Containers"][0]["DockerId"].as_str().expect("docker id"));
    let source = &inspect["Mounts"][0]["Source"];
    assert_eq!(source, allowed.join("real").display().to_string().as_str(), "{inspect}");
}
