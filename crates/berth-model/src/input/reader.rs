//! A small walker over [`serde_json::Value`] that keeps the JSON path of what it reads and
//! records an [`Issue`] for every value of the wrong type, every unknown key and every
//! field berth does not act on.
//!
//! Conventions, the same everywhere in the input:
//! - `null` means absent: a key whose value is `null` is read as if it were missing;
//! - a value that is `null` or empty (`""`, `[]`, `{}`) asks nothing, so a field berth does
//!   not act on (or an unknown key) only gives a warning when its value is something else;
//! - a value of the wrong type is an error naming what was expected and what was found
//!   (`expected an integer, found the string "${MEM}"`), and the field is then left out,
//!   so that reading goes on and every error is collected;
//! - every list, map and string is read against a limit (the constants of [`super`]): one
//!   over it is one error naming its path (`containerDefinitions[0].portMappings: 1001
//!   entries, more than the limit of 100`) and is left out unread;
//! - the [`Sink`] keeps the first [`MAX_ERRORS`] errors and [`MAX_WARNINGS`] warnings and
//!   only counts the others, so that what one input can make berth hold stays bounded
//!   while reading.

use super::{Issue, MAX_ERRORS, MAX_STRING_BYTES, MAX_WARNINGS, Rejected};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

/// Longest piece of the input quoted in a message, in characters.
const QUOTE_MAX: usize = 60;

/// Where errors and warnings are collected while reading: the first [`MAX_ERRORS`] and
/// [`MAX_WARNINGS`] are kept, the others only counted.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    /// Problems that make the input invalid (the first [`MAX_ERRORS`]).
    pub errors: Vec<Issue>,
    /// Things berth accepts but does not act on (the first [`MAX_WARNINGS`]).
    pub warnings: Vec<Issue>,
    /// Errors found beyond those kept.
    pub omitted_errors: usize,
    /// Warnings found beyond those kept.
    pub omitted_warnings: usize,
}

impl Sink {
    /// Record an error at `path`.
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(Issue { path: path.to_string(), message: message.into() });
        } else {
            self.omitted_errors += 1;
        }
    }

    /// Record a warning at `path`.
    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(Issue { path: path.to_string(), message: message.into() });
        } else {
            self.omitted_warnings += 1;
        }
    }

    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.omitted_errors > 0
    }

    /// Everything found, as a rejection.
    pub fn into_rejected(self) -> Rejected {
        Rejected {
            errors: self.errors,
            omitted_errors: self.omitted_errors,
            warnings: self.warnings,
            omitted_warnings: self.omitted_warnings,
        }
    }
}

/// The limits of an object read as a map of strings ([`Field::string_map`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapLimits {
    /// Most entries.
    pub entries: usize,
    /// Longest key, in bytes.
    pub key_bytes: usize,
    /// Longest value, in bytes.
    pub value_bytes: usize,
}

impl MapLimits {
    /// At most `entries` entries, keys and values within [`MAX_STRING_BYTES`].
    pub const fn entries(entries: usize) -> MapLimits {
        MapLimits { entries, key_bytes: MAX_STRING_BYTES, value_bytes: MAX_STRING_BYTES }
    }
}

/// The error for a list or map of `len` entries when at most `max` are allowed, if it is.
fn over_entries(path: &str, len: usize, max: usize, s: &mut Sink) -> bool {
    let over = len > max;
    if over {
        s.error(path, format!("{len} entries, more than the limit of {max}"));
    }
    over
}

/// The error for a string of `len` bytes when at most `max` are allowed, if it is.
fn over_bytes(path: &str, len: usize, max: usize, s: &mut Sink) -> bool {
    let over = len > max;
    if over {
        s.error(path, format!("{len} bytes, more than the limit of {max}"));
    }
    over
}

/// A piece of input for a message: quoted and escaped, cut after [`QUOTE_MAX`] characters.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((cut, _)) => format!("{:?}...", s.get(..cut).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

/// What a value is, for "found ..." in messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// `null`, `""`, `[]` or `{}`: a value that asks nothing.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The path of `key` inside the object at `base`: `base.key`, or `base["some key"]` when
/// the key is not a plain identifier or is longer than [`QUOTE_MAX`] (then cut, as in
/// messages, so that paths stay short whatever the keys).
pub(crate) fn key_path(base: &str, key: &str) -> String {
    let plain = key.len() <= QUOTE_MAX
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match (plain, base.is_empty()) {
        (true, true) => key.to_string(),
        (true, false) => format!("{base}.{key}"),
        (false, _) => format!("{base}[{}]", quote(key)),
    }
}

/// The path of element `i` of the array at `base`.
pub(crate) fn index_path(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// A value and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Field<'v> {
    /// Its JSON path.
    pub path: String,
    /// The value itself (may be `null` only as an array element).
    pub value: &'v Value,
}

