//! Host resource admission inside the loop: the one [`Admission`] of the engine (the pure
//! accounting of `berth_model::admission`) and the submit order.
//!
//! - Every task gets its place in the submit order ([`Task::submitted`]) when the engine
//!   takes it; a record of an earlier berth without one gets one at load, after every
//!   numbered task, in arn order, and keeps it (it is saved with the first round).
//! - With a capacity configured ([`crate::EngineConfig::capacity`]), a task that can never
//!   fit is refused before it is taken; a task that does not fit now waits, and the loop
//!   plans nothing for it (no Docker call at all, pulls included: as ECS, images are pulled
//!   once the task is admitted) until it is admitted or its desired status becomes STOPPED;
//!   a direct operation on it (the seed's `pull_container`, ...) is refused with why.
//! - An admitted task's reservation is released once [`standing`] says it is done; the
//!   waiting tasks behind are then admitted, in submit order, in the same round.
//! - After a restart the state is rebuilt from the tasks alone ([`Admission::from_tasks`]);
//!   a waiting task that can no longer fit the capacity is stopped, with why.
//!
//! Without a capacity nothing is accounted: every task is planned at once.

use super::tasks::TaskTable;
use berth_model::admission::{Admission, HostCapacity, NeverFits, Reservation, Standing, never_fits, standing};
use berth_model::{Task, TaskStatus};

/// The engine's admission state.
pub(super) struct Admitter {
    /// `None`: no capacity configured, nothing accounted.
    admission: Option<Admission>,
    /// The submit place the next task gets.
    next_submitted: u64,
    /// Something was queued or released since the last [`Admitter::admit`].
    changed: bool,
}

impl Admitter {
    /// The state of the tasks loaded at start: each gets its submit place if it has none,
    /// and those that began hold again. A waiting task that can no longer fit is stopped
    /// (its desired status raised, the reason set); the caller plans every loaded task.
    pub fn load(capacity: Option<HostCapacity>, table: &mut TaskTable) -> Admitter {
        let mut next_submitted = table.entries.values().filter_map(|e| e.task().submitted).max().map_or(0, |s| s + 1);
        let mut unnumbered: Vec<String> =
            table.entries.iter().filter(|(_, e)| e.task().submitted.is_none()).map(|(arn, _)| arn.clone()).collect();
        unnumbered.sort();
        for arn in unnumbered {
            if let Some(entry) = table.entries.get_mut(&arn) {
                entry.task_mut().submitted = Some(next_submitted);
                next_submitted += 1;
            }
        }
        let Some(capacity) = capacity else {
            return Admitter { admission: None, next_submitted, changed: false };
        };
        let mut in_order: Vec<&Task> = table.entries.values().map(|e| &**e.task()).collect();
        in_order.sort_by_key(|t| t.submitted);
        let (admission, refused) = Admission::from_tasks(capacity, in_order);
        for (arn, why) in refused {
            if let Some(entry) = table.entries.get_mut(&arn) {
                let task = entry.task_mut();
                task.raise_desired_status(TaskStatus::Stopped);
                task.stop_reason.get_or_insert_with(|| why.to_string());
                table.dirty.insert(arn);
            }
        }
        Admitter { admission: Some(admission), next_submitted, changed: true }
    }

    /// Whether `task`, not held yet, may be taken: `Err` when it can never fit this host.
    pub fn check(&self, task: &Task) -> Result<(), NeverFits> {
        match &self.admission {
            Some(admission) => never_fits(&Reservation::of(task), admission.capacity()),
            None => Ok(()),
        }
    }

    /// `task` is taken now (checked first with [`Admitter::check`]): it gets the next
    /// submit place and, with a capacity, waits at the back of the queue.
    pub fn submit(&mut self, task: &mut Task) {
        task.submitted = Some(self.next_submitted);
        self.next_submitted += 1;
        if let Some(admission) = &mut self.admission {
            // Checked before: a refusal here cannot happen, and would only leave the task
            // unaccounted.
            if admission.submit(task.arn.clone(), Reservation::of(task)).unwrap_or(false) {
                self.changed = true;
            }
        }
    }

    /// The task waits for admission: nothing of it is planned.
    pub fn holds_back(&self, arn: &str) -> bool {
        self.admission.as_ref().is_some_and(|a| a.contains(arn) && !a.is_admitted(arn))
    }

    /// Settle `task` after a change: a waiting task whose desired status became STOPPED
    /// leaves the queue; an admitted task that is done frees its reservation.
    pub fn settle(&mut self, task: &Task) {
        let Some(admission) = &mut self.admission else { return };
        let withdrawn = task.desired_status == TaskStatus::Stopped
            && admission.contains(&task.arn)
            && !admission.is_admitted(&task.arn);
        let done = admission.is_admitted(&task.arn) && standing(task) == Standing::Done;
        if (withdrawn || done) && admission.release(&task.arn) {
            self.changed = true;
        }
    }

    /// The task left the state (swept): whatever it held or waited for goes.
    pub fn forget(&mut self, arn: &str) {
        if let Some(admission) = &mut self.admission
            && admission.release(arn)
        {
            self.changed = true;
        }
    }

    /// The waiting tasks that start now, in submit order (none unless something was
    /// queued or released since the last call).
    pub fn admit(&mut self) -> Vec<String> {
        if !std::mem::take(&mut self.changed) {
            return Vec::new();
        }
        self.admission.as_mut().map(Admission::admit).unwrap_or_default()
    }

    /// Why each waiting task waits, first in line first.
    pub fn waiting_reasons(&self) -> Vec<(String, String)> {
        let Some(admission) = &self.admission else { return Vec::new() };
        admission
            .waiting()
            .filter_map(|(arn, _)| admission.waiting_reason(arn).map(|why| (arn.to_string(), why)))
            .collect()
    }

    /// Why `arn` waits, `None` when it does not.
    pub fn waiting_reason(&self, arn: &str) -> Option<String> {
        self.admission.as_ref().and_then(|a| a.waiting_reason(arn))
    }
}
