//! Property test of the whole engine on the fake Docker: random tasks and fault schedules
//! (failed, timed-out and slow calls, lost events, cut event streams) reach a steady state,
//! with no container created twice, none started twice, and no status going backwards.

mod common;

use berth_docker::{ErrorKind, labels};
use berth_engine::{DockerTaskEngine, EngineConfig, TaskEngine};
use berth_model::container::{ContainerSpec, Dependency, DependencyCondition, Link, VolumeFrom};
use berth_model::{Container, ContainerStatus, Task, TaskStatus, task_completed};
use berth_testutils::{Behaviour, FakeDocker, Op};
use common::Watcher;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// One generated container: essential, exits after (ms, code) or runs, edges to earlier
/// containers (index, kind).
type GenContainer = (bool, Option<(u64, i64)>, Vec<(usize, u8)>);

#[derive(Debug, Clone)]
struct GenTask {
    containers: Vec<GenContainer>,
}

#[derive(Debug, Clone)]
struct Scenario {
    tasks: Vec<GenTask>,
    /// (operation, times, kind: 0 transient, 1 permanent, 2 timeout after doing it)
    faults: Vec<(u8, usize, u8)>,
    drop_events: usize,
    cut_streams: bool,
}

fn gen_task() -> impl Strategy<Value = GenTask> {
    (1usize..=4)
        .prop_flat_map(|n| {
            let containers: Vec<_> = (0..n)
                .map(|i| {
                    let edges =
                        if i == 0 { Just(vec![]).boxed() } else { prop::collection::vec((0..i, 0u8..3), 0..2).boxed() };
                    (any::<bool>(), prop::option::of((0u64..50, 0i64..3)), edges)
                })
                .collect();
            containers
        })
        .prop_map(|containers| GenTask { containers })
}

fn gen_scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(gen_task(), 1..4),
        prop::collection::vec((0u8..4, 1usize..3, 0u8..3), 0..3),
        0usize..4,
        any::<bool>(),
    )
        .prop_map(|(tasks, faults, drop_events, cut_streams)| Scenario { tasks, faults, drop_events, cut_streams })
}

fn build(g: &GenTask, n: usize, behaviours: &mut HashMap<(String, String), Behaviour>) -> Task {
    let arn = format!("arn:berth:task/{n:032x}");
    let name = |i: usize| format!("c{i}");
    let any_essential = g.containers.iter().any(|c| c.0);
    let mut specs = Vec::new();
    for (i, (essential, exits, edges)) in g.containers.iter().enumerate() {
        let mut spec = ContainerSpec {
            name: name(i),
            image: "busybox".into(),
            essential: *essential || (!any_essential && i == 0),
            ..ContainerSpec::default()
        };
        for &(to, kind) in edges {
            match kind {
                0 => spec.links.push(Link { name: name(to), alias: None }),
                1 => spec.volumes_from.push(VolumeFrom { source_container: name(to), read_only: false }),
                _ => {
                    spec.depends_on.push(Dependency { container_name: name(to), condition: DependencyCondition::Start })
                }
            }
        }
        let b = match exits {
            Some((ms, code)) => Behaviour::exits_after(Duration::from_millis(*ms), *code),
            None => Behaviour::forever(),
        };
        behaviours.insert((arn.clone(), name(i)), b);
        specs.push(spec);
    }
    Task::new(arn, format!("prop{n}"), "1".into(), specs.into_iter().map(Container::new).collect(), vec![])
}

