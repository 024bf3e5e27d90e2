//! Host resource accounting, over random tasks, capacities and sequences of submits,
//! admissions and releases: no overcommit of CPU or memory at any point; never the same
//! static host port (and protocol) for two admitted tasks, nor a reserved one; admission in
//! submit order; after each `admit` the first in line does not fit (nothing that fits is
//! left waiting); a task is refused at submit exactly when it exceeds the empty host; every
//! accepted task is admitted once the others release; and the state rebuilt from the tasks'
//! statuses (a restart) is the state the sequence produced.

use berth_model::admission::{Admission, HostCapacity, HostPort, Reservation, Reserve};
use berth_model::container::{ContainerSpec, PortMapping, Protocol};
use berth_model::task::NetworkMode;
use berth_model::{Container, ContainerStatus, Task, TaskStatus};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]
}

/// Few port numbers, so that tasks often collide.
fn port_mapping() -> impl Strategy<Value = PortMapping> {
    (1_u16..6, 0_u16..6, protocol()).prop_map(|(container_port, host_port, protocol)| PortMapping {
        container_port,
        host_port,
        protocol,
    })
}

fn spec(i: usize) -> impl Strategy<Value = ContainerSpec> {
    (
        0_u64..600,
        proptest::option::of(0_u64..600),
        proptest::option::of(0_u64..600),
        prop::collection::vec(port_mapping(), 0..3),
    )
        .prop_map(move |(cpu, memory, memory_reservation, ports)| ContainerSpec {
            name: format!("c{i}"),
            image: "busybox".into(),
            essential: true,
            cpu,
            memory,
            memory_reservation,
            port_mappings: ports.into_iter().collect(),
            ..ContainerSpec::default()
        })
}

fn network_mode() -> impl Strategy<Value = NetworkMode> {
    prop_oneof![Just(NetworkMode::Bridge), Just(NetworkMode::Host), Just(NetworkMode::Awsvpc), Just(NetworkMode::None)]
}

/// A task of one to three containers, sometimes with task-level sizes.
fn task() -> impl Strategy<Value = Task> {
    (
        network_mode(),
        (1..4_usize).prop_flat_map(|n| (0..n).map(spec).collect::<Vec<_>>()),
        proptest::option::of(1_u64..1500),
        proptest::option::of(1_u64..1500),
    )
        .prop_map(|(mode, specs, cpu, memory)| {
            let mut t = Task::new(
                String::new(),
                "f".into(),
                "1".into(),
                specs.into_iter().map(Container::new).collect(),
                vec![],
            );
            t.network_mode = mode;
            t.cpu = cpu;
            t.memory = memory;
            t
        })
}

