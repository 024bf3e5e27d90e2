//! A task's placement rules as ECS's RunTask takes them: `placementConstraints` (at most
//! [`MAX_CONSTRAINTS`]) and `placementStrategy` (at most [`MAX_STRATEGIES`]), read into
//! [`Rules`] with every error naming its path (`placementConstraints[1].expression: at
//! character 16: ...`).
//!
//! - `{"type": "memberOf", "expression": "..."}`: the node must match the expression
//!   ([`Expr`]); `{"type": "distinctInstance"}` (no expression): the node must hold no
//!   other task of the task's group.
//! - `{"type": "binpack", "field": "cpu" | "memory"}`, `{"type": "spread", "field":
//!   "instanceId" | "host" | "attribute:<name>"}`, `{"type": "random"}` (no field). The first
//!   strategy decides, each later one breaks the ties of those before it.
//!
//! The objects are small and a misspelled key would silently change where a task runs, so
//! an unknown key is an error here (elsewhere in berth's input it is a warning).

use super::expression::{Expr, MAX_NAME_CHARS};
use crate::input::Rejected;
use crate::input::reader::{Field, Obj, Sink};
use serde_json::Value;

/// Most constraints of one task (ECS's limit).
pub const MAX_CONSTRAINTS: usize = 10;
/// Most strategies of one task (ECS's limit).
pub const MAX_STRATEGIES: usize = 5;

/// Where the constraints are, in paths.
const CONSTRAINTS: &str = "placementConstraints";
/// Where the strategies are, in paths (RunTask's name, singular).
const STRATEGIES: &str = "placementStrategy";

/// Which nodes a task may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// The node matches the expression.
    MemberOf {
        /// The expression as written, for reasons.
        text: String,
        /// The expression as read.
        expr: Expr,
    },
    /// The node holds no other task of the task's group.
    DistinctInstance,
}

/// How a node is chosen among those the task may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The node with the least of this left once the task is placed.
    Binpack(Resource),
    /// The node (or attribute value) holding the fewest tasks of the group.
    Spread(SpreadBy),
    /// A node drawn from the seed.
    Random,
}

/// What binpack packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// CPU units.
    Cpu,
    /// Memory MiB.
    Memory,
}

/// What spread balances over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadBy {
    /// Nodes (`instanceId` or `host`).
    Node,
    /// The values of a node attribute (`attribute:zone`); nodes without it count as one
    /// value of their own.
    Attribute(String),
}

/// A task's constraints and strategies, read and checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    /// All must hold.
    pub constraints: Vec<Constraint>,
    /// In order: the first decides, the others break ties. None: as `[Random]`.
    pub strategies: Vec<Strategy>,
}

impl Rules {
    /// Reads RunTask's `placementConstraints` and `placementStrategy` arrays (absent or
    /// `null`: none), every error naming its path.
    pub fn from_json(constraints: Option<&Value>, strategies: Option<&Value>) -> Result<Rules, Rejected> {
        let mut s = Sink::default();
        let mut rules = Rules::default();
        if let Some(v) = constraints.filter(|v| !v.is_null()) {
            for f in Field::new(CONSTRAINTS.into(), v).array(MAX_CONSTRAINTS, &mut s) {
                if let Some(c) = f.object(&mut s).and_then(|mut o| {
                    let kind = o.required_string("type", &mut s);
                    let expression = o.string("expression", &mut s);
                    let path = o.path.clone();
                    unknown_keys(o, &mut s);
                    constraint(&path, kind.as_deref()?, expression.as_deref(), &mut s)
                }) {
                    rules.constraints.push(c);
                }
            }
        }
        if let Some(v) = strategies.filter(|v| !v.is_null()) {
            for f in Field::new(STRATEGIES.into(), v).array(MAX_STRATEGIES, &mut s) {
                if let Some(st) = f.object(&mut s).and_then(|mut o| {
                    let kind = o.required_string("type", &mut s);
                    let field = o.string("field", &mut s);
                    let path = o.path.clone();
                    unknown_keys(o, &mut s);
                    strategy(&path, kind.as_deref()?, field.as_deref(), &mut s)
                }) {
                    rules.strategies.push(st);
                }
            }
        }
        if s.has_errors() { Err(s.into_rejected()) } else { Ok(rules) }
    }

