//! What the agent's tests share: an agent on the real Docker daemon with its own data
//! directory, HTTP clients for its unix socket and TCP listener, and a guard that removes
//! the instance's containers and volumes however the test ends.
#![allow(dead_code)]

use berth_agent::{Agent, AgentConfig};
use berth_docker::{BollardClient, DockerClient};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod proxy;

/// An agent under test.
pub struct Running {
    /// The agent (`None` once shut down).
    pub agent: Option<Agent>,
    /// Client of its unix socket.
    pub unix: Api,
    /// Client of its TCP listener, without a token.
    pub tcp: Api,
    /// Its data directory (kept until the test ends).
    pub dir: tempfile::TempDir,
    /// Removes its containers at the end.
    pub cleanup: Cleanup,
}

/// The configuration of these tests: a fresh data directory, TCP on a port the system
/// picks, short stop timeouts, a small body limit, and a host far larger than any test's
/// tasks (1 TiB, 1,024 CPUs), whatever machine runs them: tests of admission set their own.
pub fn config(dir: &Path) -> AgentConfig {
    let mut config = AgentConfig { data_dir: dir.to_path_buf(), ..AgentConfig::default() };
    config.resources.memory = Some(1 << 20);
    config.resources.cpu = Some(1 << 20);
    config.tcp = Some("127.0.0.1:0".parse().expect("address"));
    config.default_stop_timeout = Duration::from_secs(2);
    config.body_limit = 64 * 1024;
    // Tests run side by side: each endpoint on a port of its own.
    config.metadata_port = Some(0);
    config
}

/// The test daemon, which must answer and hold `busybox:latest` (scripts/test-env.sh).
pub async fn docker() -> BollardClient {
    let docker =
        BollardClient::connect().await.unwrap_or_else(|e| panic!("Docker must answer (scripts/test-env.sh): {e}"));
    assert!(docker.image_exists("busybox:latest").await.unwrap_or(false), "busybox:latest must be present");
    docker
}

/// Start an agent on the real daemon, with `change` applied to the test configuration.
pub async fn start(change: impl FnOnce(&mut AgentConfig)) -> Running {
    let dir = tempfile::Builder::new().prefix("berth-api-").tempdir().expect("tempdir");
    let mut config = config(dir.path());
    change(&mut config);
    let docker = docker().await;
    let agent = Agent::start(&config, Arc::new(docker.clone())).await.unwrap_or_else(|e| panic!("start: {e}"));
    let instance = std::fs::read_to_string(dir.path().join("instance-id")).expect("instance id").trim().to_string();
    let unix = Api::unix(agent.socket_path());
    let tcp = Api::tcp(agent.tcp_addr().expect("tcp is on"));
    Running { agent: Some(agent), unix, tcp, dir, cleanup: Cleanup { instance } }
}

/// Start an agent on `docker` (the real daemon reached some other way, e.g. through
/// [`proxy::Proxy`]; it need not answer yet), with `change` applied to the test
/// configuration. The cleanup guard still reaches the real daemon directly.
pub async fn start_with(docker: BollardClient, change: impl FnOnce(&mut AgentConfig)) -> Running {
    let dir = tempfile::Builder::new().prefix("berth-api-").tempdir().expect("tempdir");
    let mut config = config(dir.path());
    change(&mut config);
    let agent = Agent::start(&config, Arc::new(docker)).await.unwrap_or_else(|e| panic!("start: {e}"));
    let instance = std::fs::read_to_string(dir.path().join("instance-id")).expect("instance id").trim().to_string();
    let unix = Api::unix(agent.socket_path());
    let tcp = Api::tcp(agent.tcp_addr().expect("tcp is on"));
    Running { agent: Some(agent), unix, tcp, dir, cleanup: Cleanup { instance } }
}

impl Running {
    /// The agent.
    pub fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("the agent runs")
    }

    /// Shut the agent down.
    pub async fn shutdown(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await.unwrap_or_else(|e| panic!("shutdown: {e}"));
        }
    }
}

/// An answer: status and body (JSON when it parses).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: String,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

/// HTTP to one listener.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    /// Sent as `Authorization: Bearer` with every request, when set.
    token: Option<String>,
}

impl Api {
    /// Over the unix socket at `path`.
    pub fn unix(path: &Path) -> Api {
        let client = reqwest::Client::builder().unix_socket(path.to_path_buf()).build().expect("client");
        Api { client, base: "http://berth".into(), token: None }
    }

    /// Over TCP, without a token.
    pub fn tcp(addr: std::net::SocketAddr) -> Api {
        Api { client: reqwest::Client::new(), base: format!("http://{addr}"), token: None }
    }

    /// The same, sending `token` with every request.
    pub fn with_token(&self, token: &str) -> Api {
        Api { token: Some(token.to_string()), ..self.clone() }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.authed(self.client.get(format!("{}{path}", self.base)))).await
    }

    /// `POST path` with `body` and a bearer token (this one, else the client's own).
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>, token: Option<&str>) -> Answer {
        let mut request = self.authed(self.client.post(format!("{}{path}", self.base)).body(body));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// A streaming `GET`: the response, to read chunk by chunk.
    pub async fn stream(&self, path: &str) -> reqwest::Response {
        self.authed(self.client.get(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap_or_else(|e| panic!("request: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.unwrap_or_else(|e| panic!("body: {e}"));
        Answer { status, content_type, text }
    }

    /// Poll `GET /v1/tasks/{arn}` until its KnownStatus is `status` (30 s at most).
    pub async fn wait_known(&self, arn: &str, status: &str) -> Value {
        self.wait_known_within(arn, status, Duration::from_secs(30)).await
    }

    /// Poll `GET /v1/tasks/{arn}` until its KnownStatus is `status`, `patience` at most.
    pub async fn wait_known_within(&self, arn: &str, status: &str, patience: Duration) -> Value {
        let path = format!("/v1/tasks/{}", encode(arn));
        let mut last = Value::Null;
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            let answer = self.get(&path).await;
            if answer.status == 200 {
                last = answer.json();
                if last["KnownStatus"] == status {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("task {arn} never reached {status} in {patience:?}; last: {last}");
    }
}

/// One HTTP/1.1 request written by hand over TCP (for headers a client library sets
/// itself, such as `Host`): the status and the body (the connection is closed after).
pub async fn raw(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in 30 s")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Percent-encode an arn for a path segment.
pub fn encode(arn: &str) -> String {
    arn.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A one-container busybox task definition (register shape) running `script`.
pub fn task(family: &str, script: &str, extra: Value) -> Vec<u8> {
    let mut container = serde_json::json!({
        "name": "main", "image": "busybox:latest", "memory": 32, "essential": true,
        "command": ["sh", "-c", script],
    });
    if let (Value::Object(c), Value::Object(extra)) = (&mut container, extra) {
        c.extend(extra);
    }
    serde_json::to_vec(&serde_json::json!({"family": family, "containerDefinitions": [container]})).expect("json")
}

/// Removes every container and volume of one berth instance on drop.
pub struct Cleanup {
    /// The instance.
    pub instance: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        berth_testutils::real::remove_instance(&self.instance);
    }
}

/// The data directory's files, for greps.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                all.push(path);
            }
        }
    }
    all
}
