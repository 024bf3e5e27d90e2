//! Host resource accounting: what a task reserves on the host, what the host has, and which
//! waiting tasks start now. Pure: no I/O, no clock; the engine reads the machine's capacity
//! and calls [`Admission`] as tasks arrive and stop (engine integration pending).
//!
//! The rules follow the ECS agent's host resource manager (2023), which is what an ECS user
//! expects of one host:
//!
//! - **A task's reservation** ([`Reservation::of`]): CPU is the task-level `cpu` when the
//!   definition sets it, else the sum of its containers' `cpu` (a container without one
//!   counts 0). Memory is the task-level `memory` when set, else the sum over containers of
//!   `memoryReservation` when set, else `memory` (a container with neither counts 0, as in
//!   the agent; ECS's control plane asks for one of them, berth does not). Host ports: the
//!   static ones (`hostPort` not 0), each with its protocol; in host network mode a mapping
//!   without `hostPort` takes its `containerPort` on the host, which is what it binds there.
//!   `none` mode publishes nothing. berth's awsvpc publishes the task's mappings on the host
//!   (from the pause container), so its static host ports count too (ECS's do not: they are
//!   on the task's own network interface).
//! - **The host's capacity** ([`HostCapacity::new`]): CPU units (1,024 per core) and memory
//!   MiB less a configured reserve, and host ports already taken (the reserve's ports; ECS
//!   reserves 22, 2375, 2376, 51678 and 51679 by default).
//! - **Strict FIFO**, as the agent's `monitorQueuedTasks`: waiting tasks are considered in
//!   submit order, and the first one that does not fit stops the scan; no task behind it
//!   starts, even one that would fit. A large task is thus never starved by small ones
//!   overtaking it, at the cost of idle capacity while it waits.
//! - **Refused at submit** ([`never_fits`]): a task that would not fit even on the empty
//!   host (more CPU or memory than the capacity, or a static host port the host reserves),
//!   since under strict FIFO it would block every task behind it forever.
//! - **Released** ([`Admission::release`]) once every container of the task has stopped
//!   ([`Standing::Done`]); a waiting task whose desired status becomes STOPPED leaves the
//!   queue without ever consuming (the agent does the same).
//! - **After a restart** ([`Admission::from_tasks`]): a task that has begun (a container
//!   created or being created) and is not done holds its reservation again at once, even
//!   if the capacity shrank meanwhile; a task that has not begun waits again, in the order
//!   given (the caller passes tasks in submit order). The agent's `reconcileHostResources`
//!   does the same.

use crate::container::Protocol;
use crate::status::{ContainerStatus, TaskStatus};
use crate::task::{NetworkMode, Task};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;

/// A static host port and its protocol (8080/tcp and 8080/udp are different ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// The port number on the host.
    pub port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol.as_str())
    }
}

/// What a task holds on the host while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reservation {
    /// CPU units (1,024 per core).
    pub cpu: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Static host ports, sorted, without duplicates.
    pub ports: Vec<HostPort>,
}

impl Reservation {
    /// The reservation of `task` by ECS's rules (see the module docs).
    pub fn of(task: &Task) -> Reservation {
        let cpu = task
            .cpu
            .filter(|&c| c > 0)
            .unwrap_or_else(|| task.containers.iter().fold(0_u64, |sum, c| sum.saturating_add(c.spec.cpu)));
        let memory_mib = task.memory.filter(|&m| m > 0).unwrap_or_else(|| {
            task.containers
                .iter()
                .fold(0_u64, |sum, c| sum.saturating_add(c.spec.memory_reservation.or(c.spec.memory).unwrap_or(0)))
        });
        let mut ports = BTreeSet::new();
        if task.network_mode != NetworkMode::None {
            for mapping in task.containers.iter().flat_map(|c| c.spec.port_mappings.iter()) {
                let port = match (mapping.host_port, task.network_mode) {
                    (0, NetworkMode::Host) => mapping.container_port,
                    (port, _) => port,
                };
                if port != 0 {
                    ports.insert(HostPort { port, protocol: mapping.protocol });
                }
            }
        }
        Reservation { cpu, memory_mib, ports: ports.into_iter().collect() }
    }
}

