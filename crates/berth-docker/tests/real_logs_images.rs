//! `container_logs`, `remove_image` and `list_containers(&[])` of `BollardClient` against
//! the real daemon (/var/run/docker.sock, or `DOCKER_HOST`) and the `busybox:latest` image
//! scripts/test-env.sh makes. Needs that daemon: fails, never skips, without it.
//!
//! Every container and image a test makes has a name of its own (pid, time and a counter),
//! so tests may run beside others on the same daemon; a guard removes them when the test
//! ends, however it ends.

use berth_docker::{
    BollardClient, ContainerConfig, DockerClient, ErrorKind, LogChunk, LogOptions, LogSource, LogStream,
};
use bollard::query_parameters::{CommitContainerOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The image scripts/test-env.sh imports (its `IMAGE`).
const IMAGE: &str = "busybox:latest";
const SETUP: &str = "run scripts/test-env.sh (as root) to prepare it";
/// Longest wait for a container that should be quick.
const PATIENCE: Duration = Duration::from_secs(60);

/// A client of the test daemon, which must answer and hold `busybox:latest`.
async fn docker() -> BollardClient {
    let docker =
        BollardClient::connect().await.unwrap_or_else(|e| panic!("the Docker daemon must answer ({SETUP}): {e}"));
    let present = docker.image_exists(IMAGE).await.unwrap_or_else(|e| panic!("inspect {IMAGE}: {e}"));
    assert!(present, "{IMAGE} must be present ({SETUP})");
    docker
}

/// A name no other test (of this run or another) uses: `<prefix>-<pid>-<nanos>-<n>`.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Removes its containers (forced) and then its images (forced) on drop.
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut self.containers);
        let images = std::mem::take(&mut self.images);
        // A thread with a runtime of its own: drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                let Ok(docker) = BollardClient::connect().await else { return };
                for c in &containers {
                    let _ = docker.remove_container(c).await;
                }
                let options = RemoveImageOptionsBuilder::new().force(true).build();
                for image in &images {
                    let _ = docker.bollard().remove_image(image, Some(options.clone()), None).await;
                }
            });
        })
        .join();
    }
}

fn busybox(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.to_string(),
        image: IMAGE.to_string(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..ContainerConfig::default()
    }
}

/// Everything a log stream gives until it ends, failing if that takes over a minute.
async fn read_all(mut stream: LogStream) -> Vec<LogChunk> {
    let mut chunks = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => panic!("the log stream did not end in {PATIENCE:?}; so far: {chunks:?}"),
            Ok(None) => return chunks,
            Ok(Some(item)) => chunks.push(item.unwrap_or_else(|e| panic!("reading logs: {e}"))),
        }
    }
}

