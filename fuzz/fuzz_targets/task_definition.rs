//! Fuzz target `task_definition`: any bytes through `berth_model::input::parse`.
//!
//! Checked: no panic; a rejection carries at least one error and every issue (error or
//! warning) has a non-empty message. For an accepted task, also what the engine relies on
//! right after: its dependency graph builds (`add_task` builds it once), and the task
//! survives the store's encoding (JSON, as `state.redb` keeps task records) unchanged.
#![no_main]

use berth_model::Task;
use berth_model::graph::DependencyGraph;
use berth_model::input::{Issue, ParseOptions, parse};
use libfuzzer_sys::fuzz_target;

fn check_issues(kind: &str, issues: &[Issue]) {
    for issue in issues {
        assert!(!issue.message.trim().is_empty(), "{kind} with an empty message (path {:?})", issue.path);
    }
}

fuzz_target!(|data: &[u8]| {
    match parse(data, &ParseOptions { family: None, arn_random: 1 }) {
        Ok(accepted) => {
            check_issues("warning", &accepted.warnings);
            let task = accepted.task;
            if let Err(errors) = DependencyGraph::build(&task) {
                panic!("accepted task whose dependency graph does not build: {errors:?}");
            }
            let json = serde_json::to_vec(&task).expect("an accepted task encodes as JSON");
            let back: Task = serde_json::from_slice(&json).expect("an accepted task decodes from its own JSON");
            assert!(back == task, "an accepted task changes through its JSON encoding");
        }
        Err(rejected) => {
            assert!(!rejected.errors.is_empty(), "rejected without an error (warnings: {:?})", rejected.warnings);
            check_issues("error", &rejected.errors);
            check_issues("warning", &rejected.warnings);
            assert!(!rejected.to_string().trim().is_empty(), "a rejection that displays as nothing");
        }
    }
});
