//! Docker's events of this berth's containers, as the model reads them (SPEC 4): each
//! becomes an observation of its container; one that carries too little (a start with
//! ports to read, a stop without exit code) is inspected first. The stream itself is read,
//! and reopened, by `crate::watch`.

use super::Actor;
use super::gate::Own;
use berth_docker::events::{ContainerEvent, EventKind};
use berth_docker::labels;
use berth_model::ContainerStatus;
use berth_model::plan::{Action, Feedback, Observation, Op, Outcome};
use chrono::{DateTime, Utc};

impl Actor {
    pub(super) fn observe(&mut self, arn: String, container: String, observation: Observation, now: DateTime<Utc>) {
        if let Some(entry) = self.tasks.entries.get_mut(&arn) {
            entry.apply(Feedback::Observed { container, observation }, now, &self.config.plan);
            self.tasks.dirty.insert(arn);
        }
    }

    /// A Docker event of one of this berth's containers, as the model reads it (SPEC 4).
    pub(super) fn event(&mut self, event: ContainerEvent, now: DateTime<Utc>) {
        let (Some(arn), Some(name)) = (event.labels.get(labels::TASK_ARN), event.labels.get(labels::CONTAINER_NAME))
        else {
            return;
        };
        let (arn, name) = (arn.clone(), name.clone());
        let Some(entry) = self.tasks.entries.get(&arn) else { return };
        let Some(c) = entry.task().container(&name) else { return };
        let id = Some(event.docker_id.clone());
        let stopping = c.desired_status == ContainerStatus::Stopped || c.applied_status == ContainerStatus::Stopped;
        let observation = match event.kind {
            EventKind::Created => {
                Observation { status: ContainerStatus::Created, docker_id: id, ..Observation::default() }
            }
            // Ports are read from inspect and reported with RUNNING; so is the exit code of
            // a `die` that carries none.
            EventKind::Started if !c.spec.port_mappings.is_empty() => {
                return self.inspect_then_observe(&arn, &name, event);
            }
            EventKind::Started if c.known_status == ContainerStatus::Stopped => {
                return self.stop_late_start(&arn, &name, &event.docker_id);
            }
            EventKind::Started => {
                Observation { status: ContainerStatus::Running, has_run: true, docker_id: id, ..Observation::default() }
            }
            // Docker's `stop` follows the `die` that carried the exit code: nothing to learn.
            EventKind::Stopped { exit_code: None } if c.known_status == ContainerStatus::Stopped => return,
            EventKind::Stopped { exit_code: None } => return self.inspect_then_observe(&arn, &name, event),
            EventKind::Stopped { exit_code } => Observation {
                status: ContainerStatus::Stopped,
                exit_code,
                has_run: true,
                docker_id: id,
                ..Observation::default()
            },
            EventKind::Health(h) => Observation { health: Some(h), ..Observation::default() },
            EventKind::Killed { .. } if stopping => return,
            EventKind::Killed { signal } => Observation {
                reason: Some(match signal {
                    Some(s) => format!("killed by signal {s} outside berth"),
                    None => "killed outside berth".into(),
                }),
                ..Observation::default()
            },
            EventKind::OutOfMemory => {
                Observation { reason: Some("out of memory (OOM killed)".into()), ..Observation::default() }
            }
            EventKind::Destroyed => Observation {
                status: ContainerStatus::Stopped,
                removed: true,
                reason: (c.known_status < ContainerStatus::Stopped).then(|| "removed outside berth".to_string()),
                ..Observation::default()
            },
        };
        self.observe(arn, name, observation, now);
    }

    /// Docker runs a container berth knows STOPPED: a start sent by a berth killed since (or
    /// whose answer was lost) that Docker did only after berth looked. Nothing of berth's
    /// runs once berth holds it stopped: it is stopped again (its status stays STOPPED, and
    /// no change is told); once its call in flight ends, if one is.
    pub(super) fn stop_late_start(&mut self, arn: &str, name: &str, docker_id: &str) {
        let Some(c) = self.tasks.entries.get(arn).and_then(|e| e.task().container(name)) else { return };
        // Even one berth holds removed: Docker has just started it.
        if c.known_status != ContainerStatus::Stopped || c.docker_id.as_deref() != Some(docker_id) {
            return;
        }
        if c.in_flight {
            self.reconcile.late_starts.insert((arn.to_string(), name.to_string()), docker_id.to_string());
            return;
        }
        let timeout_secs = c.stop_timeout(self.config.plan.default_stop_timeout_secs);
        self.direct
            .push(super::Call { task_arn: arn.to_string(), op: Op::container(name, Action::Stop { timeout_secs }) });
    }

    /// Inspect first, at the gate as every Docker call (after shutdown began none starts:
    /// the next start inspects every container it cannot be sure of).
    fn inspect_then_observe(&mut self, arn: &str, name: &str, event: ContainerEvent) {
        self.pass_gate_own(Own::EventInspect { task_arn: arn.to_string(), container: name.to_string(), event });
    }
}

/// What an event's inspect says; when it failed, what the event itself says.
pub(super) fn inspected(event: ContainerEvent, outcome: Outcome) -> Observation {
    match outcome {
        Outcome::Inspected(o) => o,
        _ => match event.kind {
            EventKind::Started => Observation {
                status: ContainerStatus::Running,
                has_run: true,
                docker_id: Some(event.docker_id),
                ..Observation::default()
            },
            _ => Observation { status: ContainerStatus::Stopped, has_run: true, ..Observation::default() },
        },
    }
}
