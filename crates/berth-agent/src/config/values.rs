//! The value parsers: each setting's value, as the file (typed TOML) or the environment
//! and the command line (text) give it, read and checked. Errors quote the value,
//! except a credential's.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use berth_engine::PullBehavior;
use berth_model::admission::HostPort;
use berth_model::container::Protocol;
use toml::Value as TomlValue;

use super::DEFAULT_TCP_PORT;
use super::auth::normalize_auth_type;

/// No duration setting may be this long or longer (100 years): a sanity bound that
/// keeps every later computation with it from overflowing.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A value as given: from the file (typed TOML) or from the environment or a flag (text).
#[derive(Clone, Copy)]
pub(super) enum Raw<'a> {
    Toml(&'a TomlValue),
    Text(&'a str),
}

impl<'a> Raw<'a> {
    /// The text of a TOML string or of a variable.
    pub(super) fn as_str(self) -> Option<&'a str> {
        match self {
            Raw::Toml(TomlValue::String(s)) => Some(s),
            Raw::Text(s) => Some(s),
            Raw::Toml(_) => None,
        }
    }
}

/// Reads a pull behaviour as configured: [`PullBehavior`]'s `FromStr` (`default`,
/// `always`, `once`, `prefer-cached`; without case, `prefer_cached` too), its error as text.
pub fn parse_pull_behavior(s: &str) -> Result<PullBehavior, String> {
    s.parse().map_err(|e: berth_engine::InvalidPullBehavior| e.to_string())
}

pub(super) fn type_name(value: &TomlValue) -> &'static str {
    match value {
        TomlValue::String(_) => "a string",
        TomlValue::Integer(_) => "an integer",
        TomlValue::Float(_) => "a float",
        TomlValue::Boolean(_) => "a boolean",
        TomlValue::Datetime(_) => "a datetime",
        TomlValue::Array(_) => "an array",
        TomlValue::Table(_) => "a table",
    }
}

/// The text of a value; `what` names what a string was expected to hold.
pub(super) fn text<'a>(raw: Raw<'a>, what: &str) -> Result<&'a str, String> {
    match (raw.as_str(), raw) {
        (Some(s), _) => Ok(s),
        (None, Raw::Toml(other)) => Err(format!("expected {what} (a string), found {}", type_name(other))),
        (None, Raw::Text(s)) => Ok(s),
    }
}

pub(super) fn non_empty(raw: Raw<'_>) -> Result<&str, String> {
    let s = text(raw, "a string")?;
    if s.trim().is_empty() { Err("must not be empty".to_owned()) } else { Ok(s) }
}

/// A credential: never quoted, whatever is wrong.
pub(super) fn secret_text(raw: Raw<'_>) -> Result<&str, String> {
    match (raw.as_str(), raw) {
        (Some(s), _) => Ok(s),
        (None, Raw::Toml(other)) => Err(format!("expected a string (the JSON data), found {}", type_name(other))),
        (None, Raw::Text(s)) => Ok(s),
    }
}

pub(super) fn path(raw: Raw<'_>) -> Result<PathBuf, String> {
    let s = text(raw, "a path")?;
    if s.is_empty() { Err("empty path".to_owned()) } else { Ok(PathBuf::from(s)) }
}

