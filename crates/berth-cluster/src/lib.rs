//! berth on many hosts (`docs/cluster.md`): agents coordinated through etcd.
//!
//! - [`store`]: the [`ClusterStore`] trait (leases, transactions with compares, list at a
//!   revision, watch from a revision, election) and its implementations.
//! - [`keys`]: where everything lives under `/berth/v1/<cluster>/`.
//! - [`records`]: what each key holds (JSON).
//! - [`client`]: the cluster as a client sees it (submit, stop, list, events).
//! - [`reflector`]: a list-then-watch cache of one prefix that misses no change.
//! - [`scheduler`]: the scheduler every agent runs, one leading at a time.
//! - [`node`]: a node's registration, its lease (the epoch) and keepalive, persisted epoch.
//! - [`runner`]: the agent loop that runs this node's assignments on the engine.
//! - [`status`]: the engine's changes written back as `status/<id>/<node>`, batched.

mod backoff;
pub mod client;
pub mod keys;
pub mod node;
pub mod records;
pub mod reflector;
pub mod runner;
pub mod scheduler;
pub mod status;
pub mod store;

pub use store::{ClusterError, ClusterStore};
