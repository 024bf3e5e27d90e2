//! berth's view of Docker. As in the seed, the task engine sees Docker through a client
//! that "does not have to know about tasks, only containers": [`DockerClient`] is that
//! client's surface, with its request and answer types, Docker's errors sorted into
//! classes ([`DockerError`]), and the mapping of Docker's events to container statuses
//! ([`events`]). The bollard implementation and the fake Docker of the tests implement it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod auth_header;
mod bollard_client;
mod client;
mod error;
pub mod events;
mod lazy;
pub mod pause;
mod types;

pub use bollard_client::{BollardClient, classify, split_reference};
/// The byte buffer of [`LogChunk`] (the `bytes` crate's), so that users need not depend
/// on that crate to make or read one.
pub use bytes::Bytes;
pub use client::{DockerClient, EventStream, LogStream, ProgressSink, status_of};
pub use error::{DockerError, ErrorKind};
pub use events::{ContainerEvent, DockerEvent, EventKind};
pub use lazy::LazyDocker;
pub use types::{
    ContainerConfig, ContainerInfo, ContainerState, ContainerSummary, HealthConfig, HostConfig, ImageSummary, LogChunk,
    LogConfig, LogOptions, LogSource, NetworkAttachment, PortSpec, PullProgress, VolumeConfig,
};

/// The seed's default stop timeout, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// The environment variable naming Docker's endpoint.
pub const DOCKER_ENDPOINT_ENV_VARIABLE: &str = "DOCKER_HOST";
/// Docker's endpoint when the variable is not set.
pub const DOCKER_DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// Where Docker is: `DOCKER_HOST`, else [`DOCKER_DEFAULT_ENDPOINT`].
pub fn docker_endpoint() -> String {
    std::env::var(DOCKER_ENDPOINT_ENV_VARIABLE).unwrap_or_else(|_| DOCKER_DEFAULT_ENDPOINT.to_string())
}

/// Labels berth puts on every container it creates.
pub mod labels {
    /// The instance id of the berth that owns the container.
    pub const INSTANCE: &str = "berth.instance";
    /// The task's arn.
    pub const TASK_ARN: &str = "berth.task-arn";
    /// The container's name in its task.
    pub const CONTAINER_NAME: &str = "berth.container-name";
    /// The task definition's family.
    pub const FAMILY: &str = "berth.task-definition-family";
    /// The task definition's version.
    pub const VERSION: &str = "berth.task-definition-version";
    /// On berth's pause image: the fingerprint of the program berth put in it
    /// ([`crate::pause::pause_fingerprint`]); an image of that tag without it is not berth's.
    pub const PAUSE: &str = "berth.pause";
    /// On the volume that marks a berth instance as held ([`holder_volume`]): who holds it.
    pub const HOLDER: &str = "berth.holder";

    /// The Docker volume that marks berth instance `instance` as held by a running berth
    /// (it carries no [`INSTANCE`] label: it is none of the instance's task volumes).
    pub fn holder_volume(instance: &str) -> String {
        format!("berth-holder-{instance}")
    }
}
