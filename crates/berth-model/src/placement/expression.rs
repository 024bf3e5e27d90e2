//! `memberOf` expressions: the part of ECS's cluster query language that makes sense for
//! berth's nodes (`docs/cluster-placement.md` has the grammar for users).
//!
//! ```text
//! expression := or
//! or         := and { ("or" | "||") and }
//! and        := unary { ("and" | "&&") unary }
//! unary      := ("not" | "!") unary | "(" expression ")" | test
//! test       := subject ( ("==" | "equals") value
//!                       | ("!=" | "not_equals") value
//!                       | "in" list | ("not_in" | "!in") list
//!                       | "exists" | ("not_exists" | "!exists") )
//! subject    := "attribute:" name | "node.name"
//! list       := "[" value { "," value } "]"
//! ```
//!
//! `not` binds tighter than `and`, which binds tighter than `or`; keywords are
//! case-insensitive, subjects, names and values are not. A name or value is a run of
//! letters, digits and `. - _ / \ @ :` (no spaces, no quotes). A test on an attribute the
//! node does not have is false, except `!=`, `not_in` and `not_exists`, which hold (the node
//! is not a member of the excluded values). ECS's other subjects (`task:group`,
//! `ec2InstanceId`, `agentVersion`, ...) and operators (`=~`, `>`, ...) are refused by name.

use std::collections::BTreeMap;
use std::fmt;

/// Longest expression, in characters (ECS's limit).
pub const MAX_EXPRESSION_CHARS: usize = 2000;
/// Deepest nesting of parentheses and `not`.
const MAX_DEPTH: usize = 32;
/// Longest attribute name, in characters (ECS's limit).
pub(crate) const MAX_NAME_CHARS: usize = 128;

/// A parsed `memberOf` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Either side holds.
    Or(Box<Expr>, Box<Expr>),
    /// Both sides hold.
    And(Box<Expr>, Box<Expr>),
    /// The inner expression does not hold.
    Not(Box<Expr>),
    /// One test on one subject.
    Test(Subject, Test),
}

/// What a test reads of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `attribute:<name>`: one of the node's attributes (may be absent).
    Attribute(String),
    /// `node.name`: the node's name (always present).
    NodeName,
}

/// What a test asks of its subject's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `== v`: present and equal.
    Equals(String),
    /// `!= v`: absent or different.
    NotEquals(String),
    /// `in [a, b]`: present and one of these.
    In(Vec<String>),
    /// `not_in [a, b]`: absent or none of these.
    NotIn(Vec<String>),
    /// `exists`: present.
    Exists,
    /// `not_exists`: absent.
    NotExists,
}

/// Why an expression could not be read: where (the character, counted from 1) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {at}: {message}")]
pub struct ExprError {
    /// The character where the problem is, counted from 1 (one past the end for "ended
    /// too early").
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

impl Expr {
    /// Reads `text` (see the module docs for the grammar).
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let chars = text.chars().count();
        if chars > MAX_EXPRESSION_CHARS {
            return Err(ExprError {
                at: MAX_EXPRESSION_CHARS + 1,
                message: format!("{chars} characters, more than the limit of {MAX_EXPRESSION_CHARS}"),
            });
        }
        let mut parser = Parser { tokens: lex(text), next: 0, end: chars, depth: 0 };
        if parser.tokens.is_empty() {
            return Err(ExprError { at: 1, message: "the expression is empty".into() });
        }
        let expr = parser.or()?;
        match parser.peek() {
            None => Ok(expr),
            Some(t) => {
                Err(parser.error_at(t, format!("unexpected {} after a complete test: join tests with and/or", t.kind)))
            }
        }
    }

