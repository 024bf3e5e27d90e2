//! Validating, planning and admitting, measured: the whole task-definition corpus per
//! second, the planner's decisions per second over 10,000 tasks of 3 containers, the
//! admission check's cost per task, and cluster placement's cost per task.
//!
//! `cargo bench -p berth-model --bench model` (results go in BENCHMARKS.md).

use berth_model::admission::{Admission, HostCapacity, Reservation, Reserve};
use berth_model::container::{ContainerSpec, Dependency, DependencyCondition, Link, PortMapping, Protocol};
use berth_model::graph::DependencyGraph;
use berth_model::input::{ParseOptions, parse};
use berth_model::placement::{Availability, ClusterView, Decision, NodeView, Request, Rules, place};
use berth_model::plan::{PlanConfig, plan};
use berth_model::{Container, ContainerStatus, Task, TaskStatus};
use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;

/// The corpus sits in `shared/` beside the checkout, as in CI.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/ecs-taskdefs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (stem, bytes)
        })
        .collect()
}

fn bench_corpus(c: &mut Criterion) {
    let files = corpus();
    assert_eq!(files.len(), 30, "the whole corpus");
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("whole corpus (30 files)", |b| {
        b.iter(|| {
            let mut accepted = 0;
            for (stem, bytes) in &files {
                let opts = ParseOptions { family: Some(stem.clone()), arn_random: 7 };
                if let Ok(a) = parse(black_box(bytes), &opts) {
                    let g = DependencyGraph::build(&a.task).ok();
                    accepted += usize::from(g.is_some());
                }
            }
            assert_eq!(accepted, 20);
        })
    });
    group.finish();
}

/// Task `i` of 3 containers (`c` links to `b`, `b` depends on `a` starting), with its
/// containers spread over every status so the plans are varied.
fn task(i: u32) -> Task {
    let mut b = ContainerSpec { name: "b".into(), image: "busybox".into(), essential: true, ..Default::default() };
    b.depends_on.push(Dependency { container_name: "a".into(), condition: DependencyCondition::Start });
    let mut c = ContainerSpec { name: "c".into(), image: "busybox".into(), essential: false, ..Default::default() };
    c.links.push(Link { name: "b".into(), alias: None });
    let a = ContainerSpec { name: "a".into(), image: "busybox".into(), essential: true, ..Default::default() };
    let mut t = Task::new(
        format!("arn:berth:task/{i:032x}"),
        "bench".into(),
        "1".into(),
        vec![a, b, c].into_iter().map(Container::new).collect(),
        vec![],
    );
    for (k, container) in t.containers.iter_mut().enumerate() {
        let status = ContainerStatus::ALL[((i as usize) + k) % 4];
        container.known_status = status;
        if status >= ContainerStatus::Created {
            container.docker_id = Some(format!("{i}-{k}"));
            container.applied_status = status;
        }
        container.has_run = status >= ContainerStatus::Running;
    }
    if i.is_multiple_of(5) {
        t.raise_desired_status(TaskStatus::Stopped);
    }
    t
}

fn bench_planner(c: &mut Criterion) {
    let tasks: Vec<(Task, DependencyGraph)> = (0..10_000)
        .map(|i| {
            let t = task(i);
            let g = DependencyGraph::build(&t).unwrap_or_else(|e| panic!("{e:?}"));
            (t, g)
        })
        .collect();
    let cfg = PlanConfig::default();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap_or_else(Utc::now);
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(tasks.len() as u64));
    group.bench_function("10,000 tasks of 3 containers", |b| {
        b.iter(|| {
            let mut ops = 0;
            for (t, g) in &tasks {
                ops += plan(black_box(t), g, now, &cfg).ops.len();
            }
            black_box(ops)
        })
    });
    group.bench_function("10,000 tasks of 3 containers, graph built each time", |b| {
        b.iter(|| {
            let mut ops = 0;
            for (t, _) in &tasks {
                if let Ok(g) = DependencyGraph::build(black_box(t)) {
                    ops += plan(t, &g, now, &cfg).ops.len();
                }
            }
            black_box(ops)
        })
    });
    group.finish();
}

