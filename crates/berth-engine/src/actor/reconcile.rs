//! Reconciliation (SPEC 6): making the state agree with Docker's containers when Docker
//! answers for the first time or again. Resuming the loaded tasks is the task table's
//! (`TaskTable::load`); here: reaching Docker (a connector retrying with backoff on the
//! engine's clock), matching the listed containers to the tasks, inspecting what berth
//! cannot be sure of, and removing the containers of this berth that no task owns once the
//! orphan grace period has passed on the engine's clock.

use super::gate::Own;
use super::{Actor, Input, Map, Set};
use crate::clock::{self, Backoff, Clock};
use crate::error::EngineError;
use crate::telemetry::{EngineTelemetry, Telemetry};
use berth_docker::{ContainerSummary, DockerClient, labels};
use berth_model::{Container, ContainerStatus};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// First and longest wait between attempts to reach Docker.
const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// How long after an inspect that did not find a container the listing showed it is made
/// again (Docker lists a container a few milliseconds before it can be inspected).
pub(super) const LISTED_INSPECT_AGAIN: Duration = Duration::from_millis(250);

/// Where reconciliation stands.
#[derive(Default)]
pub(super) struct Reconciliation {
    /// A connector is trying to reach Docker.
    connecting: bool,
    /// Docker has answered at least once since this loop began.
    connected_before: bool,
    /// Containers (task arn, container name) whose first inspect since (re)connecting has
    /// not answered yet, with the reason to give if it finds the container gone.
    pub pending: Map<(String, String), &'static str>,
    /// Of those, the ones the listing showed: their inspect not finding them is not yet
    /// their vanishing.
    pub listed: Set<(String, String)>,
    /// Late starts (task arn, container name) → Docker id seen while a call of that
    /// container was in flight: stopped once it ends.
    pub late_starts: Map<(String, String), String>,
}

impl Actor {
    /// Docker did not answer: hold Docker calls from now on, and have a connector retry
    /// until it does (one at a time).
    pub(super) fn docker_lost(&mut self, why: &str) {
        if self.gate.docker_up {
            self.config.telemetry.record(&EngineTelemetry::DockerLost { error: why });
            self.gate.docker_up = false;
        }
        if !self.reconcile.connecting && !self.gate.stopping {
            self.reconcile.connecting = true;
            let (docker, instance, inputs) = (Arc::clone(&self.docker), self.instance.clone(), self.inputs_tx.clone());
            let limit = self.config.timeouts.inspect;
            let telemetry = Arc::clone(&self.config.telemetry);
            tokio::spawn(connect(docker, instance, inputs, limit, Arc::clone(&self.clock), telemetry));
        }
    }