impl<'v> Field<'v> {
    /// A field at `path`.
    pub fn new(path: String, value: &'v Value) -> Field<'v> {
        Field { path, value }
    }

    /// Record that the value is not what was expected.
    pub fn type_error(&self, expected: &str, s: &mut Sink) {
        s.error(&self.path, format!("expected {expected}, found {}", describe(self.value)));
    }

    /// The value as a string of at most [`MAX_STRING_BYTES`].
    pub fn string(&self, s: &mut Sink) -> Option<&'v str> {
        self.string_max(MAX_STRING_BYTES, s)
    }

    /// The value as a string of at most `max` bytes.
    pub fn string_max(&self, max: usize, s: &mut Sink) -> Option<&'v str> {
        match self.value {
            Value::String(v) if over_bytes(&self.path, v.len(), max, s) => None,
            Value::String(v) => Some(v),
            _ => {
                self.type_error("a string", s);
                None
            }
        }
    }

    /// The value as a boolean.
    pub fn boolean(&self, s: &mut Sink) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.type_error("a boolean", s);
                None
            }
        }
    }

    /// The value as a JSON integer within `min..=max`.
    pub fn integer(&self, min: i64, max: i64, s: &mut Sink) -> Option<i64> {
        let Value::Number(n) = self.value else {
            self.type_error("an integer", s);
            return None;
        };
        if !(n.is_i64() || n.is_u64()) {
            self.type_error("an integer", s);
            return None;
        }
        match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => Some(i),
            _ => {
                s.error(&self.path, format!("expected an integer from {min} to {max}, found {n}"));
                None
            }
        }
    }

    /// The value as a non-negative JSON integer up to `max`.
    pub fn unsigned(&self, min: u64, max: u64, s: &mut Sink) -> Option<u64> {
        let lo = i64::try_from(min).unwrap_or(i64::MAX);
        let hi = i64::try_from(max).unwrap_or(i64::MAX);
        self.integer(lo, hi, s).and_then(|i| u64::try_from(i).ok())
    }

    /// The value as an object.
    pub fn object(&self, s: &mut Sink) -> Option<Obj<'v>> {
        match self.value {
            Value::Object(map) => Some(Obj::new(self.path.clone(), map)),
            _ => {
                self.type_error("an object", s);
                None
            }
        }
    }

    /// The value as an object read by `read`, then finished (its keys `read` did not ask
    /// for are warned about after whatever `read` reported); `None` when it is not an object.
    pub fn read_object<T>(&self, s: &mut Sink, read: impl FnOnce(&mut Obj<'v>, &mut Sink) -> T) -> Option<T> {
        let mut o = self.object(s)?;
        let value = read(&mut o, s);
        o.finish(s);
        Some(value)
    }

    /// The elements of an array of at most `max` elements, each with its path (`null`
    /// elements included); a longer array is an error and none of it is read.
    pub fn array(&self, max: usize, s: &mut Sink) -> Vec<Field<'v>> {
        match self.value {
            Value::Array(items) if over_entries(&self.path, items.len(), max, s) => Vec::new(),
            Value::Array(items) => {
                items.iter().enumerate().map(|(i, v)| Field::new(index_path(&self.path, i), v)).collect()
            }
            _ => {
                self.type_error("an array", s);
                Vec::new()
            }
        }
    }

    /// An array of at most `max` strings; a non-string element is an error and is left out.
    pub fn strings(&self, max: usize, s: &mut Sink) -> Vec<String> {
        self.array(max, s).iter().filter_map(|f| f.string(s)).map(str::to_string).collect()
    }

    /// An object whose values are strings (`null` values are left out, as absent), within
    /// `limits`; an object with too many entries is an error and none of it is read, a key
    /// or value too long is an error and its entry is left out.
    pub fn string_map(&self, limits: MapLimits, s: &mut Sink) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Value::Object(map) = self.value else {
            self.type_error("an object", s);
            return out;
        };
        if over_entries(&self.path, map.len(), limits.entries, s) {
            return out;
        }
        for (k, v) in map {
            if v.is_null() {
                continue;
            }
            let path = key_path(&self.path, k);
            if k.len() > limits.key_bytes {
                s.error(&path, format!("key of {} bytes, more than the limit of {}", k.len(), limits.key_bytes));
                continue;
            }
            if let Some(text) = Field::new(path, v).string_max(limits.value_bytes, s) {
                out.insert(k.clone(), text.to_string());
            }
        }
        out
    }
}

