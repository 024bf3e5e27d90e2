//! Credentials never reach logs, events, API answers or the store: a known registry
//! password (used for a real authenticated pull) and a known value of the secret source
//! (given to a container) are looked for in everything berth wrote or answered.

mod support;

use base64::Engine as _;
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};
use support::{encode, start};

/// Where the test's log lines go.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn users() -> (String, String) {
    let path = "/var/lib/berth-test/registry-51671/users.json";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path} (scripts/test-env.sh): {e}"));
    let users: Value = serde_json::from_str(&text).expect("users.json");
    let first = &users["users"][0];
    (first["username"].as_str().expect("username").into(), first["password"].as_str().expect("password").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_in_no_log_answer_event_or_store() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(berth_agent::logging::filter("trace").expect("filter"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test binary");

    let (user, password) = users();
    let secret_value = format!("secret-source-value-{:016x}", rand::random::<u64>());
    let secrets_dir = tempfile::tempdir().expect("tempdir");
    let secrets_file = secrets_dir.path().join("secrets.json");
    std::fs::write(&secrets_file, serde_json::json!({ "db-password": secret_value }).to_string()).expect("write");
    let auth = serde_json::json!({ "127.0.0.1:51671": { "username": user, "password": password } }).to_string();
    let mut r = start(|c| {
        c.auth_type = "docker".into();
        c.auth_data = auth.clone().into();
        c.secrets_file = Some(secrets_file.clone());
    })
    .await;

    let mut answers: Vec<String> = Vec::new();
    let definition = serde_json::json!({
        "family": "api-secrets",
        "containerDefinitions": [{
            "name": "main", "image": "127.0.0.1:51671/busybox:latest", "memory": 32,
            "command": ["sh", "-c", "test -n \"$DB_PASSWORD\" && echo has-a-password; sleep 30"],
            "secrets": [{ "name": "DB_PASSWORD", "valueFrom": "db-password" }],
        }],
    });
    let submitted = r.unix.post("/v1/tasks", serde_json::to_vec(&definition).expect("json"), None).await;
    assert_eq!(submitted.status, 201, "{}", submitted.text);
    answers.push(submitted.text.clone());
    let arn = submitted.json()["Arn"].as_str().expect("arn").to_string();
    let running = r.unix.wait_known(&arn, "RUNNING").await;
    answers.push(running.to_string());
    // The authenticated pull happened, and the container got its secret.
    let out = r.unix.get(&format!("/v1/tasks/{}/logs", encode(&arn))).await;
    assert!(out.text.contains("has-a-password"), "{}", out.text);
    answers.push(out.text);
    // A refused definition whose error would quote a value.
    let refused = r.unix.post("/v1/tasks", format!("{{\"family\": \"{secret_value}\", \"x\": "), None).await;
    answers.push(refused.text);
    // Over TCP, reads need the token too: with it, the answers show what a client sees.
    let tcp = r.tcp.with_token(r.agent().token().expect("token"));
    for path in [
        "/".to_string(),
        "/v1/metadata".into(),
        "/v1/tasks".into(),
        format!("/v1/tasks/{}", encode(&arn)),
        format!("/v1/tasks?taskarn={}", encode(&arn)),
        "/v1/events?since=0&follow=false".into(),
        "/v1/images".into(),
        "/metrics".into(),
        "/healthz".into(),
    ] {
        answers.push(r.unix.get(&path).await.text);
        answers.push(tcp.get(&path).await.text);
    }
    let stopped = r.unix.post(&format!("/v1/tasks/{}/stop", encode(&arn)), "", None).await;
    answers.push(stopped.text);
    answers.push(r.unix.wait_known(&arn, "STOPPED").await.to_string());
    r.shutdown().await;

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let needles = [password.as_str(), secret_value.as_str(), basic.as_str()];
    let log_text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(log_text.contains("API listening"), "the logs were captured: {log_text}");
    for needle in needles {
        if let Some(at) = log_text.find(needle) {
            let line_start = log_text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = log_text[at..].find('\n').map_or(log_text.len(), |i| at + i);
            let line = log_text[line_start..line_end].replace(needle, "<SECRET>");
            panic!("a secret is in the logs: {line}");
        }
        for answer in &answers {
            assert!(!answer.contains(needle), "a secret is in an API answer: {answer}");
        }
        for file in support::files_under(r.dir.path()) {
            let bytes = std::fs::read(&file).expect("read");
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "a secret is in {}", file.display());
        }
    }
}
