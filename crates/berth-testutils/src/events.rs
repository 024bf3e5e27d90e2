//! The fake daemon's event hub: retained history and live subscribers. An event is made
//! once, as Docker sends it ([`DockerEvent`], attributes and all), when it happens; the
//! history and every subscriber's channel share it, and a stream hands out its own copy
//! (the event itself once nothing else holds it). A container's events share one map of
//! attributes, made when it is created; an event with attributes of its own (`die`'s exit
//! code, `kill`'s signal) has its own map.

use berth_docker::{ContainerConfig, DockerError, DockerEvent, ErrorKind, EventStream};
use berth_model::HealthStatus;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use futures_util::stream;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How many events Docker keeps for replay.
pub const EVENT_HISTORY: usize = 256;

/// What happened to a container, with what Docker tells of it besides the action word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Start,
    /// Killed with this signal.
    Kill(i64),
    /// Exited with this code.
    Die(i64),
    Stop,
    Destroy,
    /// Its health check reported this.
    Health(HealthStatus),
}

impl Action {
    /// Docker's action word.
    fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Kill(_) => "kill",
            Action::Die(_) => "die",
            Action::Stop => "stop",
            Action::Destroy => "destroy",
            Action::Health(HealthStatus::Healthy) => "health_status: healthy",
            Action::Health(HealthStatus::Unhealthy) => "health_status: unhealthy",
            Action::Health(HealthStatus::Unknown) => "health_status: starting",
        }
    }

    /// The attribute it adds to the labels, name and image, if any.
    fn attribute(self) -> Option<(&'static str, i64)> {
        match self {
            Action::Kill(signal) => Some(("signal", signal)),
            Action::Die(code) => Some(("exitCode", code)),
            _ => None,
        }
    }

    /// The attributes of every event about the container named `name`, created with
    /// `config`: its labels, then its name and image (Docker sets those after the labels).
    pub fn attributes(name: &str, config: &ContainerConfig) -> BTreeMap<String, String> {
        let mut attributes = config.labels.clone();
        attributes.insert("name".into(), name.to_string());
        attributes.insert("image".into(), config.image.clone());
        attributes
    }

    /// The event Docker sends about container `id`, whose events carry `attributes` (see
    /// [`Action::attributes`]): those, and the action's own when it has one.
    pub fn event(self, id: &str, attributes: &Arc<BTreeMap<String, String>>, time: DateTime<Utc>) -> DockerEvent {
        let attributes = match self.attribute() {
            Some((k, v)) => {
                let mut own = BTreeMap::clone(attributes);
                own.insert(k.into(), v.to_string());
                Arc::new(own)
            }
            None => Arc::clone(attributes),
        };
        DockerEvent { id: id.to_string(), action: self.word().into(), attributes, time }
    }
}

/// What a subscriber's channel carries: an event, or the error that ends the stream.
type Item = Result<Arc<DockerEvent>, DockerError>;

/// History and subscribers. Lives inside the fake's state, under its lock.
#[derive(Debug, Default)]
pub(crate) struct EventHub {
    history: VecDeque<Arc<DockerEvent>>,
    subscribers: Vec<UnboundedSender<Item>>,
    drop_next: usize,
    last_time: Option<DateTime<Utc>>,
}

impl EventHub {
    /// A time for a new event: `now`, or just after the last event so times strictly rise.
    pub fn stamp(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let time = match self.last_time {
            Some(last) if now <= last => last + TimeDelta::nanoseconds(1),
            _ => now,
        };
        self.last_time = Some(time);
        time
    }

    /// Record `event` and deliver it to every live subscriber (unless it is to be dropped).
    pub fn publish(&mut self, event: DockerEvent) {
        let event = Arc::new(event);
        if self.drop_next > 0 {
            self.drop_next -= 1;
        } else {
            self.subscribers.retain(|tx| tx.send(Ok(Arc::clone(&event))).is_ok());
        }
        if self.history.len() == EVENT_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(event);
    }

    /// A stream that first replays the history from `since` (when given), then every
    /// event published after this call.
    pub fn subscribe(&mut self, since: Option<DateTime<Utc>>) -> EventStream {
        let replay: Vec<Item> = match since {
            Some(since) => self.history.iter().filter(|e| e.time >= since).cloned().map(Ok).collect(),
            None => Vec::new(),
        };
        let (tx, mut rx) = unbounded_channel();
        self.subscribers.push(tx);
        let live = stream::poll_fn(move |cx| rx.poll_recv(cx));
        stream::iter(replay).chain(live).map(|item| item.map(Arc::unwrap_or_clone)).boxed()
    }

    /// The next `n` events reach no subscriber.
    pub fn drop_next(&mut self, n: usize) {
        self.drop_next += n;
    }

    /// End every open stream with a `Transient` error carrying `message`.
    pub fn cut(&mut self, message: &'static str) {
        for tx in self.subscribers.drain(..) {
            let _ = tx.send(Err(DockerError::new(ErrorKind::Transient, "container events", "", message)));
        }
    }

    /// The retained history, oldest first.
    pub fn history(&self) -> Vec<DockerEvent> {
        self.history.iter().map(|e| DockerEvent::clone(e)).collect()
    }

    /// How many streams are open (their receivers not yet dropped, as far as known).
    pub fn subscribers(&mut self) -> usize {
        self.subscribers.retain(|tx| !tx.is_closed());
        self.subscribers.len()
    }
}
