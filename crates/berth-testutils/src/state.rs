//! The fake daemon's state and the work of each call, done under one lock with no
//! `.await` inside. Plain maps of plain records: containers by creation number, with
//! indexes by id and by name, so each call costs O(log n) in the number of containers
//! (only listing walks them all); a container keeps its create request as given.

use crate::behaviour::{BehaviourFn, default_behaviour, has_health_check};
use crate::events::{Action, EventHub};
use crate::fault::{Fault, Op};
use crate::snapshot::{ContainerSnapshot, RunState};
use berth_docker::{
    Bytes, ContainerConfig, ContainerInfo, ContainerState, ContainerSummary, DockerError, ErrorKind, ImageSummary,
    LogChunk, LogOptions, LogSource, LogStream, NetworkAttachment, PortSpec, VolumeConfig,
};
use berth_model::HealthStatus;
use berth_model::container::PortBinding;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// The fake's id and name indexes: foldhash, faster than the standard SipHash.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Docker's dynamic port range (`/proc/sys/net/ipv4/ip_local_port_range` default).
const FIRST_DYNAMIC_PORT: u16 = 32768;
const LAST_DYNAMIC_PORT: u16 = 60999;

/// One fake container.
#[derive(Debug)]
pub(crate) struct Container {
    /// 64 lowercase hex characters (see [`hex_id`]). An `Arc` so that the id index holds
    /// the same string rather than a copy.
    pub id: Arc<str>,
    /// Docker's name, without the leading `/`. An `Arc` so that the name index and the
    /// call counters hold the same string rather than copies.
    pub name: Arc<str>,
    /// The create request, as given (behind an `Arc` so that a start can hand it to the
    /// behaviour function outside the lock).
    pub config: Arc<ContainerConfig>,
    /// What every event about it carries (its labels, name and image), made once at
    /// create and shared by those events.
    pub attributes: Arc<BTreeMap<String, String>>,
    pub state: RunState,
    pub exit_code: i64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub health: Option<HealthStatus>,
    /// How many stats samples were read: its network counters grow with each.
    pub stats_reads: u64,
    /// Bumped at every start: timers of an earlier run see it changed and do nothing.
    pub run: u64,
    pub times_started: u32,
    pub restarts_after_exit: u32,
    pub ports: Vec<PortBinding>,
    /// Named volumes its binds mount.
    pub volumes: Vec<String>,
    /// Everything it wrote, stdout and stderr, in order, each piece with its (fake) time.
    pub output: Vec<(DateTime<Utc>, LogChunk)>,
    /// The open `container_logs(follow)` streams; dropped (which ends them) when it stops.
    pub followers: Vec<UnboundedSender<LogChunk>>,
}

impl Container {
    pub fn snapshot(&self) -> ContainerSnapshot {
        ContainerSnapshot {
            id: self.id.to_string(),
            name: self.name.to_string(),
            image: self.config.image.clone(),
            labels: self.config.labels.clone(),
            state: self.state,
            exit_code: (self.state == RunState::Exited).then_some(self.exit_code),
            health: self.health,
            times_started: self.times_started,
            restarts_after_exit: self.restarts_after_exit,
            started_at: self.started_at,
            finished_at: self.finished_at,
            config: ContainerConfig::clone(&self.config),
        }
    }
}

/// Host ports in use, and the next dynamic one to try.
#[derive(Debug)]
struct PortPool {
    in_use: HashMap<u16, u32>,
    next: u16,
}

impl PortPool {
    fn new() -> Self {
        PortPool { in_use: HashMap::new(), next: FIRST_DYNAMIC_PORT }
    }

