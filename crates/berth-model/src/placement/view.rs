//! The cluster as placement sees it: plain structs the scheduler fills from its watch cache
//! (node info, alive and drain keys, assignments), and updates as it places and releases
//! tasks within one pass.

use crate::admission::{HostCapacity, HostPort, Reservation};
use std::collections::BTreeMap;
use std::fmt;

/// Every registered node, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The nodes, by name.
    pub nodes: BTreeMap<String, NodeView>,
}

/// One registered node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    /// What it offers tasks.
    pub capacity: HostCapacity,
    /// Its attributes (`zone = a`), which `memberOf` and `spread` read.
    pub attributes: BTreeMap<String, String>,
    /// Whether it takes new tasks.
    pub availability: Availability,
    /// What its assignments hold.
    pub used: Usage,
    /// How many of its assigned tasks belong to each group.
    pub groups: BTreeMap<String, u32>,
}

/// Whether a node takes new tasks, or why not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Availability {
    /// Alive and not draining.
    #[default]
    Ready,
    /// Its process is not alive (no `alive` key under its lease).
    Down,
    /// An operator drains it.
    Draining {
        /// Why, as the operator said (may be empty).
        reason: String,
    },
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Ready => f.write_str("ready"),
            Availability::Down => f.write_str("not alive"),
            Availability::Draining { reason } if reason.is_empty() => f.write_str("draining"),
            Availability::Draining { reason } => write!(f, "draining ({reason})"),
        }
    }
}

/// What a node's assignments hold together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU units.
    pub cpu: u64,
    /// Memory MiB.
    pub memory_mib: u64,
    /// Static host ports, with how many assignments hold each (more than one only if the
    /// store holds such assignments; placement never makes them).
    pub ports: BTreeMap<HostPort, u32>,
}

impl NodeView {
    /// A node with nothing assigned.
    pub fn new(capacity: HostCapacity, attributes: BTreeMap<String, String>, availability: Availability) -> NodeView {
        NodeView { capacity, attributes, availability, ..NodeView::default() }
    }

    /// CPU units not held (0 when over capacity).
    pub fn free_cpu(&self) -> u64 {
        self.capacity.cpu.saturating_sub(self.used.cpu)
    }

    /// Memory MiB not held (0 when over capacity).
    pub fn free_memory_mib(&self) -> u64 {
        self.capacity.memory_mib.saturating_sub(self.used.memory_mib)
    }

    /// How many of its tasks belong to `group`.
    pub fn group_count(&self, group: &str) -> u32 {
        self.groups.get(group).copied().unwrap_or(0)
    }

    /// Records a task of `group` holding `reservation` here, without any check (an existing
    /// assignment is counted as it is, even over capacity).
    pub fn hold(&mut self, reservation: &Reservation, group: &str) {
        self.used.cpu = self.used.cpu.saturating_add(reservation.cpu);
        self.used.memory_mib = self.used.memory_mib.saturating_add(reservation.memory_mib);
        for &p in &reservation.ports {
            *self.used.ports.entry(p).or_insert(0) += 1;
        }
        *self.groups.entry(group.to_string()).or_insert(0) += 1;
    }

    /// Forgets one task of `group` holding `reservation` here (what [`NodeView::hold`]
    /// added).
    pub fn free(&mut self, reservation: &Reservation, group: &str) {
        self.used.cpu = self.used.cpu.saturating_sub(reservation.cpu);
        self.used.memory_mib = self.used.memory_mib.saturating_sub(reservation.memory_mib);
        for p in &reservation.ports {
            if let Some(n) = self.used.ports.get_mut(p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.used.ports.remove(p);
                }
            }
        }
        if let Some(n) = self.groups.get_mut(group) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.groups.remove(group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Protocol;

    #[test]
    fn hold_then_free_leaves_the_node_as_it_was() {
        let port = HostPort { port: 80, protocol: Protocol::Tcp };
        let r = Reservation { cpu: 256, memory_mib: 512, ports: vec![port] };
        let capacity = HostCapacity { cpu: 1024, memory_mib: 1024, ..HostCapacity::default() };
        let empty = NodeView::new(capacity, BTreeMap::new(), Availability::Ready);
        let mut node = empty.clone();
        node.hold(&r, "web");
        node.hold(&r, "web");
        assert_eq!((node.free_cpu(), node.free_memory_mib(), node.group_count("web")), (512, 0, 2));
        assert_eq!(node.used.ports.get(&port), Some(&2));
        node.hold(&r, "web");
        assert_eq!(node.free_memory_mib(), 0, "over capacity reads as none free");
        for _ in 0..3 {
            node.free(&r, "web");
        }
        assert_eq!(node, empty);
        node.free(&r, "web");
        assert_eq!(node, empty, "freeing what is not held changes nothing");
    }

    #[test]
    fn availability_reads_as_an_operator_would_say_it() {
        assert_eq!(Availability::Down.to_string(), "not alive");
        assert_eq!(Availability::Draining { reason: String::new() }.to_string(), "draining");
        assert_eq!(Availability::Draining { reason: "kernel update".into() }.to_string(), "draining (kernel update)");
    }
}
