//! The Docker client as the agent uses it: [`MeteredDocker`] wraps the real one, times and
//! counts every call ([`crate::telemetry::DockerCallFinished`], and
//! [`crate::telemetry::PullFinished`] for pulls), and keeps the [`ImageLedger`] of the images
//! berth pulled and the last time each was used.

use crate::images::ImageLedger;
use crate::metrics::Metrics;
use crate::telemetry::{DockerCallFinished, PullFinished};
use async_trait::async_trait;
use berth_docker::auth::RegistryAuth;
use berth_docker::{
    ContainerConfig, ContainerInfo, ContainerSummary, DockerClient, DockerError, EventStream, ImageSummary, LogOptions,
    LogStream, ProgressSink, PullProgress, VolumeConfig,
};
use berth_model::ContainerStatus;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A [`DockerClient`] that delegates every call to another and, around each, emits the
/// Docker-call event (operation, duration, error kind); pulls also emit the pull event
/// (bytes downloaded, duration, result). A successful pull enters the image in the
/// ledger; a successful create marks its image used. Event stream reopens are not
/// counted here (the engine's telemetry does).
pub struct MeteredDocker {
    inner: Arc<dyn DockerClient>,
    metrics: Arc<Metrics>,
    ledger: Arc<ImageLedger>,
}

impl fmt::Debug for MeteredDocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredDocker").field("ledger", &self.ledger).finish_non_exhaustive()
    }
}

impl MeteredDocker {
    /// Wrap `inner`, counting into `metrics` and recording pulls and uses in `ledger`.
    pub fn new(inner: Arc<dyn DockerClient>, metrics: Arc<Metrics>, ledger: Arc<ImageLedger>) -> MeteredDocker {
        MeteredDocker { inner, metrics, ledger }
    }

    /// Run one call, timed, and emit its event.
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, DockerError>>,
    ) -> Result<T, DockerError> {
        let started = Instant::now();
        let result = call.await;
        DockerCallFinished { operation, duration: started.elapsed(), error: result.as_ref().err().map(|e| e.kind) }
            .emit(&self.metrics);
        result
    }

    /// Update the ledger off the async threads (it writes and syncs a file).
    async fn update_ledger(&self, what: &'static str, f: impl FnOnce(&ImageLedger) + Send + 'static) {
        let ledger = Arc::clone(&self.ledger);
        if let Err(e) = tokio::task::spawn_blocking(move || f(&ledger)).await {
            tracing::warn!(error = %e, what, "image ledger update did not finish");
        }
    }
}

/// The bytes a pull downloaded, from its progress reports: for each layer, the most its
/// `Downloading` reports said (its total when given, else how far it got). Layers that
/// were present (`Already exists`) report no download and count nothing.
#[derive(Debug, Default)]
struct PullBytes {
    layers: HashMap<String, u64>,
}

impl PullBytes {
    fn add(&mut self, p: &PullProgress) {
        if p.status != "Downloading" {
            return;
        }
        let Some(n) = p.total.filter(|t| *t > 0).or(p.current) else { return };
        let seen = self.layers.entry(p.layer.clone()).or_default();
        *seen = (*seen).max(n);
    }

    fn total(&self) -> u64 {
        self.layers.values().fold(0u64, |sum, n| sum.saturating_add(*n))
    }
}

#[async_trait]
impl DockerClient for MeteredDocker {
    async fn ping(&self) -> Result<(), DockerError> {
        self.call("ping", self.inner.ping()).await
    }

    async fn container_events(&self, since: Option<DateTime<Utc>>) -> Result<EventStream, DockerError> {
        self.call("container_events", self.inner.container_events(since)).await
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &ProgressSink,
    ) -> Result<(), DockerError> {
        // The sink handed on must be 'static: reports travel through a channel and are
        // counted and passed to `progress` here, in order, while the pull runs.
        // Only an image berth brings enters the ledger (and so may be cleaned up): one that
        // was here before this pull is someone else's, whatever the pull does to its tag. If
        // Docker cannot say, the image counts as present.
        let brought = self.ledger.contains(image) || !self.inner.image_exists(image).await.unwrap_or(true);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PullProgress>();
        let sink = move |p: PullProgress| {
            let _ = tx.send(p);
        };
        let mut bytes = PullBytes::default();
        let started = Instant::now();
        let pull = async {
            let pull = self.inner.pull_image(image, auth, &sink);
            tokio::pin!(pull);
            let result = loop {
                tokio::select! {
                    biased;
                    Some(p) = rx.recv() => {
                        bytes.add(&p);
                        progress(p);
                    }
                    result = &mut pull => break result,
                }
            };
            while let Ok(p) = rx.try_recv() {
                bytes.add(&p);
                progress(p);
            }
            result
        };
        let result = self.call("pull_image", pull).await;
        let bytes = bytes.total();
        PullFinished { image, bytes, duration: started.elapsed(), ok: result.is_ok() }.emit(&self.metrics);
        if result.is_ok() && brought {
            let image = image.to_string();
            let now = Utc::now();
            self.update_ledger("record pull", move |ledger| ledger.record_pull(&image, now)).await;
        }
        result
    }

    async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        self.call("image_exists", self.inner.image_exists(image)).await
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String, DockerError> {
        let result = self.call("create_container", self.inner.create_container(config)).await;
        if result.is_ok() && self.ledger.contains(&config.image) {
            let image = config.image.clone();
            let now = Utc::now();
            self.update_ledger("record use", move |ledger| ledger.record_use(&image, now)).await;
        }
        result
    }

    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        self.call("start_container", self.inner.start_container(id)).await
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        self.call("stop_container", self.inner.stop_container(id, timeout)).await
    }

    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        self.call("remove_container", self.inner.remove_container(id)).await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, DockerError> {
        self.call("inspect_container", self.inner.inspect_container(id)).await
    }

    async fn container_logs(&self, id: &str, options: LogOptions) -> Result<LogStream, DockerError> {
        self.call("container_logs", self.inner.container_logs(id, options)).await
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, DockerError> {
        self.call("list_containers", self.inner.list_containers(labels)).await
    }

    async fn create_volume(&self, config: &VolumeConfig) -> Result<(), DockerError> {
        self.call("create_volume", self.inner.create_volume(config)).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        self.call("remove_volume", self.inner.remove_volume(name)).await
    }

    async fn volume_labels(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, DockerError> {
        self.call("volume_labels", self.inner.volume_labels(name)).await
    }

    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        self.call("remove_image", self.inner.remove_image(image)).await
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        self.call("list_images", self.inner.list_images()).await
    }

    async fn container_stats(&self, id: &str) -> Result<serde_json::Value, DockerError> {
        self.call("container_stats", self.inner.container_stats(id)).await
    }

    async fn network_gateway(&self, network: &str) -> Result<Option<std::net::Ipv4Addr>, DockerError> {
        self.call("network_gateway", self.inner.network_gateway(network)).await
    }

    async fn ensure_pause_image(&self) -> Result<(), DockerError> {
        self.call("ensure_pause_image", self.inner.ensure_pause_image()).await
    }

    async fn get_container_name(&self, id: &str) -> Result<String, DockerError> {
        self.call("get_container_name", self.inner.get_container_name(id)).await
    }

    async fn describe_container(&self, id: &str) -> Result<ContainerStatus, DockerError> {
        self.call("describe_container", self.inner.describe_container(id)).await
    }

    async fn describe_docker_images(&self) -> Result<String, DockerError> {
        self.call("describe_docker_images", self.inner.describe_docker_images()).await
    }
}