/// Host path prefixes: an array of strings in the file, a `:`-separated list in the
/// environment; each absolute.
pub(super) fn host_paths(raw: Raw<'_>) -> Result<Vec<PathBuf>, String> {
    let items: Vec<&str> = match raw {
        Raw::Text(s) => s.split(':').filter(|p| !p.is_empty()).collect(),
        Raw::Toml(TomlValue::Array(values)) => values
            .iter()
            .map(|v| match v {
                TomlValue::String(s) => Ok(s.as_str()),
                other => Err(format!("expected an array of paths, found {} in it", type_name(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => return Err(format!("expected an array of paths, found {}", type_name(other))),
    };
    items
        .into_iter()
        .map(|p| {
            let path = PathBuf::from(p);
            if path.is_absolute() { Ok(path) } else { Err(format!("host path {p:?} is not absolute")) }
        })
        .collect()
}

/// A list of names: an array of strings in the file, a `,`-separated list in the
/// environment; each trimmed and not empty.
pub(super) fn names(raw: Raw<'_>) -> Result<Vec<String>, String> {
    let items: Vec<&str> = match raw {
        Raw::Text(s) => s.split(',').map(str::trim).filter(|p| !p.is_empty()).collect(),
        Raw::Toml(TomlValue::Array(values)) => values
            .iter()
            .map(|v| match v {
                TomlValue::String(s) => Ok(s.trim()),
                other => Err(format!("expected an array of strings, found {} in it", type_name(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => return Err(format!("expected an array of strings, found {}", type_name(other))),
    };
    if items.iter().any(|i| i.is_empty()) {
        return Err("an empty name in the list".to_owned());
    }
    Ok(items.into_iter().map(str::to_owned).collect())
}

/// Host ports: `22` (tcp) or `53/udp`; an array of integers or strings in the file, a
/// `,`-separated list in the environment.
pub(super) fn host_ports(raw: Raw<'_>) -> Result<Vec<HostPort>, String> {
    let port = |s: &str| -> Result<HostPort, String> {
        let (number, protocol) = match s.trim().split_once('/') {
            Some((n, p)) => match p.trim().to_ascii_lowercase().as_str() {
                "tcp" => (n, Protocol::Tcp),
                "udp" => (n, Protocol::Udp),
                _ => return Err(format!("invalid protocol in {s:?}: expected tcp or udp")),
            },
            None => (s.trim(), Protocol::Tcp),
        };
        match number.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(HostPort { port, protocol }),
            _ => Err(format!("invalid host port {s:?}: expected 1 to 65535, optionally with /tcp or /udp")),
        }
    };
    match raw {
        Raw::Text(s) => s.split(',').filter(|p| !p.trim().is_empty()).map(port).collect(),
        Raw::Toml(TomlValue::Array(values)) => values
            .iter()
            .map(|v| match v {
                TomlValue::String(s) => port(s),
                TomlValue::Integer(i) => port(&i.to_string()),
                other => Err(format!("expected an array of ports, found {} in it", type_name(other))),
            })
            .collect(),
        Raw::Toml(other) => Err(format!("expected an array of ports, found {}", type_name(other))),
    }
}

/// tmpfs options that may be allowed: `exec`, `suid`, `dev` (any case).
pub(super) fn tmpfs_options(raw: Raw<'_>) -> Result<Vec<String>, String> {
    let options = names(raw)?;
    options
        .into_iter()
        .map(|o| {
            let lower = o.to_ascii_lowercase();
            if crate::policy::GUARDED_TMPFS_OPTIONS.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!("tmpfs option {o:?} needs no allowing: expected exec, suid or dev"))
            }
        })
        .collect()
}

/// Host names: an array of strings in the file, a `,`-separated list in the environment;
/// each a DNS name (letters, digits, `-`, `.`), kept in lower case without a final dot.
pub(super) fn host_names(raw: Raw<'_>) -> Result<Vec<String>, String> {
    names(raw)?
        .into_iter()
        .map(|name| {
            let lower = name.trim_end_matches('.').to_ascii_lowercase();
            let valid = !lower.is_empty()
                && lower
                    .split('.')
                    .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if valid { Ok(lower) } else { Err(format!("invalid host name {name:?}: expected a DNS name")) }
        })
        .collect()
}

/// Ulimit bounds, merged over the defaults: a table of name = integer in the file,
/// `name=value,...` in the environment. A name Docker does not know is refused.
pub(super) fn ulimit_max(bounds: &mut BTreeMap<String, i64>, raw: Raw<'_>) -> Result<(), String> {
    let entries: Vec<(String, i64)> = match raw {
        Raw::Toml(TomlValue::Table(table)) => table
            .iter()
            .map(|(k, v)| match v {
                TomlValue::Integer(i) => Ok((k.clone(), *i)),
                other => Err(format!("ulimit {k}: expected an integer, found {}", type_name(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => {
            return Err(format!("expected a table of ulimit names to integers, found {}", type_name(other)));
        }
        Raw::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|entry| {
                let (k, v) =
                    entry.split_once('=').ok_or_else(|| format!("invalid entry {entry:?}: expected name=value"))?;
                let v = v.trim().parse::<i64>().map_err(|_| format!("ulimit {}: invalid number {v:?}", k.trim()))?;
                Ok((k.trim().to_owned(), v))
            })
            .collect::<Result<_, String>>()?,
    };
    for (name, max) in entries {
        if !berth_model::container::ULIMIT_NAMES.contains(&name.as_str()) {
            return Err(format!("unknown ulimit {name:?}"));
        }
        if max < -1 {
            return Err(format!("ulimit {name}: {max} is not a limit (-1 means unlimited)"));
        }
        bounds.insert(name, max);
    }
    Ok(())
}

/// A pids limit: 0 (none) or more.
pub(super) fn pids_limit(raw: Raw<'_>) -> Result<i64, String> {
    let n = count(raw)?;
    i64::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// A log file size as Docker's json-file driver reads it (`10m`, `512k`, `1g`); empty
/// switches rotation off.
pub(super) fn log_size(raw: Raw<'_>) -> Result<String, String> {
    let s = text(raw, "a size such as \"10m\"")?.trim().to_owned();
    if !s.is_empty() {
        crate::policy::log_size_bytes(&s)
            .ok_or_else(|| format!("invalid size {s:?}: expected a number with k, m or g"))?;
    }
    Ok(s)
}

pub(super) fn log_max_file(raw: Raw<'_>) -> Result<u32, String> {
    match u32::try_from(count(raw)?) {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("is too large".to_owned()),
    }
}

/// A boolean: `true`/`false` in the file; `true`/`false`, `on`/`off`, `yes`/`no`,
/// `1`/`0` in the environment.
pub(super) fn boolean(raw: Raw<'_>) -> Result<bool, String> {
    match raw {
        Raw::Toml(TomlValue::Boolean(b)) => Ok(*b),
        Raw::Toml(other) => Err(format!("expected a boolean, found {}", type_name(other))),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(format!("invalid boolean {s:?}: expected true or false")),
        },
    }
}

/// A humantime duration (`30s`, `5m`, `3h`, `500ms`), under 100 years.
pub(super) fn duration(raw: Raw<'_>) -> Result<Duration, String> {
    let s = match (raw.as_str(), raw) {
        (Some(s), _) | (None, Raw::Text(s)) => s,
        (None, Raw::Toml(other)) => {
            return Err(format!("expected a duration such as \"30s\" (a string), found {}", type_name(other)));
        }
    };
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d >= MAX_DURATION {
        return Err(format!("duration {s:?} is too long (at most 100 years)"));
    }
    Ok(d)
}

pub(super) fn positive(raw: Raw<'_>) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d.is_zero() { Err("must be more than 0".to_owned()) } else { Ok(d) }
}

pub(super) fn at_least_a_second(raw: Raw<'_>) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d < Duration::from_secs(1) {
        Err(format!("must be at least 1s, not {}", humantime::format_duration(d)))
    } else {
        Ok(d)
    }
}

/// Docker's stop timeout is in whole seconds.
pub(super) fn whole_seconds(raw: Raw<'_>) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d.subsec_nanos() != 0 {
        Err(format!("must be a whole number of seconds, not {}", humantime::format_duration(d)))
    } else {
        Ok(d)
    }
}

/// A count: an integer in the file, decimal digits in the environment.
pub(super) fn count(raw: Raw<'_>) -> Result<u64, String> {
    match raw {
        Raw::Toml(TomlValue::Integer(i)) => u64::try_from(*i).map_err(|_| format!("must not be negative, not {i}")),
        Raw::Toml(other) => Err(format!("expected an integer, found {}", type_name(other))),
        Raw::Text(s) => s.trim().parse().map_err(|_| format!("invalid number {s:?}: expected an integer")),
    }
}

pub(super) fn per_cycle(raw: Raw<'_>) -> Result<usize, String> {
    let n = count(raw)?;
    match usize::try_from(n) {
        Ok(0) => Err("must be at least 1 (set image_cleanup.enabled = false to turn cleanup off)".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{n} is too large")),
    }
}

/// A count of at least 1.
pub(super) fn at_least_one(raw: Raw<'_>) -> Result<usize, String> {
    match usize::try_from(count(raw)?) {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("is too large".to_owned()),
    }
}

/// A size in bytes: an integer, or a string of digits with an optional unit (`B`,
/// `KiB`, `MiB`, `GiB`, without case); more than 0.
pub(super) fn body_limit(raw: Raw<'_>) -> Result<usize, String> {
    let bytes = match raw {
        Raw::Toml(TomlValue::Integer(_)) => count(raw)?,
        Raw::Toml(TomlValue::String(s)) => parse_size(s)?,
        Raw::Text(s) => parse_size(s)?,
        Raw::Toml(other) => return Err(format!("expected a size in bytes, found {}", type_name(other))),
    };
    match usize::try_from(bytes) {
        Ok(0) => Err("must be more than 0".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{bytes} bytes is too large")),
    }
}

pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?}: expected a number of bytes, optionally followed by KiB, MiB or GiB");
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    number.checked_mul(unit).ok_or_else(|| format!("size {s:?} is too large"))
}

/// Where the API listens on TCP: `true`/`on` → `127.0.0.1:51678`, `false`/`off` (or
/// empty) → nowhere, a bare port → `127.0.0.1:PORT`, or an address `host:port` (an IP
/// address; `[::1]:PORT` for IPv6).
pub fn parse_tcp(s: &str) -> Result<Option<SocketAddr>, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "true" | "on" => return Ok(Some(loopback(DEFAULT_TCP_PORT))),
        "false" | "off" | "" => return Ok(None),
        _ => {}
    }
    if let Ok(port) = t.parse::<u16>() {
        return Ok(Some(loopback(port)));
    }
    t.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "invalid TCP address {s:?}: expected on, off, a port, or an address such as 127.0.0.1:{DEFAULT_TCP_PORT}"
        )
    })
}

pub(super) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The task metadata endpoint's port: a port number (0: any free one), or `off` (or
/// `false`) for no endpoint.
pub(super) fn metadata_port(raw: Raw<'_>) -> Result<Option<u16>, String> {
    let text = match raw {
        Raw::Toml(TomlValue::Boolean(false)) => return Ok(None),
        Raw::Toml(TomlValue::Integer(i)) => {
            return u16::try_from(*i).map(Some).map_err(|_| format!("invalid port {i}"));
        }
        Raw::Toml(TomlValue::String(s)) => s.as_str(),
        Raw::Text(s) => s,
        Raw::Toml(other) => return Err(format!("expected a port or \"off\", found {}", type_name(other))),
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "off" | "false" => Ok(None),
        t => t.parse::<u16>().map(Some).map_err(|_| format!("invalid port {text:?}: expected 0-65535 or \"off\"")),
    }
}

pub(super) fn tcp(raw: Raw<'_>) -> Result<Option<SocketAddr>, String> {
    match raw {
        Raw::Toml(TomlValue::Boolean(true)) => Ok(Some(loopback(DEFAULT_TCP_PORT))),
        Raw::Toml(TomlValue::Boolean(false)) => Ok(None),
        Raw::Toml(TomlValue::Integer(i)) => {
            u16::try_from(*i).map(|p| Some(loopback(p))).map_err(|_| format!("invalid TCP port {i}"))
        }
        Raw::Toml(TomlValue::String(s)) => parse_tcp(s),
        Raw::Text(s) => parse_tcp(s),
        Raw::Toml(other) => {
            Err(format!("expected a boolean, a port or an address (a string), found {}", type_name(other)))
        }
    }
}

pub(super) fn auth_type(raw: Raw<'_>) -> Result<String, String> {
    normalize_auth_type(text(raw, "an auth type")?)
}

/// The cluster store's address: `etcd://host:port[,host:port...]` (the scheme may be left
/// out); each member as `http://host:port` for the etcd client. Empty text: no cluster.
pub fn parse_cluster_store(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let members = s.strip_prefix("etcd://").unwrap_or(s);
    if members.contains("://") {
        return Err(format!("invalid cluster store {s:?}: expected etcd://host:port[,host:port...]"));
    }
    members
        .split(',')
        .map(|member| {
            let member = member.trim();
            let (host, port) = member
                .rsplit_once(':')
                .ok_or_else(|| format!("invalid etcd member {member:?} in {s:?}: expected host:port"))?;
            let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
            if host.is_empty() || !port_ok || member.contains('/') {
                return Err(format!("invalid etcd member {member:?} in {s:?}: expected host:port"));
            }
            Ok(format!("http://{member}"))
        })
        .collect()
}

pub(super) fn cluster_store(raw: Raw<'_>) -> Result<Vec<String>, String> {
    parse_cluster_store(text(raw, "an etcd:// address")?)
}

/// Node attributes: a table of strings in the file (`[node_attributes]`), `key=value`
/// pairs separated by `,` in the environment.
pub(super) fn attributes(raw: Raw<'_>) -> Result<BTreeMap<String, String>, String> {
    let pairs: Vec<(String, String)> = match raw {
        Raw::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| format!("attribute {p:?}: expected key=value"))
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(TomlValue::Table(table)) => table
            .iter()
            .map(|(k, v)| match v {
                TomlValue::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("attribute {k}: expected a string, found {}", type_name(other))),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(other) => return Err(format!("expected a table of strings, found {}", type_name(other))),
    };
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        if key.is_empty() {
            return Err("an attribute with an empty name".to_owned());
        }
        map.insert(key, value);
    }
    Ok(map)
}

/// The node lease's TTL: at least 2 s (etcd's keepalives go every third of it).
pub(super) fn node_lease_ttl(raw: Raw<'_>) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d < Duration::from_secs(2) {
        return Err(format!("must be at least 2s, not {}", humantime::format_duration(d)));
    }
    Ok(d)
}