    /// Reads constraints as `(type, expression)` and strategies as `(type, field)` pairs,
    /// as a stored task keeps them; errors have the same paths as [`Rules::from_json`].
    pub fn from_parts<'a>(
        constraints: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        strategies: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Rules, Rejected> {
        let mut s = Sink::default();
        let constraints: Vec<_> = constraints.into_iter().collect();
        let strategies: Vec<_> = strategies.into_iter().collect();
        let mut rules = Rules::default();
        if constraints.len() > MAX_CONSTRAINTS {
            s.error(CONSTRAINTS, format!("{} entries, more than the limit of {MAX_CONSTRAINTS}", constraints.len()));
        } else {
            for (i, (kind, expression)) in constraints.into_iter().enumerate() {
                rules.constraints.extend(constraint(&format!("{CONSTRAINTS}[{i}]"), kind, expression, &mut s));
            }
        }
        if strategies.len() > MAX_STRATEGIES {
            s.error(STRATEGIES, format!("{} entries, more than the limit of {MAX_STRATEGIES}", strategies.len()));
        } else {
            for (i, (kind, field)) in strategies.into_iter().enumerate() {
                rules.strategies.extend(strategy(&format!("{STRATEGIES}[{i}]"), kind, field, &mut s));
            }
        }
        if s.has_errors() { Err(s.into_rejected()) } else { Ok(rules) }
    }
}

/// Every key of `o` that was not read is an error.
fn unknown_keys(o: Obj<'_>, s: &mut Sink) {
    let mut warnings = Sink::default();
    o.finish(&mut warnings);
    for w in warnings.errors.into_iter().chain(warnings.warnings) {
        s.error(&w.path, "unknown key");
    }
}

/// One constraint at `path` (`placementConstraints[i]`).
fn constraint(path: &str, kind: &str, expression: Option<&str>, s: &mut Sink) -> Option<Constraint> {
    let expression = expression.filter(|e| !e.is_empty());
    match (kind, expression) {
        ("memberOf", Some(text)) => match Expr::parse(text) {
            Ok(expr) => Some(Constraint::MemberOf { text: text.to_string(), expr }),
            Err(e) => {
                s.error(&format!("{path}.expression"), e.to_string());
                None
            }
        },
        ("memberOf", None) => {
            s.error(&format!("{path}.expression"), "memberOf needs an expression");
            None
        }
        ("distinctInstance", None) => Some(Constraint::DistinctInstance),
        ("distinctInstance", Some(_)) => {
            s.error(&format!("{path}.expression"), "distinctInstance takes no expression");
            None
        }
        (other, _) => {
            s.error(
                &format!("{path}.type"),
                format!("unknown constraint type {other:?}: memberOf or distinctInstance"),
            );
            None
        }
    }
}

