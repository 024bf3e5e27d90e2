//! Choosing a node: feasibility, then ranking by the strategies.

use super::rules::{Constraint, Resource, Rules, SpreadBy, Strategy};
use super::view::{Availability, ClusterView, NodeView};
use crate::admission::{HostPort, NeverFits, Reservation, never_fits};
use std::collections::BTreeMap;
use std::fmt;

/// Most nodes a [`Decision`]'s text names; the others are counted.
const REASONS_SHOWN: usize = 10;

/// A task to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What it holds where it runs ([`Reservation::of`]).
    pub reservation: Reservation,
    /// Its group, which `distinctInstance` and `spread` count (the caller's choice; berth's
    /// scheduler uses the task definition's family).
    pub group: String,
    /// Its constraints and strategies.
    pub rules: Rules,
}

/// Where a task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// On this node.
    Place(String),
    /// Nowhere now: why not, for every registered node (none when no node is registered).
    Wait(Vec<Refusal>),
    /// Nowhere ever: no registered node could hold it even empty (there is at least one);
    /// why, per node. The caller refuses it at submit.
    Never(Vec<(String, NeverFits)>),
}

/// Why one node cannot take the task now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The node.
    pub node: String,
    /// Every reason (at least one).
    pub why: Vec<Unfit>,
}

/// One reason a node cannot take a task now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// It is not alive or is draining.
    Unavailable(Availability),
    /// It does not match a `memberOf` expression (as written).
    NotMember(String),
    /// It already holds a task of the group (`distinctInstance`).
    Distinct(String),
    /// Too few CPU units free.
    Cpu {
        /// Free on the node.
        free: u64,
        /// What the task needs.
        needed: u64,
    },
    /// Too little memory free.
    Memory {
        /// MiB free on the node.
        free: u64,
        /// MiB the task needs.
        needed: u64,
    },
    /// A static host port another task holds there.
    PortHeld(HostPort),
    /// A static host port the node reserves.
    PortReserved(HostPort),
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::Unavailable(a) => write!(f, "{a}"),
            Unfit::NotMember(text) => write!(f, "not a member of `{text}`"),
            Unfit::Distinct(group) => write!(f, "already runs a task of group {group} (distinctInstance)"),
            Unfit::Cpu { free, needed } => write!(f, "cpu {free} units free, task needs {needed}"),
            Unfit::Memory { free, needed } => write!(f, "memory {free} MiB free, task needs {needed}"),
            Unfit::PortHeld(p) => write!(f, "host port {p} held by another task"),
            Unfit::PortReserved(p) => write!(f, "host port {p} reserved"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}: ", self.node)?;
        for (i, why) in self.why.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{why}")?;
        }
        Ok(())
    }
}

/// The line an operator reads: the node, or why it waits or is refused (at most
/// 10 nodes named, the others counted).
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T>(f: &mut fmt::Formatter<'_>, items: &[T], one: impl Fn(&T) -> String) -> fmt::Result {
            let shown: Vec<String> = items.iter().take(REASONS_SHOWN).map(one).collect();
            f.write_str(&shown.join("; "))?;
            match items.len().saturating_sub(REASONS_SHOWN) {
                0 => Ok(()),
                1 => f.write_str("; and 1 more node"),
                n => write!(f, "; and {n} more nodes"),
            }
        }
        match self {
            Decision::Place(node) => write!(f, "placed on node {node}"),
            Decision::Wait(refusals) if refusals.is_empty() => f.write_str("waiting: no node is registered"),
            Decision::Wait(refusals) => {
                f.write_str("waiting: ")?;
                list(f, refusals, ToString::to_string)
            }
            Decision::Never(nodes) => {
                f.write_str("no registered node could hold it even empty: ")?;
                list(f, nodes, |(node, e)| {
                    let excess: Vec<String> = e.excess.iter().map(ToString::to_string).collect();
                    format!("node {node}: {}", excess.join(", "))
                })
            }
        }
    }
}

