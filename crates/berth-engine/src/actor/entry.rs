//! One task held by the loop, and whether its record changed since it was last handed to
//! the store. The task is private to this file: the loop reads it through [`Entry::task`]
//! and changes it only through the methods below, each of which marks the record changed
//! unless it provably moved nothing a crash must remember. So no change can go unsaved
//! (see ARCHITECTURE.md, "Which rounds save a task").

use berth_model::plan::{self, Feedback, PlanConfig};
use berth_model::{Container, Task};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// One task held, with what the loop keeps beside it.
pub(super) struct Entry {
    /// Shared with the group commit that saves it (and with `MemorySaver`, which keeps
    /// it): changed through `Arc::make_mut`, which copies it only while a save holds it.
    task: Arc<Task>,
    /// Something of the record may have moved since it was last handed to the store (a
    /// task never saved starts so).
    record_changed: bool,
    /// Debug builds only: [`Task::record_fingerprint`] of the record last handed to the
    /// store, checked against the task whenever it is not marked changed.
    #[cfg(debug_assertions)]
    saved_fingerprint: Option<u64>,
    pub graph: berth_model::graph::DependencyGraph,
    pub wake_at: Option<DateTime<Utc>>,
    /// Swept as soon as it is STOPPED (`berth run` at its end).
    pub clean_up_now: bool,
}

impl Entry {
    /// A task the store does not hold yet (`saved` false: submitted now), or holds as it is
    /// (`saved` true: loaded, and nothing of its record moved since).
    pub fn new(task: Task, graph: berth_model::graph::DependencyGraph, saved: bool) -> Entry {
        Entry {
            #[cfg(debug_assertions)]
            saved_fingerprint: saved.then(|| task.record_fingerprint()),
            task: Arc::new(task),
            record_changed: !saved,
            graph,
            wake_at: None,
            clean_up_now: false,
        }
    }

    /// The task.
    pub fn task(&self) -> &Arc<Task> {
        &self.task
    }

    /// The task, to change anything of it: marks the record changed.
    pub fn task_mut(&mut self) -> &mut Task {
        self.record_changed = true;
        Arc::make_mut(&mut self.task)
    }

    /// Apply what happened ([`plan::apply_tracked`]): marks the record changed unless the
    /// model says nothing of it moved (an inspect or event that found what berth knew).
    pub fn apply(&mut self, feedback: Feedback, now: DateTime<Utc>, cfg: &PlanConfig) {
        if plan::apply_tracked(Arc::make_mut(&mut self.task), feedback, now, cfg) {
            self.record_changed = true;
        }
    }

    /// Have every container for which `wanted` holds inspected before anything else happens
    /// to it: sets only `needs_inspect`, which memory alone needs (a restart sets it again),
    /// so the record is not marked changed. Returns whether any container was marked.
    pub fn mark_for_inspect(&mut self, wanted: impl Fn(&Container) -> bool) -> bool {
        if !self.task.containers.iter().any(&wanted) {
            return false;
        }
        for c in &mut Arc::make_mut(&mut self.task).containers {
            if wanted(c) {
                c.needs_inspect = true;
            }
        }
        true
    }

    /// The record to hand to the store if it changed since it was last handed over (then
    /// it counts as saved from now on), or `None`.
    pub fn take_record_to_save(&mut self) -> Option<Arc<Task>> {
        #[cfg(debug_assertions)]
        {
            let fingerprint = self.task.record_fingerprint();
            if !self.record_changed {
                assert_eq!(
                    self.saved_fingerprint,
                    Some(fingerprint),
                    "task {}: its record changed without being marked changed (it would not be saved)",
                    self.task.arn
                );
            }
            self.saved_fingerprint = Some(fingerprint);
        }
        if !std::mem::take(&mut self.record_changed) {
            return None;
        }
        Some(Arc::clone(&self.task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::plan::{Action, Observation, Op, Outcome};
    use berth_model::{ContainerSpec, ContainerStatus};

    fn entry() -> Entry {
        let spec = ContainerSpec { name: "web".into(), image: "busybox".into(), ..ContainerSpec::default() };
        let mut c = Container::new(spec);
        (c.known_status, c.applied_status, c.has_run) = (ContainerStatus::Running, ContainerStatus::Running, true);
        c.docker_id = Some("id".into());
        let task = Task::new("arn:t".into(), "fam".into(), "1".into(), vec![c], vec![]);
        let graph = berth_model::graph::DependencyGraph::build(&task).expect("one container: a valid graph");
        Entry::new(task, graph, true)
    }

    #[test]
    fn a_new_task_is_saved_and_a_loaded_one_is_not() {
        let spec = ContainerSpec { name: "web".into(), image: "busybox".into(), ..ContainerSpec::default() };
        let task = Task::new("arn:t".into(), "fam".into(), "1".into(), vec![Container::new(spec)], vec![]);
        let graph = berth_model::graph::DependencyGraph::build(&task).expect("one container: a valid graph");
        let mut new = Entry::new(task, graph, false);
        assert!(new.take_record_to_save().is_some());
        assert!(new.take_record_to_save().is_none(), "saved once, then unchanged");
        assert!(entry().take_record_to_save().is_none());
    }

    #[test]
    fn every_change_through_task_mut_is_saved() {
        let mut e = entry();
        e.task_mut().stop_reason = Some("asked".into());
        let saved = e.take_record_to_save().expect("changed through task_mut");
        assert_eq!(saved.stop_reason.as_deref(), Some("asked"));
        // Even a `task_mut` that changes nothing counts (it cannot be told apart).
        let _ = e.task_mut();
        assert!(e.take_record_to_save().is_some());
    }

    #[test]
    fn an_inspect_that_finds_what_berth_knew_is_not_saved_and_one_that_finds_more_is() {
        let (mut e, cfg) = (entry(), PlanConfig::default());
        let now = Utc::now();
        assert!(e.mark_for_inspect(|c| c.known_status == ContainerStatus::Running));
        assert!(e.task().containers[0].needs_inspect);
        let inspect = Op::container("web", Action::Inspect);
        e.apply(Feedback::Issued(inspect.clone()), now, &cfg);
        let same =
            Observation { status: ContainerStatus::Running, has_run: true, inspected: true, ..Observation::default() };
        e.apply(Feedback::Done(inspect.clone(), Outcome::Inspected(same)), now, &cfg);
        assert!(e.take_record_to_save().is_none(), "nothing a crash must remember moved");
        e.apply(Feedback::Issued(inspect.clone()), now, &cfg);
        let exited = Observation {
            status: ContainerStatus::Stopped,
            exit_code: Some(3),
            has_run: true,
            inspected: true,
            ..Observation::default()
        };
        e.apply(Feedback::Done(inspect, Outcome::Inspected(exited)), now, &cfg);
        let saved = e.take_record_to_save().expect("the exit is saved");
        assert_eq!(saved.containers[0].known_exit_code, Some(3));
    }

    #[test]
    fn an_operation_issued_is_saved_before_it_is_sent() {
        let (mut e, cfg) = (entry(), PlanConfig::default());
        e.apply(Feedback::Issued(Op::container("web", Action::Stop { timeout_secs: 1 })), Utc::now(), &cfg);
        let saved = e.take_record_to_save().expect("write-ahead: the stop is saved before it is sent");
        assert_eq!(saved.containers[0].applied_status, ContainerStatus::Stopped);
    }
}
