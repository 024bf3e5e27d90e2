//! Image cleanup (SPEC 7) on the fake Docker: only images berth pulled, unused by any
//! container (even a stopped one), older than the minimum age, least recently used
//! first, at most a few per cycle; the ledger is durable and a damaged one is refused.

use berth_agent::config::ImageCleanup;
use berth_agent::docker::MeteredDocker;
use berth_agent::images::{ImageLedger, cleanup_loop, cleanup_once, normalize_reference};
use berth_agent::metrics::Metrics;
use berth_docker::{ContainerConfig, DockerClient, ErrorKind};
use berth_testutils::{FakeDocker, Op};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    fake: FakeDocker,
    ledger: Arc<ImageLedger>,
    metrics: Arc<Metrics>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("images.json");
    let ledger = ImageLedger::open(&path).unwrap_or_else(|e| panic!("{e}"));
    Setup { fake: FakeDocker::new(), ledger, metrics: Metrics::new(), path, _dir: dir }
}

fn settings(min_age: Duration, per_cycle: usize) -> ImageCleanup {
    ImageCleanup { enabled: true, interval: Duration::from_millis(20), min_age, per_cycle }
}

const HOUR: Duration = Duration::from_secs(3600);

fn ago(now: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    now - TimeDelta::minutes(minutes)
}

impl Setup {
    /// `image` present on the fake host, pulled by berth `minutes` ago.
    fn pulled(&self, image: &str, now: DateTime<Utc>, minutes: i64) {
        self.fake.add_image(image);
        self.ledger.record_pull(image, ago(now, minutes));
    }

    async fn cycle(&self, settings: &ImageCleanup, now: DateTime<Utc>) -> Vec<String> {
        cleanup_once(&self.fake, &self.ledger, settings, &self.metrics, now).await
    }

    fn in_ledger(&self) -> Vec<String> {
        self.ledger.entries().into_iter().map(|e| e.image).collect()
    }

