//! One time source (issue 15 item 3): the engine's deadlines (the orphan grace, the wait
//! before reopening Docker's event stream, ...) are on the engine's clock, so a manual
//! clock holds them until the test moves it, whatever real time passes.

mod common;

use berth_docker::{ContainerConfig, DockerClient, labels};
use berth_engine::{DockerTaskEngine, EngineConfig, ManualClock, TaskEngine};
use berth_testutils::Op;
use chrono::{TimeZone, Utc};
use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The names of the telemetry occurrences the engine reported, in order.
#[derive(Debug, Default)]
struct Told(std::sync::Mutex<Vec<String>>);

impl berth_engine::Telemetry for Told {
    fn record(&self, event: &berth_engine::EngineTelemetry<'_>) {
        let debug = format!("{event:?}");
        let name = debug.split([' ', '(']).next().unwrap_or_default().to_string();
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(name);
    }
}

impl Told {
    fn count(&self, name: &str) -> usize {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().filter(|n| *n == name).count()
    }
}

fn manual_clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now))
}

async fn start(fake: &berth_testutils::FakeDocker, config: EngineConfig, clock: &ManualClock) -> DockerTaskEngine {
    let mut engine = DockerTaskEngine::new(config, Arc::new(fake.clone())).with_clock(Arc::new(clock.clone()));
    engine.init().await.unwrap_or_else(|e| panic!("{e}"));
    engine
}

