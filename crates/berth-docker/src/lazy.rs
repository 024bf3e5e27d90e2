//! A Docker client that connects (and negotiates the API version) on first use instead of
//! before anything can start: `berth daemon` serves its API while Docker is down at boot,
//! and the engine's own connector finds Docker once it answers. Until the first connection
//! succeeds, every call fails as Docker's own would when it cannot be reached (the engine
//! holds its calls, counting no attempt); after it, every call goes to the one client.

use crate::auth::RegistryAuth;
use crate::bollard_client::BollardClient;
use crate::client::{DockerClient, EventStream, LogStream, ProgressSink};
use crate::error::DockerError;
use crate::types::{ContainerConfig, ContainerInfo, ContainerSummary, ImageSummary, LogOptions, VolumeConfig};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::OnceCell;

/// [`BollardClient`] made at the first call that finds Docker answering.
#[derive(Debug)]
pub struct LazyDocker {
    endpoint: String,
    client: OnceCell<BollardClient>,
}

impl LazyDocker {
    /// A client of `DOCKER_HOST`, else `unix:///var/run/docker.sock`; nothing is contacted yet.
    pub fn from_env() -> LazyDocker {
        LazyDocker::new(crate::docker_endpoint())
    }

    /// A client of `endpoint` (as [`BollardClient::connect_to`] takes it); nothing is
    /// contacted yet.
    pub fn new(endpoint: impl Into<String>) -> LazyDocker {
        LazyDocker { endpoint: endpoint.into(), client: OnceCell::new() }
    }

    /// The connected client: made now if it was not yet (one attempt; a failure is
    /// returned as it is, and the next call tries again).
    async fn client(&self) -> Result<&BollardClient, DockerError> {
        self.client.get_or_try_init(|| BollardClient::connect_to(&self.endpoint)).await
    }
}

#[async_trait]
impl DockerClient for LazyDocker {
    async fn ping(&self) -> Result<(), DockerError> {
        self.client().await?.ping().await
    }

    async fn container_events(&self, since: Option<DateTime<Utc>>) -> Result<EventStream, DockerError> {
        self.client().await?.container_events(since).await
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &ProgressSink,
    ) -> Result<(), DockerError> {
        self.client().await?.pull_image(image, auth, progress).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        self.client().await?.image_exists(image).await
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String, DockerError> {
        self.client().await?.create_container(config).await
    }

    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        self.client().await?.start_container(id).await
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        self.client().await?.stop_container(id, timeout).await
    }

    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        self.client().await?.remove_container(id).await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, DockerError> {
        self.client().await?.inspect_container(id).await
    }

    async fn container_logs(&self, id: &str, options: LogOptions) -> Result<LogStream, DockerError> {
        self.client().await?.container_logs(id, options).await
    }

    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, DockerError> {
        self.client().await?.list_containers(labels).await
    }

    async fn create_volume(&self, config: &VolumeConfig) -> Result<(), DockerError> {
        self.client().await?.create_volume(config).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        self.client().await?.remove_volume(name).await
    }

    async fn volume_labels(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, DockerError> {
        self.client().await?.volume_labels(name).await
    }

    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        self.client().await?.remove_image(image).await
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError> {
        self.client().await?.list_images().await
    }

    async fn container_stats(&self, id: &str) -> Result<serde_json::Value, DockerError> {
        self.client().await?.container_stats(id).await
    }

    async fn network_gateway(&self, network: &str) -> Result<Option<std::net::Ipv4Addr>, DockerError> {
        self.client().await?.network_gateway(network).await
    }

    async fn ensure_pause_image(&self) -> Result<(), DockerError> {
        self.client().await?.ensure_pause_image().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn calls_fail_as_unreachable_until_docker_answers_and_nothing_is_contacted_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("docker.sock");
        let lazy = LazyDocker::new(format!("unix://{}", socket.display()));
        assert!(lazy.client.get().is_none(), "made without contacting Docker");
        let e = lazy.ping().await.expect_err("no daemon there");
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
        assert!(lazy.client.get().is_none(), "a failed attempt leaves nothing behind");
    }
}
