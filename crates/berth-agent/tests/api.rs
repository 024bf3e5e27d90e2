//! The HTTP API over the real unix socket and TCP, against the real engine and Docker:
//! every endpoint, ECS's shapes field by field, the 4xx answers, the token, the socket's
//! mode, resumable events, the host policy, and a shutdown that leaves containers running.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use support::{encode, start, task};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Submit over the socket; the answer must be 201. Returns the task view.
async fn submit(api: &support::Api, body: Vec<u8>) -> Value {
    let answer = api.post("/v1/tasks", body, None).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_endpoints_answer_with_the_ecs_shapes() {
    let r = start(|_| {}).await;
    let view = submit(
        &r.unix,
        task("api-ecs", "sleep 60", serde_json::json!({"portMappings": [{"containerPort": 8080, "hostPort": 0}]})),
    )
    .await;
    let arn = view["Arn"].as_str().expect("arn").to_string();
    let running = r.unix.wait_known(&arn, "RUNNING").await;
    let docker_id = running["Containers"][0]["DockerId"].as_str().expect("docker id").to_string();

    let root = r.unix.get("/").await;
    assert_eq!(root.status, 200);
    assert!(root.json()["AvailableCommands"].as_array().is_some_and(|a| a.iter().any(|c| c == "/v1/tasks")));

    let meta = r.unix.get("/v1/metadata").await.json();
    assert_eq!(keys(&meta), set(&["Cluster", "ContainerInstanceArn", "Version"]));
    assert_eq!(meta["Cluster"], "default");
    assert!(meta["Version"].as_str().is_some_and(|v| v.starts_with("berth v")));
    assert!(meta["ContainerInstanceArn"].as_str().is_some_and(|a| a.ends_with(&r.cleanup.instance)));

    let all = r.unix.get("/v1/tasks").await;
    assert_eq!(all.status, 200);
    assert!(all.content_type.starts_with("application/json"));
    let all = all.json();
    assert_eq!(keys(&all), set(&["Tasks"]));
    let tasks = all["Tasks"].as_array().expect("Tasks");
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(keys(t), set(&["Arn", "DesiredStatus", "KnownStatus", "Family", "Version", "Containers"]));
    assert_eq!(t["Arn"], arn.as_str());
    assert_eq!(t["DesiredStatus"], "RUNNING");
    assert_eq!(t["KnownStatus"], "RUNNING");
    assert_eq!(t["Family"], "api-ecs");
    let c = &t["Containers"][0];
    assert_eq!(keys(c), set(&["DockerId", "DockerName", "Name", "Ports"]));
    assert_eq!(c["DockerId"], docker_id.as_str());
    assert_eq!(c["Name"], "main");
    assert!(c["DockerName"].as_str().is_some_and(|n| !n.is_empty()));
    let port = &c["Ports"][0];
    assert_eq!(keys(port), set(&["ContainerPort", "Protocol", "HostPort", "HostIp"]));
    assert_eq!(port["ContainerPort"], 8080);
    assert_eq!(port["Protocol"], "tcp");
    assert!(port["HostPort"].as_u64().is_some_and(|p| p > 0), "a dynamic port was bound: {port}");

    // One task object (not a list) for ?taskarn= and ?dockerid= (full and short).
    for query in
        [format!("taskarn={}", encode(&arn)), format!("dockerid={docker_id}"), format!("dockerid={}", &docker_id[..12])]
    {
        let one = r.unix.get(&format!("/v1/tasks?{query}")).await;
        assert_eq!(one.status, 200, "{query}: {}", one.text);
        assert_eq!(one.json()["Arn"], arn.as_str(), "{query}");
    }
    let both = r.unix.get(&format!("/v1/tasks?taskarn={}&dockerid={docker_id}", encode(&arn))).await;
    assert_eq!(both.status, 400);
    assert!(both.json()["Message"].as_str().is_some_and(|m| m.contains("not both")));
    let unknown = r.unix.get("/v1/tasks?taskarn=arn:nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["Code"], "NotFound");
    assert_eq!(r.unix.get("/v1/tasks?dockerid=ffffffffffff0000").await.status, 404);

    // berth's own view, by the whole arn (percent-encoded) and by its last part.
    let last = arn.rsplit('/').next().expect("last part");
    for path in [format!("/v1/tasks/{}", encode(&arn)), format!("/v1/tasks/{last}")] {
        let view = r.unix.get(&path).await;
        assert_eq!(view.status, 200, "{path}");
        let view = view.json();
        assert_eq!(view["Arn"], arn.as_str());
        assert_eq!(view["Containers"][0]["KnownStatus"], "RUNNING");
        assert_eq!(view["Containers"][0]["Image"], "busybox:latest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_4xx_naming_the_problem() {
    let r = start(|_| {}).await;
    let bad_json = r.unix.post("/v1/tasks", "{\"family\": ", None).await;
    assert_eq!(bad_json.status, 400);
    let body = bad_json.json();
    assert_eq!(body["Code"], "InvalidTask");
    assert!(body["Message"].as_str().is_some_and(|m| m.contains("line")), "{body}");

    let invalid = r.unix.post("/v1/tasks", task("api-bad", "true", serde_json::json!({"memory": "lots"})), None).await;
    assert_eq!(invalid.status, 400);
    let body = invalid.json();
    assert_eq!(body["Errors"][0]["Path"], "containerDefinitions[0].memory", "{body}");

    let oversized = r.unix.post("/v1/tasks", vec![b' '; 100 * 1024], None).await;
    assert_eq!(oversized.status, 413);
    assert!(oversized.json()["Message"].as_str().is_some(), "{}", oversized.text);

    for path in ["/v1/tasks/arn:nope", "/v1/tasks/nope/logs", "/nowhere"] {
        let answer = r.unix.get(path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.json()["Code"], "NotFound", "{path}");
    }
    let stop_unknown = r.unix.post("/v1/tasks/nope/stop", "", None).await;
    assert_eq!(stop_unknown.status, 404);
    assert_eq!(r.unix.post("/v1/metadata", "", None).await.json()["Code"], "MethodNotAllowed");
    assert_eq!(r.unix.get("/v1/events?since=minus-one").await.status, 400);
    let bare = r#"[{"name": "main", "image": "busybox:latest", "memory": 16, "command": ["sleep", "30"]}]"#;
    let no_family = r.unix.post("/v1/tasks", bare, None).await;
    assert_eq!(no_family.status, 400, "a bare containerDefinitions array names no family");
    // Nothing was added by any of these.
    assert_eq!(r.unix.get("/v1/tasks").await.json()["Tasks"], serde_json::json!([]));
    let with_family = r.unix.post("/v1/tasks?family=bare", bare, None).await;
    assert_eq!(with_family.status, 201, "{}", with_family.text);
    assert_eq!(with_family.json()["Family"], "bare");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_calls_need_the_token_reads_included_and_the_files_are_0600() {
    let r = start(|_| {}).await;
    let mode = std::fs::metadata(r.agent().socket_path()).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = r.agent().token().expect("token").to_string();
    let authed = r.tcp.with_token(&token);

    let body = || task("api-tcp", "echo from-the-task; sleep 30", Value::Null);
    let none = r.tcp.post("/v1/tasks", body(), None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["Code"], "Unauthorized");
    let wrong = r.tcp.post("/v1/tasks", body(), Some("not-the-token")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(authed.get("/v1/tasks").await.json()["Tasks"], serde_json::json!([]), "nothing was added");

    let right = r.tcp.post("/v1/tasks", body(), Some(&token)).await;
    assert_eq!(right.status, 201, "{}", right.text);
    let arn = right.json()["Arn"].as_str().expect("arn").to_string();
    r.unix.wait_known(&arn, "RUNNING").await;
    // Every read that shows task contents needs the token over TCP: task views, logs,
    // events, images, metrics, and the introspection endpoints (closed by default).
    let reads = [
        "/".to_string(),
        "/v1/metadata".into(),
        "/v1/tasks".into(),
        format!("/v1/tasks?taskarn={}", encode(&arn)),
        format!("/v1/tasks/{}", encode(&arn)),
        format!("/v1/tasks/{}/logs", encode(&arn)),
        "/v1/events?since=0&follow=false".into(),
        "/v1/images".into(),
        "/metrics".into(),
    ];
    for path in &reads {
        let refused = r.tcp.get(path).await;
        assert_eq!(refused.status, 401, "{path} without the token: {}", refused.text);
        assert_eq!(refused.json()["Code"], "Unauthorized", "{path}");
        assert!(!refused.text.contains(&arn), "{path} shows nothing of the task");
        assert_eq!(r.tcp.with_token("not-the-token").get(path).await.status, 401, "{path} with a wrong token");
        let answered = authed.get(path).await;
        assert_eq!(answered.status, 200, "{path} with the token: {}", answered.text);
        // The unix socket needs none.
        assert_eq!(r.unix.get(path).await.status, 200, "{path} on the socket");
    }
    let logs = authed.get(&format!("/v1/tasks/{}/logs", encode(&arn))).await;
    assert!(logs.text.contains("from-the-task"), "{}", logs.text);
    // /healthz shows nothing and stays open.
    assert_eq!(r.tcp.get("/healthz").await.status, 200);
    assert_eq!(r.tcp.post(&format!("/v1/tasks/{}/stop", encode(&arn)), "", None).await.status, 401);
    assert_eq!(r.tcp.post(&format!("/v1/tasks/{}/stop", encode(&arn)), "", Some(&token)).await.status, 202);
    // The same arn again is an update: 200, not 201.
    let again = serde_json::to_vec(&serde_json::json!({
        "arn": arn, "family": "api-tcp", "desiredStatus": "STOPPED",
        "containers": [{"name": "main", "image": "busybox:latest", "command": ["sh", "-c", "sleep 30"]}],
    }))
    .expect("json");
    let update = r.unix.post("/v1/tasks", again, None).await;
    assert_eq!(update.status, 200, "{}", update.text);
    r.unix.wait_known(&arn, "STOPPED").await;

    // Every file berth wrote in its data directory is 0600 (the socket too).
    let files = support::files_under(r.dir.path());
    let names: BTreeSet<String> =
        files.iter().map(|f| f.file_name().expect("name").to_string_lossy().into_owned()).collect();
    for expected in ["token", "state.redb", "instance-id", "lock"] {
        assert!(names.contains(expected), "{expected} in {names:?}");
    }
    for file in files {
        let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_introspection_endpoints_open_over_tcp_only_when_configured() {
    let r = start(|c| c.tcp_open_introspection = true).await;
    let arn =
        submit(&r.unix, task("api-open", "sleep 30", Value::Null)).await["Arn"].as_str().expect("arn").to_string();
    for path in
        ["/".to_string(), "/v1/metadata".into(), "/v1/tasks".into(), format!("/v1/tasks?taskarn={}", encode(&arn))]
    {
        assert_eq!(r.tcp.get(&path).await.status, 200, "{path} is open");
    }
    for path in [
        format!("/v1/tasks/{}", encode(&arn)),
        format!("/v1/tasks/{}/logs", encode(&arn)),
        "/v1/events?since=0&follow=false".into(),
        "/v1/images".into(),
        "/metrics".into(),
    ] {
        assert_eq!(r.tcp.get(&path).await.status, 401, "{path} still needs the token");
    }
    assert_eq!(r.tcp.post("/v1/tasks", task("api-open", "true", Value::Null), None).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_over_tcp() {
    let r = start(|c| c.tcp_allowed_hosts = vec!["berth.internal".into()]).await;
    let addr = r.agent().tcp_addr().expect("tcp");
    let token = r.agent().token().expect("token").to_string();
    let request = |host: &str| {
        let host = if host.is_empty() { String::new() } else { format!("Host: {host}\r\n") };
        format!("GET /v1/tasks HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\nConnection: close\r\n\r\n")
    };
    for refused in ["evil.example", &format!("evil.example:{}", addr.port()), "127.0.0.1.nip.io", "localhost.evil"] {
        let (status, body) = support::raw(addr, &request(refused)).await;
        assert_eq!(status, 403, "{refused}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(body["Code"], "ForbiddenHost", "{refused}");
        assert!(body["Message"].as_str().is_some_and(|m| m.contains("tcp_allowed_hosts")), "{body}");
    }
    // /healthz too: the check comes before everything.
    let healthz = "GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    assert_eq!(support::raw(addr, healthz).await.0, 403);
    for fine in [
        addr.to_string(),
        "127.0.0.1".into(),
        "10.9.8.7:80".into(),
        "[::1]:51678".into(),
        "localhost".into(),
        format!("LocalHost:{}", addr.port()),
        "berth.internal".into(),
        "BERTH.internal.:80".into(),
        String::new(),
    ] {
        let (status, body) = support::raw(addr, &request(&fine)).await;
        assert_eq!(status, 200, "Host {fine:?}: {body}");
    }
    // The unix socket does not look at Host.
    assert_eq!(r.unix.get("/v1/tasks").await.status, 200);
    let answer = reqwest::Client::builder()
        .unix_socket(r.agent().socket_path().to_path_buf())
        .build()
        .expect("client")
        .get("http://evil.example/v1/tasks")
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_take_tail_and_since() {
    let r = start(|_| {}).await;
    let arn = submit(&r.unix, task("api-tail", "for i in $(seq 1 1500); do echo line-$i; done; sleep 60", Value::Null))
        .await["Arn"]
        .as_str()
        .expect("arn")
        .to_string();
    r.unix.wait_known(&arn, "RUNNING").await;
    let logs = |query: String| {
        let api = r.unix.clone();
        let arn = arn.clone();
        async move { api.get(&format!("/v1/tasks/{}/logs?{query}", encode(&arn))).await }
    };
    // Wait for all the output (the container writes it right after starting).
    let mut all = String::new();
    for _ in 0..100 {
        all = logs("tail=all".into()).await.text;
        if all.contains("line-1500\n") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(all.lines().count(), 1500, "tail=all gives everything");
    let default = logs(String::new()).await.text;
    assert_eq!(default.lines().count(), 1000, "the last 1,000 lines by default");
    assert_eq!(default.lines().next(), Some("line-501"));
    assert_eq!(logs("tail=2".into()).await.text, "line-1499\nline-1500\n");
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    for since in [tomorrow.timestamp().to_string(), tomorrow.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)] {
        let later = logs(format!("since={}", encode(&since))).await;
        assert_eq!((later.status, later.text.as_str()), (200, ""), "since={since}");
    }
    let earlier = logs("since=2020-01-01T00:00:00Z&tail=1".into()).await;
    assert_eq!(earlier.text, "line-1500\n");
    for (query, names) in [("tail=-1", "tail"), ("tail=lots", "tail"), ("since=yesterday", "since")] {
        let bad = logs(query.into()).await;
        assert_eq!(bad.status, 400, "{query}");
        assert!(
            bad.json()["Message"].as_str().is_some_and(|m| m.starts_with(&format!("invalid {names}"))),
            "{}",
            bad.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_beyond_the_cap_get_429_per_listener() {
    let r = start(|c| c.max_log_followers = 1).await;
    let token = r.agent().token().expect("token").to_string();
    let first = r.unix.stream("/v1/events").await;
    assert_eq!(first.status().as_u16(), 200);
    let second = r.unix.get("/v1/events").await;
    assert_eq!(second.status, 429, "{}", second.text);
    assert_eq!(second.json()["Code"], "TooManyFollowers");
    assert!(second.json()["Message"].as_str().is_some_and(|m| m.contains("max_log_followers")));
    // Reading without following takes no place; the other listener has its own.
    assert_eq!(r.unix.get("/v1/events?since=0&follow=false").await.status, 200);
    let tcp = r.tcp.with_token(&token).stream("/v1/events").await;
    assert_eq!(tcp.status().as_u16(), 200, "TCP has its own places");
    // Closing the stream gives its place back.
    drop(first);
    let mut status = 0;
    for _ in 0..50 {
        let again = r.unix.stream("/v1/events").await;
        status = again.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the place came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_gets_503_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = start(|c| {
        c.request_timeout = std::time::Duration::from_millis(500);
        c.tcp_idle_timeout = std::time::Duration::from_secs(1);
        c.tcp_header_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let addr = r.agent().tcp_addr().expect("tcp");
    let token = r.agent().token().expect("token").to_string();

    // A body that never comes: the request times out with a JSON 503.
    let begun = std::time::Instant::now();
    let slow = format!(
        "POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\
         Connection: close\r\n\r\n{{\"family\""
    );
    let (status, body) = support::raw(addr, &slow).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"Code\":\"Timeout\"") && body.contains("request_timeout"), "{body}");
    assert!(begun.elapsed() >= std::time::Duration::from_millis(450), "{:?}", begun.elapsed());

    // A kept-alive connection: answered, then closed once idle for 1 s.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let idle_from = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0))), "closed by the server: {closed:?}");
    let idle = idle_from.elapsed();
    assert!(idle >= std::time::Duration::from_millis(900) && idle < std::time::Duration::from_secs(5), "{idle:?}");

    // Half a request's headers: closed after the header timeout, without an answer.
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 12").await.expect("write");
    let begun = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0))), "closed without an answer: {closed:?}");
    assert!(begun.elapsed() >= std::time::Duration::from_millis(900), "{:?}", begun.elapsed());

    // A connection that streams stays open past the idle timeout while it streams.
    let mut events = r.tcp.with_token(&token).stream("/v1/events").await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let arn =
        submit(&r.unix, task("api-idle", "sleep 30", Value::Null)).await["Arn"].as_str().expect("arn").to_string();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), events.chunk()).await;
    let chunk = line.expect("an event in time").expect("still open").expect("a chunk");
    assert!(String::from_utf8_lossy(&chunk).contains(&arn), "{}", String::from_utf8_lossy(&chunk));
}

/// Reads NDJSON lines from a streaming answer until `until` holds for one, 30 s at most.
async fn read_lines(response: &mut reqwest::Response, mut until: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut buffer = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("the stream went quiet");
        let Some(chunk) = chunk.expect("stream") else { return lines };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let value: Value = serde_json::from_slice(&line).expect("an NDJSON line");
            let done = until(&value);
            lines.push(value);
            if done {
                return lines;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_from_a_sequence_number_without_gaps_or_repeats() {
    let r = start(|_| {}).await;
    let arn = submit(&r.unix, task("api-events", "echo hello; sleep 60", Value::Null)).await["Arn"]
        .as_str()
        .expect("arn")
        .to_string();
    r.unix.wait_known(&arn, "RUNNING").await;

    // The task's state shows RUNNING as soon as the engine knows it; its change reaches the
    // log once durable, a moment later.
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let everything = r.unix.get("/v1/events?since=0&follow=false").await;
        assert_eq!(everything.status, 200);
        assert_eq!(everything.content_type, "application/x-ndjson");
        lines = everything.text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        if lines.iter().any(|l| l["Status"] == "RUNNING") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seqs: Vec<u64> = lines.iter().map(|l| l["Seq"].as_u64().expect("Seq")).collect();
    assert!(seqs.len() >= 2, "PULLED.. RUNNING: {lines:?}");
    assert_eq!(seqs[0], 1);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive: {seqs:?}");
    let change = &lines[0];
    for key in ["Seq", "Time", "TaskArn", "ContainerName", "Status", "TaskStatus"] {
        assert!(change.get(key).is_some(), "{key} in {change}");
    }
    assert!(lines.iter().any(|l| l["Status"] == "RUNNING" && l["TaskArn"] == arn.as_str()));

    // From the middle: exactly what follows.
    let middle = seqs[seqs.len() / 2];
    let rest = r.unix.get(&format!("/v1/events?since={middle}&follow=false")).await;
    let rest: Vec<u64> = rest
        .text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("line")["Seq"].as_u64().expect("Seq"))
        .collect();
    assert_eq!(rest, seqs.iter().copied().filter(|s| *s > middle).collect::<Vec<_>>());

    // Following from the last one seen: the next changes, and nothing before them.
    let last = *seqs.last().expect("a last one");
    let mut follow = r.unix.stream(&format!("/v1/events?since={last}")).await;
    assert_eq!(r.unix.post(&format!("/v1/tasks/{}/stop", encode(&arn)), "", None).await.status, 202);
    let next = read_lines(&mut follow, |l| l["Status"] == "STOPPED").await;
    let next_seqs: Vec<u64> = next.iter().map(|l| l["Seq"].as_u64().expect("Seq")).collect();
    assert_eq!(next_seqs[0], last + 1, "{next:?}");
    assert!(next_seqs.windows(2).all(|w| w[1] == w[0] + 1), "{next_seqs:?}");
    assert_eq!(next.iter().filter(|l| l["Status"] == "STOPPED").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_images_metrics_and_health() {
    let r = start(|_| {}).await;
    let arn =
        submit(&r.unix, task("api-logs", "echo hello-from-berth; echo to-stderr >&2; sleep 2; echo bye", Value::Null))
            .await["Arn"]
            .as_str()
            .expect("arn")
            .to_string();
    r.unix.wait_known(&arn, "RUNNING").await;
    // Following ends when the container exits, with everything it printed.
    let followed = r.unix.get(&format!("/v1/tasks/{}/logs?follow=true", encode(&arn))).await;
    assert_eq!(followed.status, 200);
    assert!(followed.text.contains("hello-from-berth") && followed.text.contains("to-stderr"), "{}", followed.text);
    assert!(followed.text.contains("bye"), "{}", followed.text);
    let named = r.unix.get(&format!("/v1/tasks/{}/logs?container=main", encode(&arn))).await;
    assert!(named.text.contains("hello-from-berth"));
    assert_eq!(r.unix.get(&format!("/v1/tasks/{}/logs?container=other", encode(&arn))).await.status, 404);

    let images = r.unix.get("/v1/images").await.json();
    let busybox = images["Images"]
        .as_array()
        .expect("Images")
        .iter()
        .find(|i| i["RepoTags"].as_array().is_some_and(|t| t.iter().any(|t| t == "busybox:latest")))
        .cloned()
        .expect("busybox:latest listed");
    assert_eq!(keys(&busybox), set(&["Id", "RepoTags", "Size", "Created", "PulledByBerth"]));

    let metrics = r.unix.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.starts_with("text/plain"), "{}", metrics.content_type);
    for family in ["berth_tasks", "berth_containers", "berth_docker_operation_duration_seconds", "berth_store_commits"]
    {
        assert!(metrics.text.contains(family), "{family} in\n{}", metrics.text);
    }

    let health = r.unix.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"Status": "ok", "Docker": "ok", "Reconciling": 0, "Tasks": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_powers_are_refused_unless_allowed() {
    let allowed = tempfile::tempdir().expect("tempdir");
    let allowed_path = allowed.path().to_path_buf();
    let r = start(|c| c.host.allowed_host_paths = vec![allowed_path.clone()]).await;
    let privileged =
        r.unix.post("/v1/tasks", task("api-priv", "true", serde_json::json!({"privileged": true})), None).await;
    assert_eq!(privileged.status, 400);
    assert_eq!(privileged.json()["Errors"][0]["Path"], "containerDefinitions[0].privileged");

    let with_volume = |source: &str| {
        serde_json::to_vec(&serde_json::json!({
            "family": "api-host-path",
            "volumes": [{"name": "v", "host": {"sourcePath": source}}],
            "containerDefinitions": [{"name": "main", "image": "busybox:latest", "memory": 16,
                "command": ["sh", "-c", "ls /v; sleep 30"],
                "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}]}],
        }))
        .expect("json")
    };
    let etc = r.unix.post("/v1/tasks", with_volume("/etc"), None).await;
    assert_eq!(etc.status, 400);
    assert_eq!(etc.json()["Errors"][0]["Path"], "volumes[0].host.sourcePath");
    let host_net = r
        .unix
        .post(
            "/v1/tasks",
            serde_json::to_vec(&serde_json::json!({"family": "api-net", "networkMode": "host",
                "containerDefinitions": [{"name": "main", "image": "busybox:latest", "memory": 16}]}))
            .expect("json"),
            None,
        )
        .await;
    assert_eq!(host_net.status, 400);
    assert_eq!(host_net.json()["Errors"][0]["Path"], "networkMode");
    assert_eq!(r.unix.get("/v1/tasks").await.json()["Tasks"], serde_json::json!([]), "nothing was added");

    // Under an allowed prefix, it runs.
    let ok = r.unix.post("/v1/tasks", with_volume(&allowed.path().display().to_string()), None).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    r.unix.wait_known(ok.json()["Arn"].as_str().expect("arn"), "RUNNING").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_containers_running_and_a_new_agent_resumes_them() {
    let mut r = start(|_| {}).await;
    let arn =
        submit(&r.unix, task("api-restart", "sleep 120", Value::Null)).await["Arn"].as_str().expect("arn").to_string();
    let before = r.unix.wait_known(&arn, "RUNNING").await;
    let id = before["Containers"][0]["DockerId"].as_str().expect("id").to_string();
    r.shutdown().await;
    assert!(!r.dir.path().join("berth.sock").exists(), "the socket is gone");
    let docker = support::docker().await;
    use berth_docker::DockerClient;
    let info = docker.inspect_container(&id).await.expect("the container is still there");
    assert_eq!(info.state.status, "running", "and still running");

    let dir = r.dir.path().to_path_buf();
    let config = support::config(&dir);
    let agent = berth_agent::Agent::start(&config, std::sync::Arc::new(docker)).await.expect("restart");
    let api = support::Api::unix(agent.socket_path());
    let after = api.wait_known(&arn, "RUNNING").await;
    assert_eq!(after["Containers"][0]["DockerId"], id.as_str(), "the same container, not a new one");
    agent.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_applied_before_the_host_policy_and_reach_the_container() {
    let r = start(|c| c.host.require_memory = true).await;
    let body = |overrides: Value| {
        serde_json::to_vec(&serde_json::json!({"family": "api-override",
            "containerDefinitions": [{"name": "main", "image": "busybox:latest", "command": ["sleep", "1"]}],
            "overrides": overrides}))
        .expect("json")
    };
    // Without memory the policy refuses; the override gives it one, which the policy sees.
    let refused = r.unix.post("/v1/tasks", body(Value::Null), None).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json()["Errors"][0]["Path"], "containerDefinitions[0].memory");
    let unknown =
        r.unix.post("/v1/tasks", body(serde_json::json!({"containerOverrides": [{"name": "nope"}]})), None).await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert_eq!(unknown.json()["Errors"][0]["Path"], "overrides.containerOverrides[0].name");
    assert_eq!(r.unix.get("/v1/tasks").await.json()["Tasks"], serde_json::json!([]), "nothing was added");

    let overrides = serde_json::json!({"containerOverrides": [{"name": "main", "memory": 16,
        "command": ["sh", "-c", "sleep 60"], "environment": [{"name": "GREETING", "value": "overridden"}]}]});
    let view = submit(&r.unix, body(overrides)).await;
    let arn = view["Arn"].as_str().expect("arn").to_string();
    let running = r.unix.wait_known(&arn, "RUNNING").await;
    let id = running["Containers"][0]["DockerId"].as_str().expect("docker id").to_string();
    let inspect = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{json .Config}}|{{.HostConfig.Memory}}", &id])
        .output()
        .expect("docker inspect");
    let text = String::from_utf8_lossy(&inspect.stdout).to_string();
    let (config, memory) = text.trim().split_once('|').unwrap_or_else(|| panic!("{text}"));
    let config: Value = serde_json::from_str(config).expect("config json");
    assert_eq!(config["Cmd"], serde_json::json!(["sh", "-c", "sleep 60"]));
    assert!(config["Env"].as_array().is_some_and(|e| e.iter().any(|v| v == "GREETING=overridden")), "{config}");
    assert_eq!(memory, (16 * 1024 * 1024).to_string());
    assert_eq!(r.unix.post(&format!("/v1/tasks/{}/stop", encode(&arn)), "", None).await.status, 202);
    r.unix.wait_known(&arn, "STOPPED").await;
}
