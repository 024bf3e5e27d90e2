//! The cost of one group commit of one changed task (3 containers) and its 3 state changes,
//! in a store already holding 100 tasks versus 10,000: with per-task records the two are
//! about equal (the cost is the fsync and what changed, not the whole state). Also: the
//! same with a full change log (100,000 retained, so each save drops as many as it adds),
//! and the in-memory saver for reference.
//!
//! `cargo bench -p berth-store --bench store` (about 40 s). The files are in the target
//! directory, on the disk the build uses, not in a tmpfs.

use berth_model::{Container, ContainerSpec, ContainerStatus, StateChange, Task, TaskStatus};
use berth_store::{DEFAULT_RETAINED_CHANGES, Group, MemorySaver, RedbStore, STATE_FILE, Saver};
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::time::Duration;

fn arn(i: u64) -> String {
    format!("arn:berth:task/{i:032x}")
}

/// A task of 3 containers, with the engine fields a running task has.
fn task(arn: &str) -> Task {
    let containers = ["web", "db", "cache"]
        .iter()
        .map(|name| {
            let mut c = Container::new(ContainerSpec {
                name: (*name).into(),
                image: format!("registry.example/team/{name}:1.2.3"),
                essential: true,
                memory: Some(256),
                cpu: 128,
                command: vec!["run".into(), "--port".into(), "8080".into()],
                environment: [("MODE".into(), "production".into()), ("LEVEL".into(), "info".into())].into(),
                ..ContainerSpec::default()
            });
            c.known_status = ContainerStatus::Running;
            c.docker_id = Some(format!("{:064x}", 42));
            c.docker_name = Some(format!("berth-{name}-0123456789abcdef"));
            c
        })
        .collect();
    let mut t = Task::new(arn.into(), "family".into(), "3".into(), containers, vec![]);
    t.known_status = TaskStatus::Running;
    t
}

fn changes(arn: &str) -> Vec<StateChange> {
    ["web", "db", "cache"]
        .iter()
        .map(|name| StateChange {
            seq: 0,
            time: Utc::now(),
            task_arn: arn.into(),
            container_name: (*name).into(),
            status: ContainerStatus::Running,
            reason: None,
            exit_code: None,
            port_bindings: vec![],
            task_status: TaskStatus::None,
            task_desired_status: TaskStatus::None,
        })
        .collect()
}

/// A store in the target directory holding `tasks` tasks and `log` changes.
fn store_with(tasks: u64, log: u64) -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let mut store = RedbStore::open(dir.path().join(STATE_FILE)).expect("open the store");
    let template = task(&arn(0));
    for start in (0..tasks).step_by(1000) {
        let records = (start..(start + 1000).min(tasks))
            .map(|i| {
                let mut t = template.clone();
                t.arn = arn(i);
                (t.arn.clone(), Some(std::sync::Arc::new(t)))
            })
            .collect();
        store.save(Group { tasks: records, changes: vec![] }).expect("fill the store");
    }
    let filler = changes(&arn(0));
    for _ in 0..log / 10_000 {
        let group = (0..10_000 / 3 + 1).flat_map(|_| filler.clone()).take(10_000).collect();
        store.save(Group { tasks: vec![], changes: group }).expect("fill the log");
    }
    (dir, store)
}

/// One save: task `i % tasks` changed, with its 3 changes.
fn save_one<S: Saver>(saver: &mut S, template: &Task, changes: &[StateChange], tasks: u64, i: u64) {
    let mut t = template.clone();
    t.arn = arn(i % tasks);
    t.version = i.to_string();
    let group = Group { tasks: vec![(t.arn.clone(), Some(std::sync::Arc::new(t)))], changes: changes.to_vec() };
    saver.save(group).expect("save");
}

fn bench(c: &mut Criterion) {
    let template = task(&arn(0));
    let three = changes(&arn(0));

    let mut g = c.benchmark_group("save_one_task");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(6));
    for (name, tasks, log) in
        [("redb", 100, 0), ("redb", 10_000, 0), ("redb_full_log", 10_000, DEFAULT_RETAINED_CHANGES)]
    {
        let (_dir, mut store) = store_with(tasks, log);
        let mut i = 0;
        g.bench_function(BenchmarkId::new(name, tasks), |b| {
            b.iter(|| {
                i += 1;
                save_one(&mut store, &template, &three, tasks, i);
            })
        });
    }
    g.measurement_time(Duration::from_secs(2));
    for tasks in [100, 10_000] {
        let mut saver = MemorySaver::new();
        let mut i = 0;
        g.bench_function(BenchmarkId::new("memory", tasks), |b| {
            b.iter(|| {
                i += 1;
                save_one(&mut saver, &template, &three, tasks, i);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