/// Where `request` goes in `view` (see the module docs of [`super`]): never, when no
/// registered node could hold it even empty; else among the nodes it fits now, the best by
/// its strategies (ties: the next strategy, then the node name); else it waits. `seed`
/// drives the `random` strategy and nothing else.
pub fn place(view: &ClusterView, request: &Request, seed: u64) -> Decision {
    let never: Vec<(String, NeverFits)> = view
        .nodes
        .iter()
        .filter_map(|(name, node)| never_fits(&request.reservation, &node.capacity).err().map(|e| (name.clone(), e)))
        .collect();
    if !view.nodes.is_empty() && never.len() == view.nodes.len() {
        return Decision::Never(never);
    }
    let mut refusals = Vec::new();
    let mut feasible = Vec::new();
    for (name, node) in &view.nodes {
        let why = unfit(name, node, request);
        if why.is_empty() {
            feasible.push((name, node));
        } else {
            refusals.push(Refusal { node: name.clone(), why });
        }
    }
    let random = [Strategy::Random];
    let strategies = if request.rules.strategies.is_empty() { &random[..] } else { &request.rules.strategies[..] };
    let spread_totals = spread_totals(view, strategies, &request.group);
    let best = feasible
        .into_iter()
        .map(|(name, node)| {
            let keys: Vec<u64> =
                strategies.iter().map(|s| rank(s, name, node, request, &spread_totals, seed)).collect();
            (keys, name)
        })
        .min();
    match best {
        Some((_, name)) => Decision::Place(name.clone()),
        None => Decision::Wait(refusals),
    }
}

/// Why `node` cannot take `request` now: empty when it can.
pub fn unfit(name: &str, node: &NodeView, request: &Request) -> Vec<Unfit> {
    let mut why = Vec::new();
    if node.availability != Availability::Ready {
        why.push(Unfit::Unavailable(node.availability.clone()));
    }
    for c in &request.rules.constraints {
        match c {
            Constraint::MemberOf { text, expr } if !expr.matches(name, &node.attributes) => {
                why.push(Unfit::NotMember(text.clone()));
            }
            Constraint::DistinctInstance if node.group_count(&request.group) > 0 => {
                why.push(Unfit::Distinct(request.group.clone()));
            }
            _ => {}
        }
    }
    // A node already over its capacity (it shrank under existing assignments) takes
    // nothing, not even a task that reserves 0.
    let r = &request.reservation;
    if node.used.cpu.saturating_add(r.cpu) > node.capacity.cpu {
        why.push(Unfit::Cpu { free: node.free_cpu(), needed: r.cpu });
    }
    if node.used.memory_mib.saturating_add(r.memory_mib) > node.capacity.memory_mib {
        why.push(Unfit::Memory { free: node.free_memory_mib(), needed: r.memory_mib });
    }
    for &p in &r.ports {
        if node.capacity.reserved_ports.contains(&p) {
            why.push(Unfit::PortReserved(p));
        } else if node.used.ports.contains_key(&p) {
            why.push(Unfit::PortHeld(p));
        }
    }
    why
}

/// For each `spread` over an attribute, the group's tasks per value of it over every node
/// of the view (`None`: nodes without the attribute).
type SpreadTotals<'v> = BTreeMap<&'v str, BTreeMap<Option<&'v str>, u64>>;

fn spread_totals<'v>(view: &'v ClusterView, strategies: &'v [Strategy], group: &str) -> SpreadTotals<'v> {
    let mut totals = SpreadTotals::new();
    for s in strategies {
        if let Strategy::Spread(SpreadBy::Attribute(attribute)) = s {
            let per_value = totals.entry(attribute.as_str()).or_default();
            for node in view.nodes.values() {
                let value = node.attributes.get(attribute).map(String::as_str);
                *per_value.entry(value).or_insert(0) += u64::from(node.group_count(group));
            }
        }
    }
    totals
}

/// The node's key under one strategy: the lowest wins.
fn rank(s: &Strategy, name: &str, node: &NodeView, request: &Request, totals: &SpreadTotals<'_>, seed: u64) -> u64 {
    match s {
        Strategy::Binpack(Resource::Cpu) => node.free_cpu().saturating_sub(request.reservation.cpu),
        Strategy::Binpack(Resource::Memory) => node.free_memory_mib().saturating_sub(request.reservation.memory_mib),
        Strategy::Spread(SpreadBy::Node) => u64::from(node.group_count(&request.group)),
        Strategy::Spread(SpreadBy::Attribute(attribute)) => {
            let value = node.attributes.get(attribute).map(String::as_str);
            totals.get(attribute.as_str()).and_then(|per_value| per_value.get(&value)).copied().unwrap_or(0)
        }
        Strategy::Random => mix(seed ^ crate::fnv1a_64(name.as_bytes())),
    }
}