async fn run(s: Scenario) -> Result<(), TestCaseError> {
    let fake = FakeDocker::new();
    fake.add_registry_image("busybox:latest");
    let mut behaviours = HashMap::new();
    let tasks: Vec<Task> = s.tasks.iter().enumerate().map(|(n, g)| build(g, n + 1, &mut behaviours)).collect();
    fake.set_behaviour(move |config| {
        let key = (
            config.labels.get(labels::TASK_ARN).cloned().unwrap_or_default(),
            config.labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_default(),
        );
        behaviours.get(&key).copied().unwrap_or_else(Behaviour::forever)
    });
    for &(op, times, kind) in &s.faults {
        let op = [Op::PullImage, Op::CreateContainer, Op::StartContainer, Op::StopContainer][usize::from(op)];
        match kind {
            0 => fake.fail_next(op, None, times, ErrorKind::Transient),
            1 => fake.fail_next(op, None, times, ErrorKind::Permanent),
            _ => fake.time_out_next(op, None, times),
        }
    }
    fake.drop_events(s.drop_events);
    let mut config = EngineConfig::default();
    config.plan.retry.initial_backoff = chrono::Duration::milliseconds(5);
    config.plan.retry.max_backoff = chrono::Duration::milliseconds(50);
    let mut engine = DockerTaskEngine::new(config, Arc::new(fake.clone()));
    engine.init().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut events = Watcher::new(engine.task_events().map_err(|e| TestCaseError::fail(e.to_string()))?);
    for t in &tasks {
        engine.add_task(t.clone()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    if s.cut_streams {
        tokio::time::sleep(Duration::from_millis(5)).await;
        fake.cut_event_streams();
    }
    // Steady state: every task completed (every container at its desired status).
    let steady = async |engine: &DockerTaskEngine| {
        for _ in 0..2000 {
            let listed = engine.list_tasks().await.unwrap_or_default();
            if listed.len() == tasks.len() && listed.iter().all(task_completed) {
                return Some(listed);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    };
    let Some(settled) = steady(&engine).await else {
        let listed = engine.list_tasks().await.unwrap_or_default();
        return Err(TestCaseError::fail(format!("never settled: {listed:#?}")));
    };
    for t in &settled {
        for c in &t.containers {
            if c.applying_error.is_some() {
                prop_assert_eq!(c.known_status, ContainerStatus::Stopped, "a failed container is STOPPED");
            }
        }
    }
    // Then every task is stopped.
    for t in &tasks {
        engine.stop_task(&t.arn).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let Some(stopped) = steady(&engine).await else {
        return Err(TestCaseError::fail("never settled after stop"));
    };
    prop_assert!(stopped.iter().all(|t| t.known_status == TaskStatus::Stopped));
    prop_assert!(fake.containers().iter().all(|c| c.state.as_str() != "running"), "nothing left running");
    // Nothing created twice, nothing started twice.
    let mut per_container: BTreeMap<(String, String), u32> = BTreeMap::new();
    for c in fake.containers() {
        let key = (
            c.labels.get(labels::TASK_ARN).cloned().unwrap_or_default(),
            c.labels.get(labels::CONTAINER_NAME).cloned().unwrap_or_default(),
        );
        *per_container.entry(key.clone()).or_default() += 1;
        prop_assert!(c.times_started <= 1, "{:?} started {} times", key, c.times_started);
    }
    prop_assert!(per_container.values().all(|n| *n == 1), "one Docker container each: {:?}", per_container);
    prop_assert_eq!(fake.restarts_of_exited(), 0);
    // No status went backwards, as the change log tells it.
    let total: usize = tasks.iter().map(|t| t.containers.len()).sum();
    events
        .until("a STOPPED change of every container", |seen| {
            seen.iter().filter(|c| c.status == ContainerStatus::Stopped).count() >= total
        })
        .await;
    let mut last: HashMap<(String, String), ContainerStatus> = HashMap::new();
    for c in &events.seen {
        let key = (c.task_arn.clone(), c.container_name.clone());
        if let Some(prev) = last.get(&key) {
            prop_assert!(c.status > *prev, "{:?}: {} after {}", key, c.status, prev);
        }
        last.insert(key, c.status);
    }
    engine.shutdown().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_tasks_and_faults_reach_a_steady_state_safely(s in gen_scenario()) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(run(s))?;
    }
}
