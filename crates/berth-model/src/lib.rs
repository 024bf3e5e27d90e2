//! berth's model: what a task is and what should happen to it. No I/O, no async.
//!
//! - [`admission`]: host resource accounting (reservations by ECS's rules, the host's
//!   capacity, strict-FIFO admission of waiting tasks);
//! - [`status`]: container and task statuses, ordered as the state machine;
//! - [`container`], [`volume`], [`task`]: the task model and its identity;
//! - [`event`]: state changes, derived from known versus sent statuses;
//! - [`input`]: task definitions in four JSON shapes, validated, with warnings;
//! - [`graph`]: the dependency graph (links, volumesFrom, dependsOn, shared network);
//! - [`plan`]: the pure planner, (desired, known, time) → next operations, and the
//!   transitions that feed the outcome of each operation back into the task;
//! - [`placement`]: which node of a cluster runs a task (constraints, strategies,
//!   feasibility, `place`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod container;
pub mod event;
pub mod graph;
pub mod input;
pub mod placement;
pub mod plan;
pub mod status;
pub mod task;
pub mod volume;

pub use container::{ApplyError, Container, ContainerSpec};
pub use event::StateChange;
pub use status::{ContainerStatus, HealthStatus, TaskStatus};
pub use task::{Task, task_completed};
pub use volume::{Volume, VolumeKind};

/// Whether `value` is its type's default: the fields of a stored task that are skipped when
/// so (absent fields read back as the default), which keeps a task record to what is set
/// (a few hundred bytes instead of 3.5 KB for three plain containers).
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// 64-bit FNV-1a of `bytes`: a stable, dependency-free fingerprint for names (not for
/// security: collisions can be made on purpose).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}