/// SplitMix64's finalizer: a well-spread 64-bit value from any input.
fn mix(x: u64) -> u64 {
    let x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl ClusterView {
    /// Records `request` placed on `node` (so that the next [`place`] of the same pass sees
    /// it); false when there is no such node.
    pub fn apply(&mut self, node: &str, request: &Request) -> bool {
        self.nodes.get_mut(node).map(|n| n.hold(&request.reservation, &request.group)).is_some()
    }

    /// Forgets `request` on `node` (stopped, handed back, or its placement deleted); false
    /// when there is no such node.
    pub fn release(&mut self, node: &str, request: &Request) -> bool {
        self.nodes.get_mut(node).map(|n| n.free(&request.reservation, &request.group)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::HostCapacity;
    use crate::container::Protocol;
    use serde_json::json;

    fn tcp(port: u16) -> HostPort {
        HostPort { port, protocol: Protocol::Tcp }
    }

    fn node(cpu: u64, memory_mib: u64, attributes: &[(&str, &str)]) -> NodeView {
        let capacity = HostCapacity { cpu, memory_mib, reserved_ports: [tcp(22)].into() };
        let attributes = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        NodeView::new(capacity, attributes, Availability::Ready)
    }

    fn view(nodes: Vec<(&str, NodeView)>) -> ClusterView {
        ClusterView { nodes: nodes.into_iter().map(|(n, v)| (n.to_string(), v)).collect() }
    }

    fn request(
        cpu: u64,
        memory_mib: u64,
        ports: &[u16],
        constraints: serde_json::Value,
        strategy: serde_json::Value,
    ) -> Request {
        let rules = Rules::from_json(Some(&constraints), Some(&strategy)).unwrap_or_else(|e| panic!("{e}"));
        let reservation = Reservation { cpu, memory_mib, ports: ports.iter().map(|&p| tcp(p)).collect() };
        Request { reservation, group: "web".into(), rules }
    }

    fn placed(d: Decision) -> String {
        match d {
            Decision::Place(n) => n,
            other => panic!("not placed: {other}"),
        }
    }

    #[test]
    fn waits_with_a_reason_per_node() {
        let mut b = node(2048, 1024, &[]);
        b.hold(&Reservation { cpu: 0, memory_mib: 512, ports: vec![tcp(80)] }, "other");
        let v = view(vec![
            (
                "a",
                NodeView {
                    availability: Availability::Draining { reason: "kernel update".into() },
                    ..node(4096, 4096, &[])
                },
            ),
            ("b", b),
            ("c", NodeView { availability: Availability::Down, ..node(4096, 4096, &[("zone", "b")]) }),
        ]);
        let r =
            request(1024, 1024, &[80], json!([{"type": "memberOf", "expression": "attribute:zone == b"}]), json!([]));
        let d = place(&v, &r, 0);
        assert_eq!(
            d.to_string(),
            "waiting: node a: draining (kernel update), not a member of `attribute:zone == b`; \
             node b: not a member of `attribute:zone == b`, memory 512 MiB free, task needs 1024, \
             host port 80/tcp held by another task; node c: not alive"
        );
    }

    #[test]
    fn zero_nodes_wait_and_never_only_when_no_node_could_hold_it_empty() {
        let r = request(1024, 1024, &[], json!([]), json!([]));
        assert_eq!(place(&ClusterView::default(), &r, 0), Decision::Wait(vec![]));
        assert_eq!(place(&ClusterView::default(), &r, 0).to_string(), "waiting: no node is registered");
        let small = view(vec![("a", node(512, 4096, &[])), ("b", node(4096, 512, &[]))]);
        let d = place(&small, &r, 0);
        assert!(matches!(d, Decision::Never(_)), "{d}");
        assert_eq!(
            d.to_string(),
            "no registered node could hold it even empty: node a: it reserves 1024 CPU units and the host has 512; \
             node b: it reserves 1024 MiB of memory and the host has 512 MiB"
        );
        let ssh = request(0, 0, &[22], json!([]), json!([]));
        assert!(matches!(place(&small, &ssh, 0), Decision::Never(_)), "22 is reserved everywhere");
        // One node big enough but down: it waits for that node.
        let mut with_down = small.clone();
        with_down.nodes.insert("c".into(), NodeView { availability: Availability::Down, ..node(4096, 4096, &[]) });
        assert!(matches!(place(&with_down, &r, 0), Decision::Wait(_)));
    }

    #[test]
    fn binpack_fills_the_fullest_node_that_fits() {
        let mut v =
            view(vec![("a", node(4096, 4096, &[])), ("b", node(4096, 2048, &[])), ("c", node(4096, 1024, &[]))]);
        let r = request(0, 768, &[], json!([]), json!([{"type": "binpack", "field": "memory"}]));
        let mut order = Vec::new();
        for _ in 0..4 {
            let n = placed(place(&v, &r, 7));
            assert!(v.apply(&n, &r));
            order.push(n);
        }
        assert_eq!(order, ["c", "b", "b", "a"], "c then b (1280 left, then 512), a only when b is too full");
    }

    #[test]
    fn spread_over_nodes_and_attribute_values() {
        let mut v = view(vec![
            ("a", node(4096, 4096, &[("zone", "1")])),
            ("b", node(4096, 4096, &[("zone", "1")])),
            ("c", node(4096, 4096, &[("zone", "2")])),
        ]);
        let by_zone = request(
            0,
            0,
            &[],
            json!([]),
            json!([{"type": "spread", "field": "attribute:zone"}, {"type": "spread", "field": "host"}]),
        );
        let mut order = Vec::new();
        for _ in 0..4 {
            let n = placed(place(&v, &by_zone, 1));
            v.apply(&n, &by_zone);
            order.push(n);
        }
        assert_eq!(order, ["a", "c", "b", "c"], "zone 1 (a by name), zone 2, zone 1 on b (spread host), zone 2");
        let by_node = request(0, 0, &[], json!([]), json!([{"type": "spread", "field": "instanceId"}]));
        assert_eq!(placed(place(&v, &by_node, 1)), "a", "a and b hold 1, c holds 2");
        let mut other = by_node.clone();
        other.group = "db".into();
        v.apply("c", &other);
        assert_eq!(placed(place(&v, &by_node, 1)), "a", "other groups do not count");
    }

    #[test]
    fn later_strategies_break_ties_then_the_name() {
        let v = view(vec![("a", node(4096, 2048, &[])), ("b", node(2048, 2048, &[])), ("c", node(2048, 2048, &[]))]);
        let both = request(
            0,
            0,
            &[],
            json!([]),
            json!([{"type": "binpack", "field": "memory"}, {"type": "binpack", "field": "cpu"}]),
        );
        assert_eq!(placed(place(&v, &both, 3)), "b", "memory ties everywhere, cpu leaves b and c even, then the name");
    }

    #[test]
    fn random_follows_the_seed_and_reaches_every_node() {
        let v = view(vec![("a", node(4096, 4096, &[])), ("b", node(4096, 4096, &[])), ("c", node(4096, 4096, &[]))]);
        let r = request(0, 0, &[], json!([]), json!([]));
        let mut seen = BTreeMap::new();
        for seed in 0..300 {
            let n = placed(place(&v, &r, seed));
            assert_eq!(place(&v, &r, seed), Decision::Place(n.clone()), "same seed, same node");
            *seen.entry(n).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.values().all(|&n| n > 50), "roughly even: {seen:?}");
    }

    #[test]
    fn distinct_instance_and_member_of() {
        let mut v = view(vec![("a", node(4096, 4096, &[("zone", "1")])), ("b", node(4096, 4096, &[("zone", "2")]))]);
        let r = request(
            0,
            0,
            &[],
            json!([{"type": "distinctInstance"}, {"type": "memberOf", "expression": "attribute:zone in [1, 2]"}]),
            json!([{"type": "binpack", "field": "cpu"}]),
        );
        let first = placed(place(&v, &r, 0));
        v.apply(&first, &r);
        let second = placed(place(&v, &r, 0));
        assert_ne!(first, second);
        v.apply(&second, &r);
        assert_eq!(
            place(&v, &r, 0).to_string(),
            "waiting: node a: already runs a task of group web (distinctInstance); \
             node b: already runs a task of group web (distinctInstance)"
        );
        v.release(&first, &r);
        assert_eq!(placed(place(&v, &r, 0)), first);
        assert!(!v.apply("nowhere", &r));
    }

    #[test]
    fn a_held_or_reserved_port_excludes_the_node() {
        let mut v = view(vec![("a", node(4096, 4096, &[])), ("b", node(4096, 4096, &[]))]);
        let r = request(0, 0, &[8080], json!([]), json!([{"type": "binpack", "field": "cpu"}]));
        v.apply("a", &r);
        assert_eq!(placed(place(&v, &r, 0)), "b");
        v.apply("b", &r);
        assert_eq!(
            place(&v, &r, 0).to_string(),
            "waiting: node a: host port 8080/tcp held by another task; node b: host port 8080/tcp held by another task"
        );
    }

    #[test]
    fn the_reason_names_ten_nodes_and_counts_the_rest() {
        let nodes =
            (0..13).map(|i| (format!("n{i:02}"), NodeView { availability: Availability::Down, ..node(1, 1, &[]) }));
        let v = ClusterView { nodes: nodes.collect() };
        let text = place(&v, &request(0, 0, &[], json!([]), json!([])), 0).to_string();
        assert!(text.contains("node n09: not alive") && !text.contains("n10"), "{text}");
        assert!(text.ends_with("; and 3 more nodes"), "{text}");
    }
}
