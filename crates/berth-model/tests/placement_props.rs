//! Placement over random clusters and requests: a chosen node is always one the task fits
//! on now (available, constraints hold, CPU and memory within capacity after applying, no
//! static host port held twice or reserved); `binpack` picks a node with the least of its
//! field left and `spread` one with the fewest tasks of the group (or of its attribute
//! value) among those; "never" exactly when nodes are registered and none could hold the
//! task empty; "waits" exactly when no node fits now, with a reason for every node; the same
//! seed gives the same decision; placing many tasks in one pass (applying each) never
//! overcommits a node, and releasing undoes applying. Expressions read back from their
//! printed form, and no input string makes the reader panic.

use berth_model::admission::{HostCapacity, HostPort, Reservation, never_fits};
use berth_model::container::Protocol;
use berth_model::placement::Strategy as Ranking;
use berth_model::placement::expression::{Subject, Test};
use berth_model::placement::{
    Availability, ClusterView, Constraint, Decision, Expr, NodeView, Request, Resource, Rules, SpreadBy, place,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const GROUPS: [&str; 2] = ["web", "db"];

/// A few ports, so that tasks often collide (22 is often reserved).
fn ports(of: &'static [u16]) -> impl Strategy<Value = Vec<HostPort>> {
    prop::sample::subsequence(of, 0..=of.len())
        .prop_map(|ps| ps.into_iter().map(|port| HostPort { port, protocol: Protocol::Tcp }).collect())
}

fn reservation(max: u64, of: &'static [u16]) -> impl Strategy<Value = Reservation> {
    (0..max, 0..max, ports(of)).prop_map(|(cpu, memory_mib, ports)| Reservation { cpu, memory_mib, ports })
}

fn attribute(values: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop::sample::select(values).prop_map(str::to_string))
}

fn node() -> impl Strategy<Value = NodeView> {
    let availability = prop_oneof![
        4 => Just(Availability::Ready),
        1 => Just(Availability::Down),
        1 => Just(Availability::Draining { reason: "maintenance".into() }),
    ];
    (
        prop_oneof![5 => (1024_u64..4096, 1024_u64..4096), 1 => (0_u64..1024, 0_u64..1024)],
        ports(&[22, 80]),
        attribute(&["a", "b", "c"]),
        attribute(&["ssd", "hdd"]),
        availability,
        prop::collection::vec((reservation(800, &[80, 81, 82]), prop::sample::select(&GROUPS[..])), 0..3),
    )
        .prop_map(|((cpu, memory_mib), reserved, zone, disk, availability, held)| {
            let mut attributes = BTreeMap::new();
            attributes.extend(zone.map(|z| ("zone".to_string(), z)));
            attributes.extend(disk.map(|d| ("disk".to_string(), d)));
            let capacity = HostCapacity { cpu, memory_mib, reserved_ports: reserved.into_iter().collect() };
            let mut node = NodeView::new(capacity, attributes, availability);
            for (r, group) in held {
                node.hold(&r, group);
            }
            node
        })
}

fn view() -> impl Strategy<Value = ClusterView> {
    prop::collection::vec(node(), 0..7).prop_map(|nodes| ClusterView {
        nodes: nodes.into_iter().enumerate().map(|(i, n)| (format!("n{i}"), n)).collect(),
    })
}

const EXPRESSIONS: [&str; 6] = [
    "attribute:zone == a",
    "attribute:zone in [a, b] and attribute:disk != hdd",
    "not attribute:disk exists",
    "attribute:zone not_in [c] || node.name == n3",
    "node.name in [n0, n1, n2]",
    "attribute:disk exists && !(attribute:zone == b)",
];

