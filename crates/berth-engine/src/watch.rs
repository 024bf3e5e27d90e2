//! Watching Docker's event stream (SPEC 4): each event of one of this berth's containers
//! goes to the actor; when the stream ends or fails it is reopened from the last event seen
//! (`since`), and after every (re)open the actor re-inspects what may have been missed
//! (Docker replays only its last 256 events, and none across a daemon restart).

use crate::actor::Input;
use crate::clock::{self, Backoff, Clock};
use crate::telemetry::{EngineTelemetry, Telemetry};
use berth_docker::events::{ContainerEvent, container_event_with_labels};
use berth_docker::{DockerClient, DockerEvent, EventStream, labels};
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most events read from the stream before what was read goes to the loop.
const MAX_BATCH: usize = 1024;

/// A stream that lasted longer than this counts as having worked.
const QUIET_STREAM: Duration = Duration::from_secs(5);

/// First wait between attempts to reopen the stream.
const FIRST_REOPEN_BACKOFF: Duration = Duration::from_millis(100);

/// Longest wait between attempts to reopen the stream.
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(10);

/// Forward events from `first` (already open, so nothing between opening it and listing
/// containers is missed; `None`: open one), then from every reopened stream, until the
/// actor is gone.
pub async fn watch(
    docker: Arc<dyn DockerClient>,
    first: Option<EventStream>,
    instance: String,
    inputs: mpsc::UnboundedSender<Input>,
    telemetry: Arc<dyn Telemetry>,
    limit: Duration,
    clock: Arc<dyn Clock>,
) {
    let mut stream = first;
    let mut since: Option<DateTime<Utc>> = None;
    let mut backoff = Backoff::new(FIRST_REOPEN_BACKOFF, MAX_REOPEN_BACKOFF);
    loop {
        if let Some(mut events) = stream.take() {
            let opened = clock.now();
            // Everything ready when the watcher wakes goes to the loop as one input: one
            // wake-up of the loop per batch, not per event.
            let mut ended = false;
            while !ended {
                let Some(first) = events.next().await else { break };
                let (mut batch, mut read) = (Vec::new(), 0);
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    let Ok(event) = item else {
                        ended = true;
                        break;
                    };
                    read += 1;
                    since = Some(since.map_or(event.time, |s| s.max(event.time)));
                    batch.extend(ours(&event, &instance));
                    if read < MAX_BATCH {
                        match events.next().now_or_never() {
                            Some(Some(ready)) => next = Some(ready),
                            Some(None) => ended = true,
                            None => {}
                        }
                    }
                }
                if !batch.is_empty() && inputs.send(Input::Events(batch)).is_err() {
                    return;
                }
            }
            // A stream that ends soon (Docker does not answer: the connection is made only
            // when the stream is first read; or it flaps, delivering a little each time) is
            // retried after a growing wait, never in a busy loop: only a stream that
            // lasted counts as having worked.
            if (clock.now() - opened).to_std().unwrap_or_default() > QUIET_STREAM {
                backoff.reset();
                telemetry.record(&EngineTelemetry::EventStreamEnded { retry_in: None });
            } else {
                let wait = backoff.next_wait();
                telemetry.record(&EngineTelemetry::EventStreamEnded { retry_in: Some(wait) });
                clock::sleep(&*clock, wait).await;
            }
        }
        if inputs.is_closed() {
            return;
        }
        // Bounded: a daemon that accepts and never answers is tried again, not waited for.
        let open = crate::actor::bounded(limit, "open events", async { Ok(docker.container_events(since).await?) });
        match open.await {
            Ok(events) => {
                stream = Some(events);
                telemetry.record(&EngineTelemetry::EventStreamReopened);
                if inputs.send(Input::Resync).is_err() {
                    return;
                }
            }
            Err(e) => {
                telemetry.record(&EngineTelemetry::EventStreamReopenFailed { error: &e.to_string() });
                clock::sleep(&*clock, backoff.next_wait()).await;
            }
        }
    }
}

/// `event` as the loop reads it, if it is of one of this instance's containers and means
/// something to berth.
fn ours(event: &DockerEvent, instance: &str) -> Option<ContainerEvent> {
    if event.attributes.get(labels::INSTANCE).map(String::as_str) != Some(instance) {
        return None; // not ours: another berth's, or not berth's at all
    }
    // The loop finds the container by its task and name: no other label is carried along.
    container_event_with_labels(event, |key| key == labels::TASK_ARN || key == labels::CONTAINER_NAME)
}

/// The periodic steady-state check: every `every`, the actor re-inspects every container
/// not known to be STOPPED, so that nothing the event stream missed stays unnoticed.
/// The ticks are on the engine's clock (the first one `every` after start: init has just
/// looked).
pub async fn steady_state_check(
    every: Duration,
    inputs: mpsc::UnboundedSender<Input>,
    telemetry: Arc<dyn Telemetry>,
    clock: Arc<dyn Clock>,
) {
    loop {
        clock::sleep(&*clock, every).await;
        telemetry.record(&EngineTelemetry::SteadyStateCheck);
        if inputs.send(Input::Resync).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::telemetry::NoTelemetry;
    use berth_docker::ContainerConfig;
    use berth_docker::events::EventKind;
    use berth_testutils::FakeDocker;

    fn config(name: &str, instance: &str) -> ContainerConfig {
        let mut c = ContainerConfig { name: name.into(), image: "busybox".into(), ..ContainerConfig::default() };
        for (k, v) in [
            (labels::INSTANCE, instance),
            (labels::TASK_ARN, "arn:t"),
            (labels::CONTAINER_NAME, name),
            (labels::FAMILY, "f"),
            ("user", "label"),
        ] {
            c.labels.insert(k.into(), v.into());
        }
        c
    }

    /// Events ready together reach the loop as one input, in Docker's order, only this
    /// instance's, each with the two labels the loop reads.
    #[tokio::test]
    async fn events_ready_together_reach_the_loop_as_one_input() {
        let fake = FakeDocker::new();
        fake.add_image("busybox");
        let start = Utc::now();
        for (name, instance) in [("web", "me"), ("db", "other"), ("cache", "me")] {
            fake.create_container(&config(name, instance)).await.expect("create");
        }
        // Replayed from the history: all three are ready at once.
        let first = fake.container_events(Some(start - chrono::Duration::seconds(1))).await.expect("events");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch(
            Arc::new(fake.clone()),
            Some(first),
            "me".into(),
            tx,
            Arc::new(NoTelemetry),
            Duration::from_secs(5),
            Arc::new(ManualClock::new(start)),
        ));
        let input = rx.recv().await.expect("an input");
        watcher.abort();
        let Input::Events(events) = input else { panic!("not events: {input:?}") };
        let names: Vec<_> = events.iter().map(|e| e.name.as_deref()).collect();
        assert_eq!(names, [Some("web"), Some("cache")]);
        for e in &events {
            assert_eq!(e.kind, EventKind::Created);
            let keys: Vec<_> = e.labels.keys().map(String::as_str).collect();
            assert_eq!(keys, [labels::CONTAINER_NAME, labels::TASK_ARN]);
        }
    }
}