/// 10,000 tasks of 3 containers, each with cpu, memory and memoryReservation, the first
/// with a static host port of its own: their reservations computed, submitted and admitted
/// one by one on a host big enough for all (the engine's path for a task that fits); then
/// 10,000 submitted while the host is full (a burst that waits: the queue grows); then the
/// state rebuilt from the 10,000 tasks after a restart, all running.
fn bench_admission(c: &mut Criterion) {
    let tasks: Vec<Task> = (0..10_000_u16)
        .map(|i| {
            let spec = |name: &str| ContainerSpec {
                name: name.into(),
                image: "busybox".into(),
                essential: true,
                cpu: 10,
                memory: Some(64),
                memory_reservation: Some(32),
                ..Default::default()
            };
            let mut a = spec("a");
            a.port_mappings.push(PortMapping { container_port: 80, host_port: 10_000 + i, protocol: Protocol::Tcp });
            Task::new(
                format!("arn:berth:task/{i:032x}"),
                "bench".into(),
                "1".into(),
                vec![a, spec("b"), spec("c")].into_iter().map(Container::new).collect(),
                vec![],
            )
        })
        .collect();
    let roomy = HostCapacity::new(1 << 20, 1 << 30, &Reserve::default());
    let mut group = c.benchmark_group("admission");
    group.throughput(Throughput::Elements(tasks.len() as u64));
    group.bench_function("10,000 tasks: reservation, submit, admit, each", |b| {
        b.iter(|| {
            let mut a = Admission::new(roomy.clone());
            for t in &tasks {
                let _ = a.submit(t.arn.clone(), Reservation::of(black_box(t)));
                black_box(a.admit());
            }
            assert_eq!(a.used_cpu(), 300_000);
        })
    });
    group.bench_function("10,000 tasks submitted to a full host (all wait)", |b| {
        // One task holds every CPU unit: each task submitted waits behind the first in line.
        let holder = Reservation { cpu: roomy.cpu, ..Reservation::default() };
        b.iter(|| {
            let mut a = Admission::new(roomy.clone());
            let _ = a.submit("holder".into(), holder.clone());
            a.admit();
            for t in &tasks {
                let _ = a.submit(t.arn.clone(), Reservation::of(black_box(t)));
                black_box(a.admit());
            }
            assert_eq!(a.waiting().count(), 10_000);
        })
    });
    let running: Vec<Task> = tasks
        .iter()
        .map(|t| {
            let mut t = t.clone();
            for c in &mut t.containers {
                c.known_status = ContainerStatus::Running;
                c.applied_status = ContainerStatus::Running;
            }
            t
        })
        .collect();
    group.bench_function("rebuilt from 10,000 running tasks (restart)", |b| {
        b.iter(|| {
            let (a, refused) = Admission::from_tasks(roomy.clone(), black_box(&running));
            assert!(refused.is_empty());
            black_box(a)
        })
    });
    group.finish();
}

/// 1,000 tasks placed in one pass (each applied to the view before the next), with a
/// `memberOf` constraint and `spread` over an attribute then `binpack` on memory, on 3 and on
/// 100 nodes: what the scheduler's pure part costs per placement.
fn bench_placement(c: &mut Criterion) {
    let rules = Rules::from_parts(
        [("memberOf", Some("attribute:zone in [a, b, c] and not attribute:retired exists"))],
        [("spread", Some("attribute:zone")), ("binpack", Some("memory"))],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let request =
        Request { reservation: Reservation { cpu: 10, memory_mib: 32, ports: vec![] }, group: "bench".into(), rules };
    let mut group = c.benchmark_group("placement");
    group.throughput(Throughput::Elements(1000));
    for nodes in [3_usize, 100] {
        let mut view = ClusterView::default();
        for i in 0..nodes {
            let capacity = HostCapacity::new(1 << 20, 1 << 20, &Reserve::default());
            let zone = ["a", "b", "c"][i % 3];
            let attributes = [("zone".to_string(), zone.to_string())].into();
            view.nodes.insert(format!("node-{i:03}"), NodeView::new(capacity, attributes, Availability::Ready));
        }
        group.bench_function(format!("1,000 tasks on {nodes} nodes, each placed and applied"), |b| {
            b.iter(|| {
                let mut v = view.clone();
                for seed in 0..1000 {
                    match place(&v, black_box(&request), seed) {
                        Decision::Place(node) => v.apply(&node, &request),
                        other => panic!("{other}"),
                    };
                }
                black_box(v)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_corpus, bench_planner, bench_admission, bench_placement
}
criterion_main!(benches);