/// The bytes of one source, joined.
fn text(chunks: &[LogChunk], source: LogSource) -> String {
    let bytes: Vec<u8> = chunks.iter().filter(|c| c.source == source).flat_map(|c| c.bytes.to_vec()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits until the container has exited.
async fn wait_exited(docker: &BollardClient, name: &str) {
    let begun = Instant::now();
    loop {
        let info = docker.inspect_container(name).await.unwrap_or_else(|e| panic!("{e}"));
        if info.state.status == "exited" {
            return;
        }
        assert!(begun.elapsed() < PATIENCE, "{name} still {} after {PATIENCE:?}", info.state.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn logs_give_stdout_and_stderr_apart_from_the_beginning() {
    let docker = docker().await;
    let name = unique("berth-test-logs");
    let _cleanup = Cleanup { containers: vec![name.clone()], images: Vec::new() };
    docker.create_container(&busybox(&name, "echo out; echo err >&2")).await.unwrap_or_else(|e| panic!("{e}"));
    docker.start_container(&name).await.unwrap_or_else(|e| panic!("{e}"));
    wait_exited(&docker, &name).await;

    for follow in [false, true] {
        let stream =
            docker.container_logs(&name, LogOptions::follow(follow)).await.unwrap_or_else(|e| panic!("logs: {e}"));
        let chunks = read_all(stream).await;
        assert_eq!(text(&chunks, LogSource::Stdout), "out\n", "follow {follow}: {chunks:?}");
        assert_eq!(text(&chunks, LogSource::Stderr), "err\n", "follow {follow}: {chunks:?}");
    }
    // By id too.
    let id = docker.inspect_container(&name).await.unwrap_or_else(|e| panic!("{e}")).id;
    let chunks = read_all(docker.container_logs(&id, LogOptions::all()).await.unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!(text(&chunks, LogSource::Stdout), "out\n");

    let missing = unique("berth-test-no-such");
    let err = docker.container_logs(&missing, LogOptions::all()).await.err().expect("no such container is an error");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.target, missing);
    assert!(err.to_string().contains(&missing), "{err}");
}

#[tokio::test]
async fn logs_keep_the_last_lines_and_what_was_written_since() {
    let docker = docker().await;
    let name = unique("berth-test-tail");
    let _cleanup = Cleanup { containers: vec![name.clone()], images: Vec::new() };
    docker
        .create_container(&busybox(&name, "for i in 1 2 3 4 5; do echo $i; done"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    docker.start_container(&name).await.unwrap_or_else(|e| panic!("{e}"));
    wait_exited(&docker, &name).await;
    let read = |options: LogOptions| {
        let docker = docker.clone();
        let name = name.clone();
        async move {
            let chunks = read_all(docker.container_logs(&name, options).await.unwrap_or_else(|e| panic!("{e}"))).await;
            text(&chunks, LogSource::Stdout)
        }
    };
    assert_eq!(read(LogOptions { tail: Some(2), ..LogOptions::all() }).await, "4\n5\n");
    assert_eq!(read(LogOptions::all()).await, "1\n2\n3\n4\n5\n");
    assert_eq!(read(LogOptions { since: Some(1), ..LogOptions::all() }).await, "1\n2\n3\n4\n5\n");
    let tomorrow = chrono::Utc::now().timestamp() + 86_400;
    assert_eq!(read(LogOptions { since: Some(tomorrow), ..LogOptions::all() }).await, "");
}

#[tokio::test]
async fn followed_logs_go_on_until_the_container_exits() {
    let docker = docker().await;
    let name = unique("berth-test-follow");
    let _cleanup = Cleanup { containers: vec![name.clone()], images: Vec::new() };
    let config = busybox(&name, "echo first; sleep 1; echo second");
    docker.create_container(&config).await.unwrap_or_else(|e| panic!("{e}"));
    docker.start_container(&name).await.unwrap_or_else(|e| panic!("{e}"));
    let mut stream =
        docker.container_logs(&name, LogOptions::following()).await.unwrap_or_else(|e| panic!("logs: {e}"));

    let mut lines = String::new();
    let mut first_at = None;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let ended_at = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => panic!("the followed stream did not end in {PATIENCE:?}; so far {lines:?}"),
            Ok(None) => break Instant::now(),
            Ok(Some(item)) => {
                let chunk = item.unwrap_or_else(|e| panic!("reading logs: {e}"));
                assert_eq!(chunk.source, LogSource::Stdout, "{chunk:?}");
                lines.push_str(&String::from_utf8_lossy(&chunk.bytes));
                first_at.get_or_insert_with(Instant::now);
            }
        }
    };
    assert_eq!(lines, "first\nsecond\n");
    let first_at = first_at.unwrap_or_else(|| panic!("no output"));
    assert!(
        ended_at.duration_since(first_at) >= Duration::from_millis(500),
        "the stream followed the container through its sleep (ended {:?} after the first line)",
        ended_at.duration_since(first_at)
    );
    let info = docker.inspect_container(&name).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.state.status, "exited", "the stream ended because the container stopped");
}

#[tokio::test]
async fn remove_image_is_refused_while_a_container_uses_it_and_missing_is_done() {
    let docker = docker().await;
    let source = unique("berth-test-rmi-source");
    let user = unique("berth-test-rmi-user");
    // An image of this test's own, with this reference as its only one: a second tag of
    // busybox would only be untagged (Docker refuses only to leave an image in use
    // without a name), so the image is made by committing a busybox container.
    let repo = unique("berth-test/rmi");
    let image = format!("{repo}:t");
    let _cleanup = Cleanup { containers: vec![user.clone(), source.clone()], images: vec![image.clone()] };

    docker.create_container(&busybox(&source, "true")).await.unwrap_or_else(|e| panic!("{e}"));
    let options = CommitContainerOptionsBuilder::new().container(&source).repo(&repo).tag("t").build();
    let committed = docker
        .bollard()
        .commit_container(options, bollard::models::ContainerConfig::default())
        .await
        .unwrap_or_else(|e| panic!("commit {source} as {image}: {e}"))
        .id;
    docker.remove_container(&source).await.unwrap_or_else(|e| panic!("{e}"));

    let mut config = busybox(&user, "true");
    config.image = image.clone();
    let id = docker.create_container(&config).await.unwrap_or_else(|e| panic!("{e}"));

    // Listing with no labels shows every container, with its image and image id.
    let all = docker.list_containers(&[]).await.unwrap_or_else(|e| panic!("{e}"));
    let listed = all.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{user} is listed: {all:?}"));
    assert_eq!(listed.names, std::slice::from_ref(&user));
    assert_eq!(listed.image, image);
    assert_eq!(listed.image_id, committed);
    assert!(listed.labels.is_empty(), "a container without labels is listed too");

    let err = docker.remove_image(&image).await.expect_err("an image in use is refused");
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
    assert_eq!(err.target, image);
    assert!(err.to_string().contains(&image), "{err}");
    assert!(docker.image_exists(&image).await.unwrap_or_else(|e| panic!("{e}")), "still there");

    docker.remove_container(&id).await.unwrap_or_else(|e| panic!("{e}"));
    docker.remove_image(&image).await.unwrap_or_else(|e| panic!("remove {image} once unused: {e}"));
    assert!(!docker.image_exists(&image).await.unwrap_or_else(|e| panic!("{e}")), "gone");
    docker.remove_image(&image).await.unwrap_or_else(|e| panic!("remove {image} again: {e}"));
    docker.remove_image(&committed).await.unwrap_or_else(|e| panic!("remove {committed} (gone) by id: {e}"));
    assert!(docker.image_exists(IMAGE).await.unwrap_or_else(|e| panic!("{e}")), "busybox is untouched");
}

#[tokio::test]
async fn the_pause_image_is_used_only_with_berths_label_never_for_its_tag_alone() {
    let docker = docker().await;
    // A reference of this test's own: the real pause tag is shared by every test on the daemon.
    let reference = format!("{}:1", unique("berth-test/pause"));
    let _cleanup = Cleanup { containers: Vec::new(), images: vec![reference.clone()] };
    let (repo, tag) = reference.rsplit_once(':').unwrap_or_else(|| panic!("{reference}"));
    let options = bollard::query_parameters::TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
    docker.bollard().tag_image(IMAGE, Some(options)).await.unwrap_or_else(|e| panic!("tag {IMAGE}: {e}"));
    let id_of = |image: bollard::models::ImageInspect| image.id.unwrap_or_default();
    let busybox_id = id_of(docker.bollard().inspect_image(IMAGE).await.unwrap_or_else(|e| panic!("{e}")));

    // Not berth's (no label): berth's own is imported over the tag.
    docker.ensure_pause_image_as(&reference).await.unwrap_or_else(|e| panic!("ensure: {e}"));
    let made = docker.bollard().inspect_image(&reference).await.unwrap_or_else(|e| panic!("{e}"));
    let label = made.config.as_ref().and_then(|c| c.labels.as_ref()).and_then(|l| l.get(berth_docker::labels::PAUSE));
    assert_eq!(label, Some(&berth_docker::pause::pause_fingerprint()));
    let made_id = id_of(made);
    assert_ne!(made_id, busybox_id, "the tag still names busybox");

    // Berth's own: kept as it is (no new import).
    docker.ensure_pause_image_as(&reference).await.unwrap_or_else(|e| panic!("ensure again: {e}"));
    let again = id_of(docker.bollard().inspect_image(&reference).await.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(again, made_id);
}
