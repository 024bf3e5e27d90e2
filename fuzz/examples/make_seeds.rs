//! Writes the `store_loader` seeds into `fuzz/corpus/store_loader/`: real state files made
//! by the store itself (`state.redb`, schema 3) and export documents (`state.json`,
//! export version 2). The corpus also keeps the files an earlier berth made
//! (`*-schema2.redb`, `*-export-v1.json`), which this berth still reads; this example
//! does not touch them. `scripts/fuzz.sh` runs it when the seeds are missing (or with
//! `FUZZ_REGEN_SEEDS=1`).
//!
//! Usage: `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds [OUT_DIR]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use berth_model::input::{ParseOptions, parse};
use berth_model::{ContainerStatus, StateChange, Task, TaskStatus};
use berth_store::export::to_json;
use berth_store::{DataDir, Group, Loaded, STATE_FILE, Saver};
use chrono::{TimeZone, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::{env, fs};

const DEFINITION: &[u8] = br#"{
  "family": "seed",
  "networkMode": "bridge",
  "volumes": [{"name": "data", "host": {"sourcePath": "/srv/data"}}, {"name": "scratch"}],
  "containerDefinitions": [
    {"name": "web", "image": "nginx:1.27", "cpu": 128, "memory": 256, "essential": true,
     "links": ["db:database"], "command": ["nginx", "-g", "daemon off;"],
     "environment": [{"name": "MODE", "value": "prod"}],
     "portMappings": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "udp"}],
     "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}],
     "dockerLabels": {"a": "b"}, "stopTimeout": 7,
     "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 5, "timeout": 2, "retries": 3},
     "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]},
    {"name": "db", "image": "postgres:16", "memory": 512, "essential": false,
     "healthCheck": {"command": ["CMD", "pg_isready"]},
     "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/s"}]}
  ]
}"#;

fn task(n: u128) -> Task {
    match parse(DEFINITION, &ParseOptions { family: None, arn_random: n }) {
        Ok(accepted) => accepted.task,
        Err(rejected) => panic!("seed task definition rejected: {rejected}"),
    }
}

fn change(task: &Task, container: &str, status: ContainerStatus, task_status: TaskStatus) -> StateChange {
    StateChange {
        seq: 0,
        time: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid time"),
        task_arn: task.arn.clone(),
        container_name: container.into(),
        status,
        reason: (status == ContainerStatus::Stopped).then(|| "essential container exited".into()),
        exit_code: (status == ContainerStatus::Stopped).then_some(137),
        port_bindings: vec![],
        task_status,
        task_desired_status: TaskStatus::None,
    }
}

/// Make a store in a fresh data directory, apply `groups` (with `retention`), compact its
/// file (so that it fits libFuzzer's `-max_len=65536`: redb leaves free space a fresh file
/// does not need), and return the bytes of its state file and what it loads back, checked
/// to be what it held before the compaction.
fn make_store(scratch: &Path, name: &str, retention: Option<u64>, groups: Vec<Group>) -> (Vec<u8>, Loaded) {
    let dir = scratch.join(name);
    {
        let data = DataDir::open(&dir).expect("open the data directory");
        let mut store = data.store().expect("open the store");
        if let Some(r) = retention {
            store.set_retention(r);
        }
        for group in groups {
            store.save(group).expect("save");
        }
    }
    let load = || DataDir::open(&dir).expect("reopen").store().expect("reopen the store").load().expect("load");
    let before = load();
    {
        let mut db = redb::Database::open(dir.join(STATE_FILE)).expect("open the file with redb");
        while db.compact().expect("compact") {}
    }
    let bytes = fs::read(dir.join(STATE_FILE)).expect("read the state file");
    let loaded = load();
    assert_eq!(loaded, before, "compaction changed the state");
    assert!(bytes.len() <= 65536, "{name}: {} bytes, more than -max_len", bytes.len());
    (bytes, loaded)
}

fn main() {
    let out = env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join("store_loader"));
    fs::create_dir_all(&out).expect("create the output directory");
    let scratch = env::temp_dir().join(format!("berth-fuzz-seeds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);

    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    let (empty, empty_loaded) = make_store(&scratch, "empty", None, vec![]);
    seeds.push(("empty.redb", empty));
    seeds.push(("empty-export.json", to_json(&empty_loaded).expect("export").into_bytes()));

    let a = task(1);
    let groups = vec![
        Group { tasks: vec![(a.arn.clone(), Some(Arc::new(a.clone())))], changes: vec![] },
        Group {
            tasks: vec![(a.arn.clone(), Some(Arc::new(a.clone())))],
            changes: vec![
                change(&a, "db", ContainerStatus::Running, TaskStatus::None),
                change(&a, "web", ContainerStatus::Running, TaskStatus::Running),
            ],
        },
    ];
    let (one, one_loaded) = make_store(&scratch, "one", None, groups);
    seeds.push(("one-task.redb", one));
    seeds.push(("one-task-export.json", to_json(&one_loaded).expect("export").into_bytes()));

    // Three tasks, one forgotten again, and a log cut by retention (its oldest change is
    // not 1).
    let (b, c) = (task(2), task(3));
    let mut groups = vec![Group {
        tasks: [&a, &b, &c].iter().map(|t| (t.arn.clone(), Some(Arc::new((*t).clone())))).collect(),
        changes: vec![],
    }];
    for round in 0..4 {
        let status = if round < 3 { ContainerStatus::Running } else { ContainerStatus::Stopped };
        groups.push(Group {
            tasks: vec![(b.arn.clone(), Some(Arc::new(b.clone())))],
            changes: vec![
                change(&b, "db", status, TaskStatus::None),
                change(&c, "web", status, if round == 3 { TaskStatus::Stopped } else { TaskStatus::None }),
            ],
        });
    }
    groups.push(Group { tasks: vec![(c.arn.clone(), None)], changes: vec![] });
    let (three, three_loaded) = make_store(&scratch, "three", Some(5), groups);
    seeds.push(("retention.redb", three));
    seeds.push(("retention-export.json", to_json(&three_loaded).expect("export").into_bytes()));

    let _ = fs::remove_dir_all(&scratch);
    for (name, bytes) in seeds {
        let path = out.join(name);
        println!("{} ({} bytes)", path.display(), bytes.len());
        fs::write(path, bytes).expect("write a seed");
    }
}