    fn dynamic(&mut self) -> Option<u16> {
        for _ in FIRST_DYNAMIC_PORT..=LAST_DYNAMIC_PORT {
            let port = self.next;
            self.next = if port >= LAST_DYNAMIC_PORT { FIRST_DYNAMIC_PORT } else { port + 1 };
            if !self.in_use.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }

    fn bind(&mut self, specs: &[PortSpec]) -> Option<Vec<PortBinding>> {
        let mut bound = Vec::with_capacity(specs.len());
        for spec in specs {
            let host_port = if spec.host_port != 0 {
                spec.host_port
            } else if let Some(port) = self.dynamic() {
                port
            } else {
                self.release(&bound);
                return None;
            };
            *self.in_use.entry(host_port).or_default() += 1;
            bound.push(PortBinding {
                container_port: spec.container_port,
                host_port,
                bind_ip: "0.0.0.0".into(),
                protocol: spec.protocol,
            });
        }
        Some(bound)
    }

    fn release(&mut self, bindings: &[PortBinding]) {
        for b in bindings {
            if let Some(n) = self.in_use.get_mut(&b.host_port) {
                *n -= 1;
                if *n == 0 {
                    self.in_use.remove(&b.host_port);
                }
            }
        }
    }
}

/// What a start that changed something hands back, to schedule the run's behaviour.
pub(crate) struct Started {
    pub seq: u64,
    pub run: u64,
    pub config: Arc<ContainerConfig>,
    pub behaviour: Arc<BehaviourFn>,
}

/// Everything the fake daemon knows.
pub(crate) struct State {
    /// By sequence number, so in creation order.
    containers: BTreeMap<u64, Container>,
    /// Sequence numbers by id (the container's own string).
    by_id: FastMap<Arc<str>, u64>,
    /// Sequence numbers by name (the container's own string).
    by_name: FastMap<Arc<str>, u64>,
    next_seq: u64,
    images: BTreeMap<String, ImageSummary>,
    registry: BTreeSet<String>,
    next_image: u64,
    volumes: BTreeMap<String, VolumeConfig>,
    volume_users: HashMap<String, BTreeSet<u64>>,
    ports: PortPool,
    pub events: EventHub,
    pub faults: Vec<Fault>,
    pub delays: HashMap<Op, Duration>,
    /// Operations whose calls wait until released (see `FakeDocker::hold`): each waiting
    /// call holds a receiver, a release sends.
    pub holds: HashMap<Op, tokio::sync::watch::Sender<()>>,
    /// Calls of each operation in flight now (entered, not yet answered).
    pub in_flight: HashMap<Op, usize>,
    /// The operations whose calls in flight are counted together (see
    /// `FakeDocker::track_in_flight`), and the most seen in flight at once since.
    pub tracked: BTreeSet<Op>,
    pub max_tracked: usize,
    pub unreachable: bool,
    /// Calls of each operation.
    calls: HashMap<Op, u64>,
    /// Calls of each operation by target (see [`State::count`]).
    calls_on: HashMap<Op, FastMap<Arc<str>, u64>>,
    pub exited_restarts: u64,
    pub behaviour: Arc<BehaviourFn>,
    /// The gateway of the fake `bridge` network (none until a test sets one: a fake
    /// endpoint should not depend on the host's interfaces).
    pub bridge_gateway: Option<std::net::Ipv4Addr>,
}

/// A 64-bit mix (splitmix64's finalizer, a bijection), to make ids look random while
/// staying unique and reproducible.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64 lowercase hex characters, unique per `(n, kind)` (`mix` is a bijection, so the
/// first 16 differ), looking as random as Docker's ids.
pub(crate) fn hex_id(n: u64, kind: u64) -> String {
    let seed = n ^ kind;
    format!("{:016x}{:016x}{:016x}{:016x}", mix(seed), mix(mix(seed)), mix(seed ^ 1), mix(seed ^ 2))
}

/// Docker's reference normalization, the part tests meet: `busybox` is
/// `busybox:latest`, and `docker.io/library/` is implied.
pub(crate) fn normalize_image(reference: &str) -> String {
    let r = reference
        .strip_prefix("docker.io/")
        .or_else(|| reference.strip_prefix("index.docker.io/"))
        .unwrap_or(reference);
    let r = r.strip_prefix("library/").unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || r.contains('@') { r.to_string() } else { format!("{r}:latest") }
}

/// Docker's rule for container and volume names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The named volume a bind mounts (`name:/path[:mode]`), if its source is not a path.
fn named_volume(bind: &str) -> Option<&str> {
    let (source, _) = bind.split_once(':')?;
    (!source.starts_with(['/', '.', '~']) && valid_name(source)).then_some(source)
}

/// The container a `links` or `volumes_from` entry names (`name[:alias|:ro]`).
fn referenced(entry: &str) -> &str {
    let name = entry.split(':').next().unwrap_or(entry);
    name.trim_start_matches('/')
}

fn error(kind: ErrorKind, op: Op, target: &str, message: impl Into<String>) -> DockerError {
    DockerError::new(kind, op.name(), target, message)
}

fn no_such_container(op: Op, target: &str) -> DockerError {
    error(ErrorKind::NotFound, op, target, format!("No such container: {target}"))
}

/// The first 12 hex characters of an id (`sha256:` dropped), as Docker shows ids.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

impl State {
    pub fn new() -> Self {
        State {
            containers: BTreeMap::new(),
            by_id: FastMap::default(),
            by_name: FastMap::default(),
            next_seq: 1,
            images: BTreeMap::new(),
            registry: BTreeSet::new(),
            next_image: 1,
            volumes: BTreeMap::new(),
            volume_users: HashMap::new(),
            ports: PortPool::new(),
            events: EventHub::default(),
            faults: Vec::new(),
            delays: HashMap::new(),
            holds: HashMap::new(),
            in_flight: HashMap::new(),
            tracked: BTreeSet::new(),
            max_tracked: 0,
            unreachable: false,
            calls: HashMap::new(),
            calls_on: HashMap::new(),
            exited_restarts: 0,
            behaviour: Arc::new(default_behaviour),
            bridge_gateway: None,
        }
    }

