//! The bridge to the pure placement (`berth_model::placement`): the placement's cluster
//! view built from the scheduler's [`View`] (capacity and attributes from `nodes/<n>/info`,
//! availability from `alive` and `drain`, usage the sum of the node's assignments), and
//! the choice for one task, with the nodes that handed it back left out.

use super::view::{TaskNeeds, View};
use crate::records::{Assignment, NodeInfo};
use berth_model::admission::{HostCapacity, HostPort, Reservation};
use berth_model::container::Protocol;
use berth_model::placement::{Availability, ClusterView, Decision, NodeView, Request, place};
use std::collections::{BTreeMap, BTreeSet};

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

/// The placement's view of the nodes in `view` that have an info record.
pub fn cluster_view(view: &View) -> ClusterView {
    let mut out = ClusterView::default();
    for (name, node) in &view.nodes {
        let Some(info) = &node.info else { continue };
        let availability = match (&node.alive, &node.drain) {
            (None, _) => Availability::Down,
            (Some(_), Some(drain)) => Availability::Draining { reason: drain.record.reason.clone() },
            (Some(_), None) => Availability::Ready,
        };
        let mut n = NodeView::new(capacity(&info.record), info.record.attributes.clone(), availability);
        for (id, a) in view.assignments.get(name).into_iter().flatten() {
            let group = view.tasks.get(id).and_then(|t| t.needs.as_ref().ok()).map(|n| n.request.group.as_str());
            n.hold(&reservation(&a.record), group.unwrap_or(""));
        }
        out.nodes.insert(name.clone(), n);
    }
    out
}

/// Chooses a node for a task with `needs` (never one of `excluded`, which are shown as
/// having handed it back).
pub fn choose(cluster: &mut ClusterView, needs: &TaskNeeds, excluded: &BTreeSet<String>, seed: u64) -> Choice {
    // Left out by marking them down for this one decision: availability never makes a
    // task "never", and their reason is rewritten below.
    let mut saved = Vec::new();
    for name in excluded {
        if let Some(node) = cluster.nodes.get_mut(name) {
            saved.push((name.clone(), std::mem::replace(&mut node.availability, Availability::Down)));
        }
    }
    let decision = place(cluster, &needs.request, seed);
    for (name, availability) in saved {
        if let Some(node) = cluster.nodes.get_mut(&name) {
            node.availability = availability;
        }
    }
    match decision {
        Decision::Place(node) => Choice::Node(node),
        Decision::Wait(refusals) => {
            let reason = Decision::Wait(refusals.clone()).to_string();
            let nodes = refusals
                .into_iter()
                .map(|r| {
                    let text = if excluded.contains(&r.node) {
                        format!("node {}: handed the task back", r.node)
                    } else {
                        r.to_string()
                    };
                    (r.node, text)
                })
                .collect();
            Choice::Wait { reason, nodes }
        }
        Decision::Never(never) => {
            let reason = Decision::Never(never.clone()).to_string();
            let nodes = never.into_iter().map(|(node, e)| (node.clone(), format!("node {node}: {e}"))).collect();
            Choice::Never { reason, nodes }
        }
    }
}

/// Records `request` placed on `node` in `cluster`, for the rest of the pass.
pub fn apply(cluster: &mut ClusterView, node: &str, request: &Request) {
    cluster.apply(node, request);
}

/// Whether `request` can never be placed on the registered nodes `nodes` (none registered:
/// it can wait); the refusal's text when so.
pub fn never(nodes: &BTreeMap<String, NodeInfo>, request: &Request) -> Option<String> {
    let mut cluster = ClusterView::default();
    for (name, info) in nodes {
        cluster.nodes.insert(name.clone(), NodeView::new(capacity(info), info.attributes.clone(), Availability::Ready));
    }
    match place(&cluster, request, 0) {
        decision @ Decision::Never(_) => Some(decision.to_string()),
        _ => None,
    }
}

fn capacity(info: &NodeInfo) -> HostCapacity {
    HostCapacity {
        cpu: info.cpu,
        memory_mib: info.memory_mib,
        reserved_ports: info.reserved_ports.iter().filter_map(|p| host_port(p)).collect(),
    }
}

fn reservation(a: &Assignment) -> Reservation {
    Reservation { cpu: a.cpu, memory_mib: a.memory_mib, ports: a.ports.iter().filter_map(|p| host_port(p)).collect() }
}

/// `8080/tcp` (or `8080`: tcp) as a host port; anything else is not one.
pub fn host_port(text: &str) -> Option<HostPort> {
    let (port, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    let protocol = match protocol {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    Some(HostPort { port: port.parse().ok()?, protocol })
}
