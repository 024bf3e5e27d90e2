//! Image cleanup against the real Docker daemon and the registry on 127.0.0.1:51670 that
//! `scripts/test-env.sh` runs. The test uses only images of its own, each with an image
//! id of its own (a commit of the busybox test image with a unique label), so that
//! nothing else on the host shares them: one pulled through `MeteredDocker` and unused
//! (removed), one pulled and used by a created container (kept), one tagged locally that
//! berth did not pull (kept). Everything it made is removed however it ends. It fails,
//! never skips, when Docker or the registry is missing.

use berth_agent::config::ImageCleanup;
use berth_agent::docker::MeteredDocker;
use berth_agent::images::{ImageLedger, cleanup_once};
use berth_agent::metrics::Metrics;
use berth_docker::{BollardClient, ContainerConfig, DockerClient};
use bollard::auth::DockerCredentials;
use bollard::models::ContainerConfig as BollardContainerConfig;
use bollard::query_parameters::{CommitContainerOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder};
use chrono::Utc;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const REGISTRY: &str = "127.0.0.1:51670";
const REPOSITORY: &str = "berth-agent-cleanup";
const BUSYBOX: &str = "busybox:latest";

/// Removes what the test made (containers first, then images, then the registry's
/// manifests), on drop, whatever the outcome.
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
    /// Tags pushed to the registry's `REPOSITORY`.
    pushed: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut self.containers);
        let images = std::mem::take(&mut self.images);
        let pushed = std::mem::take(&mut self.pushed);
        // A thread with a runtime of its own: drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(docker) = BollardClient::connect().await {
                    for c in &containers {
                        let _ = docker.remove_container(c).await;
                    }
                    for i in &images {
                        let _ = docker.remove_image(i).await;
                    }
                }
                for tag in &pushed {
                    delete_manifest(tag).await;
                }
            });
        })
        .join();
    }
}

/// Delete `REPOSITORY:tag` from the registry (its storage allows deletes), best effort.
async fn delete_manifest(tag: &str) {
    let client = reqwest::Client::new();
    let base = format!("http://{REGISTRY}/v2/{REPOSITORY}/manifests");
    let accept = "application/vnd.docker.distribution.manifest.v2+json";
    let Ok(head) = client.head(format!("{base}/{tag}")).header("Accept", accept).send().await else { return };
    let Some(digest) = head.headers().get("Docker-Content-Digest").and_then(|v| v.to_str().ok()) else { return };
    let _ = client.delete(format!("{base}/{digest}")).send().await;
}

/// `docker commit` of `container` as `repo:tag`, with a label making its image id unique.
async fn commit(docker: &BollardClient, container: &str, repo: &str, tag: &str, label: &str) {
    let options = CommitContainerOptionsBuilder::new().container(container).repo(repo).tag(tag).build();
    let config = BollardContainerConfig {
        labels: Some(HashMap::from([("berth.test.cleanup".to_string(), label.to_string())])),
        ..BollardContainerConfig::default()
    };
    docker
        .bollard()
        .commit_container(options, config)
        .await
        .unwrap_or_else(|e| panic!("commit {container} as {repo}:{tag}: {e}"));
}

/// Push `REGISTRY/REPOSITORY:tag` (the registry needs no credentials; Docker 20.10 wants
/// the header anyway).
async fn push(docker: &BollardClient, tag: &str) {
    let name = format!("{REGISTRY}/{REPOSITORY}");
    let options = PushImageOptionsBuilder::new().tag(tag).build();
    let mut stream = docker.bollard().push_image(&name, Some(options), Some(DockerCredentials::default()));
    while let Some(item) = stream.next().await {
        let info = item.unwrap_or_else(|e| panic!("push {name}:{tag}: {e} (scripts/test-env.sh runs the registry)"));
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            panic!("push {name}:{tag}: {detail} (scripts/test-env.sh runs the registry)");
        }
    }
}

async fn image_id(docker: &BollardClient, image: &str) -> Option<String> {
    docker.bollard().inspect_image(image).await.ok().and_then(|i| i.id)
}

