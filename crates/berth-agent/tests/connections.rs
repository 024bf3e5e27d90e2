//! The TCP listener's connection cap against a flood of idle connections, on the real
//! daemon: 1,500 connections to 127.0.0.1 that send nothing. The cap holds (the
//! listener serves `tcp_max_connections`, the rest wait in the backlog), and meanwhile the
//! unix socket answers `/healthz` within a second and a new task reaches RUNNING.

mod support;

use std::time::{Duration, Instant};
use support::{start, task};

/// Idle connections opened.
const CONNECTIONS: usize = 1500;

/// The whole test's bound.
const BOUND: Duration = Duration::from_secs(60);

/// Make room for the connections' descriptors (both ends live in this process): the soft
/// limit is often 1,024.
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let want = 3 * CONNECTIONS as u64 + 1024;
    if limit.current.is_some_and(|current| current < want) {
        let raised = limit.maximum.map_or(want, |max| max.min(want));
        setrlimit(Resource::Nofile, rustix::process::Rlimit { current: Some(raised), maximum: limit.maximum })
            .expect("raise RLIMIT_NOFILE");
        assert!(raised >= want, "RLIMIT_NOFILE's hard limit ({raised}) is too low for {CONNECTIONS} connections");
    }
}

/// The `berth_api_connections{listener="..."}` gauge, read over the unix socket.
async fn open_connections(unix: &support::Api, listener: &str) -> u64 {
    let metrics = unix.get("/metrics").await.text;
    let series = format!("berth_api_connections{{listener=\"{listener}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_answers_while_tcp_is_flooded_with_idle_connections() {
    raise_open_files();
    // Idle connections are kept (no header or idle timeout during the test) so that the
    // cap, not a timeout, is what holds.
    let r = start(|c| {
        c.tcp_header_timeout = Duration::from_secs(300);
        c.tcp_idle_timeout = Duration::from_secs(300);
    })
    .await;
    let cap = berth_agent::AgentConfig::default().tcp_max_connections as u64;
    let addr = r.agent().tcp_addr().expect("tcp");
    assert!(addr.ip().is_loopback());
    tokio::time::timeout(BOUND, async {
        // Open them all at once, each connect bounded.
        let connects = (0..CONNECTIONS).map(|_| async move {
            tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(addr)).await
        });
        let results = futures_util::future::join_all(connects).await;
        let idle: Vec<tokio::net::TcpStream> =
            results.into_iter().filter_map(|r| r.ok().and_then(Result::ok)).collect();
        assert_eq!(idle.len(), CONNECTIONS, "every connection was established (the backlog holds the rest)");

        // The cap held: the listener serves exactly its cap; the others wait unaccepted.
        let mut served = 0;
        for _ in 0..50 {
            served = open_connections(&r.unix, "tcp").await;
            if served == cap {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(served, cap, "TCP serves {cap} connections at most");

        // The unix socket answers at once, over and over.
        for _ in 0..5 {
            let begun = Instant::now();
            let health = r.unix.get("/healthz").await;
            let took = begun.elapsed();
            assert_eq!(health.status, 200, "{}", health.text);
            assert!(took < Duration::from_secs(1), "/healthz on the socket took {took:?}");
        }
        // And a new task reaches RUNNING meanwhile.
        let submitted = r.unix.post("/v1/tasks", task("flood", "sleep 60", serde_json::Value::Null), None).await;
        assert_eq!(submitted.status, 201, "{}", submitted.text);
        let arn = submitted.json()["Arn"].as_str().expect("arn").to_string();
        r.unix.wait_known(&arn, "RUNNING").await;
        assert_eq!(open_connections(&r.unix, "tcp").await, cap, "still full");

        // Once they go, TCP answers again.
        drop(idle);
        let mut status = 0;
        for _ in 0..100 {
            let answer =
                tokio::time::timeout(Duration::from_secs(1), reqwest::get(format!("http://{addr}/healthz"))).await;
            if let Ok(Ok(answer)) = answer {
                status = answer.status().as_u16();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 200, "TCP answers once the idle connections are gone");
    })
    .await
    .unwrap_or_else(|_| panic!("the test did not finish within {BOUND:?}"));
}