/// An object being read: remembers which keys were asked for, so that the others can be
/// reported as unknown at the end ([`Obj::finish`]).
#[derive(Debug)]
pub(crate) struct Obj<'v> {
    /// Its JSON path.
    pub path: String,
    map: &'v Map<String, Value>,
    used: HashSet<&'v str>,
}

impl<'v> Obj<'v> {
    /// Start reading `map`, found at `path`.
    pub fn new(path: String, map: &'v Map<String, Value>) -> Obj<'v> {
        Obj { path, map, used: HashSet::new() }
    }

    /// The path of one of its keys.
    pub fn path_of(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    /// Whether `key` is present with a value other than `null`.
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// Whether `key` is present with a value that is neither `null` nor empty.
    pub fn has_content(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !is_empty(v))
    }

    /// The value of `key`, marked as known; `None` when absent or `null`.
    pub fn field(&mut self, key: &str) -> Option<Field<'v>> {
        let (k, v) = self.map.get_key_value(key)?;
        self.used.insert(k.as_str());
        if v.is_null() { None } else { Some(Field::new(key_path(&self.path, k), v)) }
    }

    /// A string field.
    pub fn string(&mut self, key: &str, s: &mut Sink) -> Option<String> {
        self.field(key).and_then(|f| f.string(s).map(str::to_string))
    }

    /// A string field where `""` counts as absent.
    pub fn non_empty_string(&mut self, key: &str, s: &mut Sink) -> Option<String> {
        self.string(key, s).filter(|v| !v.is_empty())
    }

    /// A string field that must be present and not empty.
    pub fn required_string(&mut self, key: &str, s: &mut Sink) -> Option<String> {
        let found = self.non_empty_string(key, s);
        if found.is_none() && !self.has_content(key) {
            s.error(&self.path_of(key), "required field is missing");
        }
        found
    }

    /// A boolean field.
    pub fn boolean(&mut self, key: &str, s: &mut Sink) -> Option<bool> {
        self.field(key).and_then(|f| f.boolean(s))
    }

    /// A non-negative integer field within `min..=max`.
    pub fn unsigned(&mut self, key: &str, min: u64, max: u64, s: &mut Sink) -> Option<u64> {
        self.field(key).and_then(|f| f.unsigned(min, max, s))
    }