#[tokio::test]
async fn cleanup_removes_the_pulled_unused_image_and_keeps_the_used_and_the_not_pulled() {
    let docker =
        BollardClient::connect().await.unwrap_or_else(|e| panic!("Docker must answer (run scripts/test-env.sh): {e}"));
    assert!(
        docker.image_exists(BUSYBOX).await.unwrap_or(false),
        "{BUSYBOX} must be present (scripts/test-env.sh makes it)"
    );
    let unique = format!("{:016x}", rand::random::<u64>());
    let unused_tag = format!("unused-{unique}");
    let used_tag = format!("used-{unique}");
    let unused = format!("{REGISTRY}/{REPOSITORY}:{unused_tag}");
    let used = format!("{REGISTRY}/{REPOSITORY}:{used_tag}");
    let not_pulled = format!("{REPOSITORY}-local:not-pulled-{unique}");
    let source = format!("berth-agent-cleanup-source-{unique}");
    let user = format!("berth-agent-cleanup-user-{unique}");
    let mut guard = Cleanup {
        containers: vec![source.clone(), user.clone()],
        images: vec![unused.clone(), used.clone(), not_pulled.clone()],
        pushed: vec![unused_tag.clone(), used_tag.clone()],
    };

    // Two images of our own in the registry, absent locally; one local tag berth did not pull.
    let config = ContainerConfig { name: source.clone(), image: BUSYBOX.into(), ..ContainerConfig::default() };
    docker.create_container(&config).await.unwrap_or_else(|e| panic!("create {source}: {e}"));
    let repo = format!("{REGISTRY}/{REPOSITORY}");
    for tag in [&unused_tag, &used_tag] {
        commit(&docker, &source, &repo, tag, &format!("{unique}-{tag}")).await;
        push(&docker, tag).await;
    }
    docker.remove_container(&source).await.unwrap_or_else(|e| panic!("remove {source}: {e}"));
    for image in [&unused, &used] {
        docker.remove_image(image).await.unwrap_or_else(|e| panic!("remove {image}: {e}"));
        assert!(!docker.image_exists(image).await.unwrap_or(true), "{image} is not present before the pull");
    }
    let (local_repo, local_tag) = not_pulled.split_once(':').unwrap_or_else(|| panic!("{not_pulled} has a tag"));
    let options = TagImageOptionsBuilder::new().repo(local_repo).tag(local_tag).build();
    docker.bollard().tag_image(BUSYBOX, Some(options)).await.unwrap_or_else(|e| panic!("tag {not_pulled}: {e}"));

    // berth pulls two through MeteredDocker and creates a container from one.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ledger = ImageLedger::open(&dir.path().join("images.json")).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    let metered = MeteredDocker::new(Arc::new(docker.clone()), Arc::clone(&metrics), Arc::clone(&ledger));
    for image in [&unused, &used] {
        metered.pull_image(image, None, &|_| {}).await.unwrap_or_else(|e| panic!("pull {image}: {e}"));
    }
    let unused_id = image_id(&docker, &unused).await.unwrap_or_else(|| panic!("{unused} pulled"));
    let used_id = image_id(&docker, &used).await.unwrap_or_else(|| panic!("{used} pulled"));
    let busybox_id = image_id(&docker, BUSYBOX).await.unwrap_or_default();
    assert!(unused_id != used_id && unused_id != busybox_id && used_id != busybox_id, "images of their own");
    let config = ContainerConfig {
        name: user.clone(),
        image: used.clone(),
        command: vec!["true".into()],
        ..ContainerConfig::default()
    };
    metered.create_container(&config).await.unwrap_or_else(|e| panic!("create {user}: {e}"));
    let mut in_ledger: Vec<String> = ledger.entries().into_iter().map(|e| e.image).collect();
    in_ledger.sort();
    let mut expected = vec![unused.clone(), used.clone()];
    expected.sort();
    assert_eq!(in_ledger, expected);

    let settings =
        ImageCleanup { enabled: true, interval: Duration::from_secs(60), min_age: Duration::ZERO, per_cycle: 5 };
    let removed = cleanup_once(&metered, &ledger, &settings, &metrics, Utc::now()).await;
    assert_eq!(removed, [unused.as_str()]);
    assert!(!docker.image_exists(&unused).await.unwrap_or(true), "{unused} removed");
    assert!(image_id(&docker, &unused_id).await.is_none(), "its image is gone too");
    assert!(docker.image_exists(&used).await.unwrap_or(false), "{used}, in use, kept");
    assert!(docker.image_exists(&not_pulled).await.unwrap_or(false), "{not_pulled}, not pulled by berth, kept");
    assert!(docker.image_exists(BUSYBOX).await.unwrap_or(false));
    assert_eq!(ledger.entries().into_iter().map(|e| e.image).collect::<Vec<_>>(), [used.as_str()]);

    // Once its container is gone, the used one goes as well.
    docker.remove_container(&user).await.unwrap_or_else(|e| panic!("remove {user}: {e}"));
    let removed = cleanup_once(&metered, &ledger, &settings, &metrics, Utc::now()).await;
    assert_eq!(removed, [used.as_str()]);
    assert!(!docker.image_exists(&used).await.unwrap_or(true), "{used} removed");
    assert!(docker.image_exists(&not_pulled).await.unwrap_or(false), "{not_pulled} kept");

    let text = metrics.render(&[]);
    let value = |series: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    };
    assert_eq!(value("berth_pulls_total{result=\"ok\"}"), Some(2.0), "{text}");
    assert_eq!(value("berth_images_removed_total"), Some(2.0), "{text}");
    assert_eq!(value("berth_image_cleanup_cycles_total"), Some(2.0), "{text}");
    assert_eq!(value("berth_docker_operation_duration_seconds_count{operation=\"remove_image\"}"), Some(2.0));

    // The not-pulled tag is ours to remove; the guard removes the rest (and would have
    // removed everything on a failure above).
    guard.images.retain(|i| i == &not_pulled);
}
