//! Docker's event stream, and what each container event means to berth (SPEC 4).
//!
//! Actions are matched exactly: `health_status: healthy` is one action, and `exec_die`
//! is not a container exit. `kill` and `oom` change nothing but the reason of the exit
//! that follows; `destroy` means the container is gone.

use berth_model::status::HealthStatus;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One event as Docker sends it (type `container` only; berth asks for no others).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerEvent {
    /// The container's id.
    pub id: String,
    /// Docker's action word, exactly (`create`, `start`, `die`, `health_status: healthy`, ...).
    pub action: String,
    /// The event's attributes: the container's name, labels, `exitCode`, `signal`, ...
    /// Shared: the events of one container mostly carry the same attributes (a daemon,
    /// such as the fake, may hand out one map for all of them).
    pub attributes: Arc<BTreeMap<String, String>>,
    /// When Docker says it happened.
    pub time: DateTime<Utc>,
}

/// What a container event means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `create`: CREATED.
    Created,
    /// `start`: RUNNING.
    Started,
    /// `die` or `stop`: STOPPED, with the exit code when the event has one.
    Stopped {
        /// `exitCode`, when given.
        exit_code: Option<i64>,
    },
    /// `health_status: ...`.
    Health(HealthStatus),
    /// `kill`: a reason for the exit that follows.
    Killed {
        /// The signal, when given.
        signal: Option<i64>,
    },
    /// `oom`: a reason for the exit that follows.
    OutOfMemory,
    /// `destroy`: the container is gone.
    Destroyed,
}

/// A container event berth acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's id.
    pub docker_id: String,
    /// Its name, when the event carries it.
    pub name: Option<String>,
    /// Its labels, as the event carries them (berth finds its own containers by them).
    pub labels: BTreeMap<String, String>,
    /// What happened.
    pub kind: EventKind,
    /// When Docker says it happened.
    pub time: DateTime<Utc>,
}

/// Attributes of a container event that are not labels: those Docker adds besides them
/// (one list with the model's, which refuses user labels of these names).
const NOT_LABELS: [&str; 12] = berth_model::input::EVENT_ATTRIBUTES;

/// What `event` means, or `None` for actions berth ignores (`exec_*`, `attach`, `pause`,
/// `rename`, `resize`, `top`, `commit`, `copy`, `export`, `update`, ...).
pub fn container_event(event: &DockerEvent) -> Option<ContainerEvent> {
    container_event_with_labels(event, |_| true)
}