fn request() -> impl Strategy<Value = Request> {
    let constraint = prop_oneof![
        (0..EXPRESSIONS.len()).prop_map(|i| ("memberOf", Some(EXPRESSIONS[i]))),
        Just(("distinctInstance", None)),
    ];
    let strategy = prop::sample::select(vec![
        ("binpack", Some("cpu")),
        ("binpack", Some("memory")),
        ("spread", Some("host")),
        ("spread", Some("attribute:zone")),
        ("random", None),
    ]);
    // Mostly tasks that fit somewhere, sometimes ones too big for any node.
    let reservation = prop_oneof![4 => reservation(1200, &[80, 81]), 1 => reservation(5000, &[22, 80, 81, 82])];
    (
        reservation,
        prop::sample::select(&GROUPS[..]),
        prop::collection::vec(constraint, 0..2),
        prop::collection::vec(strategy, 0..3),
    )
        .prop_map(|(reservation, group, constraints, strategies)| {
            let rules = Rules::from_parts(constraints, strategies).unwrap_or_else(|e| panic!("{e}"));
            Request { reservation, group: group.to_string(), rules }
        })
}

/// The test's own statement of "fits now".
fn fits(name: &str, node: &NodeView, request: &Request) -> bool {
    let r = &request.reservation;
    node.availability == Availability::Ready
        && request.rules.constraints.iter().all(|c| match c {
            Constraint::MemberOf { expr, .. } => expr.matches(name, &node.attributes),
            Constraint::DistinctInstance => node.group_count(&request.group) == 0,
        })
        && node.used.cpu + r.cpu <= node.capacity.cpu
        && node.used.memory_mib + r.memory_mib <= node.capacity.memory_mib
        && r.ports.iter().all(|p| !node.used.ports.contains_key(p) && !node.capacity.reserved_ports.contains(p))
}