    fn rendered(&self, series: &str) -> Option<f64> {
        let text = self.metrics.render(&[]);
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    async fn container(&self, name: &str, image: &str) -> String {
        let config = ContainerConfig { name: name.into(), image: image.into(), ..ContainerConfig::default() };
        self.fake.create_container(&config).await.unwrap_or_else(|e| panic!("{e}"))
    }
}

#[tokio::test]
async fn least_recently_used_first_at_most_per_cycle_and_never_younger_than_min_age() {
    let s = setup();
    let now = Utc::now();
    s.pulled("a:1", now, 5 * 60);
    s.pulled("b:1", now, 6 * 60);
    s.ledger.record_use("b:1", ago(now, 2 * 60));
    s.pulled("c:1", now, 4 * 60);
    s.pulled("d:1", now, 10);
    let settings = settings(HOUR, 2);

    // Last active: b 2 h ago (used), c 4 h, a 5 h, d 10 min: a and c go first.
    assert_eq!(s.cycle(&settings, now).await, ["a:1", "c:1"]);
    assert!(!s.fake.has_image("a:1") && !s.fake.has_image("c:1"));
    assert!(s.fake.has_image("b:1") && s.fake.has_image("d:1"));
    assert_eq!(s.in_ledger(), ["b:1", "d:1"]);

    assert_eq!(s.cycle(&settings, now).await, ["b:1"]);
    // d is younger than the minimum age.
    assert!(s.cycle(&settings, now).await.is_empty());
    assert!(s.fake.has_image("d:1"));
    assert!(s.cycle(&settings, ago(now, -49)).await.is_empty(), "59 min old");
    assert_eq!(s.cycle(&settings, ago(now, -50)).await, ["d:1"], "60 min old");
    assert!(s.in_ledger().is_empty());

    assert_eq!(s.rendered("berth_images_removed_total"), Some(4.0));
    assert_eq!(s.rendered("berth_image_cleanup_cycles_total"), Some(5.0));
    assert_eq!(s.fake.calls(Op::RemoveImage), 4);
}

#[tokio::test]
async fn a_use_makes_an_image_young_again() {
    let s = setup();
    let now = Utc::now();
    s.pulled("old:1", now, 10 * 60);
    s.ledger.record_use("old:1", ago(now, 5));
    assert!(s.cycle(&settings(HOUR, 5), now).await.is_empty());
    assert!(s.fake.has_image("old:1"));
    assert_eq!(s.cycle(&settings(HOUR, 5), ago(now, -60)).await, ["old:1"]);
}

#[tokio::test]
async fn never_an_image_a_container_uses_even_a_stopped_one() {
    let s = setup();
    let now = Utc::now();
    for image in ["created:1", "stopped:1", "by-id:1", "free:1"] {
        s.pulled(image, now, 5 * 60);
    }
    s.container("c-created", "created:1").await;
    let stopped = s.container("c-stopped", "stopped:1").await;
    s.fake.start_container(&stopped).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(s.fake.exit(&stopped, 0));
    // A container created by image id, not by the reference berth pulled.
    let listed = s.fake.list_images().await.unwrap_or_else(|e| panic!("{e}"));
    let id = listed
        .iter()
        .find(|i| i.repo_tags.iter().any(|t| t == "by-id:1"))
        .map(|i| i.id.clone())
        .unwrap_or_else(|| panic!("by-id:1 is listed"));
    s.container("c-by-id", &id).await;

    assert_eq!(s.cycle(&settings(Duration::ZERO, 10), now).await, ["free:1"]);
    for image in ["created:1", "stopped:1", "by-id:1"] {
        assert!(s.fake.has_image(image), "{image} kept");
        assert_eq!(s.fake.calls_on(Op::RemoveImage, image), 0, "{image} not even tried");
    }
    assert_eq!(s.in_ledger(), ["by-id:1", "created:1", "stopped:1"]);

    // Once their containers are gone, they go too.
    for name in ["c-created", "c-stopped", "c-by-id"] {
        s.fake.remove_container(name).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(s.cycle(&settings(Duration::ZERO, 10), now).await, ["by-id:1", "created:1", "stopped:1"]);
}

#[tokio::test]
async fn a_removal_docker_refuses_as_in_use_is_skipped_and_kept() {
    let s = setup();
    let now = Utc::now();
    s.pulled("first:1", now, 300);
    s.pulled("second:1", now, 200);
    s.fake.fail_next(Op::RemoveImage, Some("first"), 1, ErrorKind::Conflict);
    // The refused one does not count against the cycle's bound.
    assert_eq!(s.cycle(&settings(HOUR, 1), now).await, ["second:1"]);
    assert!(s.fake.has_image("first:1"));
    assert_eq!(s.in_ledger(), ["first:1"]);
    // Another failure leaves it too.
    s.fake.fail_next(Op::RemoveImage, Some("first"), 1, ErrorKind::Transient);
    assert!(s.cycle(&settings(HOUR, 1), now).await.is_empty());
    assert_eq!(s.in_ledger(), ["first:1"]);
    assert_eq!(s.cycle(&settings(HOUR, 1), now).await, ["first:1"]);
}

#[tokio::test]
async fn never_an_image_berth_did_not_pull() {
    let s = setup();
    let now = Utc::now();
    s.fake.add_image("theirs:1");
    s.fake.add_image("busybox");
    s.pulled("mine:1", now, 600);
    // A use of an image berth did not pull does not enter it.
    s.ledger.record_use("theirs:1", ago(now, 600));
    assert_eq!(s.cycle(&settings(Duration::ZERO, 10), now).await, ["mine:1"]);
    assert!(s.fake.has_image("theirs:1") && s.fake.has_image("busybox"));
    assert_eq!(s.fake.calls_on(Op::RemoveImage, "theirs:1"), 0);
    assert_eq!(s.fake.calls_on(Op::RemoveImage, "busybox"), 0);
    assert!(s.cycle(&settings(Duration::ZERO, 10), now).await.is_empty());
    assert_eq!(s.fake.calls(Op::RemoveImage), 1);
}

#[tokio::test]
async fn an_image_gone_from_the_host_leaves_the_ledger_once_old_enough() {
    let s = setup();
    let now = Utc::now();
    s.pulled("gone:1", now, 600);
    s.pulled("gone-young:1", now, 1);
    assert!(s.fake.forget_image("gone:1") && s.fake.forget_image("gone-young:1"));
    assert!(s.cycle(&settings(HOUR, 5), now).await.is_empty());
    assert_eq!(s.in_ledger(), ["gone-young:1"]);
    assert_eq!(s.fake.calls(Op::RemoveImage), 0);
}

#[tokio::test]
async fn references_are_matched_as_docker_spells_them() {
    assert_eq!(normalize_reference("busybox"), "busybox:latest");
    assert_eq!(normalize_reference("library/busybox"), "busybox:latest");
    assert_eq!(normalize_reference("docker.io/library/busybox:1.36"), "busybox:1.36");
    assert_eq!(normalize_reference("docker.io/me/app"), "me/app:latest");
    assert_eq!(normalize_reference("127.0.0.1:51670/busybox"), "127.0.0.1:51670/busybox:latest");
    assert_eq!(normalize_reference("localhost/library/x:2"), "localhost/library/x:2");
    assert_eq!(normalize_reference("ghcr.io/a/b@sha256:abcd"), "ghcr.io/a/b@sha256:abcd");

    let s = setup();
    let now = Utc::now();
    // Pulled as `docker.io/library/busybox`, listed by Docker as `busybox:latest`, used as `busybox`.
    s.fake.add_image("busybox");
    s.ledger.record_pull("docker.io/library/busybox", ago(now, 600));
    assert!(s.ledger.contains("busybox") && s.ledger.contains("busybox:latest"));
    s.container("user", "busybox").await;
    assert!(s.cycle(&settings(HOUR, 5), now).await.is_empty());
    s.fake.remove_container("user").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.cycle(&settings(HOUR, 5), now).await, ["busybox:latest"]);
}

#[tokio::test]
async fn through_metered_docker_pulls_and_creates_feed_the_ledger() {
    let s = setup();
    s.fake.add_registry_image("reg.example/unused:1");
    s.fake.add_registry_image("reg.example/used:1");
    s.fake.add_image("local:1");
    let docker = MeteredDocker::new(Arc::new(s.fake.clone()), Arc::clone(&s.metrics), Arc::clone(&s.ledger));
    for image in ["reg.example/unused:1", "reg.example/used:1"] {
        docker.pull_image(image, None, &|_| {}).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let config = ContainerConfig { name: "user".into(), image: "reg.example/used:1".into(), ..Default::default() };
    docker.create_container(&config).await.unwrap_or_else(|e| panic!("{e}"));
    let config = ContainerConfig { name: "other".into(), image: "local:1".into(), ..Default::default() };
    docker.create_container(&config).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.in_ledger(), ["reg.example/unused:1", "reg.example/used:1"]);
    s.fake.remove_container("other").await.unwrap_or_else(|e| panic!("{e}"));

    let removed = cleanup_once(&docker, &s.ledger, &settings(Duration::ZERO, 5), &s.metrics, Utc::now()).await;
    assert_eq!(removed, ["reg.example/unused:1"]);
    assert!(s.fake.has_image("reg.example/used:1") && s.fake.has_image("local:1"));
    let text = s.metrics.render(&[]);
    assert!(text.contains("berth_docker_operation_duration_seconds_count{operation=\"remove_image\"} 1\n"), "{text}");
    assert!(text.contains("berth_images_removed_total 1\n"), "{text}");
}

/// The last use of `image` the ledger file holds (read by opening it again).
fn saved_use(path: &std::path::Path, image: &str) -> Option<DateTime<Utc>> {
    let reopened = ImageLedger::open(path).unwrap_or_else(|e| panic!("{e}"));
    reopened.entries().into_iter().find(|e| e.image == image).and_then(|e| e.last_used)
}

#[tokio::test]
async fn uses_less_than_a_minute_after_the_written_one_are_kept_in_memory_only() {
    let s = setup();
    let t = Utc::now();
    let at = |secs: i64| t - TimeDelta::seconds(secs);
    s.ledger.record_pull("a:1", at(600));
    s.ledger.record_use("a:1", at(300));
    assert_eq!(saved_use(&s.path, "a:1"), Some(at(300)), "the first use is written");
    s.ledger.record_use("a:1", at(290));
    s.ledger.record_use("a:1", at(270));
    assert_eq!(s.ledger.entries()[0].last_used, Some(at(270)), "memory has the latest");
    assert_eq!(saved_use(&s.path, "a:1"), Some(at(300)), "uses within a minute of the written one are not written");
    // Uses 30 s apart: written once a minute has passed since the written one.
    s.ledger.record_use("a:1", at(240));
    assert_eq!(saved_use(&s.path, "a:1"), Some(at(240)));
    s.ledger.record_use("a:1", at(210));
    assert_eq!(saved_use(&s.path, "a:1"), Some(at(240)));
    s.ledger.record_use("a:1", at(180));
    assert_eq!(saved_use(&s.path, "a:1"), Some(at(180)));
    // Any other change writes everything, the latest uses included.
    s.ledger.record_use("a:1", at(170));
    s.ledger.record_pull("b:1", at(100));
    assert_eq!(saved_use(&s.path, "a:1"), Some(at(170)));
}

#[tokio::test]
async fn the_ledger_survives_a_reopen() {
    let s = setup();
    let t = Utc::now();
    s.ledger.record_pull("a:1", ago(t, 30));
    s.ledger.record_pull("b", ago(t, 20));
    s.ledger.record_use("b:latest", ago(t, 10));
    s.ledger.record_pull("c:1", ago(t, 5));
    s.ledger.forget("c:1");
    let before = s.ledger.entries();
    assert_eq!(before.len(), 2);
    drop(s.ledger);

    let reopened = ImageLedger::open(&s.path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reopened.entries(), before);
    assert_eq!(reopened.entries().get(1).and_then(|e| e.last_used), Some(ago(t, 10)));
    assert_eq!(reopened.images().into_iter().collect::<Vec<_>>(), ["a:1", "b:latest"]);
    // No temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(s.path.parent().unwrap_or_else(|| panic!("a directory")))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(names, ["images.json"]);
}

#[tokio::test]
async fn a_damaged_ledger_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, text) in [
        ("truncated.json", "{\"version\": 1, \"images\": [{\"image\": \"a:1\", \"pull"),
        ("garbage.json", "not json at all"),
        ("wrong.json", "{\"version\": 1, \"images\": [{\"image\": \"a:1\", \"pulled_at\": \"yesterday\"}]}"),
        ("newer.json", "{\"version\": 2, \"images\": []}"),
        (
            "twice.json",
            "{\"version\": 1, \"images\": [{\"image\": \"a\", \"pulled_at\": \"2024-01-01T00:00:00Z\"}, \
             {\"image\": \"a:latest\", \"pulled_at\": \"2024-01-01T00:00:00Z\"}]}",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let e = ImageLedger::open(&path).err().unwrap_or_else(|| panic!("{name} is refused"));
        assert!(e.to_string().contains(&path.display().to_string()), "{name}: the error names the file: {e}");
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some(text), "{name} untouched");
    }
    // No file: an empty ledger, and nothing written until it changes.
    let fresh = dir.path().join("fresh.json");
    let ledger = ImageLedger::open(&fresh).unwrap_or_else(|e| panic!("{e}"));
    assert!(!fresh.exists(), "opening writes nothing");
    ledger.record_pull("a:1", Utc::now());
    assert!(fresh.exists(), "the first change writes the file");
}

