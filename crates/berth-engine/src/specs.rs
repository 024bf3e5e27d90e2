//! One copy of each distinct container spec in the loop's state.
//!
//! A host usually runs many copies of few task definitions (the replicas of a service), and
//! a container's spec, fixed once its task is accepted, is most of what the engine keeps per
//! container (close to 1 KB). So when a task enters the state its containers' specs are
//! looked up by content, and a container whose spec equals one already held shares that
//! copy (`Arc`) instead of keeping its own. Nothing else changes: a spec is never changed
//! after parsing, and the store writes each task's specs in full as before.

use berth_model::{ContainerSpec, Task};
use std::collections::HashSet;
use std::sync::Arc;

/// The specs held, by content.
#[derive(Debug, Default)]
pub(crate) struct Specs {
    held: HashSet<Arc<ContainerSpec>, foldhash::fast::RandomState>,
}

impl Specs {
    /// Make each container of `task` share the held copy of its spec, holding the spec
    /// from now on when none equal to it is held yet.
    pub fn share(&mut self, task: &mut Task) {
        for c in &mut task.containers {
            match self.held.get(&c.spec) {
                Some(held) => {
                    if !Arc::ptr_eq(held, &c.spec) {
                        c.spec = Arc::clone(held);
                    }
                }
                None => {
                    self.held.insert(Arc::clone(&c.spec));
                }
            }
        }
    }

    /// Let go of the specs that only this set still holds (their tasks left the state).
    /// Walks every spec held: called once per round in which a task left, not per task.
    pub fn let_go_of_unused(&mut self) {
        self.held.retain(|spec| Arc::strong_count(spec) > 1);
    }

    /// Distinct specs held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::Container;

    fn task(arn: &str, commands: &[&str]) -> Task {
        let containers = commands
            .iter()
            .enumerate()
            .map(|(i, command)| {
                Container::new(ContainerSpec {
                    name: format!("c{i}"),
                    image: "busybox".into(),
                    command: vec![(*command).to_string()],
                    essential: true,
                    ..ContainerSpec::default()
                })
            })
            .collect();
        Task::new(arn.into(), "family".into(), "1".into(), containers, Vec::new())
    }

    /// Tasks `a` and `b` with these commands, shared in that order into a new set.
    fn shared(a: &[&str], b: &[&str]) -> (Specs, Task, Task) {
        let mut specs = Specs::default();
        let (mut a, mut b) = (task("a", a), task("b", b));
        specs.share(&mut a);
        specs.share(&mut b);
        (specs, a, b)
    }

    #[test]
    fn equal_specs_of_different_tasks_share_one_copy() {
        assert!(!Arc::ptr_eq(&task("a", &["x"]).containers[0].spec, &task("b", &["x"]).containers[0].spec));
        let (specs, a, b) = shared(&["x", "y"], &["x", "y"]);
        assert_eq!(specs.len(), 2);
        for i in 0..2 {
            assert!(Arc::ptr_eq(&a.containers[i].spec, &b.containers[i].spec), "container {i}");
        }
        // Sharing changes no content.
        assert_eq!(a.containers, task("a", &["x", "y"]).containers);
    }

    #[test]
    fn different_specs_keep_their_own_copy() {
        let (specs, a, b) = shared(&["x"], &["z"]);
        assert_eq!(specs.len(), 2);
        assert!(!Arc::ptr_eq(&a.containers[0].spec, &b.containers[0].spec));
        assert_eq!(b.containers[0].spec.command, vec!["z".to_string()]);
    }

    #[test]
    fn specs_no_task_uses_are_let_go_of_and_others_kept() {
        let (mut specs, a, b) = shared(&["x"], &["y"]);
        drop(a);
        specs.let_go_of_unused();
        assert_eq!(specs.len(), 1);
        // The spec still used is still shared with the next task.
        let mut c = task("c", &["y"]);
        specs.share(&mut c);
        assert!(Arc::ptr_eq(&b.containers[0].spec, &c.containers[0].spec));
        assert_eq!(specs.len(), 1);
    }
}
