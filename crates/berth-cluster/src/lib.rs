//! berth on many hosts (`docs/cluster.md`): agents coordinated through etcd.
//!
//! - [`store`]: the [`ClusterStore`] trait (leases, transactions with compares, list at a
//!   revision, watch from a revision, election) and its implementations.
//! - [`keys`]: where everything lives under `/berth/v1/<cluster>/`.
//! - [`records`]: what each key holds (JSON).
//! - [`reflector`]: a list-then-watch cache of one prefix that misses no change.
//! - [`scheduler`]: the scheduler every agent runs, one leading at a time.

pub mod keys;
pub mod records;
pub mod reflector;
pub mod scheduler;
pub mod store;

pub use store::{ClusterError, ClusterStore};
