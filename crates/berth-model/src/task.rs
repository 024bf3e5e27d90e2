//! A task: a group of containers with one desired status, plus its identity.

use crate::container::Container;
use crate::status::{ContainerStatus, TaskStatus};
use crate::volume::Volume;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a task's containers are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Docker's default bridge (the default).
    #[default]
    Bridge,
    /// The host's network stack.
    Host,
    /// No network.
    None,
    /// One network namespace shared by the task's containers, held by a pause container.
    Awsvpc,
}

impl NetworkMode {
    /// The lower-case name used in task definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
            NetworkMode::Awsvpc => "awsvpc",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task: containers and volumes, with a desired status berth drives them to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique on the host: given (seed payload shape) or `arn:berth:task/<32 hex>`.
    pub arn: String,
    /// Task definition family.
    pub family: String,
    /// Task definition version ("1" when the input gives none).
    pub version: String,
    /// How its containers are networked.
    pub network_mode: NetworkMode,
    /// Its containers, in definition order (an internal pause container first, if any).
    pub containers: Vec<Container>,
    /// Its volumes, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// The status berth drives the task to; only rises.
    pub desired_status: TaskStatus,
    /// The status derived from its containers; only rises.
    pub known_status: TaskStatus,
    /// When `known_status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_time: Option<DateTime<Utc>>,
    /// When the first image pull of the task was issued (pulls of internal containers, whose
    /// image berth makes locally, do not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<DateTime<Utc>>,
    /// When the last of its image pulls ended, succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<DateTime<Utc>>,
    /// The highest task status already appended to the change log.
    pub sent_status: TaskStatus,
    /// Whether a state change has said that the task's desired status is STOPPED (see
    /// [`crate::event::take_changes`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_sent: bool,
    /// Why the task was stopped, when berth stopped it (essential exit, unmet dependency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Task-level CPU in units (1,024 to a vCPU), when the definition sets `cpu`: then it,
    /// not the sum over containers, is the task's CPU reservation (see [`crate::admission`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    /// Task-level memory in MiB, when the definition sets `memory`: then it, not the sum
    /// over containers, is the task's memory reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// The submitter's idempotency token (ECS RunTask's `clientToken`): while this task is
    /// held, a submission with the same token is this task, never a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Its place in the engine's submit order (the first task submitted has the lowest):
    /// waiting tasks are admitted in this order (see [`crate::admission`]). Given by the
    /// engine when it takes the task; `None` only in a record of a berth before admission,
    /// which gets one when loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<u64>,
}

/// The prefix of the arns berth generates.
pub const GENERATED_ARN_PREFIX: &str = "arn:berth:task/";

/// An arn for a task that came without one: `arn:berth:task/<32 lowercase hex>`, from 128
/// random bits the caller supplies (the model does no I/O, randomness included).
pub fn generated_arn(random: u128) -> String {
    format!("{GENERATED_ARN_PREFIX}{random:032x}")
}

/// The last `/`-separated part of an arn, by which APIs also accept it.
pub fn arn_last_part(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The Docker name of a task volume berth makes: `berth-<task id>-<hash>-<volume name>`,
/// where the hash (12 hex digits of FNV-1a over the whole arn) keeps apart two tasks whose
/// arns end alike (`.../a/x` and `.../b/x`). The executor also refuses a volume whose
/// labels name another task, which no choice of name can make safe alone.
pub fn task_volume_name(arn: &str, volume: &str) -> String {
    let hash = crate::fnv1a_64(arn.as_bytes()) >> 16;
    format!("berth-{}-{hash:012x}-{}", docker_safe(arn_last_part(arn)), docker_safe(volume))
}

/// A piece of a name berth derives for Docker (volume names, container names): every
/// character outside `[A-Za-z0-9_.-]` replaced by `-`.
pub fn docker_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' }).collect()
}

impl Task {
    /// A task with nothing done yet, desired RUNNING.
    pub fn new(arn: String, family: String, version: String, containers: Vec<Container>, volumes: Vec<Volume>) -> Task {
        Task {
            arn,
            family,
            version,
            network_mode: NetworkMode::Bridge,
            containers,
            volumes,
            desired_status: TaskStatus::Running,
            known_status: TaskStatus::None,
            known_time: None,
            pull_started_at: None,
            pull_stopped_at: None,
            sent_status: TaskStatus::None,
            stop_sent: false,
            stop_reason: None,
            cpu: None,
            memory: None,
            client_token: None,
            submitted: None,
        }
    }

