//! berth's task engine (the seed's `DockerTaskEngine`): one owner of state that applies
//! the planner's operations through a [`berth_docker::DockerClient`] and a
//! [`berth_store::Saver`], maps Docker's events to statuses, appends every state change to
//! the durable change log that readers follow, resumes its tasks after a restart, and
//! sweeps stopped tasks.
//!
//! - [`engine`]: the handle (`new`, `init`, `add_task`, `task_events`, ...);
//! - `actor`: the loop that owns the state: plan, commit, then call Docker;
//! - [`executor`]: one Docker call with its timeout, as an outcome the model reads; the
//!   shared pulls and the pull behaviours;
//! - [`settings`]: a container's create request (names, labels, every setting);
//! - `watch`: the event stream, reopened from where it left off;
//! - [`changelog`]: the retained changes and their readers;
//! - [`observe`]: what happens inside, for an embedder's metrics and logs;
//! - [`clock`]: time, which tests control.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod actor;
pub mod changelog;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod executor;
mod holder;
mod host_paths;
pub mod observe;
pub mod settings;
mod specs;
mod watch;

pub use changelog::{ChangeLog, ChangeReader, LogItem};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ContainerLimits, EngineConfig, LogRotation, Timeouts};
pub use engine::{DockerTaskEngine, EngineState, EngineStatus, TaskEngine};
pub use error::{ContainerNotFound, EngineError, EngineExit};
pub use executor::{InvalidPullBehavior, PullBehavior};
pub use observe::{EngineEvent, NoObserver, Observer};