    /// The container an id or a name (with or without Docker's leading `/`) names.
    pub fn resolve(&self, target: &str) -> Option<u64> {
        self.by_id.get(target).or_else(|| self.by_name.get(target.trim_start_matches('/'))).copied()
    }

    pub fn container(&self, target: &str) -> Option<&Container> {
        self.resolve(target).and_then(|seq| self.containers.get(&seq))
    }

    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    /// How many calls of the tracked operations are in flight now.
    pub fn tracked_in_flight(&self) -> usize {
        self.tracked.iter().map(|op| self.in_flight.get(op).copied().unwrap_or(0)).sum()
    }

    /// How many calls of `op` were made.
    pub fn calls(&self, op: Op) -> u64 {
        self.calls.get(&op).copied().unwrap_or(0)
    }

    /// Count a call of `op` on `target`, in all and under its key: a container call
    /// under the container's name when it exists (whether the call named it by id or by
    /// name), else under the name given without a leading `/`; an image call under the
    /// normalized reference (the image's own when an id names a present one); any other
    /// under its target.
    pub fn count(&mut self, op: Op, target: &str) {
        *self.calls.entry(op).or_default() += 1;
        let image_key;
        // The container's own name when it exists: a new counter shares its string.
        let mut name = None;
        let key = if op.on_container() {
            let seq = self.resolve(target);
            name = seq.and_then(|seq| self.containers.get(&seq)).map(|c| &c.name);
            name.map_or_else(|| target.trim_start_matches('/'), |n| &**n)
        } else if op.on_image() {
            image_key = self.resolve_image(target).unwrap_or_else(|| normalize_image(target));
            image_key.as_str()
        } else {
            target
        };
        let by_target = self.calls_on.entry(op).or_default();
        match by_target.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                by_target.insert(name.map_or_else(|| Arc::from(key), Arc::clone), 1);
            }
        }
    }

    /// How many calls of `op` were counted on `target` (an image reference normalized).
    pub fn counted_on(&self, op: Op, target: &str) -> u64 {
        let key = if op.on_image() { normalize_image(target) } else { target.to_string() };
        self.calls_on.get(&op).and_then(|by_target| by_target.get(key.as_str())).copied().unwrap_or(0)
    }

    /// The name a container call's target stands for, for matching faults.
    pub fn target_name(&self, op: Op, target: &str) -> Option<String> {
        if op.on_container() { self.container(target).map(|c| c.name.to_string()) } else { None }
    }

    /// Record and deliver an event about container `seq`: Docker's attributes are its
    /// labels, name and image, and the action's own.
    fn publish(&mut self, seq: u64, action: Action, now: DateTime<Utc>) {
        if let Some(c) = self.containers.get(&seq) {
            let time = self.events.stamp(now);
            let event = action.event(&c.id, &c.attributes, time);
            self.events.publish(event);
        }
    }

    // --- images -------------------------------------------------------------------

    pub fn add_image(&mut self, reference: &str, now: DateTime<Utc>) {
        let reference = normalize_image(reference);
        if self.images.contains_key(&reference) {
            return;
        }
        let id = format!("sha256:{}", hex_id(self.next_image, 0x1111_1111_0000_0000));
        self.next_image += 1;
        let summary =
            ImageSummary { id, repo_tags: vec![reference.clone()], size: 4_096_000, created: now.timestamp() };
        self.images.insert(reference, summary);
    }

    pub fn add_registry_image(&mut self, reference: &str) {
        self.registry.insert(normalize_image(reference));
    }

    /// The key (normalized reference) of the image `target` names: a reference, or an id
    /// (`sha256:` and a prefix of its hex, or at least 12 hex characters of it alone) that
    /// names one image only.
    fn resolve_image(&self, target: &str) -> Option<String> {
        let normalized = normalize_image(target);
        if self.images.contains_key(&normalized) {
            return Some(normalized);
        }
        let (hex, prefixed) = match target.strip_prefix("sha256:") {
            Some(hex) => (hex, true),
            None => (target, false),
        };
        if hex.is_empty() || !(prefixed || hex.len() >= 12) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut found =
            self.images.iter().filter(|(_, i)| i.id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex)));
        let (key, _) = found.next()?;
        found.next().is_none().then(|| key.clone())
    }

    /// The id of the image `reference` names, when present.
    fn image_id(&self, reference: &str) -> Option<String> {
        self.resolve_image(reference).and_then(|key| self.images.get(&key)).map(|i| i.id.clone())
    }

    /// Drop the local copy of `reference` with no questions asked; false if it was absent.
    pub fn forget_image(&mut self, reference: &str) -> bool {
        self.resolve_image(reference).is_some_and(|key| self.images.remove(&key).is_some())
    }

    /// Docker's non-forced image removal: refused while a container (in any state) was
    /// created from the image; an absent image succeeds.
    pub fn remove_image(&mut self, target: &str) -> Result<(), DockerError> {
        let Some(key) = self.resolve_image(target) else { return Ok(()) };
        let id = self.images.get(&key).map(|i| i.id.clone()).unwrap_or_default();
        let user =
            self.containers.values().find(|c| self.resolve_image(&c.config.image).as_deref() == Some(key.as_str()));
        if let Some(c) = user {
            let by_reference = normalize_image(target) == key;
            let message = if by_reference {
                format!(
                    "conflict: unable to remove repository reference \"{target}\" (must force) - container {} is \
                     using its referenced image {}",
                    short_id(&c.id),
                    short_id(&id)
                )
            } else {
                let (forced, state) =
                    if c.state == RunState::Running { ("cannot", "running") } else { ("must", "stopped") };
                format!(
                    "conflict: unable to delete {} ({forced} be forced) - image is being used by {state} container {}",
                    short_id(&id),
                    short_id(&c.id)
                )
            };
            return Err(error(ErrorKind::Conflict, Op::RemoveImage, target, message));
        }
        self.images.remove(&key);
        Ok(())
    }

    pub fn has_image(&self, reference: &str) -> bool {
        self.resolve_image(reference).is_some()
    }

    pub fn pull(&mut self, reference: &str, now: DateTime<Utc>) -> Result<(), DockerError> {
        if self.registry.contains(&normalize_image(reference)) {
            self.add_image(reference, now);
            Ok(())
        } else {
            let repository = reference.split(['@']).next().unwrap_or(reference);
            Err(error(
                ErrorKind::Permanent,
                Op::PullImage,
                reference,
                format!("pull access denied for {repository}, repository does not exist or may require 'docker login'"),
            ))
        }
    }

    pub fn list_images(&self) -> Vec<ImageSummary> {
        self.images.values().cloned().collect()
    }

    // --- volumes ------------------------------------------------------------------

    pub fn create_volume(&mut self, config: &VolumeConfig) -> Result<(), DockerError> {
        if !valid_name(&config.name) {
            return Err(error(
                ErrorKind::Permanent,
                Op::CreateVolume,
                &config.name,
                format!("create {}: volume name is invalid", config.name),
            ));
        }
        self.volumes.entry(config.name.clone()).or_insert_with(|| config.clone());
        Ok(())
    }

    pub fn remove_volume(&mut self, name: &str) -> Result<(), DockerError> {
        if let Some(users) = self.volume_users.get(name).filter(|u| !u.is_empty()) {
            let ids: Vec<String> =
                users.iter().filter_map(|seq| self.containers.get(seq)).map(|c| c.id.to_string()).collect();
            return Err(error(
                ErrorKind::Conflict,
                Op::RemoveVolume,
                name,
                format!("remove {name}: volume is in use - [{}]", ids.join(", ")),
            ));
        }
        self.volumes.remove(name);
        Ok(())
    }

    pub fn volumes(&self) -> Vec<VolumeConfig> {
        self.volumes.values().cloned().collect()
    }

    pub fn has_volume(&self, name: &str) -> bool {
        self.volumes.contains_key(name)
    }

    // --- containers ---------------------------------------------------------------

    pub fn create(&mut self, config: &ContainerConfig, now: DateTime<Utc>) -> Result<String, DockerError> {
        let op = Op::CreateContainer;
        let seq = self.next_seq;
        // Docker accepts one leading `/` and names an unnamed container itself.
        let given = config.name.strip_prefix('/').unwrap_or(&config.name);
        let name = if given.is_empty() { format!("fake_container_{seq}") } else { given.to_string() };
        let target = name.as_str();
        if !valid_name(&name) {
            return Err(error(
                ErrorKind::Permanent,
                op,
                target,
                format!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
            ));
        }
        if let Some(other) = self.container(&name) {
            return Err(error(
                ErrorKind::Conflict,
                op,
                target,
                format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". \
                     You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                ),
            ));
        }
        if !self.has_image(&config.image) {
            let message = format!("No such image: {}", normalize_image(&config.image));
            return Err(error(ErrorKind::NotFound, op, target, message));
        }
        for link in &config.host.links {
            let other = referenced(link);
            if self.resolve(other).is_none() {
                let message = format!("could not get container for {other}: No such container: {other}");
                return Err(error(ErrorKind::NotFound, op, target, message));
            }
        }
        for source in &config.host.volumes_from {
            let other = referenced(source);
            if self.resolve(other).is_none() {
                return Err(error(ErrorKind::NotFound, op, target, format!("No such container: {other}")));
            }
        }
        if let Some(other) = config.host.network_mode.as_deref().and_then(|m| m.strip_prefix("container:"))
            && self.resolve(other).is_none()
        {
            return Err(error(ErrorKind::NotFound, op, target, format!("No such container: {other}")));
        }
        let volumes: Vec<String> = config.host.binds.iter().filter_map(|b| named_volume(b)).map(String::from).collect();
        for volume in &volumes {
            self.volumes
                .entry(volume.clone())
                .or_insert_with(|| VolumeConfig { name: volume.clone(), ..VolumeConfig::default() });
            self.volume_users.entry(volume.clone()).or_default().insert(seq);
        }
        self.next_seq += 1;
        let id: Arc<str> = Arc::from(hex_id(seq, 0));
        let name: Arc<str> = Arc::from(name);
        let container = Container {
            id: Arc::clone(&id),
            name: Arc::clone(&name),
            config: Arc::new(config.clone()),
            attributes: Arc::new(Action::attributes(&name, config)),
            state: RunState::Created,
            exit_code: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
            health: None,
            stats_reads: 0,
            run: 0,
            times_started: 0,
            restarts_after_exit: 0,
            ports: Vec::new(),
            volumes,
            output: Vec::new(),
            followers: Vec::new(),
        };
        self.containers.insert(seq, container);
        self.by_id.insert(Arc::clone(&id), seq);
        self.by_name.insert(name, seq);
        self.publish(seq, Action::Create, now);
        Ok(id.to_string())
    }

    /// Start a container; `None` when it was running already (Docker's 304).
    pub fn start(&mut self, target: &str, now: DateTime<Utc>) -> Result<Option<Started>, DockerError> {
        let op = Op::StartContainer;
        let seq = self.resolve(target).ok_or_else(|| no_such_container(op, target))?;
        let Some(c) = self.containers.get(&seq) else { return Err(no_such_container(op, target)) };
        if c.state == RunState::Running {
            return Ok(None);
        }
        for link in &c.config.host.links {
            let other = referenced(link);
            let alias = link.split_once(':').map_or(other, |(_, alias)| alias);
            if self.container(other).is_none_or(|o| o.state != RunState::Running) {
                let message = format!("Cannot link to a non running container: /{other} AS /{}/{alias}", c.name);
                return Err(error(ErrorKind::Transient, op, target, message));
            }
        }
        if let Some(other) = c.config.host.network_mode.as_deref().and_then(|m| m.strip_prefix("container:"))
            && self.container(other).is_none_or(|o| o.state != RunState::Running)
        {
            let message = format!("cannot join network of a non running container: {other}");
            return Err(error(ErrorKind::Conflict, op, target, message));
        }
        let Some(ports) = self.ports.bind(&c.config.host.ports) else {
            let message = "driver failed programming external connectivity: no available ports";
            return Err(error(ErrorKind::Transient, op, target, message));
        };
        let Some(c) = self.containers.get_mut(&seq) else { return Err(no_such_container(op, target)) };
        if c.state == RunState::Exited {
            c.restarts_after_exit += 1;
            self.exited_restarts += 1;
        }
        c.state = RunState::Running;
        c.exit_code = 0;
        c.run += 1;
        c.times_started += 1;
        c.started_at = Some(now);
        c.health = has_health_check(&c.config).then_some(HealthStatus::Unknown);
        c.ports = ports;
        let started =
            Started { seq, run: c.run, config: Arc::clone(&c.config), behaviour: Arc::clone(&self.behaviour) };
        self.publish(seq, Action::Start, now);
        Ok(Some(started))
    }

    /// A running container exits with `code` (event `die`); false if it was not running.
    pub fn exit(&mut self, seq: u64, code: i64, now: DateTime<Utc>) -> bool {
        let Some(c) = self.containers.get_mut(&seq) else { return false };
        if c.state != RunState::Running {
            return false;
        }
        c.state = RunState::Exited;
        c.exit_code = code;
        c.finished_at = Some(now);
        // Followed logs end with the run.
        c.followers.clear();
        let ports = std::mem::take(&mut c.ports);
        self.ports.release(&ports);
        self.publish(seq, Action::Die(code), now);
        true
    }

    /// A running container is killed with `signal` and exits with `code`.
    pub fn kill(&mut self, seq: u64, signal: i64, code: i64, now: DateTime<Utc>) -> bool {
        if self.containers.get(&seq).is_none_or(|c| c.state != RunState::Running) {
            return false;
        }
        self.publish(seq, Action::Kill(signal), now);
        self.exit(seq, code, now)
    }

    /// Whether `seq` is running in run number `run`.
    pub fn in_run(&self, seq: u64, run: u64) -> bool {
        self.containers.get(&seq).is_some_and(|c| c.state == RunState::Running && c.run == run)
    }

    /// A running container with a health check reports `status`.
    pub fn set_health(&mut self, seq: u64, status: HealthStatus, now: DateTime<Utc>) -> bool {
        let Some(c) = self.containers.get_mut(&seq) else { return false };
        if c.state != RunState::Running || !has_health_check(&c.config) {
            return false;
        }
        c.health = Some(status);
        self.publish(seq, Action::Health(status), now);
        true
    }

    pub fn stop(&mut self, target: &str, now: DateTime<Utc>) -> Result<(), DockerError> {
        let seq = self.resolve(target).ok_or_else(|| no_such_container(Op::StopContainer, target))?;
        if self.kill(seq, 15, 143, now) {
            self.publish(seq, Action::Stop, now);
        }
        Ok(())
    }

    pub fn remove(&mut self, target: &str, now: DateTime<Utc>) -> Result<(), DockerError> {
        let Some(seq) = self.resolve(target) else { return Ok(()) };
        self.kill(seq, 9, 137, now);
        self.publish(seq, Action::Destroy, now);
        if let Some(c) = self.containers.remove(&seq) {
            self.by_id.remove(&*c.id);
            self.by_name.remove(&*c.name);
            for volume in &c.volumes {
                if let Some(users) = self.volume_users.get_mut(volume) {
                    users.remove(&seq);
                    if users.is_empty() {
                        self.volume_users.remove(volume);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn inspect(&self, target: &str) -> Result<ContainerInfo, DockerError> {
        let c = self.container(target).ok_or_else(|| no_such_container(Op::InspectContainer, target))?;
        Ok(ContainerInfo {
            id: c.id.to_string(),
            name: c.name.to_string(),
            image: c.config.image.clone(),
            labels: c.config.labels.clone(),
            state: ContainerState {
                status: c.state.as_str().into(),
                exit_code: c.exit_code,
                started_at: c.started_at,
                finished_at: c.finished_at,
                health: c.health,
                oom_killed: false,
            },
            port_bindings: c.ports.clone(),
            image_id: self.image_id(&c.config.image).unwrap_or_default(),
            created_at: Some(c.created_at),
            networks: fake_networks(c),
        })
    }

    /// One stats sample in Docker's shape: its network counters grow by 1,000 bytes
    /// received and 500 sent at every sample of a running bridge-mode container.
    pub fn stats(&mut self, target: &str, now: DateTime<Utc>) -> Result<serde_json::Value, DockerError> {
        let seq = self.resolve(target).ok_or_else(|| no_such_container(Op::ContainerStats, target))?;
        let Some(c) = self.containers.get_mut(&seq) else { return Err(no_such_container(Op::ContainerStats, target)) };
        let running = c.state == RunState::Running;
        if running {
            c.stats_reads += 1;
        }
        let reads = c.stats_reads;
        let read = if running { now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true) } else { ZERO_TIME.into() };
        let mut sample = serde_json::json!({
            "read": read,
            "preread": ZERO_TIME,
            "id": c.id.to_string(),
            "name": format!("/{}", c.name),
            "pids_stats": {"current": u64::from(running)},
            "num_procs": 0,
            "cpu_stats": {"cpu_usage": {"total_usage": reads * 1_000_000}, "system_cpu_usage": reads * 10_000_000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 0}},
            "memory_stats": if running { serde_json::json!({"usage": 1_048_576, "limit": 2_147_483_648_u64}) } else { serde_json::json!({}) },
            "blkio_stats": {},
            "storage_stats": {},
        });
        if running && fake_networks(c).iter().any(|n| n.ipv4.is_some()) {
            sample["networks"] = serde_json::json!({"eth0": {"rx_bytes": reads * 1000, "tx_bytes": reads * 500}});
        }
        Ok(sample)
    }

    /// The gateway of a fake network: `bridge` has the one a test set, `host` and `none`
    /// none.
    pub fn network_gateway(&self, network: &str) -> Result<Option<std::net::Ipv4Addr>, DockerError> {
        match network {
            "bridge" => Ok(self.bridge_gateway),
            "host" | "none" => Ok(None),
            _ => Err(error(ErrorKind::NotFound, Op::InspectNetwork, network, format!("network {network} not found"))),
        }
    }

    /// Append output to a container (any state); false if there is no such container.
    pub fn write_output(&mut self, target: &str, source: LogSource, bytes: &[u8], now: DateTime<Utc>) -> bool {
        let Some(c) = self.resolve(target).and_then(|seq| self.containers.get_mut(&seq)) else { return false };
        if bytes.is_empty() {
            return true;
        }
        let chunk = LogChunk { source, bytes: Bytes::copy_from_slice(bytes) };
        c.followers.retain(|tx| tx.send(chunk.clone()).is_ok());
        c.output.push((now, chunk));
        true
    }

    /// The output there is (what was written `since`, its last `tail` lines); with
    /// `follow` and a running container, then the output written until it stops.
    pub fn logs(&mut self, target: &str, options: LogOptions) -> Result<LogStream, DockerError> {
        let op = Op::ContainerLogs;
        let seq = self.resolve(target).ok_or_else(|| no_such_container(op, target))?;
        let Some(c) = self.containers.get_mut(&seq) else { return Err(no_such_container(op, target)) };
        let kept = c
            .output
            .iter()
            .filter(|(at, _)| options.since.is_none_or(|since| at.timestamp() >= since))
            .map(|(_, chunk)| chunk.clone());
        let existing = stream::iter(last_lines(kept.collect(), options.tail).into_iter().map(Ok));
        if !(options.follow && c.state == RunState::Running) {
            return Ok(existing.boxed());
        }
        let (tx, rx) = unbounded_channel();
        c.followers.push(tx);
        let live = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (Ok(chunk), rx)) });
        Ok(existing.chain(live).boxed())
    }

    pub fn list(&self, labels: &[(&str, &str)]) -> Vec<ContainerSummary> {
        self.containers
            .values()
            .filter(|c| labels.iter().all(|(k, v)| c.config.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|c| ContainerSummary {
                id: c.id.to_string(),
                names: vec![c.name.to_string()],
                labels: c.config.labels.clone(),
                state: c.state.as_str().into(),
                image: c.config.image.clone(),
                image_id: self.image_id(&c.config.image).unwrap_or_default(),
            })
            .collect()
    }
}

