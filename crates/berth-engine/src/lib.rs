//! berth's task engine: one owner of state that applies the planner's operations through
//! a [`berth_docker::DockerClient`] and a [`berth_store::Saver`], maps Docker's events to
//! statuses, appends every state change to the durable change log that readers follow,
//! resumes its tasks after a restart, and sweeps stopped tasks.
//!
//! An embedder starts it with [`Engine::builder`] and talks to the running engine through
//! an [`EngineHandle`] (cheap to clone; any clone may shut it down):
//!
//! ```
//! use berth_engine::{Engine, EngineConfig, LogItem};
//! use berth_model::ContainerStatus;
//! use berth_model::input::{ParseOptions, parse};
//! use berth_testutils::FakeDocker;
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let docker = FakeDocker::new();
//! docker.add_registry_image("busybox:latest");
//! let engine = Engine::builder(EngineConfig::default(), Arc::new(docker.clone())).start().await?;
//! let mut changes = engine.task_events();
//!
//! let json = r#"{"family": "hello", "containerDefinitions": [{"name": "web", "image": "busybox"}]}"#;
//! let task = parse(json.as_bytes(), &ParseOptions::default()).map_err(|r| r.to_string())?.task;
//! let added = engine.add_task(task).await?;
//! assert!(added.created);
//!
//! while let Some(LogItem::Change(change)) = changes.next().await {
//!     if change.container_name == "web" && change.status == ContainerStatus::Running {
//!         break;
//!     }
//! }
//! assert_eq!(docker.containers().len(), 1);
//! engine.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! - [`engine`]: [`Engine::builder`], [`EngineHandle`];
//! - [`compat`]: the seed's API (`DockerTaskEngine`, `TaskEngine`), delegating to the handle;
//! - `actor`: the loop that owns the state: plan, commit, then call Docker;
//! - `executor`: one Docker call with its timeout, as an outcome the model reads; the
//!   shared pulls and the pull behaviours;
//! - `settings`: a container's create request (names, labels, every setting);
//! - `watch`: the event stream, reopened from where it left off;
//! - [`changelog`]: the retained changes and their readers;
//! - [`telemetry`]: what happens inside, as typed occurrences to the embedder's
//!   [`Telemetry`] (logged by default), the engine's one channel for metrics and logs;
//! - [`clock`]: time, which tests control.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod actor;
pub mod changelog;
pub mod clock;
pub mod compat;
pub mod config;
pub mod engine;
pub mod error;
pub(crate) mod executor;
mod holder;
mod host_paths;
pub(crate) mod settings;
mod specs;
pub mod telemetry;
mod watch;

/// What the benchmarks reach inside the engine (not part of its API).
#[doc(hidden)]
pub mod bench_support {
    pub use crate::settings::{container_config, docker_name};
}

pub use changelog::{ChangeLog, ChangeReader, LogItem};
pub use clock::{Clock, ManualClock, SystemClock};
pub use compat::{DockerTaskEngine, EngineState, TaskEngine};
pub use config::{ContainerLimits, EngineConfig, LogRotation, MetadataEndpoint, Timeouts};
pub use engine::{AddOutcome, Engine, EngineBuilder, EngineHandle, EngineStatus};
pub use error::{ContainerNotFound, EngineError, EngineExit};
pub use executor::{InvalidPullBehavior, PullBehavior};
pub use telemetry::{EngineTelemetry, LogTelemetry, NoTelemetry, Telemetry};
