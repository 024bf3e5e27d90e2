//! The client surface berth needs of Docker (the seed's `DockerClient`).

use crate::auth::RegistryAuth;
use crate::error::DockerError;
use crate::events::DockerEvent;
use crate::types::{
    ContainerConfig, ContainerInfo, ContainerSummary, ImageSummary, LogChunk, LogOptions, PullProgress, VolumeConfig,
};
use async_trait::async_trait;
use berth_model::ContainerStatus;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where a pull reports its progress.
pub type ProgressSink = dyn Fn(PullProgress) + Send + Sync;

/// Docker's container events, in order, until the stream ends or fails.
pub type EventStream = BoxStream<'static, Result<DockerEvent, DockerError>>;

/// A container's output, stdout and stderr interleaved in the order Docker has it, until
/// the stream ends (all of it was read, or, when following, the container stopped) or
/// fails.
pub type LogStream = BoxStream<'static, Result<LogChunk, DockerError>>;

/// What berth asks of Docker. Implementations answer Docker's "already done" with
/// success: starting a running container, stopping a stopped one, and removing one that
/// does not exist all return `Ok`. Every method names its target in its errors.
#[async_trait]
pub trait DockerClient: Send + Sync + 'static {
    /// Docker answers.
    async fn ping(&self) -> Result<(), DockerError>;

    /// Container events from `since` (or from now). The stream is live once this returns:
    /// events after the call are delivered even before the stream is first polled.
    async fn container_events(&self, since: Option<DateTime<Utc>>) -> Result<EventStream, DockerError>;

    /// Make `image` present on the host, with the registry credentials given, if any,
    /// telling `progress` how it goes.
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        progress: &ProgressSink,
    ) -> Result<(), DockerError>;

    /// Whether `image` is present on the host.
    async fn image_exists(&self, image: &str) -> Result<bool, DockerError>;

    /// Create a container; returns its id. A name already in use is a `Conflict`.
    async fn create_container(&self, config: &ContainerConfig) -> Result<String, DockerError>;

    /// Start a container (by id or name). Starting a running one succeeds and changes
    /// nothing; note that Docker starts an exited one again, so berth never asks that.
    async fn start_container(&self, id: &str) -> Result<(), DockerError>;

    /// Stop a container: SIGTERM, then SIGKILL after `timeout`. A stopped one succeeds.
    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), DockerError>;

    /// Remove a container and its anonymous volumes, forcing a running one. One that does
    /// not exist succeeds.
    async fn remove_container(&self, id: &str) -> Result<(), DockerError>;

    /// Inspect a container by id or name.
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, DockerError>;

    /// A container's output (by id or name), stdout and stderr, without timestamps: all of
    /// it from the start, or what `options` keep (the last `tail` lines, what was written
    /// `since`). With `options.follow`, the stream then goes on with new output until the
    /// container stops (at once when it is not running); without, it ends with the output
    /// there is. No such container is a `NotFound` naming it.
    async fn container_logs(&self, id: &str, options: LogOptions) -> Result<LogStream, DockerError>;

    /// Every container (running or not) carrying all these labels; with no labels, every
    /// container on the host.
    async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, DockerError>;

    /// Create a volume; one that exists with the same name succeeds.
    async fn create_volume(&self, config: &VolumeConfig) -> Result<(), DockerError>;

    /// Remove a volume; one that does not exist succeeds.
    async fn remove_volume(&self, name: &str) -> Result<(), DockerError>;

    /// A volume's labels, or `None` when there is no such volume.
    async fn volume_labels(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, DockerError>;

    /// Remove an image (by id or reference), not forced. Docker refuses (`Conflict`, naming
    /// the image) when a container, running or not, uses it and `image` is its only
    /// reference; a reference of an image that has others is only untagged. One that does
    /// not exist succeeds.
    async fn remove_image(&self, image: &str) -> Result<(), DockerError>;

    /// The images on the host.
    async fn list_images(&self) -> Result<Vec<ImageSummary>, DockerError>;

    /// One sample of a container's resource usage (by id or name), as Docker's stats JSON
    /// (`stream=false`: Docker waits for a second reading, so `precpu_stats` is filled).
    /// No such container is a `NotFound` naming it.
    async fn container_stats(&self, id: &str) -> Result<serde_json::Value, DockerError>;

    /// The gateway address of a Docker network (by name): its IPAM configuration's, or,
    /// when that names none (Docker's default `bridge` often does not), the first host
    /// address of its first IPv4 subnet, which Docker gives the bridge then. `None` when
    /// the network has no IPv4 subnet. No such network is a `NotFound` naming it.
    async fn network_gateway(&self, network: &str) -> Result<Option<std::net::Ipv4Addr>, DockerError>;

    /// Make berth's own pause image present (it is made on the host, never pulled). This
    /// default only looks for it; the real client imports it when missing.
    async fn ensure_pause_image(&self) -> Result<(), DockerError> {
        let image = berth_model::container::PAUSE_IMAGE;
        if self.image_exists(image).await? {
            Ok(())
        } else {
            Err(DockerError::new(
                crate::ErrorKind::Permanent,
                "make pause image",
                image,
                "berth's pause image is missing",
            ))
        }
    }

    /// The seed's `GetContainerName`: a container's name, by id.
    async fn get_container_name(&self, id: &str) -> Result<String, DockerError> {
        Ok(self.inspect_container(id).await?.name)
    }

    /// The seed's `DescribeContainer`: a container's status, by id.
    async fn describe_container(&self, id: &str) -> Result<ContainerStatus, DockerError> {
        let info = self.inspect_container(id).await?;
        Ok(status_of(&info))
    }

    /// The seed's `DescribeDockerImages`: every image on the host, as JSON.
    async fn describe_docker_images(&self) -> Result<String, DockerError> {
        let images = self.list_images().await?;
        serde_json::to_string(&images)
            .map_err(|e| DockerError::new(crate::ErrorKind::Permanent, "describe images", "", e.to_string()))
    }
}

/// The status a container's inspected state stands for: created → CREATED, running (and
/// paused, restarting) → RUNNING, exited or dead → STOPPED.
pub fn status_of(info: &ContainerInfo) -> ContainerStatus {
    match info.state.status.as_str() {
        "created" => ContainerStatus::Created,
        "running" | "paused" | "restarting" => ContainerStatus::Running,
        "exited" | "dead" | "removing" => ContainerStatus::Stopped,
        _ if info.has_run() => ContainerStatus::Stopped,
        _ => ContainerStatus::Created,
    }
}