/// What the host offers tasks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCapacity {
    /// CPU units tasks may reserve.
    pub cpu: u64,
    /// Memory MiB tasks may reserve.
    pub memory_mib: u64,
    /// Host ports no task may take.
    pub reserved_ports: BTreeSet<HostPort>,
}

/// What the host keeps for itself (ECS: `ECS_RESERVED_MEMORY`, `ECS_RESERVED_PORTS`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reserve {
    /// CPU units kept back.
    pub cpu: u64,
    /// Memory MiB kept back.
    pub memory_mib: u64,
    /// Host ports kept back.
    pub ports: Vec<HostPort>,
}

impl HostCapacity {
    /// The capacity of a host of `cpu_units` and `memory_mib`, less `reserve` (never below 0).
    pub fn new(cpu_units: u64, memory_mib: u64, reserve: &Reserve) -> HostCapacity {
        HostCapacity {
            cpu: cpu_units.saturating_sub(reserve.cpu),
            memory_mib: memory_mib.saturating_sub(reserve.memory_mib),
            reserved_ports: reserve.ports.iter().copied().collect(),
        }
    }
}

/// One way a task exceeds even the empty host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Excess {
    /// More CPU units than the host has.
    Cpu {
        /// What the task reserves.
        needed: u64,
        /// What the host has.
        capacity: u64,
    },
    /// More memory than the host has.
    Memory {
        /// What the task reserves, MiB.
        needed: u64,
        /// What the host has, MiB.
        capacity: u64,
    },
    /// A static host port the host reserves.
    Port(HostPort),
}

impl fmt::Display for Excess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Excess::Cpu { needed, capacity } => {
                write!(f, "it reserves {needed} CPU units and the host has {capacity}")
            }
            Excess::Memory { needed, capacity } => {
                write!(f, "it reserves {needed} MiB of memory and the host has {capacity} MiB")
            }
            Excess::Port(port) => write!(f, "host port {port} is reserved on this host"),
        }
    }
}

/// A task that can never start on this host: refused at submit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the task can never fit on this host: {}", .excess.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct NeverFits {
    /// Every way it exceeds the empty host (at least one).
    pub excess: Vec<Excess>,
}

/// Whether `reservation` exceeds the empty host: `Err` names everything that does.
pub fn never_fits(reservation: &Reservation, capacity: &HostCapacity) -> Result<(), NeverFits> {
    let mut excess = Vec::new();
    if reservation.cpu > capacity.cpu {
        excess.push(Excess::Cpu { needed: reservation.cpu, capacity: capacity.cpu });
    }
    if reservation.memory_mib > capacity.memory_mib {
        excess.push(Excess::Memory { needed: reservation.memory_mib, capacity: capacity.memory_mib });
    }
    excess.extend(reservation.ports.iter().filter(|p| capacity.reserved_ports.contains(p)).map(|&p| Excess::Port(p)));
    if excess.is_empty() { Ok(()) } else { Err(NeverFits { excess }) }
}

/// Where a task stands for admission, from its statuses alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Nothing of it has begun and it is still wanted: it waits for admission.
    Waiting,
    /// A container has begun and the task is not done: it holds its reservation.
    Holding,
    /// It is stopping or stopped and none of its containers is live (or it never began):
    /// it holds nothing.
    Done,
}

/// A container has begun: berth has issued its create (or more), or Docker has it. A pull
/// alone is not a beginning: images may be pulled before a task is admitted.
fn begun(c: &crate::Container) -> bool {
    c.applied_status >= ContainerStatus::Created || c.known_status >= ContainerStatus::Created || c.docker_id.is_some()
}

