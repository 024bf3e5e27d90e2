//! Watching Docker's event stream (SPEC 4): each event of one of this berth's containers
//! goes to the actor; when the stream ends or fails it is reopened from the last event seen
//! (`since`), and after every (re)open the actor re-inspects what may have been missed
//! (Docker replays only its last 256 events, and none across a daemon restart).

use crate::actor::Input;
use crate::clock::{self, Backoff, Clock};
use crate::telemetry::{EngineTelemetry, Telemetry};
use berth_docker::events::into_container_event;
use berth_docker::{DockerClient, EventStream, labels};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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
            while let Some(item) = events.next().await {
                let Ok(mut event) = item else { break };
                since = Some(since.map_or(event.time, |s| s.max(event.time)));
                if event.attributes.get(labels::INSTANCE) != Some(&instance) {
                    continue; // not ours: another berth's, or not berth's at all
                }
                // Only berth's own labels matter to the loop (and the attributes that are
                // not labels): the user's are not carried along.
                event.attributes.retain(|k, _| !is_user_label(k));
                let Some(ce) = into_container_event(event) else { continue };
                if inputs.send(Input::Event(ce)).is_err() {
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

/// A container label that is neither berth's nor one of the attributes Docker adds to a
/// container event besides its labels.
fn is_user_label(key: &str) -> bool {
    !key.starts_with("berth.") && !berth_model::input::EVENT_ATTRIBUTES.contains(&key)
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
