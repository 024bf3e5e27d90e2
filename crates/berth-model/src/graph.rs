//! The dependency graph of a task's containers.
//!
//! An edge goes from a dependent to what it depends on, for four reasons: a `links`
//! entry, a `volumesFrom` entry, a `dependsOn` entry, and (under awsvpc) the shared
//! network namespace every container joins through the pause container. Edges gate
//! create and start (see the planner) and, reversed, order the stops. A graph with a
//! dangling reference or a cycle is rejected before anything starts (the seed left such a
//! task silently stuck).

use crate::container::DependencyCondition;
use crate::task::{NetworkMode, Task};
use std::collections::HashMap;
use std::fmt;

/// Why one container depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdgeKind {
    /// `links`: the target is created before the dependent is created, and RUNNING before
    /// it is started.
    Link,
    /// `volumesFrom`: the source is created (STOPPED counts) before the dependent is created.
    VolumesFrom,
    /// `dependsOn`: the condition holds before the dependent is started.
    DependsOn(DependencyCondition),
    /// awsvpc: the pause container is created before, and RUNNING when, the dependent is
    /// started.
    Network,
}

impl EdgeKind {
    /// The task-definition field the edge comes from.
    pub fn field(self) -> &'static str {
        match self {
            EdgeKind::Link => "links",
            EdgeKind::VolumesFrom => "volumesFrom",
            EdgeKind::DependsOn(_) => "dependsOn",
            EdgeKind::Network => "networkMode",
        }
    }
}

/// One dependency: `from` needs `to`, by container index in the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The dependent.
    pub from: usize,
    /// What it depends on.
    pub to: usize,
    /// Why.
    pub kind: EdgeKind,
}

/// A reason the graph is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// A reference to a container the task does not have.
    Dangling {
        /// The field (`links`, `volumesFrom`, `dependsOn`).
        field: &'static str,
        /// The referring container.
        container: String,
        /// The name it refers to.
        target: String,
    },
    /// A container that refers to itself.
    SelfReference {
        /// The field.
        field: &'static str,
        /// The container.
        container: String,
    },
    /// Containers that wait for each other, as a path that ends where it starts.
    Cycle(Vec<String>),
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::Dangling { field, container, target } => {
                write!(f, "{field} of \"{container}\": no container named \"{target}\"")
            }
            GraphError::SelfReference { field, container } => {
                write!(f, "{field} of \"{container}\": a container cannot depend on itself")
            }
            GraphError::Cycle(path) => write!(f, "dependency cycle: {}", path.join(" -> ")),
        }
    }
}

/// The errors [`DependencyGraph::build`] gives, as one line: each joined with `; `. The
/// one way a rejected graph is written (`berth plan`, the engine's errors).
#[derive(Debug, Clone, Copy)]
pub struct GraphErrors<'a>(pub &'a [GraphError]);

impl fmt::Display for GraphErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// The edges of a task, indexed both ways, plus an order that puts every container after
/// what it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyGraph {
    edges: Vec<Edge>,
    /// For each container, the indices in `edges` of its dependencies.
    needs: Vec<Vec<usize>>,
    /// For each container, the indices in `edges` of its dependents.
    needed_by: Vec<Vec<usize>>,
    order: Vec<usize>,
}

impl DependencyGraph {
    /// Build the graph of a task, or say every dangling reference and one cycle.
    pub fn build(task: &Task) -> Result<DependencyGraph, Vec<GraphError>> {
        let n = task.containers.len();
        let mut edges = Vec::new();
        let mut errors = Vec::new();
        let pause = task.containers.iter().position(|c| c.spec.internal);
        let index: HashMap<&str, usize> =
            task.containers.iter().enumerate().map(|(i, c)| (c.spec.name.as_str(), i)).collect();
        for (from, c) in task.containers.iter().enumerate() {
            let spec = &c.spec;
            let refs = spec
                .links
                .iter()
                .map(|l| (l.name.as_str(), EdgeKind::Link))
                .chain(spec.volumes_from.iter().map(|v| (v.source_container.as_str(), EdgeKind::VolumesFrom)))
                .chain(spec.depends_on.iter().map(|d| (d.container_name.as_str(), EdgeKind::DependsOn(d.condition))));
            for (target, kind) in refs {
                match index.get(target).copied() {
                    Some(to) if to == from => {
                        errors.push(GraphError::SelfReference { field: kind.field(), container: spec.name.clone() })
                    }
                    Some(to) => edges.push(Edge { from, to, kind }),
                    None => errors.push(GraphError::Dangling {
                        field: kind.field(),
                        container: spec.name.clone(),
                        target: target.to_string(),
                    }),
                }
            }
            if let (NetworkMode::Awsvpc, Some(p)) = (task.network_mode, pause)
                && p != from
            {
                edges.push(Edge { from, to: p, kind: EdgeKind::Network });
            }
        }
        let mut needs = vec![Vec::new(); n];
        let mut needed_by = vec![Vec::new(); n];
        for (i, e) in edges.iter().enumerate() {
            needs[e.from].push(i);
            needed_by[e.to].push(i);
        }
        let mut graph = DependencyGraph { edges, needs, needed_by, order: Vec::new() };
        match graph.topological_order(task) {
            Ok(order) => graph.order = order,
            Err(cycle) => errors.push(cycle),
        }
        if errors.is_empty() { Ok(graph) } else { Err(errors) }
    }

