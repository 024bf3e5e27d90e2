//! The key layout, one function per kind of key (`docs/cluster.md` has the table).
//!
//! Everything of one cluster lives under `/berth/v1/<cluster>/`. Task ids and node names
//! are checked by [`check_name`] before they become part of a key, so no key can reach
//! outside its prefix (no `/`, no empty segment).

/// The prefixes and keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// The keys of cluster `name` (checked with [`check_name`]).
    pub fn new(cluster: &str) -> Result<Keys, String> {
        check_name("cluster name", cluster)?;
        Ok(Keys { root: format!("/berth/v1/{cluster}/") })
    }

    /// `/berth/v1/<cluster>/`: everything of this cluster.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `tasks/`: every task's desired state.
    pub fn tasks(&self) -> String {
        format!("{}tasks/", self.root)
    }
    /// `tasks/<id>`: one task's [`crate::records::TaskRecord`].
    pub fn task(&self, id: &str) -> String {
        format!("{}tasks/{id}", self.root)
    }
    /// `tokens/<token>`: the task id a client token created (idempotent submits).
    pub fn token(&self, token: &str) -> String {
        format!("{}tokens/{token}", self.root)
    }
    /// `nodes/`: every node's keys.
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.root)
    }
    /// `nodes/<n>/info`: the node's [`crate::records::NodeInfo`] (no lease).
    pub fn node_info(&self, node: &str) -> String {
        format!("{}nodes/{node}/info", self.root)
    }
    /// `nodes/<n>/alive`: the node's [`crate::records::NodeAlive`], under its lease.
    pub fn node_alive(&self, node: &str) -> String {
        format!("{}nodes/{node}/alive", self.root)
    }
    /// `nodes/<n>/drain`: an operator's [`crate::records::Drain`] (no lease).
    pub fn node_drain(&self, node: &str) -> String {
        format!("{}nodes/{node}/drain", self.root)
    }
    /// `placement/`: every task's owner.
    pub fn placements(&self) -> String {
        format!("{}placement/", self.root)
    }
    /// `placement/<id>`: the task's one [`crate::records::Placement`].
    pub fn placement(&self, id: &str) -> String {
        format!("{}placement/{id}", self.root)
    }
    /// `assign/`: every node's assignments.
    pub fn assignments(&self) -> String {
        format!("{}assign/", self.root)
    }
    /// `assign/<n>/`: what node `n` must run (the only prefix its agent watches).
    pub fn node_assignments(&self, node: &str) -> String {
        format!("{}assign/{node}/", self.root)
    }
    /// `assign/<n>/<id>`: one [`crate::records::Assignment`].
    pub fn assignment(&self, node: &str, id: &str) -> String {
        format!("{}assign/{node}/{id}", self.root)
    }
    /// `status/`: every task's reported status.
    pub fn statuses(&self) -> String {
        format!("{}status/", self.root)
    }
    /// `status/<id>/<n>`: node `n`'s [`crate::records::StatusRecord`] of task `id`.
    pub fn status(&self, id: &str, node: &str) -> String {
        format!("{}status/{id}/{node}", self.root)
    }
    /// `pending/`: why tasks are not placed (the scheduler's word on each).
    pub fn pendings(&self) -> String {
        format!("{}pending/", self.root)
    }
    /// `pending/<id>`: the scheduler's [`crate::records::Pending`] on task `id`: why it
    /// waits, or why it was refused (absent once placed).
    pub fn pending(&self, id: &str) -> String {
        format!("{}pending/{id}", self.root)
    }
    /// `scheduler`: the election name agents campaign on.
    pub fn election(&self) -> String {
        format!("{}scheduler", self.root)
    }
}

/// A cluster name, node name or task id that can be a key segment: 1 to 128 of
/// `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 128 || name == "." || name == ".." || !name.chars().all(ok_char) {
        return Err(format!("{what} {name:?}: use 1 to 128 of letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_the_cluster_prefix() {
        let keys = Keys::new("prod").expect("valid name");
        assert_eq!(keys.task("t1"), "/berth/v1/prod/tasks/t1");
        assert_eq!(keys.assignment("n1", "t1"), "/berth/v1/prod/assign/n1/t1");
        assert!(keys.assignment("n1", "t1").starts_with(&keys.node_assignments("n1")));
        assert!(!keys.assignment("n10", "t1").starts_with(&keys.node_assignments("n1")));
    }

    #[test]
    fn names_that_would_escape_a_segment_are_refused() {
        for bad in ["", ".", "..", "a/b", "a b", "ä", &"x".repeat(129)] {
            assert!(check_name("node name", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["n1", "host-1.example", "A_b"] {
            assert!(check_name("node name", good).is_ok(), "{good:?} refused");
        }
    }
}
