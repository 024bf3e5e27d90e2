//! berth as a long-running agent (SPEC 7 and 9): its configuration, the HTTP API on a
//! unix socket and optionally TCP, metrics, and image cleanup, around one
//! [`berth_engine::EngineHandle`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cluster;
pub mod config;
pub mod docker;
pub mod images;
pub mod logging;
pub mod machine;
pub mod metadata;
pub mod metrics;
pub mod policy;
pub mod serve;
pub mod server;
pub mod telemetry;

pub use agent::{Agent, AgentError};
pub use config::AgentConfig;
