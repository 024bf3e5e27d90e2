//! The fake daemon's event hub: retained history and live subscribers.

use berth_docker::{ContainerConfig, DockerError, DockerEvent, ErrorKind, EventStream};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use futures_util::stream;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How many events Docker keeps for replay.
pub const EVENT_HISTORY: usize = 256;

type Item = Result<DockerEvent, DockerError>;

/// An event as the hub keeps it: the container's (unchanging) create request shared rather
/// than its labels copied; each subscriber gets the event Docker would send, made from it.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The container's id.
    pub id: String,
    /// The container's name.
    pub name: String,
    /// What it was created with (its labels and image).
    pub config: Arc<ContainerConfig>,
    /// Docker's action word.
    pub action: String,
    /// Attributes besides labels, name and image.
    pub extra: Vec<(&'static str, String)>,
    /// When it happened.
    pub time: DateTime<Utc>,
}

impl Recorded {
    /// The event, with Docker's attributes: the labels, name, image and the extra ones.
    pub fn event(&self) -> DockerEvent {
        let mut attributes = self.config.labels.clone();
        attributes.insert("name".into(), self.name.clone());
        attributes.insert("image".into(), self.config.image.clone());
        for (k, v) in &self.extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        DockerEvent { id: self.id.clone(), action: self.action.clone(), attributes, time: self.time }
    }
}

/// History and subscribers. Lives inside the fake's state, under its lock.
#[derive(Debug, Default)]
pub(crate) struct EventHub {
    history: VecDeque<Recorded>,
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
    pub fn publish(&mut self, event: Recorded) {
        if self.drop_next > 0 {
            self.drop_next -= 1;
        } else {
            self.subscribers.retain(|tx| tx.send(Ok(event.event())).is_ok());
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
            Some(since) => self.history.iter().filter(|e| e.time >= since).map(|e| Ok(e.event())).collect(),
            None => Vec::new(),
        };
        let (tx, rx) = unbounded_channel();
        self.subscribers.push(tx);
        let live = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        stream::iter(replay).chain(live).boxed()
    }

    /// The next `n` events reach no subscriber.
    pub fn drop_next(&mut self, n: usize) {
        self.drop_next += n;
    }

    /// End every open stream with a `Transient` error carrying `message`.
    pub fn cut(&mut self, message: &str) {
        for tx in self.subscribers.drain(..) {
            let _ = tx.send(Err(DockerError::new(ErrorKind::Transient, "container events", "", message)));
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