/// [`container_event`] carrying only the labels `keep` picks (the watcher keeps berth's
/// own: the user's need not be copied for every event).
pub fn container_event_with_labels(event: &DockerEvent, keep: impl Fn(&str) -> bool) -> Option<ContainerEvent> {
    let kind = event_kind(event)?;
    let labels = event
        .attributes
        .iter()
        .filter(|(k, _)| !NOT_LABELS.contains(&k.as_str()) && keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(ContainerEvent {
        docker_id: event.id.clone(),
        name: event.attributes.get("name").cloned(),
        labels,
        kind,
        time: event.time,
    })
}

/// [`container_event`] of an event no longer needed: its attributes become the labels
/// without being copied when nothing else holds them.
pub fn into_container_event(event: DockerEvent) -> Option<ContainerEvent> {
    let kind = event_kind(&event)?;
    let DockerEvent { id, attributes, time, .. } = event;
    let mut attributes = Arc::unwrap_or_clone(attributes);
    let name = attributes.remove("name");
    for key in NOT_LABELS {
        attributes.remove(key);
    }
    Some(ContainerEvent { docker_id: id, name, labels: attributes, kind, time })
}

fn event_kind(event: &DockerEvent) -> Option<EventKind> {
    let number = |key: &str| event.attributes.get(key).and_then(|v| v.parse::<i64>().ok());
    let kind = match event.action.as_str() {
        "create" => EventKind::Created,
        "start" => EventKind::Started,
        "die" | "stop" => EventKind::Stopped { exit_code: number("exitCode") },
        "health_status: healthy" => EventKind::Health(HealthStatus::Healthy),
        "health_status: unhealthy" => EventKind::Health(HealthStatus::Unhealthy),
        "health_status: starting" => EventKind::Health(HealthStatus::Unknown),
        "kill" => EventKind::Killed { signal: number("signal") },
        "oom" => EventKind::OutOfMemory,
        "destroy" => EventKind::Destroyed,
        _ => return None,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, attrs: &[(&str, &str)]) -> DockerEvent {
        DockerEvent {
            id: "abc".into(),
            action: action.into(),
            attributes: Arc::new(attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            time: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn kind(action: &str, attrs: &[(&str, &str)]) -> Option<EventKind> {
        container_event(&event(action, attrs)).map(|e| e.kind)
    }

    #[test]
    fn an_owned_event_reads_as_a_borrowed_one() {
        let attrs = [
            ("name", "berth-x"),
            ("image", "busybox"),
            ("exitCode", "3"),
            ("signal", "9"),
            ("execID", "e"),
            ("berth.task-arn", "arn:t"),
            ("user", "label"),
        ];
        for action in ["create", "start", "die", "stop", "kill", "oom", "destroy", "health_status: healthy", "exec_die"]
        {
            let e = event(action, &attrs);
            assert_eq!(into_container_event(e.clone()), container_event(&e), "{action}");
        }
        let owned = into_container_event(event("die", &attrs)).unwrap_or_else(|| panic!("die is an event"));
        assert_eq!(owned.name.as_deref(), Some("berth-x"));
        assert_eq!(owned.labels.keys().map(String::as_str).collect::<Vec<_>>(), ["berth.task-arn", "user"]);
    }

    #[test]
    fn lifecycle_actions_map_to_statuses() {
        assert_eq!(kind("create", &[]), Some(EventKind::Created));
        assert_eq!(kind("start", &[]), Some(EventKind::Started));
        assert_eq!(kind("die", &[("exitCode", "42")]), Some(EventKind::Stopped { exit_code: Some(42) }));
        assert_eq!(kind("stop", &[]), Some(EventKind::Stopped { exit_code: None }));
        assert_eq!(kind("destroy", &[]), Some(EventKind::Destroyed));
    }

    #[test]
    fn health_actions_are_matched_exactly() {
        assert_eq!(kind("health_status: healthy", &[]), Some(EventKind::Health(HealthStatus::Healthy)));
        assert_eq!(kind("health_status: unhealthy", &[]), Some(EventKind::Health(HealthStatus::Unhealthy)));
        assert_eq!(kind("health_status", &[]), None);
        assert_eq!(kind("health_status: healthy ", &[]), None);
    }

    #[test]
    fn exec_die_is_not_an_exit_and_other_actions_are_ignored() {
        for action in ["exec_die", "exec_start: sh", "exec_create: sh", "attach", "rename", "resize", "top", "pause"] {
            assert_eq!(kind(action, &[("exitCode", "1")]), None, "{action}");
        }
    }

    #[test]
    fn kill_and_oom_are_reasons() {
        assert_eq!(kind("kill", &[("signal", "9")]), Some(EventKind::Killed { signal: Some(9) }));
        assert_eq!(kind("oom", &[]), Some(EventKind::OutOfMemory));
    }

    #[test]
    fn labels_and_name_come_from_the_attributes() {
        let e = container_event(&event(
            "start",
            &[("name", "berth-x"), ("image", "busybox"), ("berth.instance", "i1"), ("exitCode", "0")],
        ))
        .unwrap_or_else(|| panic!("start maps"));
        assert_eq!(e.name.as_deref(), Some("berth-x"));
        assert_eq!(e.labels.len(), 1);
        assert_eq!(e.labels.get("berth.instance").map(String::as_str), Some("i1"));
    }
}