/// One strategy at `path` (`placementStrategy[i]`).
fn strategy(path: &str, kind: &str, field: Option<&str>, s: &mut Sink) -> Option<Strategy> {
    let field = field.filter(|f| !f.is_empty());
    let field_path = format!("{path}.field");
    match (kind, field) {
        ("binpack", Some("cpu")) => Some(Strategy::Binpack(Resource::Cpu)),
        ("binpack", Some("memory")) => Some(Strategy::Binpack(Resource::Memory)),
        ("binpack", Some(other)) => {
            s.error(&field_path, format!("binpack packs cpu or memory, not {other:?}"));
            None
        }
        ("spread", Some("instanceId" | "host")) => Some(Strategy::Spread(SpreadBy::Node)),
        ("spread", Some(f)) if f.starts_with("attribute:") => {
            let name = &f["attribute:".len()..];
            let ok = !name.is_empty()
                && name.len() <= MAX_NAME_CHARS
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '\\'));
            if ok {
                Some(Strategy::Spread(SpreadBy::Attribute(name.to_string())))
            } else {
                s.error(&field_path, format!("{f:?} is not an attribute name (attribute:zone)"));
                None
            }
        }
        ("spread", Some(other)) => {
            s.error(&field_path, format!("spread is over instanceId, host or attribute:<name>, not {other:?}"));
            None
        }
        ("binpack" | "spread", None) => {
            s.error(&field_path, format!("{kind} needs a field"));
            None
        }
        ("random", None) => Some(Strategy::Random),
        ("random", Some(_)) => {
            s.error(&field_path, "random takes no field");
            None
        }
        (other, _) => {
            s.error(&format!("{path}.type"), format!("unknown strategy type {other:?}: binpack, spread or random"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(r: Result<Rules, Rejected>) -> Vec<String> {
        match r {
            Ok(rules) => panic!("accepted: {rules:?}"),
            Err(rejected) => rejected.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn reads_every_kind() {
        let rules = Rules::from_json(
            Some(
                &json!([{"type": "memberOf", "expression": "attribute:zone in [a, b]"}, {"type": "distinctInstance"}]),
            ),
            Some(&json!([
                {"type": "spread", "field": "attribute:zone"},
                {"type": "spread", "field": "instanceId"},
                {"type": "spread", "field": "host"},
                {"type": "binpack", "field": "memory"},
                {"type": "random"},
            ])),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&rules.constraints[0], Constraint::MemberOf { text, .. } if text == "attribute:zone in [a, b]")
        );
        assert_eq!(rules.constraints[1], Constraint::DistinctInstance);
        assert_eq!(
            rules.strategies,
            [
                Strategy::Spread(SpreadBy::Attribute("zone".into())),
                Strategy::Spread(SpreadBy::Node),
                Strategy::Spread(SpreadBy::Node),
                Strategy::Binpack(Resource::Memory),
                Strategy::Random,
            ]
        );
        assert_eq!(Rules::from_json(None, Some(&Value::Null)), Ok(Rules::default()));
        let parts = Rules::from_parts(
            [("memberOf", Some("attribute:zone in [a, b]")), ("distinctInstance", None)],
            [("binpack", Some("cpu"))],
        );
        assert_eq!(parts.map(|r| (r.constraints.len(), r.strategies)), Ok((2, vec![Strategy::Binpack(Resource::Cpu)])));
    }

    #[test]
    fn errors_name_their_path() {
        assert_eq!(
            errors(Rules::from_json(
                Some(&json!([
                    {"type": "memberOf", "expression": "attribute:zone in [a, b]"},
                    {"type": "memberOf", "expression": "attribute:zone = a"},
                    {"type": "memberOf"},
                    {"type": "distinctInstance", "expression": "node.name == a"},
                    {"type": "sameHost"},
                    {"kind": "memberOf"},
                    "memberOf",
                ])),
                Some(&json!([
                    {"type": "binpack", "field": "disk"},
                    {"type": "spread"},
                    {"type": "random", "field": "cpu"},
                    {"type": "spread", "field": "zone"},
                    {"type": "spread", "field": "attribute:"},
                ])),
            )),
            [
                "placementConstraints[1].expression: at character 16: `=` is not an operator: equality is `==`",
                "placementConstraints[2].expression: memberOf needs an expression",
                "placementConstraints[3].expression: distinctInstance takes no expression",
                "placementConstraints[4].type: unknown constraint type \"sameHost\": memberOf or distinctInstance",
                "placementConstraints[5].type: required field is missing",
                "placementConstraints[5].kind: unknown key",
                "placementConstraints[6]: expected an object, found the string \"memberOf\"",
                "placementStrategy[0].field: binpack packs cpu or memory, not \"disk\"",
                "placementStrategy[1].field: spread needs a field",
                "placementStrategy[2].field: random takes no field",
                "placementStrategy[3].field: spread is over instanceId, host or attribute:<name>, not \"zone\"",
                "placementStrategy[4].field: \"attribute:\" is not an attribute name (attribute:zone)",
            ]
        );
    }

    #[test]
    fn ecs_limits_on_counts() {
        let eleven = json!(vec![json!({"type": "distinctInstance"}); 11]);
        let six = json!(vec![json!({"type": "random"}); 6]);
        assert_eq!(
            errors(Rules::from_json(Some(&eleven), Some(&six))),
            [
                "placementConstraints: 11 entries, more than the limit of 10",
                "placementStrategy: 6 entries, more than the limit of 5",
            ]
        );
        let ten = json!(vec![json!({"type": "distinctInstance"}); 10]);
        let five = json!(vec![json!({"type": "random"}); 5]);
        assert!(Rules::from_json(Some(&ten), Some(&five)).is_ok());
        assert_eq!(
            errors(Rules::from_parts(vec![("distinctInstance", None); 11], vec![("random", None); 6])),
            [
                "placementConstraints: 11 entries, more than the limit of 10",
                "placementStrategy: 6 entries, more than the limit of 5",
            ]
        );
        assert_eq!(
            errors(Rules::from_json(Some(&json!({"type": "memberOf"})), None)),
            ["placementConstraints: expected an array, found an object"]
        );
    }
}
