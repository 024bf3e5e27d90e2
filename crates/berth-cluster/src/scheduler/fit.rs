//! The bridge to the pure placement: node usage from the view's assignments, and the
//! choice for one task. (Interim: a first-fit on cpu, memory and static ports until
//! `berth_model::placement` lands; constraints and strategies are not read yet.)

use super::view::{TaskEntry, TaskNeeds, View};
use berth_model::admission::{HostPort, Reservation};
use std::collections::{BTreeMap, BTreeSet};

/// What the assignments on each node use.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    nodes: BTreeMap<String, Used>,
}

#[derive(Debug, Clone, Default)]
struct Used {
    cpu: u64,
    memory_mib: u64,
    ports: BTreeSet<String>,
    groups: BTreeMap<String, usize>,
}

impl Usage {
    /// The sum of every node's assignments in `view`.
    pub fn of(view: &View) -> Usage {
        let mut usage = Usage::default();
        for (node, assignments) in &view.assignments {
            let used = usage.nodes.entry(node.clone()).or_default();
            for (id, a) in assignments {
                used.cpu = used.cpu.saturating_add(a.record.cpu);
                used.memory_mib = used.memory_mib.saturating_add(a.record.memory_mib);
                used.ports.extend(a.record.ports.iter().cloned());
                if let Some(Ok(needs)) = view.tasks.get(id).map(|t| &t.needs) {
                    *used.groups.entry(needs.group.clone()).or_default() += 1;
                }
            }
        }
        usage
    }

    /// Accounts a placement of `reservation` (of `group`) on `node`.
    pub fn add(&mut self, node: &str, reservation: &Reservation, group: &str) {
        let used = self.nodes.entry(node.to_string()).or_default();
        used.cpu = used.cpu.saturating_add(reservation.cpu);
        used.memory_mib = used.memory_mib.saturating_add(reservation.memory_mib);
        used.ports.extend(reservation.ports.iter().map(HostPort::to_string));
        *used.groups.entry(group.to_string()).or_default() += 1;
    }
}

/// Where a task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This node.
    Node(String),
    /// No node now: why, overall and per node.
    Wait {
        /// The reason an operator reads.
        reason: String,
        /// Each node's reason.
        nodes: BTreeMap<String, String>,
    },
    /// No registered node could hold it even empty.
    Never {
        /// The reason an operator reads.
        reason: String,
        /// Each node's reason.
        nodes: BTreeMap<String, String>,
    },
}

/// Chooses a node for `task` (never one of `excluded`).
pub fn choose(view: &View, usage: &Usage, task: &TaskEntry, needs: &TaskNeeds, excluded: &BTreeSet<String>) -> Choice {
    let _ = task;
    let r = &needs.reservation;
    let mut reasons = BTreeMap::new();
    let mut could_ever = false;
    let empty = Used::default();
    for (name, node) in &view.nodes {
        let Some(info) = node.info.as_ref().map(|i| &i.record) else { continue };
        let ports: Vec<String> = r.ports.iter().map(HostPort::to_string).collect();
        let reserved = ports.iter().find(|p| info.reserved_ports.contains(p));
        if r.cpu > info.cpu || r.memory_mib > info.memory_mib || reserved.is_some() {
            reasons.insert(name.clone(), format!("node {name}: too small even empty"));
            continue;
        }
        could_ever = true;
        if excluded.contains(name) {
            reasons.insert(name.clone(), format!("node {name}: handed the task back"));
            continue;
        }
        if node.epoch().is_none() {
            reasons.insert(name.clone(), format!("node {name}: not alive"));
            continue;
        }
        if node.drain.is_some() {
            reasons.insert(name.clone(), format!("node {name}: draining"));
            continue;
        }
        let used = usage.nodes.get(name).unwrap_or(&empty);
        if used.cpu.saturating_add(r.cpu) > info.cpu {
            reasons.insert(
                name.clone(),
                format!("node {name}: cpu {} free, task needs {}", info.cpu - used.cpu.min(info.cpu), r.cpu),
            );
            continue;
        }
        if used.memory_mib.saturating_add(r.memory_mib) > info.memory_mib {
            reasons.insert(
                name.clone(),
                format!(
                    "node {name}: memory {} MiB free, task needs {}",
                    info.memory_mib - used.memory_mib.min(info.memory_mib),
                    r.memory_mib
                ),
            );
            continue;
        }
        if let Some(p) = ports.iter().find(|p| used.ports.contains(*p)) {
            reasons.insert(name.clone(), format!("node {name}: host port {p} taken"));
            continue;
        }
        return Choice::Node(name.clone());
    }
    if view.nodes.is_empty() || could_ever {
        let reason =
            if reasons.is_empty() { "no node is registered".to_string() } else { "no node has room now".to_string() };
        Choice::Wait { reason, nodes: reasons }
    } else {
        Choice::Never { reason: "no registered node could hold it even empty".to_string(), nodes: reasons }
    }
}
