//! A registry that stalls mid-pull: the pull is cancelled after the inactivity timeout,
//! with a reason. The "registry" is a small server of the test's own on 127.0.0.1 that
//! answers the registry API up to the first blob, sends a few bytes of it, and then sends
//! nothing more. Needs the Docker daemon (scripts/test-env.sh); fails, never skips.

use berth_docker::{BollardClient, DockerClient, ErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CONFIG_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const LAYER_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn manifest() -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1000, "digest": CONFIG_DIGEST},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100000, "digest": LAYER_DIGEST}]
    })
    .to_string()
}

/// Serve one connection: the API root and the manifest answer; a blob starts and stalls.
async fn serve(mut socket: tokio::net::TcpStream, blob_asked: Arc<AtomicBool>) {
    loop {
        let mut buf = vec![0u8; 8192];
        let Ok(n) = socket.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        let request = String::from_utf8_lossy(&buf[..n]).to_string();
        let line = request.lines().next().unwrap_or_default().to_string();
        let head = line.starts_with("HEAD");
        if line.contains("/blobs/") {
            blob_asked.store(true, Ordering::SeqCst);
            let _ = socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n",
                )
                .await;
            let _ = socket.write_all(&[0u8; 10]).await;
            // ... and nothing more, ever.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        let (status, content_type, body) = if line.contains("/manifests/") {
            ("200 OK", "application/vnd.docker.distribution.manifest.v2+json", manifest())
        } else {
            ("200 OK", "application/json", "{}".to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            if head { "" } else { body.as_str() }
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_stalls_mid_pull_is_given_up_after_the_inactivity_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    let blob_asked = Arc::new(AtomicBool::new(false));
    let asked = Arc::clone(&blob_asked);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, Arc::clone(&asked)));
        }
    });
    let docker = BollardClient::connect()
        .await
        .unwrap_or_else(|e| panic!("Docker must answer (scripts/test-env.sh): {e}"))
        .with_pull_inactivity(Duration::from_secs(3));
    let image = format!("127.0.0.1:{port}/stalls:1");
    let started = Instant::now();
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let progress = move |p: berth_docker::PullProgress| sink.lock().unwrap_or_else(|e| e.into_inner()).push(p.status);
    let err =
        docker.pull_image(&image, None, &progress).await.err().unwrap_or_else(|| panic!("the pull cannot succeed"));
    let statuses = reports.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(!statuses.is_empty(), "progress was reported before the stall");
    let took = started.elapsed();
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("no progress for 3 s"), "the reason says why: {err}");
    assert!(err.to_string().contains(&image), "and on what: {err}");
    assert!(blob_asked.load(Ordering::SeqCst), "Docker got as far as a blob, which then stalled");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(30),
        "cancelled after the inactivity timeout: {took:?}"
    );
}
