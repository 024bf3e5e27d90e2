//! The gate every Docker call waits at. A call decided in a round passes it only once its
//! group commit is durable; then it waits while Docker does not answer (held, nothing lost
//! or counted as failed), while shutdown has begun (not started: durable as issued, the
//! next start makes it), and, unless it is a pull, for one of `docker_concurrency` places.
//! Only the calls in those places are tasks of their own, so a burst of thousands of calls
//! costs a queue entry each, not a task each. The engine's own calls (an inspect an event
//! asked for, an orphan's removal: [`Own`]) wait at the same gate and are classified by the
//! same executor.

use super::{Actor, Input};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::executor::{self, Job};
use crate::settings;
use crate::telemetry::EngineTelemetry;
use berth_docker::events::ContainerEvent;
use berth_docker::{VolumeConfig, labels};
use berth_model::Task;
use berth_model::container::PAUSE_IMAGE;
use berth_model::plan::{Action, Op, Outcome, VolumeAction};
use berth_model::volume::VolumeKind;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// A Docker call decided for a task: the task's arn and the operation. Its request (a
/// create's whole config, ...) is made when the call starts ([`request`]), so that the
/// calls waiting for their group commit, for Docker or for a place cost a few bytes each,
/// not a config each (thousands wait at once when thousands of tasks arrive together).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The task.
    pub task_arn: String,
    /// The operation.
    pub op: Op,
}

impl Call {
    /// Whether it is a pull (not bounded by `docker_concurrency`).
    fn is_pull(&self) -> bool {
        is_pull(&self.op)
    }
}

/// Whether `op` is a pull (not bounded by `docker_concurrency`).
pub(super) fn is_pull(op: &Op) -> bool {
    matches!(op, Op::Container { action: Action::Pull, .. })
}

/// A Docker call of the engine's own, not an operation of a task; its end comes back as
/// [`Input::OwnDone`] with the executor's outcome.
#[derive(Debug)]
pub(crate) enum Own {
    /// Inspect the container an event named (the event carried too little).
    EventInspect { task_arn: String, container: String, event: ContainerEvent },
    /// Remove a container of this instance that no task owns.
    RemoveOrphan { docker_id: String },
}

impl Own {
    fn job(&self) -> Job {
        match self {
            Own::EventInspect { event, .. } => Job::Inspect { target: Some(event.docker_id.clone()), known: true },
            Own::RemoveOrphan { docker_id } => Job::Remove { target: docker_id.clone() },
        }
    }
}

/// A call waiting at the gate.
#[derive(Debug)]
pub(super) enum Waiting {
    /// An operation of a task.
    Task(Call),
    /// One of the engine's own.
    Own(Own),
}

/// Where the Docker calls wait, and what they wait for.
#[derive(Default)]
pub(super) struct Gate {
    /// Docker answered the last time berth asked; while it does not, Docker calls wait in
    /// `held` and a connector retries.
    pub docker_up: bool,
    /// Docker calls decided while Docker did not answer, made once it does.
    pub held: Vec<Waiting>,
    /// Docker calls other than pulls waiting for one of the `docker_concurrency` places.
    queued: VecDeque<Waiting>,
    /// Docker calls other than pulls with Docker now (at most `docker_concurrency`).
    calling: usize,
    /// Shutdown has begun: no Docker call starts any more.
    pub stopping: bool,
    /// Docker calls decided but not started because shutdown had begun.
    pub not_started: usize,
}

impl Actor {
    /// Calls whose group commit is durable: held while Docker does not answer, else started.
    pub(super) fn pass_gate(&mut self, calls: Vec<Call>) {
        self.pass_gate_all(calls.into_iter().map(Waiting::Task).collect());
    }

    /// One of the engine's own calls: it waits as a task's call does.
    pub(super) fn pass_gate_own(&mut self, own: Own) {
        self.pass_gate_all(vec![Waiting::Own(own)]);
    }

    fn pass_gate_all(&mut self, calls: Vec<Waiting>) {
        if !self.gate.docker_up {
            self.gate.held.extend(calls);
            return;
        }
        self.start_calls(calls);
    }

    /// One of the engine's own calls ended: its place is free; Docker not answering holds
    /// the calls from now on (this one again among them). The rest is the caller's.
    pub(super) fn own_ended(&mut self, own: Own, outcome: Outcome) -> Option<(Own, Outcome)> {
        self.gate.calling = self.gate.calling.saturating_sub(1);
        if let Outcome::NotDone(why) = &outcome {
            self.docker_lost(why);
            self.pass_gate_own(own);
            return None;
        }
        self.call_queued();
        Some((own, outcome))
    }

    /// An orphan's removal ended.
    pub(super) fn orphan_removal_ended(&self, docker_id: &str, outcome: &Outcome) {
        let telemetry = &self.config.telemetry;
        match outcome {
            Outcome::Ok => telemetry.record(&EngineTelemetry::OrphanRemoved { docker_id }),
            Outcome::Failed(e) => {
                telemetry.record(&EngineTelemetry::OrphanRemoveFailed { docker_id, error: &e.message });
            }
            Outcome::Unknown(m) | Outcome::NotDone(m) => {
                telemetry.record(&EngineTelemetry::OrphanRemoveFailed { docker_id, error: m });
            }
            Outcome::Created(_) | Outcome::Inspected(_) => {}
        }
    }

