//! The fake daemon's event hub: retained history and live subscribers.

use berth_docker::{DockerError, DockerEvent, ErrorKind, EventStream};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use futures_util::stream;
use std::collections::VecDeque;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How many events Docker keeps for replay.
pub const EVENT_HISTORY: usize = 256;

type Item = Result<DockerEvent, DockerError>;

/// History and subscribers. Lives inside the fake's state, under its lock.
#[derive(Debug, Default)]
pub(crate) struct EventHub {
    history: VecDeque<DockerEvent>,
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
        if self.drop_next > 0 {
            self.drop_next -= 1;
        } else {
            self.subscribers.retain(|tx| tx.send(Ok(event.clone())).is_ok());
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
        self.history.iter().cloned().collect()
    }

    /// How many streams are open (their receivers not yet dropped, as far as known).
    pub fn subscribers(&mut self) -> usize {
        self.subscribers.retain(|tx| !tx.is_closed());
        self.subscribers.len()
    }
}