    /// A nested object.
    pub fn object(&mut self, key: &str, s: &mut Sink) -> Option<Obj<'v>> {
        self.field(key).and_then(|f| f.object(s))
    }

    /// The elements of an array field of at most `max` elements (empty when absent).
    pub fn array(&mut self, key: &str, max: usize, s: &mut Sink) -> Vec<Field<'v>> {
        self.field(key).map(|f| f.array(max, s)).unwrap_or_default()
    }

    /// The array field `key` (at most `max` elements; none when absent), each element read
    /// as an object by `read` ([`Field::read_object`]); elements that are not objects, or
    /// that `read` makes nothing of, are left out.
    pub fn objects<T, C: FromIterator<T>>(
        &mut self,
        key: &str,
        max: usize,
        s: &mut Sink,
        mut read: impl FnMut(&mut Obj<'v>, &mut Sink) -> Option<T>,
    ) -> C {
        self.array(key, max, s).iter().filter_map(|f| f.read_object(s, &mut read).flatten()).collect()
    }

    /// An array of at most `max` strings (empty when absent).
    pub fn strings(&mut self, key: &str, max: usize, s: &mut Sink) -> Vec<String> {
        self.field(key).map(|f| f.strings(max, s)).unwrap_or_default()
    }

    /// An object of strings within `limits` (empty when absent).
    pub fn string_map(&mut self, key: &str, limits: MapLimits, s: &mut Sink) -> BTreeMap<String, String> {
        self.field(key).map(|f| f.string_map(limits, s)).unwrap_or_default()
    }

    /// A field berth knows but does not act on: a warning naming it, unless it asks nothing.
    pub fn not_acted_on(&mut self, key: &str, s: &mut Sink) {
        self.ignored(key, "accepted but not acted on by berth", s);
    }

    /// A field berth ignores, with a warning saying why, unless its value asks nothing.
    pub fn ignored(&mut self, key: &str, why: &str, s: &mut Sink) {
        if let Some(f) = self.field(key)
            && !is_empty(f.value)
        {
            s.warn(&f.path, why);
        }
    }

    /// Done reading: a warning for every key nobody asked for, unless its value asks
    /// nothing.
    pub fn finish(self, s: &mut Sink) {
        for (k, v) in self.map {
            if !self.used.contains(k.as_str()) && !is_empty(v) {
                s.warn(&key_path(&self.path, k), "unknown key, ignored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(issues: &[Issue]) -> Vec<String> {
        issues.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn type_errors_say_what_was_found() {
        let v = json!({"memory": "${MEM}", "cpu": 1.5, "essential": "yes", "links": {}, "big": 70000});
        let Value::Object(map) = &v else { panic!("not an object") };
        let mut o = Obj::new("containerDefinitions[1]".into(), map);
        let mut s = Sink::default();
        assert_eq!(o.unsigned("memory", 0, 100, &mut s), None);
        assert_eq!(o.unsigned("cpu", 0, 100, &mut s), None);
        assert_eq!(o.boolean("essential", &mut s), None);
        assert!(o.strings("links", 10, &mut s).is_empty());
        assert_eq!(o.unsigned("big", 1, 65535, &mut s), None);
        assert_eq!(
            messages(&s.errors),
            [
                r#"containerDefinitions[1].memory: expected an integer, found the string "${MEM}""#,
                "containerDefinitions[1].cpu: expected an integer, found the number 1.5",
                r#"containerDefinitions[1].essential: expected a boolean, found the string "yes""#,
                "containerDefinitions[1].links: expected an array, found an object",
                "containerDefinitions[1].big: expected an integer from 1 to 65535, found 70000",
            ]
        );
    }

    #[test]
    fn huge_and_negative_numbers_are_out_of_range() {
        let v = json!({"a": 18446744073709551615_u64, "b": -1, "c": 1e300});
        let Value::Object(map) = &v else { panic!("not an object") };
        let mut o = Obj::new(String::new(), map);
        let mut s = Sink::default();
        assert_eq!(o.unsigned("a", 0, 10, &mut s), None);
        assert_eq!(o.unsigned("b", 0, 10, &mut s), None);
        assert_eq!(o.unsigned("c", 0, 10, &mut s), None);
        assert_eq!(
            messages(&s.errors),
            [
                "a: expected an integer from 0 to 10, found 18446744073709551615",
                "b: expected an integer from 0 to 10, found -1",
                "c: expected an integer, found the number 1e+300",
            ]
        );
    }

    #[test]
    fn null_is_absent_and_empty_values_ask_nothing() {
        let v = json!({"a": null, "b": [], "c": {}, "d": "", "e": [1], "f": null});
        let Value::Object(map) = &v else { panic!("not an object") };
        let mut o = Obj::new("x".into(), map);
        let mut s = Sink::default();
        assert!(o.field("a").is_none());
        assert!(!o.has("a"));
        o.not_acted_on("b", &mut s);
        o.not_acted_on("e", &mut s);
        o.finish(&mut s);
        assert!(s.errors.is_empty());
        assert_eq!(messages(&s.warnings), ["x.e: accepted but not acted on by berth"]);
    }

    #[test]
    fn unknown_keys_are_warned_with_their_path() {
        let v = json!({"portBindings": [{"containerPort": 80}], "name": "x", "odd key": 1});
        let Value::Object(map) = &v else { panic!("not an object") };
        let mut o = Obj::new("containerDefinitions[0]".into(), map);
        let mut s = Sink::default();
        assert_eq!(o.string("name", &mut s).as_deref(), Some("x"));
        o.finish(&mut s);
        assert_eq!(
            messages(&s.warnings),
            [
                r#"containerDefinitions[0]["odd key"]: unknown key, ignored"#,
                "containerDefinitions[0].portBindings: unknown key, ignored",
            ]
        );
    }

    #[test]
    fn required_strings_and_string_maps() {
        let v = json!({"name": "", "labels": {"a": "1", "b": null, "c": 2}});
        let Value::Object(map) = &v else { panic!("not an object") };
        let mut o = Obj::new("c".into(), map);
        let mut s = Sink::default();
        assert_eq!(o.required_string("name", &mut s), None);
        assert_eq!(o.required_string("image", &mut s), None);
        let labels = o.string_map("labels", MapLimits::entries(10), &mut s);
        assert_eq!(labels.len(), 1);
        assert_eq!(
            messages(&s.errors),
            [
                "c.name: required field is missing",
                "c.image: required field is missing",
                r#"c.labels.c: expected a string, found the number 2"#,
            ]
        );
    }

    #[test]
    fn long_strings_are_cut_in_messages() {
        let long = "é".repeat(1000);
        let q = quote(&long);
        assert!(q.chars().count() < 70, "{q}");
        assert!(q.ends_with("\"..."));
        assert_eq!(key_path("a", "awslogs-group"), r#"a["awslogs-group"]"#);
        assert_eq!(key_path("", "family"), "family");
        assert_eq!(index_path("", 3), "[3]");
        let long_key = "k".repeat(1000);
        assert_eq!(key_path("a", &long_key), format!("a[\"{}\"...]", "k".repeat(60)));
        assert_eq!(key_path("a", &"k".repeat(60)), format!("a.{}", "k".repeat(60)));
    }
}