/// Where `task` stands (see [`Standing`]). The engine releases a task's reservation when
/// this becomes [`Standing::Done`], that is once every container that began has stopped.
pub fn standing(task: &Task) -> Standing {
    let ending = task.desired_status == TaskStatus::Stopped || task.known_status == TaskStatus::Stopped;
    let live = task.containers.iter().any(|c| begun(c) && c.known_status != ContainerStatus::Stopped);
    if ending && !live {
        Standing::Done
    } else if task.containers.iter().any(begun) {
        Standing::Holding
    } else {
        Standing::Waiting
    }
}

/// The admission state: what the admitted tasks hold and who waits, in submit order.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    capacity: HostCapacity,
    used_cpu: u64,
    used_memory_mib: u64,
    /// Ports held by admitted tasks, with how many hold each (more than one only after a
    /// restart that found two tasks already holding one).
    used_ports: BTreeMap<HostPort, u32>,
    admitted: BTreeMap<String, Reservation>,
    waiting: VecDeque<(String, Reservation)>,
    /// The arns of `waiting`, so that a submit need not scan the queue.
    waiting_arns: HashSet<String>,
}

impl Admission {
    /// An empty host of this capacity.
    pub fn new(capacity: HostCapacity) -> Admission {
        Admission { capacity, ..Admission::default() }
    }