    /// Whether a node named `node` with these `attributes` is a member.
    pub fn matches(&self, node: &str, attributes: &BTreeMap<String, String>) -> bool {
        match self {
            Expr::Or(a, b) => a.matches(node, attributes) || b.matches(node, attributes),
            Expr::And(a, b) => a.matches(node, attributes) && b.matches(node, attributes),
            Expr::Not(e) => !e.matches(node, attributes),
            Expr::Test(subject, test) => {
                let value = match subject {
                    Subject::Attribute(name) => attributes.get(name).map(String::as_str),
                    Subject::NodeName => Some(node),
                };
                let among = |list: &[String]| value.is_some_and(|v| list.iter().any(|x| x == v));
                match test {
                    Test::Equals(v) => value == Some(v.as_str()),
                    Test::NotEquals(v) => value != Some(v.as_str()),
                    Test::In(list) => among(list),
                    Test::NotIn(list) => !among(list),
                    Test::Exists => value.is_some(),
                    Test::NotExists => value.is_none(),
                }
            }
        }
    }
}

/// The canonical text: every compound operand in parentheses, so that it reads back as the
/// same expression.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |e: &Expr, f: &mut fmt::Formatter<'_>| match e {
            Expr::Test(..) => write!(f, "{e}"),
            _ => write!(f, "({e})"),
        };
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => {
                operand(a, f)?;
                f.write_str(if matches!(self, Expr::Or(..)) { " or " } else { " and " })?;
                operand(b, f)
            }
            Expr::Not(e) => {
                f.write_str("not ")?;
                operand(e, f)
            }
            Expr::Test(subject, test) => {
                match subject {
                    Subject::Attribute(name) => write!(f, "attribute:{name}")?,
                    Subject::NodeName => f.write_str("node.name")?,
                }
                match test {
                    Test::Equals(v) => write!(f, " == {v}"),
                    Test::NotEquals(v) => write!(f, " != {v}"),
                    Test::In(list) => write!(f, " in [{}]", list.join(", ")),
                    Test::NotIn(list) => write!(f, " not_in [{}]", list.join(", ")),
                    Test::Exists => f.write_str(" exists"),
                    Test::NotExists => f.write_str(" not_exists"),
                }
            }
        }
    }
}

/// One token and the character where it starts (from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    at: usize,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    Eq,
    Ne,
    AndAnd,
    OrOr,
    Bang,
    /// An operator of ECS's that berth refuses (`=~`, `>`, ...).
    Unsupported(&'static str),
    /// `=` alone.
    SingleEq,
    /// A character that has no place in an expression.
    Stray(char),
    Word(String),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Open => f.write_str("`(`"),
            Kind::Close => f.write_str("`)`"),
            Kind::OpenList => f.write_str("`[`"),
            Kind::CloseList => f.write_str("`]`"),
            Kind::Comma => f.write_str("`,`"),
            Kind::Eq => f.write_str("`==`"),
            Kind::Ne => f.write_str("`!=`"),
            Kind::AndAnd => f.write_str("`&&`"),
            Kind::OrOr => f.write_str("`||`"),
            Kind::Bang => f.write_str("`!`"),
            Kind::Unsupported(op) => write!(f, "`{op}`"),
            Kind::SingleEq => f.write_str("`=`"),
            Kind::Stray(c) => write!(f, "{c:?}"),
            Kind::Word(w) => write!(f, "`{w}`"),
        }
    }
}

/// Characters of a name or value.
fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '\\' | '@' | ':')
}

/// The tokens of `text`. A stray character is a token too, so that the parser reports the
/// first problem in reading order (`=~ t2.*` is an unsupported operator before `*` is
/// anything).
fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        let (kind, len) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('(', _) => (Kind::Open, 1),
            (')', _) => (Kind::Close, 1),
            ('[', _) => (Kind::OpenList, 1),
            (']', _) => (Kind::CloseList, 1),
            (',', _) => (Kind::Comma, 1),
            ('=', Some('=')) => (Kind::Eq, 2),
            ('=', Some('~')) => (Kind::Unsupported("=~"), 2),
            ('=', _) => (Kind::SingleEq, 1),
            ('!', Some('=')) => (Kind::Ne, 2),
            ('!', Some('~')) => (Kind::Unsupported("!~"), 2),
            ('!', _) => (Kind::Bang, 1),
            ('&', Some('&')) => (Kind::AndAnd, 2),
            ('|', Some('|')) => (Kind::OrOr, 2),
            ('>', Some('=')) => (Kind::Unsupported(">="), 2),
            ('>', _) => (Kind::Unsupported(">"), 1),
            ('<', Some('=')) => (Kind::Unsupported("<="), 2),
            ('<', _) => (Kind::Unsupported("<"), 1),
            (c, _) if word_char(c) => {
                let len = chars[i..].iter().take_while(|&&c| word_char(c)).count();
                (Kind::Word(chars[i..i + len].iter().collect()), len)
            }
            (c, _) => (Kind::Stray(c), 1),
        };
        tokens.push(Token { at: i, kind });
        i += len;
    }
    tokens
}