/// A data directory, a fake holding a container of its instance that no task owns, and an
/// engine on a manual clock with a 60 s orphan grace.
async fn with_an_orphan()
-> (tempfile::TempDir, berth_testutils::FakeDocker, String, ManualClock, Arc<Told>, DockerTaskEngine) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let instance = berth_store::DataDir::open(dir.path()).unwrap_or_else(|e| panic!("{e}")).instance_id().to_string();
    let fake = fake();
    fake.add_image("busybox:latest");
    let labels = BTreeMap::from([
        (labels::INSTANCE.to_string(), instance),
        (labels::TASK_ARN.to_string(), "arn:berth:task/gone".to_string()),
        (labels::CONTAINER_NAME.to_string(), "web".to_string()),
    ]);
    let config =
        ContainerConfig { name: "orphan".into(), image: "busybox:latest".into(), labels, ..Default::default() };
    let orphan = fake.create_container(&config).await.unwrap_or_else(|e| panic!("{e}"));
    let clock = manual_clock();
    let told = Arc::new(Told::default());
    let config = EngineConfig {
        data_dir: Some(dir.path().to_path_buf()),
        orphan_grace: Duration::from_secs(60),
        telemetry: told.clone(),
        ..EngineConfig::default()
    };
    let engine = start(&fake, config, &clock).await;
    (dir, fake, orphan, clock, told, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_clock_drives_the_orphan_grace() {
    let (_dir, fake, orphan, clock, told, mut engine) = with_an_orphan().await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.advance(chrono::Duration::seconds(59));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.container(&orphan).is_some(), "kept while the clock is within the grace period");
    clock.advance(chrono::Duration::seconds(1));
    eventually("the orphan is removed once the clock passes the grace", async || fake.container(&orphan).is_none())
        .await;
    // Told through the telemetry channel, once each.
    eventually("the removal is told", async || told.count("OrphanRemoved") == 1).await;
    assert_eq!(told.count("OrphanFound"), 1);
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_clock_drives_the_reopen_backoff() {
    let fake = fake();
    let clock = manual_clock();
    let told = Arc::new(Told::default());
    let config = EngineConfig { telemetry: told.clone(), ..EngineConfig::default() };
    let mut engine = start(&fake, config, &clock).await;
    assert_eq!(fake.open_event_streams(), 1);
    let opened = fake.calls(Op::ContainerEvents);

    // A stream that ends at once, having delivered nothing, is reopened after a wait.
    fake.cut_event_streams();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.open_event_streams(), 0, "not reopened while the clock stands still");
    assert_eq!(fake.calls(Op::ContainerEvents), opened, "no attempt while the clock stands still");
    clock.advance(chrono::Duration::milliseconds(100));
    eventually("the stream is reopened once the clock passes the wait", async || fake.open_event_streams() == 1).await;
    eventually("the reopening is told", async || told.count("EventStreamReopened") == 1).await;
    assert_eq!(told.count("EventStreamEnded"), 1);
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

/// A flapping stream (each reopened stream delivers an event, then ends at once) is
/// reopened after a growing wait on the engine's clock (100 ms, 200 ms, 400 ms, ...), never
/// at once: a stream counts as having worked only once it lasted a while, whatever it
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_event_stream_backs_off() {
    let fake = fake();
    fake.add_image("busybox:latest");
    let clock = manual_clock();
    let told = Arc::new(Told::default());
    let config = EngineConfig { telemetry: told.clone(), ..EngineConfig::default() };
    let mut engine = start(&fake, config, &clock).await;
    assert_eq!(fake.open_event_streams(), 1);
    let mut wait_ms = 100;
    for flap in 1..=5 {
        // The stream delivers an event (some container of the host created), then ends.
        let config =
            ContainerConfig { name: format!("flap-{flap}"), image: "busybox:latest".into(), ..Default::default() };
        fake.create_container(&config).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let opened = fake.calls(Op::ContainerEvents);
        fake.cut_event_streams();
        eventually("the end is seen", async || told.count("EventStreamEnded") == flap).await;
        clock.advance(chrono::Duration::milliseconds(wait_ms - 1));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            fake.calls(Op::ContainerEvents),
            opened,
            "flap {flap}: reopened before the clock passed the wait of {wait_ms} ms"
        );
        clock.advance(chrono::Duration::milliseconds(1));
        eventually("reopened once the clock passes the wait", async || fake.open_event_streams() == 1).await;
        assert_eq!(fake.calls(Op::ContainerEvents), opened + 1, "flap {flap}: one attempt");
        wait_ms *= 2;
    }
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

/// An orphan's removal is a Docker call like any other (issue 14 item 6): when its grace
/// period ends while Docker does not answer, the removal waits (no failure told) and is
/// made once Docker answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_removal_waits_while_docker_does_not_answer() {
    let (_dir, fake, orphan, clock, told, mut engine) = with_an_orphan().await;
    eventually("the orphan is found", async || told.count("OrphanFound") == 1).await;

    fake.set_unreachable(true);
    clock.advance(chrono::Duration::seconds(60));
    eventually("Docker is found not answering", async || told.count("DockerLost") == 1).await;
    assert!(fake.container(&orphan).is_some());
    fake.set_unreachable(false);
    // The connector retries on the engine's clock.
    eventually("the orphan is removed once Docker answers", async || {
        clock.advance(chrono::Duration::seconds(1));
        fake.container(&orphan).is_none()
    })
    .await;
    assert_eq!(told.count("OrphanRemoveFailed"), 0, "a removal Docker did not answer is no failure");
    engine.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

/// Wall-clock steps while berth was down (issue 14 item 11): the times a record holds were
/// written under the old clock. With the clock stepped back a day between two starts, a
/// retry waits at most the longest retry wait and a STOPPED task's cleanup wait counts from
/// the restart, not a day more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_back_a_day_while_berth_was_down_stalls_no_retry_and_no_cleanup() {
    const ONE: &str = r#"{"family": "one", "containerDefinitions": [{"name": "web", "image": "busybox"}]}"#;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = fake();
    let told = Arc::new(Told::default());
    let config = || {
        let mut config = EngineConfig {
            data_dir: Some(dir.path().to_path_buf()),
            telemetry: told.clone(),
            ..EngineConfig::default()
        };
        config.plan.cleanup_wait = chrono::Duration::hours(1);
        config
    };
    let ahead = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).single().unwrap_or_else(Utc::now));
    let mut first = start(&fake, config(), &ahead).await;
    let mut w = Watcher::new(first.task_events().unwrap_or_else(|e| panic!("{e}")));
    // One task runs and exits: STOPPED at the clock ahead.
    fake.set_behaviour(|_| berth_testutils::Behaviour::exits(0));
    let stopped = task(ONE, 1);
    let stopped_arn = stopped.arn.clone();
    first.add_task(stopped).await.unwrap_or_else(|e| panic!("{e}"));
    until_all(&mut w, &stopped_arn, &["web"], berth_model::ContainerStatus::Stopped).await;
    // Another one's create fails: retried 1 s later on the clock ahead.
    fake.set_behaviour(|_| berth_testutils::Behaviour::forever());
    fake.fail_next(Op::CreateContainer, None, 1, berth_docker::ErrorKind::Transient);
    let retried = task(ONE, 2);
    let retried_arn = retried.arn.clone();
    first.add_task(retried).await.unwrap_or_else(|e| panic!("{e}"));
    eventually("the create failed", async || fake.calls(Op::CreateContainer) == 2).await;
    first.shutdown().await.unwrap_or_else(|e| panic!("{e}"));

    // The clock is stepped back a day.
    let back = manual_clock();
    let mut second = start(&fake, config(), &back).await;
    let mut w = Watcher::new(second.task_events_from(1).unwrap_or_else(|e| panic!("{e}")));
    back.advance(chrono::Duration::seconds(30));
    until_all(&mut w, &retried_arn, &["web"], berth_model::ContainerStatus::Running).await;
    assert_eq!(told.count("TaskSwept"), 0, "the STOPPED task waits its cleanup wait");
    back.advance(chrono::Duration::hours(1));
    eventually("the STOPPED task is swept an hour after the restart", async || told.count("TaskSwept") == 1).await;
    assert!(second.task(&stopped_arn).await.is_ok_and(|t| t.is_none()), "forgotten");
    second.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}
