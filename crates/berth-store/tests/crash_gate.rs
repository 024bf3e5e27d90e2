//! Crash points are a test build's hook only (issue 15 item 6): a child process (this test
//! binary again, running only `crash_gate_child`) embeds the store with `BERTH_CRASH_AT`
//! armed, commits a group (passing `in-commit`) and passes every other crash point. Built
//! without the cargo feature `crash-points` (`cargo nextest run -p berth-store`, or any
//! build of a program that embeds the store or the engine) it must come through and exit
//! normally; built with it (a workspace test run, where the berth binary's dev-dependency
//! turns the feature on for the whole build) it must abort at the armed point.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use berth_store::crash::{CRASH_AT_ENV, ENABLED, POINTS};
use berth_store::{DataDir, Group, Saver};
use common::{change, task};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::Arc;

/// Set for the child: the data directory it writes to.
const DIR_VAR: &str = "BERTH_STORE_CRASH_GATE_DIR";
/// The signal `std::process::abort` ends a process with (Linux).
const SIGABRT: i32 = 6;
/// What the child prints when it came through every point.
const SURVIVED: &str = "came through every crash point";

/// The embedding process, run in a child by the test below; does nothing in a normal run.
#[test]
fn crash_gate_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else { return };
    let data = DataDir::open(&dir).expect("open the data directory");
    let mut store = data.store().expect("open the store");
    store.load().expect("load");
    let arn = "arn:gate";
    let group =
        Group { tasks: vec![(arn.to_string(), Some(Arc::new(task(arn, 1))))], changes: vec![change(arn, "web")] };
    store.save(group).expect("save");
    // The engine's points (executor.rs) go through the same function.
    for point in POINTS {
        berth_store::crash::point(point);
    }
    println!("\n{SURVIVED}");
}

#[test]
fn an_armed_crash_point_aborts_only_a_build_with_the_feature() {
    let exe = std::env::current_exe().unwrap();
    for point in POINTS {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(&exe)
            .args(["--exact", "crash_gate_child", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .env(CRASH_AT_ENV, point)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if ENABLED {
            assert_eq!(
                out.status.signal(),
                Some(SIGABRT),
                "built with crash-points, {CRASH_AT_ENV}={point} must abort: {}\n{stdout}\n{stderr}",
                out.status
            );
        } else {
            assert!(
                out.status.success() && stdout.contains(SURVIVED),
                "built without crash-points, {CRASH_AT_ENV}={point} must change nothing: {}\n{stdout}\n{stderr}",
                out.status
            );
        }
    }
}
