//! Store writes of an idle engine (issue 14 item 10): 1,000 one-container tasks RUNNING on
//! the fake Docker with the durable store in a data directory, then nothing happens but the
//! periodic steady-state check (every container not known STOPPED inspected). Counts the
//! task records and group commits the store is handed per check; at the default interval
//! (60 s) that is the number per minute.
//!
//! `cargo bench -p berth-engine --bench idle_writes` (`BERTH_IDLE_TASKS`,
//! `BERTH_IDLE_CHECKS` change the counts). The check runs every 2 s here so that the
//! measurement is short; what one check writes does not depend on the interval.

use berth_engine::{Engine, EngineConfig, EngineTelemetry, LogItem, Telemetry};
use berth_model::ContainerStatus;
use berth_model::input::{ParseOptions, parse};
use berth_testutils::FakeDocker;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

#[derive(Debug, Default)]
struct Count {
    records: AtomicUsize,
    commits: AtomicUsize,
    checks: AtomicUsize,
}

impl Telemetry for Count {
    fn record(&self, event: &EngineTelemetry<'_>) {
        match event {
            EngineTelemetry::StoreCommitted { tasks, .. } => {
                self.records.fetch_add(*tasks, SeqCst);
                self.commits.fetch_add(1, SeqCst);
            }
            EngineTelemetry::SteadyStateCheck => {
                self.checks.fetch_add(1, SeqCst);
            }
            _ => {}
        }
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let tasks = env_count("BERTH_IDLE_TASKS", 1_000);
    let checks = env_count("BERTH_IDLE_CHECKS", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("data directory");
        let fake = FakeDocker::new();
        fake.add_image("busybox");
        let count = Arc::new(Count::default());
        let config = EngineConfig {
            data_dir: Some(dir.path().to_path_buf()),
            steady_state_check: Duration::from_secs(2),
            telemetry: count.clone(),
            ..EngineConfig::default()
        };
        let engine = Engine::builder(config, Arc::new(fake.clone())).start().await.expect("init");
        let mut reader = engine.task_events();
        for i in 0..tasks {
            let json = format!(
                r#"{{"family": "idle-{i}", "containerDefinitions": [{{"name": "web", "image": "busybox",
                    "command": ["httpd", "-f"]}}]}}"#
            );
            let task =
                parse(json.as_bytes(), &ParseOptions { family: None, arn_random: i as u128 + 1 }).expect("task").task;
            engine.add_task(task).await.expect("add");
        }
        let mut running = 0;
        while running < tasks {
            if let Some(LogItem::Change(c)) = reader.next().await
                && c.status == ContainerStatus::Running
            {
                running += 1;
            }
        }
        // Idle from the next check on: count over `checks` checks.
        let start = count.checks.load(SeqCst) + 1;
        while count.checks.load(SeqCst) < start {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (records, commits) = (count.records.load(SeqCst), count.commits.load(SeqCst));
        while count.checks.load(SeqCst) < start + checks {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let records = count.records.load(SeqCst) - records;
        let commits = count.commits.load(SeqCst) - commits;
        println!(
            "{tasks} RUNNING tasks, {checks} steady-state checks: {records} task records in {commits} commits \
             ({:.1} records and {:.1} commits per check, so per minute at the default 60 s interval)",
            records as f64 / checks as f64,
            commits as f64 / checks as f64
        );
        engine.shutdown().await.expect("shutdown");
    });
}
