//! Every Docker call is bounded and counted, and nothing the engine must do waits behind
//! unrelated work (issue 14, item 6).

mod common;

use berth_engine::{DockerTaskEngine, EngineConfig, TaskEngine};
use berth_store::MemorySaver;
use common::*;
use std::sync::Arc;
use std::time::Duration;

const FOREVER: &str =
    r#"{"family": "f", "containerDefinitions": [{"name": "web", "image": "busybox", "command": ["httpd", "-f"]}]}"#;

/// The group commit has its own thread: with every blocking thread of the runtime taken
/// (as credential helpers that hang would take them), a task is still saved.
#[test]
fn the_group_commit_never_waits_behind_blocking_work() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let fake = fake();
        let mut engine = DockerTaskEngine::new(EngineConfig::default(), Arc::new(fake.clone()));
        engine.set_saver(Box::new(MemorySaver::new())).unwrap_or_else(|e| panic!("{e}"));
        engine.init().await.unwrap_or_else(|e| panic!("{e}"));

        // The runtime's one blocking thread, taken until the end of the test.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (taken, is_taken) = tokio::sync::oneshot::channel();
        let hog = tokio::task::spawn_blocking(move || {
            let _ = taken.send(());
            let _ = held.recv();
        });
        is_taken.await.unwrap_or_else(|e| panic!("{e}"));

        // A hang guard, not a speed limit: the old commit waited for the blocking thread.
        let added = tokio::time::timeout(Duration::from_secs(30), engine.add_task(task(FOREVER, 1))).await;
        let _ = release.send(());
        let _ = hog.await;
        match added {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("add_task: {e}"),
            Err(_) => panic!("the task's commit waited behind the runtime's blocking work"),
        }
        let _ = engine.shutdown().await;
    });
}