    /// The state after a restart, from the tasks held, in submit order (see the module
    /// docs): tasks that have begun hold again, tasks not begun wait again. A waiting task
    /// that can no longer fit (the capacity shrank) is left out and returned with why, for
    /// the engine to stop it. Nothing is admitted yet: call [`Admission::admit`].
    pub fn from_tasks<'a>(
        capacity: HostCapacity,
        tasks: impl IntoIterator<Item = &'a Task>,
    ) -> (Admission, Vec<(String, NeverFits)>) {
        let mut admission = Admission::new(capacity);
        let mut refused = Vec::new();
        for task in tasks {
            if admission.contains(&task.arn) {
                continue;
            }
            let reservation = Reservation::of(task);
            match standing(task) {
                Standing::Done => {}
                Standing::Holding => admission.consume(task.arn.clone(), reservation),
                Standing::Waiting => {
                    if let Err(e) = admission.submit(task.arn.clone(), reservation) {
                        refused.push((task.arn.clone(), e));
                    }
                }
            }
        }
        (admission, refused)
    }

    /// The host's capacity.
    pub fn capacity(&self) -> &HostCapacity {
        &self.capacity
    }

    /// CPU units held by admitted tasks.
    pub fn used_cpu(&self) -> u64 {
        self.used_cpu
    }

    /// Memory MiB held by admitted tasks.
    pub fn used_memory_mib(&self) -> u64 {
        self.used_memory_mib
    }

    /// Host ports held by admitted tasks.
    pub fn used_ports(&self) -> impl Iterator<Item = HostPort> + '_ {
        self.used_ports.keys().copied()
    }

    /// The task is admitted or waiting.
    pub fn contains(&self, arn: &str) -> bool {
        self.admitted.contains_key(arn) || self.waiting_arns.contains(arn)
    }

    /// The task is admitted (holds its reservation).
    pub fn is_admitted(&self, arn: &str) -> bool {
        self.admitted.contains_key(arn)
    }

    /// The admitted tasks and their reservations, by arn.
    pub fn admitted(&self) -> impl Iterator<Item = (&str, &Reservation)> {
        self.admitted.iter().map(|(a, r)| (a.as_str(), r))
    }

    /// The waiting tasks, first in line first.
    pub fn waiting(&self) -> impl Iterator<Item = (&str, &Reservation)> {
        self.waiting.iter().map(|(a, r)| (a.as_str(), r))
    }

    /// Queue a task at the back, unless it can never fit (refused) or is already here
    /// (nothing changes). Returns whether it was queued.
    pub fn submit(&mut self, arn: String, reservation: Reservation) -> Result<bool, NeverFits> {
        never_fits(&reservation, &self.capacity)?;
        if self.contains(&arn) {
            return Ok(false);
        }
        self.waiting_arns.insert(arn.clone());
        self.waiting.push_back((arn, reservation));
        Ok(true)
    }

    /// Whether `reservation` fits beside what is held now.
    pub fn fits_now(&self, reservation: &Reservation) -> bool {
        self.used_cpu.saturating_add(reservation.cpu) <= self.capacity.cpu
            && self.used_memory_mib.saturating_add(reservation.memory_mib) <= self.capacity.memory_mib
            && reservation
                .ports
                .iter()
                .all(|p| !self.used_ports.contains_key(p) && !self.capacity.reserved_ports.contains(p))
    }

    /// Admit waiting tasks in submit order while the first in line fits; returns their
    /// arns, in order. Strict FIFO: the first that does not fit stops the scan.
    pub fn admit(&mut self) -> Vec<String> {
        let mut started = Vec::new();
        while let Some((_, head)) = self.waiting.front() {
            if !self.fits_now(head) {
                break;
            }
            if let Some((arn, reservation)) = self.waiting.pop_front() {
                self.waiting_arns.remove(&arn);
                started.push(arn.clone());
                self.consume(arn, reservation);
            }
        }
        started
    }

    /// Hold `reservation` for `arn` (no check: [`Admission::admit`] checks first, a restart
    /// restores what was already held).
    fn consume(&mut self, arn: String, reservation: Reservation) {
        self.used_cpu = self.used_cpu.saturating_add(reservation.cpu);
        self.used_memory_mib = self.used_memory_mib.saturating_add(reservation.memory_mib);
        for &p in &reservation.ports {
            *self.used_ports.entry(p).or_insert(0) += 1;
        }
        self.admitted.insert(arn, reservation);
    }

    /// The task no longer needs the host: an admitted task's reservation is freed (call it
    /// once all its containers have stopped), a waiting task leaves the queue (its desired
    /// status became STOPPED). Returns whether anything changed. Call
    /// [`Admission::admit`] after.
    pub fn release(&mut self, arn: &str) -> bool {
        if let Some(r) = self.admitted.remove(arn) {
            self.used_cpu = self.used_cpu.saturating_sub(r.cpu);
            self.used_memory_mib = self.used_memory_mib.saturating_sub(r.memory_mib);
            for p in &r.ports {
                if let Some(n) = self.used_ports.get_mut(p) {
                    *n -= 1;
                    if *n == 0 {
                        self.used_ports.remove(p);
                    }
                }
            }
            return true;
        }
        if !self.waiting_arns.remove(arn) {
            return false;
        }
        self.waiting.retain(|(a, _)| a != arn);
        true
    }

    /// Why a waiting task waits, for `berth ps` and the task's API view: what it lacks now
    /// and how many tasks are ahead of it ("waiting for 512 MiB of memory: 256 free of
    /// 1024, 2 tasks ahead"). `None` when the task is not waiting.
    pub fn waiting_reason(&self, arn: &str) -> Option<String> {
        let ahead = self.waiting.iter().position(|(a, _)| a == arn)?;
        let r = &self.waiting[ahead].1;
        let mut lacks = Vec::new();
        let free_cpu = self.capacity.cpu.saturating_sub(self.used_cpu);
        if r.cpu > free_cpu {
            lacks.push(format!("{} CPU units: {free_cpu} free of {}", r.cpu, self.capacity.cpu));
        }
        let free_memory = self.capacity.memory_mib.saturating_sub(self.used_memory_mib);
        if r.memory_mib > free_memory {
            lacks.push(format!("{} MiB of memory: {free_memory} free of {}", r.memory_mib, self.capacity.memory_mib));
        }
        let busy: Vec<String> =
            r.ports.iter().filter(|p| self.used_ports.contains_key(p)).map(ToString::to_string).collect();
        if !busy.is_empty() {
            let s = if busy.len() == 1 { "" } else { "s" };
            lacks.push(format!("host port{s} {} held by another task", busy.join(", ")));
        }
        let what = if lacks.is_empty() { "the tasks ahead of it to start".to_string() } else { lacks.join("; ") };
        Some(match ahead {
            0 => format!("waiting for {what}"),
            1 => format!("waiting for {what}, 1 task ahead"),
            n => format!("waiting for {what}, {n} tasks ahead"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Container;
    use crate::container::{ContainerSpec, PortMapping};
    use crate::input::{ParseOptions, parse};

    fn tcp(port: u16) -> HostPort {
        HostPort { port, protocol: Protocol::Tcp }
    }

    fn reservation(cpu: u64, memory_mib: u64, ports: &[u16]) -> Reservation {
        let ports: BTreeSet<HostPort> = ports.iter().map(|&p| tcp(p)).collect();
        Reservation { cpu, memory_mib, ports: ports.into_iter().collect() }
    }

    /// A file of the shared corpus, parsed.
    fn corpus(name: &str) -> Task {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/ecs-taskdefs").join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let opts = ParseOptions { family: Some("corpus".into()), arn_random: 1 };
        parse(&bytes, &opts).unwrap_or_else(|r| panic!("{name}: {:?}", r.errors)).task
    }

    #[test]
    fn reservations_of_real_task_definitions() {
        // Two containers of cpu 10, memory 500; one publishes 80 on the host.
        assert_eq!(Reservation::of(&corpus("01-ecs-demo-php-simple-app.json")), reservation(20, 1000, &[80]));
        // Six containers of cpu 0 and memory 8: 0 CPU counts 0.
        assert_eq!(Reservation::of(&corpus("02-agent-network-link-2-2015.json")), reservation(0, 48, &[]));
        // memoryReservation (64) wins over memory (256); host mode without port mappings.
        assert_eq!(Reservation::of(&corpus("05-consul-server-host-network.json")), reservation(128, 64, &[]));
        // Task-level "256"/"512" win over the container's 256/256; awsvpc port 80 without a
        // hostPort is not static.
        assert_eq!(Reservation::of(&corpus("06-nginx-fargate.json")), reservation(256, 512, &[]));
        // No cpu anywhere counts 0; memory 50.
        assert_eq!(Reservation::of(&corpus("14-agent-nginx-awsvpc-portbindings.json")), reservation(0, 50, &[]));
        // Containers with neither cpu nor memory, task-level 256/256.
        assert_eq!(Reservation::of(&corpus("23-cwagent-statsd-sidecar-bridge.json")), reservation(256, 256, &[]));
    }

    fn task(mode: NetworkMode, specs: Vec<ContainerSpec>) -> Task {
        let mut t = Task::new(
            "arn:berth:task/t".into(),
            "f".into(),
            "1".into(),
            specs.into_iter().map(Container::new).collect(),
            vec![],
        );
        t.network_mode = mode;
        t
    }

    fn with_ports(ports: &[(u16, u16, Protocol)]) -> ContainerSpec {
        ContainerSpec {
            name: "a".into(),
            image: "busybox".into(),
            port_mappings: ports
                .iter()
                .map(|&(container_port, host_port, protocol)| PortMapping { container_port, host_port, protocol })
                .collect(),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn static_host_ports_per_network_mode() {
        let udp = |port| HostPort { port, protocol: Protocol::Udp };
        let spec = with_ports(&[(80, 0, Protocol::Tcp), (53, 5353, Protocol::Udp), (81, 8081, Protocol::Tcp)]);
        let again = ContainerSpec { name: "b".into(), ..with_ports(&[(53, 5353, Protocol::Udp)]) };
        let ports = |mode| Reservation::of(&task(mode, vec![spec.clone(), again.clone()])).ports;
        assert_eq!(ports(NetworkMode::Bridge), [udp(5353), tcp(8081)], "dynamic 80 is not static; duplicates once");
        assert_eq!(ports(NetworkMode::Awsvpc), [udp(5353), tcp(8081)]);
        assert_eq!(ports(NetworkMode::Host), [tcp(80), udp(5353), tcp(8081)], "host mode binds the container port");
        assert_eq!(ports(NetworkMode::None), []);
    }

    #[test]
    fn memory_reservation_before_memory_and_task_level_first() {
        let c = |cpu, memory, memory_reservation| ContainerSpec {
            name: format!("c{cpu}"),
            image: "busybox".into(),
            cpu,
            memory,
            memory_reservation,
            ..ContainerSpec::default()
        };
        let mut t = task(NetworkMode::Bridge, vec![c(1, Some(100), Some(30)), c(2, Some(70), None), c(3, None, None)]);
        assert_eq!(Reservation::of(&t), reservation(6, 100, &[]));
        t.cpu = Some(1024);
        t.memory = Some(2048);
        assert_eq!(Reservation::of(&t), reservation(1024, 2048, &[]));
    }

    #[test]
    fn capacity_is_the_machine_less_the_reserve() {
        let reserve = Reserve { cpu: 512, memory_mib: 256, ports: vec![tcp(22), tcp(22)] };
        let c = HostCapacity::new(2048, 4096, &reserve);
        assert_eq!((c.cpu, c.memory_mib, c.reserved_ports.len()), (1536, 3840, 1));
        assert_eq!(HostCapacity::new(100, 100, &reserve).cpu, 0, "never below 0");
    }

    #[test]
    fn never_fits_names_everything_that_exceeds_the_empty_host() {
        let capacity = HostCapacity::new(1024, 512, &Reserve { ports: vec![tcp(22)], ..Reserve::default() });
        assert_eq!(never_fits(&reservation(1024, 512, &[80]), &capacity), Ok(()));
        let e = never_fits(&reservation(2048, 513, &[22, 80]), &capacity).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the task can never fit on this host: it reserves 2048 CPU units and the host has 1024; \
             it reserves 513 MiB of memory and the host has 512 MiB; host port 22/tcp is reserved on this host"
        );
        let mut a = Admission::new(capacity);
        assert_eq!(
            a.submit("big".into(), reservation(0, 513, &[])),
            Err(NeverFits { excess: vec![Excess::Memory { needed: 513, capacity: 512 }] })
        );
        assert!(!a.contains("big"));
    }

    #[test]
    fn strict_fifo_a_task_that_does_not_fit_blocks_those_behind_it() {
        let mut a = Admission::new(HostCapacity::new(1024, 1024, &Reserve::default()));
        for (arn, r) in
            [("a", reservation(0, 768, &[80])), ("b", reservation(0, 512, &[])), ("c", reservation(0, 0, &[]))]
        {
            assert_eq!(a.submit(arn.into(), r), Ok(true));
        }
        assert_eq!(a.submit("a".into(), reservation(0, 1, &[])), Ok(false), "already here");
        assert_eq!(a.admit(), ["a"]);
        assert_eq!(a.waiting_reason("b").as_deref(), Some("waiting for 512 MiB of memory: 256 free of 1024"));
        assert_eq!(a.waiting_reason("c").as_deref(), Some("waiting for the tasks ahead of it to start, 1 task ahead"));
        assert_eq!(a.waiting_reason("a"), None, "admitted");
        assert!(a.admit().is_empty(), "c would fit but b is first");
        assert!(a.release("a"));
        assert!(!a.release("a"), "only once");
        assert_eq!(a.admit(), ["b", "c"]);
        assert_eq!((a.used_cpu(), a.used_memory_mib()), (0, 512));
    }

    #[test]
    fn the_reason_names_what_is_missing_and_how_many_are_ahead() {
        let mut a = Admission::new(HostCapacity::new(2048, 1024, &Reserve::default()));
        a.submit("holder".into(), reservation(1536, 768, &[])).unwrap();
        assert_eq!(a.admit(), ["holder"]);
        for arn in ["x", "y"] {
            a.submit(arn.into(), reservation(1024, 100, &[])).unwrap();
        }
        a.submit("z".into(), reservation(0, 512, &[])).unwrap();
        assert!(a.admit().is_empty());
        assert_eq!(a.waiting_reason("x").as_deref(), Some("waiting for 1024 CPU units: 512 free of 2048"));
        assert_eq!(
            a.waiting_reason("z").as_deref(),
            Some("waiting for 512 MiB of memory: 256 free of 1024, 2 tasks ahead")
        );
        assert_eq!(a.waiting_reason("holder"), None);
        assert_eq!(a.waiting_reason("unknown"), None);
    }

    #[test]
    fn a_busy_port_waits_and_a_withdrawn_task_leaves_the_queue() {
        let mut a = Admission::new(HostCapacity::new(4096, 4096, &Reserve::default()));
        a.submit("a".into(), reservation(100, 100, &[80, 81])).unwrap();
        a.submit("b".into(), reservation(100, 100, &[81, 80])).unwrap();
        a.submit("c".into(), reservation(5000, 100, &[])).unwrap_err();
        a.submit("d".into(), reservation(100, 100, &[])).unwrap();
        assert_eq!(a.admit(), ["a"]);
        assert_eq!(
            a.waiting_reason("b").as_deref(),
            Some("waiting for host ports 80/tcp, 81/tcp held by another task")
        );
        assert!(a.release("b"), "withdrawn before it began");
        assert_eq!(a.admit(), ["d"]);
        assert_eq!(a.used_ports().collect::<Vec<_>>(), [tcp(80), tcp(81)]);
    }

    #[test]
    fn standing_from_statuses() {
        let mut t =
            task(NetworkMode::Bridge, vec![with_ports(&[]), ContainerSpec { name: "b".into(), ..with_ports(&[]) }]);
        assert_eq!(standing(&t), Standing::Waiting);
        t.containers[0].known_status = ContainerStatus::Pulled;
        assert_eq!(standing(&t), Standing::Waiting, "a pull is not a beginning");
        t.containers[0].applied_status = ContainerStatus::Created;
        assert_eq!(standing(&t), Standing::Holding, "create issued");
        t.containers[0].known_status = ContainerStatus::Stopped;
        assert_eq!(standing(&t), Standing::Holding, "b may still start");
        t.raise_desired_status(TaskStatus::Stopped);
        assert_eq!(standing(&t), Standing::Done, "stopping, nothing live");
        t.containers[1].known_status = ContainerStatus::Running;
        assert_eq!(standing(&t), Standing::Holding, "b still runs");
        let mut never = task(NetworkMode::Bridge, vec![with_ports(&[])]);
        never.raise_desired_status(TaskStatus::Stopped);
        assert_eq!(standing(&never), Standing::Done, "stopped before it began");
    }

    #[test]
    fn a_restart_restores_holders_and_queues_the_rest_in_order() {
        let small = |arn: &str, memory| {
            let mut t = task(
                NetworkMode::Bridge,
                vec![ContainerSpec { memory: Some(memory), ..with_ports(&[(80, 8080, Protocol::Tcp)]) }],
            );
            t.arn = arn.into();
            t
        };
        let mut running = small("running", 600);
        running.containers[0].known_status = ContainerStatus::Running;
        let mut done = small("done", 100);
        done.containers[0].known_status = ContainerStatus::Stopped;
        done.containers[0].applied_status = ContainerStatus::Stopped;
        done.raise_desired_status(TaskStatus::Stopped);
        let first = small("first", 300);
        let huge = small("huge", 5000);
        let second = small("second", 100);
        let capacity = HostCapacity::new(1024, 1024, &Reserve::default());
        let (mut a, refused) = Admission::from_tasks(capacity, [&running, &done, &first, &huge, &second, &first]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, "huge");
        assert!(a.is_admitted("running") && !a.contains("done"));
        assert_eq!(a.waiting().map(|(arn, _)| arn).collect::<Vec<_>>(), ["first", "second"]);
        assert!(a.admit().is_empty(), "8080/tcp is held by the running task");
        assert_eq!(
            a.waiting_reason("second").as_deref(),
            Some("waiting for host port 8080/tcp held by another task, 1 task ahead")
        );
        assert!(a.release("running"));
        assert_eq!(a.admit(), ["first"]);
    }
}
