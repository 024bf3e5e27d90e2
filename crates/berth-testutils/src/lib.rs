//! What berth's tests share: [`FakeDocker`], an in-memory Docker daemon implementing
//! [`berth_docker::DockerClient`] the way berth sees the real one through bollard.
//!
//! - containers: 64-hex ids, unique names (`Conflict`), created → running → exited;
//!   starting a running one changes nothing, starting an exited one runs it again (as
//!   Docker does; counted, berth must never ask it), stop is SIGTERM honoured (143),
//!   removal forces; links, `volumes_from` and `container:` network modes are checked
//!   as Docker checks them;
//! - what a started container does is a [`Behaviour`] (default: read from its command,
//!   see [`default_behaviour`]), acted out in `tokio::time`;
//! - images (local and pullable, distinct ids; removal refused while a container created
//!   from one exists), volumes (in use → `Conflict`);
//! - each container's output ([`FakeDocker::write_output`]), read back by
//!   `container_logs`, followed until the container stops;
//! - events exactly as Docker sends them, live from the call, with the last 256 replayed
//!   from `since`;
//! - faults ([`FakeDocker::fail_next`], [`FakeDocker::time_out_next`],
//!   [`FakeDocker::delay`], [`FakeDocker::drop_events`],
//!   [`FakeDocker::cut_event_streams`], [`FakeDocker::set_unreachable`]) and counters
//!   per operation ([`Op`]) and target.
//!
//! [`real`] holds what the tests against the real daemon share; [`etcd`] starts real etcd
//! members on loopback ([`etcd::EtcdCluster`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod behaviour;
pub mod etcd;
mod events;
mod fake;
mod fault;
pub mod real;
mod snapshot;
mod state;

pub use behaviour::{Behaviour, BehaviourFn, default_behaviour};
pub use events::EVENT_HISTORY;
pub use fake::FakeDocker;
pub use fault::Op;
pub use snapshot::{ContainerSnapshot, RunState};

#[cfg(test)]
mod tests;
