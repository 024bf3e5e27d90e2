//! The trait's calls, as the fake counts them and injects faults into them.

use berth_docker::ErrorKind;

/// One call of [`berth_docker::DockerClient`], for faults, delays and counters. The
/// trait's provided methods (`get_container_name`, `describe_container`,
/// `describe_docker_images`) count as the call they make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `ping`.
    Ping,
    /// `container_events` (opening the stream).
    ContainerEvents,
    /// `pull_image`.
    PullImage,
    /// `image_exists`.
    ImageExists,
    /// `create_container`.
    CreateContainer,
    /// `start_container`.
    StartContainer,
    /// `stop_container`.
    StopContainer,
    /// `remove_container`.
    RemoveContainer,
    /// `inspect_container`.
    InspectContainer,
    /// `list_containers`.
    ListContainers,
    /// `create_volume`.
    CreateVolume,
    /// `remove_volume`.
    RemoveVolume,
    /// `volume_labels`.
    InspectVolume,
    /// `list_images`.
    ListImages,
    /// `container_logs` (opening the stream).
    ContainerLogs,
    /// `remove_image`.
    RemoveImage,
    /// `container_stats`.
    ContainerStats,
    /// `network_gateway`.
    InspectNetwork,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 18] = [
        Op::Ping,
        Op::ContainerEvents,
        Op::PullImage,
        Op::ImageExists,
        Op::CreateContainer,
        Op::StartContainer,
        Op::StopContainer,
        Op::RemoveContainer,
        Op::InspectContainer,
        Op::ListContainers,
        Op::CreateVolume,
        Op::RemoveVolume,
        Op::InspectVolume,
        Op::ListImages,
        Op::ContainerLogs,
        Op::RemoveImage,
        Op::ContainerStats,
        Op::InspectNetwork,
    ];

    /// The operation's name in errors (`DockerError::operation`), e.g. `start container`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::ContainerEvents => "container events",
            Op::PullImage => "pull image",
            Op::ImageExists => "inspect image",
            Op::CreateContainer => "create container",
            Op::StartContainer => "start container",
            Op::StopContainer => "stop container",
            Op::RemoveContainer => "remove container",
            Op::InspectContainer => "inspect container",
            Op::ListContainers => "list containers",
            Op::CreateVolume => "create volume",
            Op::RemoveVolume => "remove volume",
            Op::InspectVolume => "inspect volume",
            Op::ListImages => "list images",
            Op::ContainerLogs => "container logs",
            Op::RemoveImage => "remove image",
            Op::ContainerStats => "container stats",
            Op::InspectNetwork => "inspect network",
        }
    }

    /// Whether the operation's target is a container (its name is then used for
    /// counting and for matching faults, whether the call named it by id or by name).
    pub(crate) fn on_container(self) -> bool {
        matches!(
            self,
            Op::CreateContainer
                | Op::StartContainer
                | Op::StopContainer
                | Op::RemoveContainer
                | Op::InspectContainer
                | Op::ContainerLogs
                | Op::ContainerStats
        )
    }

    /// Whether the operation's target is an image reference (normalized for counting).
    pub(crate) fn on_image(self) -> bool {
        matches!(self, Op::PullImage | Op::ImageExists | Op::RemoveImage)
    }
}

/// What a pending fault does to the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultMode {
    /// Fail with this kind without doing the work.
    Fail(ErrorKind),
    /// Do the work, then answer with this kind (`Timeout`, `Lost`): Docker did it, berth
    /// cannot know.
    AfterWork(ErrorKind),
}

/// A fault waiting for the calls it will hit.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub op: Op,
    pub filter: Option<String>,
    pub remaining: usize,
    pub mode: FaultMode,
}

impl Fault {
    /// Whether this fault hits a call of `op` on `target` (also known as `name`).
    pub fn hits(&self, op: Op, target: &str, name: Option<&str>) -> bool {
        self.op == op
            && self.remaining > 0
            && match &self.filter {
                None => true,
                Some(f) => target.contains(f.as_str()) || name.is_some_and(|n| n.contains(f.as_str())),
            }
    }
}