    /// The container of this name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.spec.name == name)
    }

    /// The index of the container of this name.
    pub fn container_index(&self, name: &str) -> Option<usize> {
        self.containers.iter().position(|c| c.spec.name == name)
    }

    /// The volume of this name.
    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// The Docker name of a volume: for one berth makes, the name chosen when its create
    /// was issued ([`task_volume_name`]), or, in a record of an earlier berth, the older
    /// `berth-<task id>-<volume name>`; a shared volume's own name otherwise.
    pub fn docker_volume_name(&self, volume: &Volume) -> String {
        if let Some(name) = &volume.docker_name {
            name.clone()
        } else if volume.managed_by_task() {
            format!("berth-{}-{}", docker_safe(arn_last_part(&self.arn)), docker_safe(&volume.name))
        } else {
            volume.name.clone()
        }
    }

    /// A fingerprint of what a crash must remember of this task: every field of its record
    /// but the ones only memory needs (`in_flight` and `inspect_after_flight`, which a restart clears, and
    /// `needs_inspect`, which a restart sets again for every container not known STOPPED).
    /// Equal fingerprints mean saving the record again would change nothing a restart reads,
    /// so the engine skips it (a periodic resync marks every running container for an
    /// inspect, and its unchanged answers are not rewritten). The destructuring is
    /// exhaustive: a new field must be placed on one side or the other.
    pub fn record_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let Task {
            arn,
            family,
            version,
            network_mode,
            containers,
            volumes,
            desired_status,
            known_status,
            known_time,
            pull_started_at,
            pull_stopped_at,
            sent_status,
            stop_sent,
            stop_reason,
            cpu,
            memory,
            client_token,
            submitted,
        } = self;
        (arn, family, version, network_mode, desired_status, known_status, known_time, sent_status).hash(&mut h);
        (stop_sent, stop_reason, cpu, memory, client_token, submitted).hash(&mut h);
        (pull_started_at, pull_stopped_at).hash(&mut h);
        for c in containers {
            let Container {
                spec,
                desired_status,
                known_status,
                applied_status,
                applying_error,
                reason,
                known_exit_code,
                known_port_bindings,
                health,
                docker_id,
                docker_name,
                sent_status,
                has_run,
                in_flight: _,
                needs_inspect: _,
                failures,
                retry_at,
                removed,
                metadata_id,
                started_at,
                restart_count,
                pending_restart,
                inspect_after_flight: _,
            } = c;
            (&spec.name, desired_status, known_status, applied_status, reason, known_exit_code).hash(&mut h);
            applying_error.as_ref().map(|e| (&e.message, e.permanent)).hash(&mut h);
            for p in known_port_bindings {
                (p.container_port, p.host_port, &p.bind_ip, p.protocol).hash(&mut h);
            }
            (health, docker_id, docker_name, sent_status, has_run, failures, retry_at, removed).hash(&mut h);
            metadata_id.hash(&mut h);
            (started_at, restart_count, pending_restart).hash(&mut h);
        }
        for v in volumes {
            let Volume { name, kind: _, created, removed, in_flight: _, error, failures, retry_at, docker_name } = v;
            (name, created, removed, error, failures, retry_at, docker_name).hash(&mut h);
        }
        h.finish()
    }

    /// The status its containers add up to, as ECS reports it: STOPPED only once every
    /// container (internal ones included) is STOPPED, so a STOPPED task has nothing left
    /// running. Until then it is the lowest known status of its essential containers that
    /// are not STOPPED (PULLED counting as NONE; NONE when there is none): an essential
    /// container that stopped makes the task's *desired* status STOPPED (the planner's
    /// `StopTask`), not its known status.
    pub fn derived_status(&self) -> TaskStatus {
        if !self.containers.is_empty() && self.containers.iter().all(|c| c.known_status == ContainerStatus::Stopped) {
            return TaskStatus::Stopped;
        }
        self.containers
            .iter()
            .filter(|c| c.spec.essential && !c.spec.internal && c.known_status != ContainerStatus::Stopped)
            .map(|c| c.known_status.task_status())
            .min()
            .unwrap_or(TaskStatus::None)
    }

    /// Bring `known_status` up to the derived status (it never goes down); returns whether
    /// it moved.
    pub fn update_known_status(&mut self, now: DateTime<Utc>) -> bool {
        let derived = self.derived_status();
        if derived > self.known_status {
            self.known_status = derived;
            self.known_time = Some(now);
            true
        } else {
            false
        }
    }

    /// Raise the desired status (it never goes down) and pass it on to every container;
    /// returns whether it moved. A container's desired status only rises too.
    pub fn raise_desired_status(&mut self, desired: TaskStatus) -> bool {
        if desired <= self.desired_status {
            return false;
        }
        self.desired_status = desired;
        let want = desired.container_status();
        for c in &mut self.containers {
            if want > c.desired_status {
                c.desired_status = want;
            }
        }
        true
    }
}