    /// Every edge.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// What container `i` depends on.
    pub fn dependencies(&self, i: usize) -> impl Iterator<Item = &Edge> {
        self.needs.get(i).into_iter().flatten().map(|&e| &self.edges[e])
    }

    /// What depends on container `i`.
    pub fn dependents(&self, i: usize) -> impl Iterator<Item = &Edge> {
        self.needed_by.get(i).into_iter().flatten().map(|&e| &self.edges[e])
    }

    /// Container indices, each after everything it depends on (ties in definition order).
    pub fn start_order(&self) -> &[usize] {
        &self.order
    }

    /// Depth-first search in definition order; on a back edge, the cycle found.
    fn topological_order(&self, task: &Task) -> Result<Vec<usize>, GraphError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let n = self.needs.len();
        let mut mark = vec![Mark::New; n];
        let mut order = Vec::with_capacity(n);
        // An explicit stack of (node, next dependency to visit), so deep graphs cannot
        // overflow the call stack.
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if mark[root] != Mark::New {
                continue;
            }
            mark[root] = Mark::OnPath;
            stack.push((root, 0));
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&e) = self.needs[node].get(*next) {
                    *next += 1;
                    let to = self.edges[e].to;
                    match mark[to] {
                        Mark::New => {
                            mark[to] = Mark::OnPath;
                            stack.push((to, 0));
                        }
                        Mark::OnPath => {
                            let start = stack.iter().position(|&(s, _)| s == to).unwrap_or(0);
                            let mut path: Vec<String> =
                                stack[start..].iter().map(|&(s, _)| task.containers[s].spec.name.clone()).collect();
                            path.push(task.containers[to].spec.name.clone());
                            return Err(GraphError::Cycle(path));
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{Container, ContainerSpec, Dependency, Link, VolumeFrom};

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec { name: name.into(), image: "busybox".into(), essential: true, ..ContainerSpec::default() }
    }

    fn task(specs: Vec<ContainerSpec>) -> Task {
        Task::new(
            "arn:berth:task/t".into(),
            "f".into(),
            "1".into(),
            specs.into_iter().map(Container::new).collect(),
            vec![],
        )
    }

    fn link(to: &str) -> Link {
        Link { name: to.into(), alias: None }
    }

    #[test]
    fn order_puts_dependencies_first() {
        let mut b = spec("b");
        b.links.push(link("a"));
        let mut c = spec("c");
        c.volumes_from.push(VolumeFrom { source_container: "b".into(), read_only: false });
        c.depends_on.push(Dependency { container_name: "a".into(), condition: DependencyCondition::Start });
        let t = task(vec![c, b, spec("a")]);
        let g = DependencyGraph::build(&t).unwrap();
        let names: Vec<_> = g.start_order().iter().map(|&i| t.containers[i].name()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(g.dependents(2).count(), 2, "a is needed by b and c");
    }

    #[test]
    fn dangling_references_are_named() {
        let mut web = spec("web");
        web.links.push(link("db"));
        web.depends_on.push(Dependency { container_name: "cache".into(), condition: DependencyCondition::Start });
        let errs = DependencyGraph::build(&task(vec![web])).unwrap_err();
        let msgs: Vec<_> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [r#"links of "web": no container named "db""#, r#"dependsOn of "web": no container named "cache""#]
        );
        assert_eq!(GraphErrors(&errs).to_string(), msgs.join("; "));
        assert_eq!(GraphErrors(&[]).to_string(), "");
    }

    #[test]
    fn cycles_are_rejected_with_their_path() {
        let mut a = spec("a");
        a.links.push(link("b"));
        let mut b = spec("b");
        b.depends_on.push(Dependency { container_name: "a".into(), condition: DependencyCondition::Start });
        let errs = DependencyGraph::build(&task(vec![a, b])).unwrap_err();
        assert_eq!(errs[0].to_string(), "dependency cycle: a -> b -> a");
    }

    #[test]
    fn self_reference_is_rejected() {
        let mut a = spec("a");
        a.volumes_from.push(VolumeFrom { source_container: "a".into(), read_only: true });
        let errs = DependencyGraph::build(&task(vec![a])).unwrap_err();
        assert_eq!(errs[0].to_string(), r#"volumesFrom of "a": a container cannot depend on itself"#);
    }

    #[test]
    fn awsvpc_containers_depend_on_the_pause_container() {
        let mut pause = spec(crate::container::PAUSE_CONTAINER_NAME);
        pause.internal = true;
        let mut t = task(vec![pause, spec("app")]);
        t.network_mode = NetworkMode::Awsvpc;
        let g = DependencyGraph::build(&t).unwrap();
        assert_eq!(g.edges(), [Edge { from: 1, to: 0, kind: EdgeKind::Network }]);
    }

    #[test]
    fn a_long_chain_does_not_overflow() {
        let specs: Vec<_> = (0..10_000)
            .map(|i| {
                let mut s = spec(&format!("c{i}"));
                if i > 0 {
                    s.links.push(link(&format!("c{}", i - 1)));
                }
                s
            })
            .collect();
        let g = DependencyGraph::build(&task(specs)).unwrap();
        assert_eq!(g.start_order().len(), 10_000);
        assert_eq!(g.start_order()[0], 0);
    }
}
