//! The fake daemon's event hub: retained history and live subscribers.
//!
//! An event is recorded small ([`Recorded`]: the container's number, its shared create
//! request, the action and the time, some 50 bytes); the history and every subscriber's
//! channel hold copies of that, and the event Docker would send ([`DockerEvent`], with
//! its attribute map) is made from it only when a stream yields it, outside the fake's
//! lock. A subscriber that reads late costs those few bytes per waiting event.

use crate::state::hex_id;
use crate::stored::StoredConfig;
use berth_docker::{DockerError, DockerEvent, ErrorKind, EventStream};
use berth_model::HealthStatus;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use futures_util::stream;
use std::collections::VecDeque;
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
}

/// An event as the hub keeps it: the container's (unchanging) create request shared rather
/// than its labels copied; each subscriber gets the event Docker would send, made from it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// The container's sequence number (its id is `hex_id(seq, 0)`).
    pub seq: u64,
    /// What it was created with (its name, labels and image).
    pub config: Arc<StoredConfig>,
    /// What happened.
    pub action: Action,
    /// When it happened.
    pub time: DateTime<Utc>,
}

impl Recorded {
    /// The event, with Docker's attributes: the labels, name, image and the action's own.
    pub fn event(&self) -> DockerEvent {
        let mut attributes = self.config.labels();
        attributes.insert("name".into(), self.config.name.clone());
        attributes.insert("image".into(), self.config.image.clone());
        if let Some((k, v)) = self.action.attribute() {
            attributes.insert(k.into(), v.to_string());
        }
        DockerEvent { id: hex_id(self.seq, 0), action: self.action.word().into(), attributes, time: self.time }
    }
}

/// What a subscriber's channel carries: an event, or the end of the stream.
#[derive(Debug)]
enum Delivery {
    Event(Recorded),
    /// The stream ends with a `Transient` error carrying this message.
    Cut(&'static str),
}

impl Delivery {
    /// What the stream yields for it.
    fn item(self) -> Result<DockerEvent, DockerError> {
        match self {
            Delivery::Event(event) => Ok(event.event()),
            Delivery::Cut(message) => Err(DockerError::new(ErrorKind::Transient, "container events", "", message)),
        }
    }
}

/// History and subscribers. Lives inside the fake's state, under its lock.
#[derive(Debug, Default)]
pub(crate) struct EventHub {
    history: VecDeque<Recorded>,
    subscribers: Vec<UnboundedSender<Delivery>>,
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
    pub fn publish(&mut self, event: Recorded) {
        if self.drop_next > 0 {
            self.drop_next -= 1;
        } else {
            self.subscribers.retain(|tx| tx.send(Delivery::Event(event.clone())).is_ok());
        }
        if self.history.len() == EVENT_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(event);
    }

    /// A stream that first replays the history from `since` (when given), then every
    /// event published after this call.
    pub fn subscribe(&mut self, since: Option<DateTime<Utc>>) -> EventStream {
        let replay: Vec<Recorded> = match since {
            Some(since) => self.history.iter().filter(|e| e.time >= since).cloned().collect(),
            None => Vec::new(),
        };
        let (tx, mut rx) = unbounded_channel();
        self.subscribers.push(tx);
        let live = stream::poll_fn(move |cx| rx.poll_recv(cx).map(|d| d.map(Delivery::item)));
        stream::iter(replay).map(|e| Ok(e.event())).chain(live).boxed()
    }

    /// The next `n` events reach no subscriber.
    pub fn drop_next(&mut self, n: usize) {
        self.drop_next += n;
    }

    /// End every open stream with a `Transient` error carrying `message`.
    pub fn cut(&mut self, message: &'static str) {
        for tx in self.subscribers.drain(..) {
            let _ = tx.send(Delivery::Cut(message));
        }
    }

    /// The retained history, oldest first.
    pub fn history(&self) -> Vec<DockerEvent> {
        self.history.iter().map(Recorded::event).collect()
    }

    /// How many streams are open (their receivers not yet dropped, as far as known).
    pub fn subscribers(&mut self) -> usize {
        self.subscribers.retain(|tx| !tx.is_closed());
        self.subscribers.len()
    }
}