impl Task {
    /// The same arn submitted again is an update, not a new task: only its desired statuses
    /// are taken, and only where they rise (task and per container). The containers and
    /// settings of the running task stay as they are. Returns whether anything rose.
    pub fn update_from(&mut self, incoming: &Task) -> bool {
        let mut rose = self.raise_desired_status(incoming.desired_status);
        for c in &mut self.containers {
            if let Some(new) = incoming.container(&c.spec.name)
                && new.desired_status > c.desired_status
            {
                c.desired_status = new.desired_status;
                rose = true;
            }
        }
        rose
    }
}

/// The task is at a steady state: it and every container have reached their desired status.
pub fn task_completed(task: &Task) -> bool {
    task.known_status >= task.desired_status && task.containers.iter().all(Container::reached_desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ContainerSpec;
    use crate::status::ContainerStatus;

    fn container(name: &str, essential: bool, known: ContainerStatus) -> Container {
        let mut c = Container::new(ContainerSpec {
            name: name.into(),
            image: "busybox".into(),
            essential,
            ..ContainerSpec::default()
        });
        c.known_status = known;
        c
    }

    fn task(containers: Vec<Container>) -> Task {
        Task::new("arn:berth:task/x".into(), "f".into(), "1".into(), containers, vec![])
    }

    #[test]
    fn task_volume_names_keep_apart_arns_that_end_alike_and_old_records_keep_their_names() {
        let a = task_volume_name("arn:aws:ecs:eu-west-1:1:task/a/x", "data");
        let b = task_volume_name("arn:aws:ecs:eu-west-1:1:task/b/x", "data");
        assert_ne!(a, b);
        assert!(a.starts_with("berth-x-") && a.ends_with("-data"), "{a}");
        assert_eq!(a.len(), "berth-x--data".len() + 12, "{a}");
        assert_eq!(a, task_volume_name("arn:aws:ecs:eu-west-1:1:task/a/x", "data"), "stable");

        let mut t = task(vec![]);
        t.volumes.push(Volume::new("data", crate::VolumeKind::Empty));
        assert_eq!(t.docker_volume_name(&t.volumes[0]), "berth-x-data", "a record without a name: the older one");
        t.volumes[0].docker_name = Some(task_volume_name(&t.arn, "data"));
        assert_eq!(t.docker_volume_name(&t.volumes[0]), task_volume_name(&t.arn, "data"));
        let shared = crate::VolumeKind::Docker(crate::volume::DockerVolumeConfiguration {
            scope: crate::volume::VolumeScope::Shared,
            ..Default::default()
        });
        t.volumes.push(Volume::new("pg", shared));
        assert_eq!(t.docker_volume_name(&t.volumes[1]), "pg");
    }

    #[test]
    fn derived_status_is_lowest_essential_status() {
        let t = task(vec![
            container("a", true, ContainerStatus::Running),
            container("b", true, ContainerStatus::Created),
            container("c", false, ContainerStatus::None),
        ]);
        assert_eq!(t.derived_status(), TaskStatus::Created);
    }

    #[test]
    fn pulled_essential_container_keeps_task_at_none() {
        let t =
            task(vec![container("a", true, ContainerStatus::Running), container("b", true, ContainerStatus::Pulled)]);
        assert_eq!(t.derived_status(), TaskStatus::None);
    }

    #[test]
    fn a_stopped_essential_container_does_not_stop_the_task_while_another_runs() {
        let t =
            task(vec![container("a", true, ContainerStatus::Running), container("b", true, ContainerStatus::Stopped)]);
        assert_eq!(t.derived_status(), TaskStatus::Running);
        let t =
            task(vec![container("a", false, ContainerStatus::Running), container("b", true, ContainerStatus::Stopped)]);
        assert_eq!(t.derived_status(), TaskStatus::None, "no essential left running: nothing to rise to");
    }

    #[test]
    fn the_task_is_stopped_once_every_container_is() {
        let mut t =
            task(vec![container("a", true, ContainerStatus::Stopped), container("b", false, ContainerStatus::Stopped)]);
        assert_eq!(t.derived_status(), TaskStatus::Stopped);
        let mut pause = container("~pause", true, ContainerStatus::Running);
        std::sync::Arc::make_mut(&mut pause.spec).internal = true;
        t.containers.insert(0, pause);
        assert_eq!(t.derived_status(), TaskStatus::None, "the pause container still runs");
        t.containers[0].known_status = ContainerStatus::Stopped;
        assert_eq!(t.derived_status(), TaskStatus::Stopped);
    }

    #[test]
    fn stopped_non_essential_container_does_not_stop_the_task() {
        let t =
            task(vec![container("a", true, ContainerStatus::Running), container("b", false, ContainerStatus::Stopped)]);
        assert_eq!(t.derived_status(), TaskStatus::Running);
    }

    #[test]
    fn known_status_only_rises() {
        let mut t = task(vec![container("a", true, ContainerStatus::Running)]);
        let now = Utc::now();
        assert!(t.update_known_status(now));
        assert_eq!(t.known_status, TaskStatus::Running);
        t.containers[0].known_status = ContainerStatus::Created;
        assert!(!t.update_known_status(now));
        assert_eq!(t.known_status, TaskStatus::Running);
    }

    #[test]
    fn desired_status_only_rises_and_reaches_containers() {
        let mut t = task(vec![container("a", true, ContainerStatus::None)]);
        assert!(t.raise_desired_status(TaskStatus::Stopped));
        assert_eq!(t.containers[0].desired_status, ContainerStatus::Stopped);
        assert!(!t.raise_desired_status(TaskStatus::Running));
        assert_eq!(t.desired_status, TaskStatus::Stopped);
    }

    #[test]
    fn the_same_arn_again_is_an_update_that_only_raises_desired_statuses() {
        let mut running = task(vec![container("a", true, ContainerStatus::Running)]);
        let mut again = running.clone();
        std::sync::Arc::make_mut(&mut again.containers[0].spec).image = "other".into();
        again.desired_status = TaskStatus::Created;
        assert!(!running.update_from(&again), "a lower desired status changes nothing");
        assert_eq!(running.desired_status, TaskStatus::Running);
        assert_eq!(running.containers[0].spec.image, "busybox", "settings are not replaced");
        again.raise_desired_status(TaskStatus::Stopped);
        assert!(running.update_from(&again));
        assert_eq!(running.desired_status, TaskStatus::Stopped);
        assert_eq!(running.containers[0].desired_status, ContainerStatus::Stopped);
    }

    #[test]
    fn task_completed_needs_task_and_every_container() {
        let mut t =
            task(vec![container("a", true, ContainerStatus::Running), container("b", false, ContainerStatus::Created)]);
        t.update_known_status(Utc::now());
        assert!(!task_completed(&t), "b is not RUNNING yet");
        t.containers[1].known_status = ContainerStatus::Running;
        assert!(task_completed(&t));
        t.raise_desired_status(TaskStatus::Stopped);
        assert!(!task_completed(&t));
    }

    #[test]
    fn generated_arns_and_docker_safe_names() {
        let arn = generated_arn(0xabc);
        assert_eq!(arn, "arn:berth:task/00000000000000000000000000000abc");
        assert_eq!(arn_last_part(&arn), "00000000000000000000000000000abc");
        assert_eq!(arn_last_part("plain"), "plain");
        assert_eq!(docker_safe("a b/c:d_e.f-g~"), "a-b-c-d_e.f-g-");
    }
}