/// The operators berth supports, for messages.
const OPERATORS: &str = "==, !=, in, not_in, exists, not_exists";

/// ECS operators spelled as words, which berth refuses.
const UNSUPPORTED_WORDS: [&str; 6] =
    ["matches", "not_matches", "greater_than", "greater_than_equal", "less_than", "less_than_equal"];

/// ECS subjects berth refuses, with why.
fn unsupported_subject(word: &str) -> Option<&'static str> {
    match word {
        "ec2InstanceId" => Some("berth's nodes have names, not instance ids: use node.name"),
        "task:group" => Some("use the distinctInstance constraint or the spread strategy for groups"),
        "agentConnected" | "agentVersion" | "registeredAt" | "runningTasksCount" => {
            Some("berth places on attributes and node names only")
        }
        _ => None,
    }
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    /// The number of characters, where "ended too early" points.
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn take(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.next).cloned();
        self.next += usize::from(t.is_some());
        t
    }

    /// An error at `t`: `message`, unless `t` is a problem of its own.
    fn error_at(&self, t: &Token, message: String) -> ExprError {
        let message = match t.kind {
            Kind::SingleEq => "`=` is not an operator: equality is `==`".to_string(),
            Kind::Stray(c) => {
                let hint = if matches!(c, '"' | '\'') { " (values are written without quotes)" } else { "" };
                format!("unexpected character {c:?}{hint}")
            }
            _ => message,
        };
        ExprError { at: t.at + 1, message }
    }

    fn error_at_end(&self, message: String) -> ExprError {
        ExprError { at: self.end + 1, message }
    }

    /// Whether the next token is the keyword `word` (any case).
    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: Kind::Word(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some(Token { kind: Kind::OrOr, .. })) || self.keyword("or") {
            self.take();
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        while matches!(self.peek(), Some(Token { kind: Kind::AndAnd, .. })) || self.keyword("and") {
            self.take();
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.error_at_end("expected a test, found the end of the expression".into()));
        };
        let nested = matches!(t.kind, Kind::Bang | Kind::Open) || self.keyword("not");
        if nested {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error_at(&t, format!("nested more than {MAX_DEPTH} deep")));
            }
        }
        let expr = match t.kind {
            Kind::Open => {
                self.take();
                let inner = self.or()?;
                match self.take() {
                    Some(Token { kind: Kind::Close, .. }) => inner,
                    Some(other) => return Err(self.error_at(&other, format!("expected `)`, found {}", other.kind))),
                    None => return Err(self.error_at_end("expected `)`, found the end of the expression".into())),
                }
            }
            Kind::Bang => {
                self.take();
                Expr::Not(Box::new(self.unary()?))
            }
            _ if nested => {
                self.take();
                Expr::Not(Box::new(self.unary()?))
            }
            _ => self.test()?,
        };
        if nested {
            self.depth -= 1;
        }
        Ok(expr)
    }

    fn test(&mut self) -> Result<Expr, ExprError> {
        let subject = self.subject()?;
        let Some(op) = self.take() else {
            return Err(
                self.error_at_end(format!("expected an operator ({OPERATORS}), found the end of the expression"))
            );
        };
        let word = match &op.kind {
            Kind::Word(w) => Some(w.to_ascii_lowercase()),
            _ => None,
        };
        let test = match (&op.kind, word.as_deref()) {
            (Kind::Eq, _) | (_, Some("equals")) => Test::Equals(self.value(&op)?),
            (Kind::Ne, _) | (_, Some("not_equals")) => Test::NotEquals(self.value(&op)?),
            (_, Some("in")) => Test::In(self.list(&op)?),
            (_, Some("not_in")) => Test::NotIn(self.list(&op)?),
            (_, Some("exists")) => Test::Exists,
            (_, Some("not_exists")) => Test::NotExists,
            (Kind::Bang, _) if self.keyword("in") => {
                self.take();
                Test::NotIn(self.list(&op)?)
            }
            (Kind::Bang, _) if self.keyword("exists") => {
                self.take();
                Test::NotExists
            }
            (Kind::Unsupported(name), _) => {
                return Err(self.error_at(&op, format!("operator `{name}` is not supported by berth ({OPERATORS})")));
            }
            (_, Some(w)) if UNSUPPORTED_WORDS.contains(&w) => {
                return Err(self.error_at(&op, format!("operator `{w}` is not supported by berth ({OPERATORS})")));
            }
            _ => return Err(self.error_at(&op, format!("expected an operator ({OPERATORS}), found {}", op.kind))),
        };
        Ok(Expr::Test(subject, test))
    }

    fn subject(&mut self) -> Result<Subject, ExprError> {
        let Some(t) = self.take() else {
            return Err(self.error_at_end("expected a subject, found the end of the expression".into()));
        };
        let Kind::Word(word) = &t.kind else {
            return Err(
                self.error_at(&t, format!("expected a subject (attribute:<name> or node.name), found {}", t.kind))
            );
        };
        if word == "node.name" {
            return Ok(Subject::NodeName);
        }
        if let Some(name) = word.strip_prefix("attribute:") {
            let bad = name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '\\')));
            return match (name.is_empty(), bad, name.chars().count()) {
                (true, _, _) => Err(self.error_at(&t, "attribute: needs a name (attribute:zone)".into())),
                (_, Some(c), _) => Err(self.error_at(&t, format!("attribute name `{name}` has the character {c:?}"))),
                (_, _, n) if n > MAX_NAME_CHARS => {
                    Err(self.error_at(&t, format!("attribute name of {n} characters, more than {MAX_NAME_CHARS}")))
                }
                _ => Ok(Subject::Attribute(name.to_string())),
            };
        }
        let message = match unsupported_subject(word) {
            Some(why) => format!("subject `{word}` is not supported by berth: {why}"),
            None => format!("unknown subject `{word}`: expected attribute:<name> or node.name"),
        };
        Err(self.error_at(&t, message))
    }

    fn value(&mut self, op: &Token) -> Result<String, ExprError> {
        match self.take() {
            Some(Token { kind: Kind::Word(w), .. }) => Ok(w),
            Some(t) => Err(self.error_at(&t, format!("expected a value after {}, found {}", op.kind, t.kind))),
            None => {
                Err(self.error_at_end(format!("expected a value after {}, found the end of the expression", op.kind)))
            }
        }
    }

    fn list(&mut self, op: &Token) -> Result<Vec<String>, ExprError> {
        match self.take() {
            Some(Token { kind: Kind::OpenList, .. }) => {}
            Some(t) => return Err(self.error_at(&t, format!("expected `[` after {}, found {}", op.kind, t.kind))),
            None => {
                return Err(
                    self.error_at_end(format!("expected `[` after {}, found the end of the expression", op.kind))
                );
            }
        }
        let mut values = Vec::new();
        loop {
            match self.take() {
                Some(Token { kind: Kind::Word(w), .. }) => values.push(w),
                Some(t @ Token { kind: Kind::CloseList, .. }) if values.is_empty() => {
                    return Err(self.error_at(&t, "an empty list: name at least one value".into()));
                }
                Some(t) => return Err(self.error_at(&t, format!("expected a value, found {}", t.kind))),
                None => return Err(self.error_at_end("expected a value, found the end of the expression".into())),
            }
            match self.take() {
                Some(Token { kind: Kind::Comma, .. }) => {}
                Some(Token { kind: Kind::CloseList, .. }) => return Ok(values),
                Some(t) => return Err(self.error_at(&t, format!("expected `,` or `]`, found {}", t.kind))),
                None => return Err(self.error_at_end("expected `]`, found the end of the expression".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(text: &str) -> Expr {
        Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn error(text: &str) -> String {
        match Expr::parse(text) {
            Ok(e) => panic!("{text} parsed as {e}"),
            Err(e) => e.to_string(),
        }
    }

    fn attr(name: &str, test: Test) -> Expr {
        Expr::Test(Subject::Attribute(name.into()), test)
    }

    #[test]
    fn every_operator_and_its_aliases() {
        let eq = attr("zone", Test::Equals("a".into()));
        assert_eq!(parse("attribute:zone == a"), eq);
        assert_eq!(parse("attribute:zone EQUALS a"), eq);
        assert_eq!(parse("attribute:zone==a"), eq);
        let ne = attr("zone", Test::NotEquals("a".into()));
        assert_eq!(parse("attribute:zone != a"), ne);
        assert_eq!(parse("attribute:zone not_equals a"), ne);
        let list = vec!["a".to_string(), "us-east-1b".to_string()];
        assert_eq!(parse("attribute:zone in [a, us-east-1b]"), attr("zone", Test::In(list.clone())));
        assert_eq!(parse("attribute:zone not_in [a,us-east-1b]"), attr("zone", Test::NotIn(list.clone())));
        assert_eq!(parse("attribute:zone !in [a , us-east-1b]"), attr("zone", Test::NotIn(list)));
        assert_eq!(parse("attribute:gpu exists"), attr("gpu", Test::Exists));
        assert_eq!(parse("attribute:gpu not_exists"), attr("gpu", Test::NotExists));
        assert_eq!(parse("attribute:gpu !exists"), attr("gpu", Test::NotExists));
        assert_eq!(parse("node.name == n1"), Expr::Test(Subject::NodeName, Test::Equals("n1".into())));
        assert_eq!(
            parse("attribute:ecs.instance-type == t2.micro"),
            attr("ecs.instance-type", Test::Equals("t2.micro".into()))
        );
        assert_eq!(parse("attribute:role == service:web"), attr("role", Test::Equals("service:web".into())));
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        let (a, b, c) = (attr("a", Test::Exists), attr("b", Test::Exists), attr("c", Test::Exists));
        let or_of_and = Expr::Or(Box::new(a.clone()), Box::new(Expr::And(Box::new(b.clone()), Box::new(c.clone()))));
        assert_eq!(parse("attribute:a exists or attribute:b exists and attribute:c exists"), or_of_and);
        assert_eq!(parse("attribute:a exists || attribute:b exists && attribute:c exists"), or_of_and);
        let and_of_or = Expr::And(Box::new(Expr::Or(Box::new(a.clone()), Box::new(b.clone()))), Box::new(c.clone()));
        assert_eq!(parse("(attribute:a exists OR attribute:b exists) AND attribute:c exists"), and_of_or);
        let not_a_and_b = Expr::And(Box::new(Expr::Not(Box::new(a.clone()))), Box::new(b.clone()));
        assert_eq!(parse("not attribute:a exists and attribute:b exists"), not_a_and_b);
        assert_eq!(parse("!attribute:a exists && attribute:b exists"), not_a_and_b);
        assert_eq!(
            parse("not(attribute:a exists and attribute:b exists)"),
            Expr::Not(Box::new(Expr::And(Box::new(a), Box::new(b))))
        );
    }

    #[test]
    fn evaluation_and_absent_attributes() {
        let node = attrs(&[("zone", "a"), ("disk", "ssd")]);
        let holds = |text: &str| parse(text).matches("n1", &node);
        assert!(holds("attribute:zone == a"));
        assert!(!holds("attribute:zone == b"));
        assert!(holds("attribute:zone in [b, a]"));
        assert!(!holds("attribute:zone not_in [b, a]"));
        assert!(holds("attribute:gpu != yes"), "absent is not equal");
        assert!(holds("attribute:gpu not_in [yes]"), "absent is in no list");
        assert!(!holds("attribute:gpu == yes"));
        assert!(!holds("attribute:gpu in [yes]"));
        assert!(holds("attribute:gpu not_exists") && !holds("attribute:gpu exists"));
        assert!(holds("attribute:disk exists and (attribute:zone == b or node.name == n1)"));
        assert!(!holds("node.name in [n2, n3]"));
        assert!(holds("not node.name in [n2, n3]"));
        assert!(!holds("attribute:Zone == a"), "names are case-sensitive");
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(error(""), "at character 1: the expression is empty");
        assert_eq!(error("attribute:zone = a"), "at character 16: `=` is not an operator: equality is `==`");
        assert_eq!(
            error("attribute:zone =~ a.*"),
            "at character 16: operator `=~` is not supported by berth (==, !=, in, not_in, exists, not_exists)"
        );
        assert_eq!(
            error("attribute:cores > 2"),
            "at character 17: operator `>` is not supported by berth (==, !=, in, not_in, exists, not_exists)"
        );
        assert_eq!(
            error("attribute:zone matches a"),
            "at character 16: operator `matches` is not supported by berth (==, !=, in, not_in, exists, not_exists)"
        );
        assert_eq!(
            error("task:group == web"),
            "at character 1: subject `task:group` is not supported by berth: use the distinctInstance constraint \
             or the spread strategy for groups"
        );
        assert_eq!(
            error("ec2InstanceId == i-1"),
            "at character 1: subject `ec2InstanceId` is not supported by berth: berth's nodes have names, not \
             instance ids: use node.name"
        );
        assert_eq!(
            error("zone == a"),
            "at character 1: unknown subject `zone`: expected attribute:<name> or node.name"
        );
        assert_eq!(error("attribute: == a"), "at character 1: attribute: needs a name (attribute:zone)");
        assert_eq!(
            error("attribute:zone =="),
            "at character 18: expected a value after `==`, found the end of the expression"
        );
        assert_eq!(
            error("attribute:zone == \"a\""),
            "at character 19: unexpected character '\"' (values are written without quotes)"
        );
        assert_eq!(error("attribute:zone in a"), "at character 19: expected `[` after `in`, found `a`");
        assert_eq!(error("attribute:zone in []"), "at character 20: an empty list: name at least one value");
        assert_eq!(error("attribute:zone in [a b]"), "at character 22: expected `,` or `]`, found `b`");
        assert_eq!(error("(attribute:zone exists"), "at character 23: expected `)`, found the end of the expression");
        assert_eq!(
            error("attribute:zone == a attribute:disk exists"),
            "at character 21: unexpected `attribute:disk` after a complete test: join tests with and/or"
        );
        assert_eq!(
            error("attribute:zone exists and"),
            "at character 26: expected a test, found the end of the expression"
        );
        assert_eq!(error("attribute:zone & a"), "at character 16: unexpected character '&'");
        assert!(error(&"(".repeat(40)).contains("nested more than 32 deep"));
        let long = format!("attribute:zone in [{}]", vec!["a"; 1000].join(","));
        assert_eq!(
            Expr::parse(&long).map_err(|e| e.message),
            Err("2019 characters, more than the limit of 2000".into())
        );
    }

    #[test]
    fn display_reads_back_as_the_same_expression() {
        for text in [
            "attribute:zone == a",
            "not (attribute:a exists or attribute:b != x) and node.name in [n1, n2]",
            "attribute:a exists or (attribute:b exists and attribute:c not_in [x])",
            "!!attribute:a exists",
        ] {
            let e = parse(text);
            assert_eq!(parse(&e.to_string()), e, "{text} printed as {e}");
        }
    }
}