    /// Start Docker calls, each in its own task reporting back as an input. Pulls start at
    /// once (they may take long, and calls for one image share one pull); the others queue
    /// for one of `docker_concurrency` places, so that a restart's inspects of every
    /// container or a burst of creates reach Docker a bounded number at a time.
    pub(super) fn start_calls(&mut self, calls: Vec<Waiting>) {
        if self.gate.stopping {
            // Durable as issued: the next start resumes them (inspecting first); the
            // engine's own are made again by the next start's reconciliation.
            self.gate.not_started += calls.len();
            return;
        }
        for call in calls {
            match call {
                Waiting::Task(call) if call.is_pull() => {
                    self.spawn_call(call);
                }
                call => self.gate.queued.push_back(call),
            }
        }
        self.call_queued();
    }

    /// A call other than a pull ended: its place is free.
    pub(super) fn call_ended(&mut self, op: &Op) {
        if !is_pull(op) {
            self.gate.calling = self.gate.calling.saturating_sub(1);
            self.call_queued();
        }
    }

    /// Start queued calls while places are free.
    fn call_queued(&mut self) {
        if self.gate.stopping {
            self.gate.not_started += self.gate.queued.len();
            self.gate.queued.clear();
            return;
        }
        while self.gate.calling < self.config.docker_concurrency.max(1)
            && let Some(call) = self.gate.queued.pop_front()
        {
            let started = match call {
                Waiting::Task(call) => self.spawn_call(call),
                Waiting::Own(own) => self.spawn_own(own),
            };
            if started {
                self.gate.calling += 1;
            }
        }
    }

    /// Start one of the engine's own calls.
    fn spawn_own(&self, own: Own) -> bool {
        let docker = Arc::clone(&self.docker);
        let pulls = Arc::clone(&self.pulls);
        let inputs = self.inputs_tx.clone();
        let timeouts = self.config.timeouts.clone();
        tokio::spawn(async move {
            let outcome = executor::perform(docker.as_ref(), own.job(), &timeouts, &pulls).await;
            let _ = inputs.send(Input::OwnDone { own, outcome });
        });
        true
    }

    /// Make the call's request from its task and start it; false (nothing started) when
    /// the task no longer has the container or volume.
    fn spawn_call(&self, call: Call) -> bool {
        let Call { task_arn, op } = call;
        let Some(job) = self
            .tasks
            .entries
            .get(&task_arn)
            .and_then(|e| request(e.task(), &task_arn, &op, &self.instance, &self.config))
        else {
            return false;
        };
        let docker = Arc::clone(&self.docker);
        let pulls = Arc::clone(&self.pulls);
        let inputs = self.inputs_tx.clone();
        let timeouts = self.config.timeouts.clone();
        // Not boxed: boxing the future spares tokio's moves of it (16 M of 58 M
        // instructions of memcpy in a 1,000-task run on the fake) but was slower on the
        // clock (BENCHMARKS.md, "Change detection without the fingerprint").
        tokio::spawn(async move {
            let outcome = executor::perform(docker.as_ref(), job, &timeouts, &pulls).await;
            let _ = inputs.send(Input::Done { task_arn, op, outcome });
        });
        true
    }
}

/// The Docker request of a call, made from the task as it is when the call starts (a
/// create's whole config, a stop's target: the id if known by then, else the name).
/// `None` when the task no longer has the container or volume.
fn request(task: &Task, arn: &str, op: &Op, instance: &str, config: &EngineConfig) -> Option<Job> {
    let job = match op {
        Op::Container { container, action } => {
            let c = task.container(container)?;
            let target = c.docker_id.clone().or_else(|| c.docker_name.clone());
            match *action {
                Action::Pull => Job::Pull {
                    image: c.spec.image.clone(),
                    local_only: c.spec.internal && c.spec.image == PAUSE_IMAGE,
                },
                Action::Create => Job::Create {
                    config: Box::new(settings::container_config(
                        task,
                        c,
                        instance,
                        &config.secrets,
                        &config.container_limits,
                        &config.metadata_endpoint,
                    )),
                    instance: instance.to_string(),
                    host_paths: config.host_paths.clone(),
                },
                // A restart starts the same container again.
                Action::Start | Action::Restart => Job::Start { target: target.unwrap_or_default() },
                Action::Stop { timeout_secs } => Job::Stop { target: target.unwrap_or_default(), timeout_secs },
                Action::Remove => Job::Remove { target: target.unwrap_or_default() },
                Action::Inspect => Job::Inspect { known: c.docker_id.is_some(), target },
            }
        }
        Op::Volume { volume, action } => {
            let v = task.volume(volume)?;
            let name = task.docker_volume_name(v);
            match action {
                VolumeAction::Create => {
                    let (driver, driver_opts, mut volume_labels) = match &v.kind {
                        VolumeKind::Docker(cfg) => (cfg.driver.clone(), cfg.driver_opts.clone(), cfg.labels.clone()),
                        _ => (None, BTreeMap::new(), BTreeMap::new()),
                    };
                    volume_labels.insert(labels::INSTANCE.into(), instance.into());
                    volume_labels.insert(labels::TASK_ARN.into(), arn.into());
                    Job::CreateVolume(VolumeConfig { name, driver, driver_opts, labels: volume_labels })
                }
                VolumeAction::Remove => {
                    Job::RemoveVolume { name, instance: instance.to_string(), arn: arn.to_string() }
                }
            }
        }
        Op::MarkStopped { .. } | Op::StopTask { .. } | Op::Forget => return None,
    };
    Some(job)
}

/// `call`, or a timeout error naming `what` once `limit` has passed.
pub(crate) async fn bounded<T>(
    limit: std::time::Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(EngineError::Docker(berth_docker::DockerError::new(
            berth_docker::ErrorKind::Timeout,
            what,
            "Docker",
            format!("no answer in {}s", limit.as_secs()),
        ))),
    }
}