    /// Docker answers, and listed this instance's containers: reconcile the state with them
    /// (SPEC 6), then make the calls held meanwhile.
    ///
    /// - a container whose create answer was lost is found by its durable name;
    /// - one whose id is known but is not listed vanished: STOPPED, with a reason;
    /// - every other one not known to be STOPPED is inspected before anything else;
    /// - one known STOPPED that Docker runs (a late start: `stop_late_start`) is stopped;
    /// - a listed container that no task owns (by id or name) is removed after the orphan
    ///   grace period, if no task owns it then either.
    pub(super) fn connected(&mut self, listed: Vec<ContainerSummary>) {
        let reason = if self.reconcile.connected_before {
            "container vanished while Docker did not answer"
        } else {
            "container vanished while berth was down"
        };
        let by_name: HashMap<&str, &str> =
            listed.iter().flat_map(|s| s.names.iter().map(move |n| (n.as_str(), s.id.as_str()))).collect();
        let ids: HashSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        let running: HashSet<&str> = listed.iter().filter(|s| s.state == "running").map(|s| s.id.as_str()).collect();
        let mut late_starts = Vec::new();
        self.reconcile.listed.clear();
        // Docker lists it: whatever berth concluded (a start or stop that found no container
        // while its create was still in flight), it was not removed.
        let listed_again = |c: &Container| {
            c.removed
                && match c.docker_id.as_deref() {
                    Some(id) => ids.contains(id),
                    None => c.docker_name.as_deref().is_some_and(|n| by_name.contains_key(n)),
                }
        };
        // A container whose create answer was lost, found by its durable name.
        let found_id = |c: &Container| match c.docker_id {
            None => c.docker_name.as_deref().and_then(|n| by_name.get(n)).map(|id| (*id).to_string()),
            Some(_) => None,
        };
        let uncertain =
            |c: &Container| !c.removed && c.docker_id.is_some() && c.known_status < ContainerStatus::Stopped;
        for (arn, entry) in &mut self.tasks.entries {
            // What the listing changes of the record (through `task_mut`: saved next round).
            if entry.task().containers.iter().any(|c| listed_again(c) || (!c.removed && found_id(c).is_some())) {
                for c in &mut entry.task_mut().containers {
                    if listed_again(c) {
                        c.removed = false;
                    }
                    if !c.removed
                        && let Some(id) = found_id(c)
                    {
                        c.docker_id = Some(id);
                    }
                }
                self.tasks.dirty.insert(arn.clone());
            }
            // Inspected by id before anything else happens to it (not judged from the
            // listing: an imported state's containers carry another instance's label).
            if entry.mark_for_inspect(uncertain) {
                self.tasks.dirty.insert(arn.clone());
            }
            for c in entry.task().containers.iter().filter(|c| !c.removed) {
                if uncertain(c) {
                    self.reconcile.pending.insert((arn.clone(), c.spec.name.clone()), reason);
                    if c.docker_id.as_deref().is_some_and(|id| ids.contains(id)) {
                        self.reconcile.listed.insert((arn.clone(), c.spec.name.clone()));
                    }
                }
                if let Some(id) = c.docker_id.as_deref()
                    && c.known_status == ContainerStatus::Stopped
                    && running.contains(id)
                {
                    late_starts.push((arn.clone(), c.spec.name.clone(), id.to_string()));
                }
            }
        }
        for (arn, name, id) in late_starts {
            self.stop_late_start(&arn, &name, &id);
            self.tasks.dirty.insert(arn);
        }
        let owned = self.tasks.owned();
        let orphans: Vec<&ContainerSummary> = listed
            .iter()
            .filter(|s| !owned.contains(s.id.as_str()) && !s.names.iter().any(|n| owned.contains(n.as_str())))
            .collect();
        if !orphans.is_empty() {
            let grace = self.config.orphan_grace;
            for s in &orphans {
                self.config.telemetry.record(&EngineTelemetry::OrphanFound {
                    docker_id: &s.id,
                    name: s.names.first().map_or("", String::as_str),
                    task: s.labels.get(labels::TASK_ARN).map_or("", String::as_str),
                    grace,
                });
            }
            let ids: Vec<String> = orphans.iter().map(|s| s.id.clone()).collect();
            let inputs = self.inputs_tx.clone();
            let grace_over = clock::sleep(&*self.clock, grace);
            tokio::spawn(async move {
                grace_over.await;
                let _ = inputs.send(Input::OrphanCheck(ids));
            });
        }
        self.gate.docker_up = true;
        self.reconcile.connecting = false;
        self.reconcile.connected_before = true;
        let held = std::mem::take(&mut self.gate.held);
        self.start_calls(held);
    }

    /// Remove the containers among `ids` that still belong to no task.
    pub(super) fn remove_orphans(&mut self, ids: Vec<String>) {
        if self.gate.stopping {
            return;
        }
        let owned = self.tasks.owned();
        let orphans: Vec<String> = ids.into_iter().filter(|id| !owned.contains(id.as_str())).collect();
        if orphans.is_empty() {
            return;
        }
        // At the gate as every Docker call: a place each, held while Docker does not answer.
        for docker_id in orphans {
            self.pass_gate_own(Own::RemoveOrphan { docker_id });
        }
    }
}

/// Reach Docker again: ping, then list this instance's containers, retried with backoff
/// (up to 10 s between attempts, on the engine's clock) until it answers or the loop is
/// gone.
async fn connect(
    docker: Arc<dyn DockerClient>,
    instance: String,
    inputs: mpsc::UnboundedSender<Input>,
    limit: Duration,
    clock: Arc<dyn Clock>,
    telemetry: Arc<dyn Telemetry>,
) {
    let mut backoff = Backoff::new(CONNECT_BACKOFF.0, CONNECT_BACKOFF.1);
    loop {
        // Bounded as an inspect is: a daemon that accepts and never answers is retried, not
        // waited for (bollard's own limit is hours).
        let attempt = super::bounded(limit, "reach Docker", async {
            docker.ping().await?;
            // Before anything of the instance is looked at: is it ours (not a restored copy's)?
            crate::holder::claim(&*docker, &instance).await?;
            docker.list_containers(&[(labels::INSTANCE, instance.as_str())]).await.map_err(EngineError::from)
        });
        match attempt.await {
            Err(e @ EngineError::InstanceHeld { .. }) => {
                let _ = inputs.send(Input::Fatal(e));
                return;
            }
            Ok(listed) => {
                telemetry.record(&EngineTelemetry::DockerReached { containers: listed.len() });
                let _ = inputs.send(Input::Connected(listed));
                return;
            }
            Err(e) => telemetry
                .record(&EngineTelemetry::DockerNotYetReached { error: &e.to_string(), retry_in: backoff.peek() }),
        }
        if inputs.is_closed() {
            return;
        }
        clock::sleep(&*clock, backoff.next_wait()).await;
    }
}
