//! A container's create request as the fake keeps it. Tests and benchmarks hold tens of
//! thousands of containers, and a [`ContainerConfig`] is large (some 800 bytes before
//! its strings, mostly empty lists of host settings), while containers created one after
//! another (those of one task, or of many alike tasks) mostly differ in their name and a
//! few labels, and their command. So the fake keeps the name, the image, the labels and
//! the command of each, and shares the rest, the command and the label strings with the
//! container created before it when equal; it makes the whole config again when one is
//! asked for.

use crate::behaviour::has_health_check;
use berth_docker::{ContainerConfig, HostConfig};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A [`ContainerConfig`], compactly (see the module's doc).
#[derive(Debug)]
pub(crate) struct StoredConfig {
    /// The container's name (Docker's, without the `/`).
    pub name: String,
    /// The image reference, as given.
    pub image: String,
    /// By key, in order, as a `BTreeMap` holds them.
    labels: Box<[(Arc<str>, Arc<str>)]>,
    /// `Cmd`.
    command: Arc<[String]>,
    /// Everything else: the config with an empty name, image and command and no labels.
    rest: Arc<ContainerConfig>,
}

impl StoredConfig {
    /// `config` as created under `name`, sharing what it can with `previous`, the config
    /// of the container created before it.
    pub fn new(config: &ContainerConfig, name: String, previous: Option<&StoredConfig>) -> Self {
        // Every field named, so that a new one is not forgotten.
        let ContainerConfig {
            name: _,
            image,
            labels,
            command,
            entry_point,
            env,
            working_dir,
            user,
            hostname,
            health_check,
            stop_timeout,
            host,
        } = config;
        let rest = ContainerConfig {
            entry_point: entry_point.clone(),
            env: env.clone(),
            working_dir: working_dir.clone(),
            user: user.clone(),
            hostname: hostname.clone(),
            health_check: health_check.clone(),
            stop_timeout: *stop_timeout,
            host: host.clone(),
            ..ContainerConfig::default()
        };
        let rest = match previous {
            Some(previous) if *previous.rest == rest => Arc::clone(&previous.rest),
            _ => Arc::new(rest),
        };
        let command = match previous {
            Some(previous) if *previous.command == command[..] => Arc::clone(&previous.command),
            _ => Arc::from(command.as_slice()),
        };
        let labels = labels
            .iter()
            .map(|(key, value)| {
                let earlier = previous.and_then(|p| p.find(key));
                (share(key, earlier.map(|(k, _)| k)), share(value, earlier.map(|(_, v)| v)))
            })
            .collect();
        StoredConfig { name, image: image.clone(), labels, command, rest }
    }

    /// The whole config again.
    pub fn config(&self) -> ContainerConfig {
        ContainerConfig {
            name: self.name.clone(),
            image: self.image.clone(),
            labels: self.labels(),
            command: self.command.to_vec(),
            ..ContainerConfig::clone(&self.rest)
        }
    }

    /// The labels, as the config has them.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The key and value of label `key`.
    fn find(&self, key: &str) -> Option<&(Arc<str>, Arc<str>)> {
        let i = self.labels.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.labels[i])
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.find(key).map(|(_, v)| &**v)
    }

    /// The host settings.
    pub fn host(&self) -> &HostConfig {
        &self.rest.host
    }

    /// Whether it asks for a health check (one whose test is not `NONE`).
    pub fn has_health_check(&self) -> bool {
        has_health_check(&self.rest)
    }
}

/// `s`, shared with `earlier` when equal.
fn share(s: &str, earlier: Option<&Arc<str>>) -> Arc<str> {
    match earlier {
        Some(earlier) if **earlier == *s => Arc::clone(earlier),
        _ => Arc::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_docker::{HealthConfig, PortSpec};

    fn full() -> ContainerConfig {
        ContainerConfig {
            name: "/given".into(),
            image: "busybox".into(),
            command: vec!["sleep".into(), "1".into()],
            entry_point: vec!["sh".into()],
            env: vec!["A=1".into()],
            labels: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            working_dir: Some("/w".into()),
            user: Some("u".into()),
            hostname: Some("h".into()),
            health_check: Some(HealthConfig { test: vec!["NONE".into()], retries: Some(3), ..HealthConfig::default() }),
            stop_timeout: Some(5),
            host: HostConfig { cpu_shares: Some(2), links: vec!["x:y".into()], ..HostConfig::default() },
        }
    }

    #[test]
    fn the_config_comes_back_whole_with_its_name() {
        let stored = StoredConfig::new(&full(), "kept".into(), None);
        assert_eq!(stored.config(), ContainerConfig { name: "kept".into(), ..full() });
        assert_eq!((stored.label("a"), stored.label("b"), stored.label("c")), (Some("1"), Some("2"), None));
        assert!(!stored.has_health_check());
        assert_eq!(stored.host().links, ["x:y"]);
        let empty = StoredConfig::new(&ContainerConfig::default(), String::new(), Some(&stored));
        assert_eq!(empty.config(), ContainerConfig::default());
    }

    #[test]
    fn what_equals_the_previous_containers_is_shared() {
        let a = StoredConfig::new(&full(), "a".into(), None);
        let mut other = full();
        other.labels.insert("a".into(), "other".into());
        let b = StoredConfig::new(&other, "b".into(), Some(&a));
        assert!(Arc::ptr_eq(&a.rest, &b.rest));
        let (a_a, b_a) = (a.find("a").unwrap(), b.find("a").unwrap());
        assert!(Arc::ptr_eq(&a_a.0, &b_a.0) && !Arc::ptr_eq(&a_a.1, &b_a.1), "the key only");
        let (a_b, b_b) = (a.find("b").unwrap(), b.find("b").unwrap());
        assert!(Arc::ptr_eq(&a_b.0, &b_b.0) && Arc::ptr_eq(&a_b.1, &b_b.1));
        assert_eq!(b.config(), ContainerConfig { name: "b".into(), ..other.clone() });

        other.host.ports = vec![PortSpec { container_port: 80, ..PortSpec::default() }];
        let c = StoredConfig::new(&other, "c".into(), Some(&b));
        assert!(!Arc::ptr_eq(&b.rest, &c.rest));
        assert!(Arc::ptr_eq(&b.command, &c.command));
        assert_eq!(c.config(), ContainerConfig { name: "c".into(), ..other.clone() });

        // A different command alone: the rest is still shared.
        other.command = vec!["other".into()];
        let d = StoredConfig::new(&other, "d".into(), Some(&c));
        assert!(Arc::ptr_eq(&c.rest, &d.rest) && !Arc::ptr_eq(&c.command, &d.command));
        assert_eq!(d.config(), ContainerConfig { name: "d".into(), ..other });
    }
}