#[tokio::test]
async fn the_loop_cleans_every_interval_and_stops_on_shutdown() {
    let s = setup();
    let now = Utc::now();
    s.pulled("x:1", now, 600);
    let docker: Arc<dyn DockerClient> = Arc::new(s.fake.clone());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(cleanup_loop(
        Arc::clone(&docker),
        Arc::clone(&s.ledger),
        settings(Duration::ZERO, 5),
        Arc::clone(&s.metrics),
        rx,
    ));
    tokio::time::timeout(Duration::from_secs(5), async {
        while s.fake.has_image("x:1") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the loop removed the image"));
    // It goes on: an image pulled later goes too.
    s.pulled("y:1", now, 600);
    tokio::time::timeout(Duration::from_secs(5), async {
        while s.fake.has_image("y:1") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the loop removed the second image"));
    let _ = tx.send(true);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap_or_else(|_| panic!("the loop ends on shutdown"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.rendered("berth_image_cleanup_cycles_total").is_some_and(|n| n >= 2.0));

    // Disabled: returns at once, removes nothing.
    s.pulled("z:1", now, 600);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let off = ImageCleanup { enabled: false, ..settings(Duration::ZERO, 5) };
    tokio::time::timeout(
        Duration::from_secs(1),
        cleanup_loop(docker, Arc::clone(&s.ledger), off, s.metrics.clone(), rx),
    )
    .await
    .unwrap_or_else(|_| panic!("a disabled loop returns at once"));
    assert!(s.fake.has_image("z:1"));
}

/// Issue 14 item 9: an image that was on the host before berth's pull is someone else's:
/// the pull does not make it berth's, so cleanup never removes it. One berth brought stays
/// berth's when pulled again.
#[tokio::test]
async fn an_image_present_before_berths_pull_never_enters_the_ledger() {
    let s = setup();
    s.fake.add_image("theirs:1");
    s.fake.add_registry_image("theirs:1");
    s.fake.add_registry_image("ours:1");
    let docker = MeteredDocker::new(Arc::new(s.fake.clone()), Arc::clone(&s.metrics), Arc::clone(&s.ledger));
    for image in ["theirs:1", "ours:1", "ours:1"] {
        docker.pull_image(image, None, &|_| {}).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(s.fake.pulls("theirs:1"), 1, "pulled all the same");
    assert_eq!(s.in_ledger(), ["ours:1"]);
    let removed = cleanup_once(&docker, &s.ledger, &settings(Duration::ZERO, 5), &s.metrics, Utc::now()).await;
    assert_eq!(removed, ["ours:1"]);
    assert!(s.fake.has_image("theirs:1"), "theirs is left alone");
}
