//! Placement: which node of a cluster runs a task. Pure: no I/O, no async, no clock; the
//! only randomness comes from the seed the caller passes (`docs/cluster-placement.md`).
//!
//! - [`rules`]: ECS's `placementConstraints` (`memberOf` with an [`expression`],
//!   `distinctInstance`) and `placementStrategy` (`binpack`, `spread`, `random`), read with
//!   errors naming their path;
//! - [`view`]: the cluster as plain structs: each node's capacity, attributes,
//!   availability, what its assignments hold and how many tasks of each group it has;
//! - [`place()`]: feasibility (available, constraints, CPU and memory fit, static host
//!   ports neither held nor reserved), then ranking by the strategies in order (the first
//!   decides, each later one breaks the ties left; then the node name). No strategy ranks
//!   as `random`. The [`Decision`] is a node; or [`Decision::Wait`] with every node's
//!   reasons (no node registered: waits, with no reasons); or [`Decision::Never`] when at
//!   least one node is registered and none could hold the task even empty (CPU, memory, a
//!   reserved port), which the caller refuses at submit. Constraints and availability
//!   never make "never": a node that matches may join, come back or stop draining.
//!
//! A scheduler placing several tasks in one pass applies each placement to its view
//! before placing the next:
//!
//! ```
//! use berth_model::admission::{HostCapacity, Reservation};
//! use berth_model::placement::{Availability, ClusterView, Decision, NodeView, Request, Rules, place};
//! use serde_json::json;
//!
//! let mut view = ClusterView::default();
//! for (name, zone) in [("n1", "a"), ("n2", "b")] {
//!     let capacity = HostCapacity { cpu: 2048, memory_mib: 4096, ..HostCapacity::default() };
//!     let attributes = [("zone".to_string(), zone.to_string())].into();
//!     view.nodes.insert(name.to_string(), NodeView::new(capacity, attributes, Availability::Ready));
//! }
//! let rules = Rules::from_json(
//!     Some(&json!([{"type": "memberOf", "expression": "attribute:zone in [a, b]"}])),
//!     Some(&json!([{"type": "spread", "field": "attribute:zone"}, {"type": "binpack", "field": "memory"}])),
//! )
//! .expect("valid rules");
//! let request = Request {
//!     reservation: Reservation { cpu: 1024, memory_mib: 1024, ports: vec![] },
//!     group: "web".to_string(),
//!     rules,
//! };
//! let mut placed = Vec::new();
//! for seed in 0..5 {
//!     match place(&view, &request, seed) {
//!         Decision::Place(node) => {
//!             view.apply(&node, &request);
//!             placed.push(node);
//!         }
//!         waits_or_never => println!("{waits_or_never}"),
//!     }
//! }
//! assert_eq!(placed, ["n1", "n2", "n1", "n2"]); // the fifth waits: cpu 0 units free
//! ```

pub mod expression;
mod place;
pub mod rules;
pub mod view;

pub use expression::Expr;
pub use place::{Decision, Refusal, Request, Unfit, place, unfit};
pub use rules::{Constraint, MAX_CONSTRAINTS, MAX_STRATEGIES, Resource, Rules, SpreadBy, Strategy};
pub use view::{Availability, ClusterView, NodeView, Usage};