/// Docker's zero time, which stats report for a container not running.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What inspect shows of a fake container's networks: a running container on the default
/// bridge (no network mode, or `bridge`) has an address made from its id; host mode shows
/// `host` without one; one in another's namespace shows none.
fn fake_networks(c: &Container) -> Vec<NetworkAttachment> {
    match c.config.host.network_mode.as_deref() {
        None | Some("bridge") => {
            let n = c.id.bytes().fold(0u32, |acc, b| acc.wrapping_mul(31).wrapping_add(u32::from(b))) % 60_000;
            let ipv4 = (c.state == RunState::Running).then(|| format!("172.17.{}.{}", n / 250, n % 250 + 2));
            vec![NetworkAttachment { network: "bridge".into(), ipv4, ipv6: None }]
        }
        Some("host") => vec![NetworkAttachment { network: "host".into(), ipv4: None, ipv6: None }],
        _ => Vec::new(),
    }
}

/// The last `tail` lines of `chunks` (all of them for `None`), as Docker counts: a line
/// ends at a newline, a last line without one counts too. Chunks are split at line ends.
fn last_lines(chunks: Vec<LogChunk>, tail: Option<u64>) -> Vec<LogChunk> {
    let Some(tail) = tail else { return chunks };
    let mut lines: Vec<LogChunk> = Vec::new();
    for chunk in chunks {
        let mut rest = chunk.bytes;
        while !rest.is_empty() {
            let end = rest.iter().position(|b| *b == b'\n').map_or(rest.len(), |i| i + 1);
            let piece = rest.split_to(end);
            match lines.last_mut() {
                // A line a previous chunk began: it goes on here.
                Some(last) if !last.bytes.ends_with(b"\n") && last.source == chunk.source => {
                    let mut joined = last.bytes.to_vec();
                    joined.extend_from_slice(&piece);
                    last.bytes = Bytes::from(joined);
                }
                _ => lines.push(LogChunk { source: chunk.source, bytes: piece }),
            }
        }
    }
    let skip = lines.len().saturating_sub(usize::try_from(tail).unwrap_or(usize::MAX));
    lines.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_four_mixes_in_hex_distinct_from_the_first_sixteen_characters() {
        let mut heads = BTreeSet::new();
        for n in [0, 1, 2, 41, 30_000, u64::MAX] {
            for kind in [0, 0x1111_1111_0000_0000] {
                let seed = n ^ kind;
                let id = hex_id(n, kind);
                let expected =
                    format!("{:016x}{:016x}{:016x}{:016x}", mix(seed), mix(mix(seed)), mix(seed ^ 1), mix(seed ^ 2));
                assert_eq!(id, expected);
                heads.insert(id[..16].to_string());
            }
        }
        assert_eq!(heads.len(), 12);
    }
}