/// What the first strategy minimises, by the test's own reading of ECS.
fn first_key(view: &ClusterView, name: &str, request: &Request) -> Option<u64> {
    let node = &view.nodes[name];
    let r = &request.reservation;
    match request.rules.strategies.first()? {
        Ranking::Binpack(Resource::Cpu) => Some(node.capacity.cpu - node.used.cpu - r.cpu),
        Ranking::Binpack(Resource::Memory) => Some(node.capacity.memory_mib - node.used.memory_mib - r.memory_mib),
        Ranking::Spread(SpreadBy::Node) => Some(u64::from(node.group_count(&request.group))),
        Ranking::Spread(SpreadBy::Attribute(a)) => {
            let value = node.attributes.get(a);
            let same = view.nodes.values().filter(|n| n.attributes.get(a) == value);
            Some(same.map(|n| u64::from(n.group_count(&request.group))).sum())
        }
        Ranking::Random => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decisions_follow_the_rules(view in view(), request in request(), seed in any::<u64>()) {
        check(&view, &request, seed)?;
    }

    /// Every node ready, tasks without constraints or ports and smaller: most fit on
    /// several nodes, which is where the strategies decide.
    #[test]
    fn strategies_rank_among_many_feasible_nodes(
        view in view().prop_map(|mut v| {
            v.nodes.values_mut().for_each(|n| n.availability = Availability::Ready);
            v
        }),
        request in request().prop_map(|mut r| {
            r.rules.constraints.clear();
            r.reservation.ports.clear();
            r.reservation.cpu /= 4;
            r.reservation.memory_mib /= 4;
            r
        }),
        seed in any::<u64>(),
    ) {
        check(&view, &request, seed)?;
    }

    #[test]
    fn a_pass_of_many_placements_never_overcommits(
        view in view(),
        requests in prop::collection::vec(request(), 1..12),
        seed in any::<u64>(),
    ) {
        let mut view = view;
        // Nodes restored over their capacity stay so; the others must never get there.
        let within: Vec<String> = view
            .nodes
            .iter()
            .filter(|(_, n)| n.used.cpu <= n.capacity.cpu && n.used.memory_mib <= n.capacity.memory_mib)
            .map(|(name, _)| name.clone())
            .collect();
        let doubled_before: usize = view.nodes.values().flat_map(|n| n.used.ports.values()).filter(|&&c| c > 1).count();
        for (i, request) in requests.iter().enumerate() {
            if let Decision::Place(node) = place(&view, request, seed.wrapping_add(i as u64)) {
                prop_assert!(fits(&node, &view.nodes[&node], request));
                view.apply(&node, request);
            }
            for name in &within {
                let n = &view.nodes[name];
                prop_assert!(n.used.cpu <= n.capacity.cpu && n.used.memory_mib <= n.capacity.memory_mib, "{} overcommitted", name);
            }
            let doubled: usize = view.nodes.values().flat_map(|n| n.used.ports.values()).filter(|&&c| c > 1).count();
            prop_assert_eq!(doubled, doubled_before, "a port placed twice on a node");
        }
    }

    #[test]
    fn expressions_read_back_from_their_printed_form(expr in expr()) {
        let printed = expr.to_string();
        prop_assert_eq!(Expr::parse(&printed), Ok(expr), "{}", printed);
    }

    #[test]
    fn any_text_is_read_or_refused_without_panicking(text in "[a-z:._ ()\\[\\],!=&|<>~\"-]{0,60}") {
        if let Err(e) = Expr::parse(&text) {
            prop_assert!(e.at >= 1 && e.at <= text.chars().count() + 1, "{} at {}", text, e.at);
        }
    }
}

fn word() -> impl Strategy<Value = String> {
    "[a-z0-9][a-zA-Z0-9._:@/-]{0,6}"
}

fn expr() -> impl Strategy<Value = Expr> {
    let subject = prop_oneof!["[a-z][a-z0-9._-]{0,8}".prop_map(Subject::Attribute), Just(Subject::NodeName),];
    let test = prop_oneof![
        word().prop_map(Test::Equals),
        word().prop_map(Test::NotEquals),
        prop::collection::vec(word(), 1..4).prop_map(Test::In),
        prop::collection::vec(word(), 1..4).prop_map(Test::NotIn),
        Just(Test::Exists),
        Just(Test::NotExists),
    ];
    let leaf = (subject, test).prop_map(|(s, t)| Expr::Test(s, t));
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// The decision for `request` in `view`, against the test's own reading of the rules.
fn check(view: &ClusterView, request: &Request, seed: u64) -> Result<(), TestCaseError> {
    let decision = place(view, request, seed);
    prop_assert_eq!(&place(view, request, seed), &decision, "same seed, same decision");
    let feasible: Vec<&String> = view.nodes.iter().filter(|(n, v)| fits(n, v, request)).map(|(n, _)| n).collect();
    let never =
        !view.nodes.is_empty() && view.nodes.values().all(|n| never_fits(&request.reservation, &n.capacity).is_err());
    match &decision {
        Decision::Never(nodes) => {
            prop_assert!(never, "never, yet a node could hold it empty");
            prop_assert_eq!(nodes.len(), view.nodes.len());
        }
        Decision::Wait(refusals) => {
            prop_assert!(!never && feasible.is_empty(), "waits, yet {:?} fit", feasible);
            prop_assert_eq!(refusals.len(), view.nodes.len());
            prop_assert!(refusals.iter().all(|r| !r.why.is_empty()));
        }
        Decision::Place(chosen) => {
            prop_assert!(!never);
            prop_assert!(feasible.contains(&chosen), "{} does not fit", chosen);
            if let Some(best) = first_key(view, chosen, request) {
                for other in &feasible {
                    let key = first_key(view, other, request);
                    prop_assert!(
                        key >= Some(best),
                        "{} ranks {:?}, below the chosen {}'s {}",
                        other,
                        key,
                        chosen,
                        best
                    );
                }
            }
            let mut after = view.clone();
            prop_assert!(after.apply(chosen, request));
            let node = &after.nodes[chosen];
            prop_assert!(node.used.cpu <= node.capacity.cpu && node.used.memory_mib <= node.capacity.memory_mib);
            for p in &request.reservation.ports {
                prop_assert_eq!(node.used.ports.get(p), Some(&1), "port {} held twice", p);
            }
            prop_assert!(after.release(chosen, request));
            prop_assert_eq!(&after, view, "release undoes apply");
        }
    }
    Ok(())
}