fn capacity() -> impl Strategy<Value = HostCapacity> {
    (0_u64..2000, 0_u64..2000, prop::collection::vec((1_u16..6, protocol()), 0..3)).prop_map(|(cpu, memory, ports)| {
        let ports = ports.into_iter().map(|(port, protocol)| HostPort { port, protocol }).collect();
        HostCapacity::new(cpu + 100, memory + 100, &Reserve { cpu: 100, memory_mib: 100, ports })
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// Submit the next task of the pool.
    Submit,
    /// Admit what fits.
    Admit,
    /// Release the admitted or waiting task at this index (modulo) of those held.
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![3 => Just(Op::Submit), 2 => Just(Op::Admit), 2 => any::<usize>().prop_map(Op::Release)]
}

/// The empty-host rule, written again independently of `never_fits`.
fn exceeds_empty_host(r: &Reservation, c: &HostCapacity) -> bool {
    r.cpu > c.cpu || r.memory_mib > c.memory_mib || r.ports.iter().any(|p| c.reserved_ports.contains(p))
}

/// Every invariant of a state, checked against the reservations of the admitted tasks.
fn check_state(a: &Admission) -> Result<(), TestCaseError> {
    let c = a.capacity();
    let (mut cpu, mut memory) = (0, 0);
    let mut ports = BTreeSet::new();
    for (arn, r) in a.admitted() {
        cpu += r.cpu;
        memory += r.memory_mib;
        for p in &r.ports {
            prop_assert!(ports.insert(*p), "{arn}: host port {p} held twice");
            prop_assert!(!c.reserved_ports.contains(p), "{arn}: reserved host port {p} taken");
        }
    }
    prop_assert_eq!(cpu, a.used_cpu());
    prop_assert_eq!(memory, a.used_memory_mib());
    prop_assert!(cpu <= c.cpu, "CPU overcommitted: {} of {}", cpu, c.cpu);
    prop_assert!(memory <= c.memory_mib, "memory overcommitted: {} of {}", memory, c.memory_mib);
    prop_assert_eq!(ports, a.used_ports().collect::<BTreeSet<_>>());
    Ok(())
}

/// The tasks as the store would hold them: admitted ones have begun (a container running),
/// released ones are done (stopped, or withdrawn before they began), waiting ones untouched.
fn as_stored(pool: &[Task], a: &Admission, released: &BTreeSet<String>) -> Vec<Task> {
    pool.iter()
        .map(|t| {
            let mut t = t.clone();
            if a.is_admitted(&t.arn) {
                t.containers[0].applied_status = ContainerStatus::Running;
                t.containers[0].known_status = ContainerStatus::Running;
            } else if released.contains(&t.arn) {
                t.raise_desired_status(TaskStatus::Stopped);
                for c in &mut t.containers {
                    c.known_status = ContainerStatus::Stopped;
                }
            }
            t
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn admission_keeps_its_promises(
        capacity in capacity(),
        mut pool in prop::collection::vec(task(), 1..12),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        for (i, t) in pool.iter_mut().enumerate() {
            t.arn = format!("t{i:02}");
        }
        let mut a = Admission::new(capacity.clone());
        let mut next = 0;
        let mut submitted = Vec::new();
        let mut order: BTreeMap<String, usize> = BTreeMap::new();
        let mut last_admitted: Option<usize> = None;
        let mut released = BTreeSet::new();
        for op in ops {
            match op {
                Op::Submit if next < pool.len() => {
                    let t = &pool[next];
                    let r = Reservation::of(t);
                    let result = a.submit(t.arn.clone(), r.clone());
                    prop_assert_eq!(result.is_err(), exceeds_empty_host(&r, &capacity), "{:?}", result);
                    if let Err(e) = result {
                        prop_assert!(!e.excess.is_empty());
                        released.insert(t.arn.clone());
                    } else {
                        order.insert(t.arn.clone(), next);
                        submitted.push(t.clone());
                    }
                    next += 1;
                }
                Op::Submit => {}
                Op::Admit => {
                    for arn in a.admit() {
                        let seq = order[&arn];
                        prop_assert!(last_admitted.is_none_or(|l| l < seq), "{} admitted out of submit order", arn);
                        last_admitted = Some(seq);
                    }
                    if let Some((arn, head)) = a.waiting().next() {
                        prop_assert!(!a.fits_now(head), "{} fits yet waits", arn);
                        prop_assert!(a.waiting_reason(arn).is_some_and(|r| r.starts_with("waiting for ")));
                    }
                }
                Op::Release(i) => {
                    let held: Vec<String> =
                        a.admitted().map(|(arn, _)| arn.to_string()).chain(a.waiting().map(|(arn, _)| arn.to_string())).collect();
                    if !held.is_empty() {
                        let arn = &held[i % held.len()];
                        prop_assert!(a.release(arn));
                        prop_assert!(!a.contains(arn));
                        released.insert(arn.clone());
                    }
                }
            }
            check_state(&a)?;
        }

        // A restart: the state rebuilt from the tasks' statuses is the same.
        let stored = as_stored(&pool[..next], &a, &released);
        let (rebuilt, refused) = Admission::from_tasks(capacity.clone(), &stored);
        prop_assert!(refused.is_empty());
        prop_assert_eq!(rebuilt.admitted().collect::<Vec<_>>(), a.admitted().collect::<Vec<_>>());
        prop_assert_eq!(rebuilt.waiting().collect::<Vec<_>>(), a.waiting().collect::<Vec<_>>());
        prop_assert_eq!((rebuilt.used_cpu(), rebuilt.used_memory_mib()), (a.used_cpu(), a.used_memory_mib()));
        check_state(&rebuilt)?;

        // Nothing that fits waits forever: as the admitted release, every waiting task starts.
        let mut rounds = 0;
        while a.waiting().next().is_some() {
            prop_assert!(rounds <= pool.len(), "a task that fits the empty host never started");
            let holders: Vec<String> = a.admitted().map(|(arn, _)| arn.to_string()).collect();
            for arn in holders {
                a.release(&arn);
            }
            for arn in a.admit() {
                let seq = order[&arn];
                prop_assert!(last_admitted.is_none_or(|l| l < seq), "{} admitted out of submit order", arn);
                last_admitted = Some(seq);
            }
            check_state(&a)?;
            rounds += 1;
        }
    }

    /// A task accepted at submit starts at once on the empty host.
    #[test]
    fn an_accepted_task_starts_on_the_empty_host(capacity in capacity(), t in task()) {
        let mut a = Admission::new(capacity.clone());
        let r = Reservation::of(&t);
        match a.submit("t".into(), r.clone()) {
            Ok(queued) => {
                prop_assert!(queued);
                prop_assert_eq!(a.admit(), ["t"]);
            }
            Err(_) => prop_assert!(exceeds_empty_host(&r, &capacity)),
        }
    }
}
