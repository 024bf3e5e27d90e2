//! The engine's telemetry as the agent takes it (issue 15 item 4): each occurrence is
//! logged once, whether the agent counts it (logged by its own type) or not (logged as
//! the engine's default does), and the engine logs none of them itself.

use berth_agent::metrics::Metrics;
use berth_engine::{EngineTelemetry, Telemetry};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

/// Every log event: (target, level).
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<(String, tracing::Level)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push((meta.target().to_string(), *meta.level()));
    }
}

/// The log events `record` of `event` makes.
fn logged(metrics: &Metrics, event: &EngineTelemetry<'_>) -> Vec<(String, tracing::Level)> {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::registry().with(lines.clone());
    tracing::subscriber::with_default(subscriber, || metrics.record(event));
    lines.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

#[test]
fn each_occurrence_is_logged_once() {
    let metrics = Metrics::new();
    let counted = logged(&metrics, &EngineTelemetry::OrphanRemoved { docker_id: "abc" });
    assert_eq!(counted.len(), 1, "orphan removed: {counted:?}");
    assert_eq!(counted[0].0, "berth_agent::telemetry");
    let reopened = logged(&metrics, &EngineTelemetry::EventStreamReopened);
    assert_eq!(reopened.len(), 1, "stream reopened: {reopened:?}");
    assert_eq!(reopened[0].0, "berth_agent::telemetry");
    for event in [
        EngineTelemetry::DockerLost { error: "connection refused" },
        EngineTelemetry::DockerReached { containers: 2 },
        EngineTelemetry::EventStreamEnded { retry_in: None },
        EngineTelemetry::ContainerVanished { arn: "arn:t", container: "web", reason: "gone" },
        EngineTelemetry::OrphanFound { docker_id: "abc", name: "n", task: "arn:t", grace: Duration::from_secs(60) },
    ] {
        let lines = logged(&metrics, &event);
        assert_eq!(lines.len(), 1, "{event:?}: {lines:?}");
        assert_eq!(lines[0].0, "berth_engine::telemetry", "{event:?}");
    }
}
