//! A node's registration and liveness: one lease per agent process, whose id is the node's
//! **epoch**.
//!
//! [`Node::register`] grants a lease, writes `nodes/<n>/info` (no lease) and creates
//! `nodes/<n>/alive` under the lease only if it is absent: a second live process with the
//! same node name is refused ([`NodeError::NameTaken`], naming the other's epoch and start
//! time). A keepalive loop then renews the lease every [`NodeConfig::keepalive_every`]
//! (`ttl / 6` by default), and for each answered keepalive records the local monotonic
//! instant it was *sent* and the TTL answered ([`KeepAlive`]): the store expires the lease
//! no earlier than `sent + ttl`, so [`Liveness::valid_until`] is a lower bound of the
//! lease's life that needs no synchronised clocks (what the fencing of issue 18 counts
//! from). A keepalive answered "lease not found" means the lease expired: the node
//! registers again with a new epoch, and [`Node::liveness`] (a watch channel) tells the
//! runner and the status writer (epoch `None` while it is not registered).
//!
//! The epoch is persisted in the data directory ([`EPOCH_FILE`], JSON, written atomically,
//! mode 0600). A restarted berth first sends a keepalive on its persisted lease: still alive
//! means nothing moved (same epoch; the runner then finds its tasks in the engine and
//! restarts nothing); "not found" means a new epoch.
//!
//! Stopping: [`Node::stop`] (and dropping the node) only ends the keepalive loop; it revokes
//! nothing, so a berth restarted within the TTL resumes its epoch and its tasks keep running
//! across the restart. A node that does not come back loses its lease after the TTL, which
//! the scheduler sees as the node going away. [`Node::leave`] revokes the lease at once (its
//! `alive` key and every key under the lease go): for an operator taking the host out.
//!
//! An agent in cluster mode: [`Node::register`] first (it refuses a duplicate name before
//! anything runs), then [`crate::runner::Runner::start`] and
//! [`crate::status::StatusWriter::start`] with [`Node::liveness`]. At a clean stop:
//! `Runner::stop`, the engine's shutdown (the status writer writes the last changes and
//! ends by itself when the engine's change log ends), `StatusWriter::stop`, `Node::stop`.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn berth_cluster::ClusterStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use berth_cluster::keys::Keys;
//! use berth_cluster::node::{Node, NodeConfig};
//! use berth_cluster::records::NodeInfo;
//! use std::time::Duration;
//!
//! let info = NodeInfo { cpu: 4096, memory_mib: 8192, reserved_ports: vec![], attributes: Default::default(),
//!     version: "0.1.0".into() };
//! let mut config = NodeConfig::new("host-1", info, Duration::from_secs(30));
//! config.data_dir = Some("/var/lib/berth".into());
//! let node = Node::register(store, Keys::new("prod")?, config).await?;
//! println!("node {} at epoch {:?}", node.name(), node.epoch());
//! let liveness = node.liveness(); // give it to the runner and the status writer
//! # drop(liveness);
//! node.stop().await; // at a clean stop: the lease stays, tasks keep running
//! # Ok(()) }
//! ```

use crate::backoff::Backoff;
use crate::keys::{Keys, check_name};
use crate::records::{self, NodeAlive, NodeInfo};
use crate::store::{ClusterError, ClusterStore, CmpOp, Compare, LeaseId, Op, Target, Txn};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The file in the data directory that keeps the node's epoch across restarts.
pub const EPOCH_FILE: &str = "cluster-node.json";

/// How a node registers.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name (a key segment, [`check_name`]).
    pub name: String,
    /// What the node offers (`nodes/<n>/info`).
    pub info: NodeInfo,
    /// The lease's TTL.
    pub ttl: Duration,
    /// How often the lease is renewed (default `ttl / 6`).
    pub keepalive_every: Duration,
    /// Where the node's API answers, if on TCP (in `nodes/<n>/alive`).
    pub address: Option<String>,
    /// The data directory the epoch is persisted in (none: not persisted).
    pub data_dir: Option<PathBuf>,
}

impl NodeConfig {
    /// A node `name` offering `info`, with a lease of `ttl` renewed every `ttl / 6`, no
    /// address, nothing persisted.
    pub fn new(name: impl Into<String>, info: NodeInfo, ttl: Duration) -> NodeConfig {
        NodeConfig { name: name.into(), info, ttl, keepalive_every: ttl / 6, address: None, data_dir: None }
    }
}

/// Why a node could not register.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Another live berth process holds the node name.
    #[error(
        "node name {node:?} is held by another live berth process (epoch {}, started {started_at}); \
         stop it, or wait for its lease to expire if it is gone",
        epoch.0
    )]
    NameTaken {
        /// The node name.
        node: String,
        /// The other process's epoch.
        epoch: LeaseId,
        /// When it registered.
        started_at: chrono::DateTime<chrono::Utc>,
    },
    /// The node name or cluster is not a valid key segment.
    #[error("{0}")]
    InvalidName(String),
    /// The store refused a request or held an unreadable record.
    #[error(transparent)]
    Store(#[from] ClusterError),
    /// A record could not be read.
    #[error(transparent)]
    Record(#[from] records::RecordError),
    /// The epoch file could not be read or written.
    #[error("node epoch file {}: {message}", path.display())]
    EpochFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// One answered keepalive (or the grant): when it was sent, and the TTL answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// The local monotonic instant the request was sent.
    pub sent: Instant,
    /// The TTL the store answered.
    pub ttl: Duration,
}

/// What the agent knows of its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Liveness {
    /// The current epoch; `None` while the node is not registered (its lease was lost and
    /// a new one not yet granted).
    pub epoch: Option<LeaseId>,
    /// The latest answered keepalive of the current epoch.
    pub last: Option<KeepAlive>,
}

impl Liveness {
    /// The lease is valid at least until this instant (`sent + ttl` of the latest answered
    /// keepalive): the store cannot have expired it earlier.
    pub fn valid_until(&self) -> Option<Instant> {
        self.last.map(|k| k.sent + k.ttl)
    }
}

/// The epoch file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersistedEpoch {
    /// The cluster's key root (`/berth/v1/<cluster>/`).
    cluster: String,
    node: String,
    epoch: LeaseId,
}

/// What registering needs, shared with the keepalive loop.
struct Registrar {
    store: Arc<dyn ClusterStore>,
    keys: Keys,
    config: NodeConfig,
}

/// A registered node: its keepalive loop runs until [`Node::stop`], [`Node::leave`] or drop.
pub struct Node {
    registrar: Arc<Registrar>,
    liveness: watch::Receiver<Liveness>,
    resumed: bool,
    keepalive: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.registrar.config.name)
            .field("liveness", &*self.liveness.borrow())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Registers node `config.name` in the cluster of `keys` and starts its keepalive loop.
    /// With a persisted epoch whose lease is still alive, resumes it ([`Node::resumed`]).
    /// Retries while the store is unavailable (wrap it in a timeout to bound the wait);
    /// refuses at once when another live process holds the name.
    pub async fn register(store: Arc<dyn ClusterStore>, keys: Keys, config: NodeConfig) -> Result<Node, NodeError> {
        check_name("node name", &config.name).map_err(NodeError::InvalidName)?;
        let registrar = Arc::new(Registrar { store, keys, config });
        let mut backoff = Backoff::new();
        let (keepalive, resumed) = loop {
            match registrar.register().await {
                Ok(done) => break done,
                Err(NodeError::Store(ClusterError::Unavailable(why))) => {
                    tracing::warn!(node = %registrar.config.name, "cluster store unavailable while registering: {why}");
                    tokio::time::sleep(backoff.next()).await;
                }
                Err(e) => return Err(e),
            }
        };
        let (tx, liveness) = watch::channel(keepalive);
        let task = tokio::spawn(keep_alive_loop(Arc::clone(&registrar), tx));
        Ok(Node { registrar, liveness, resumed, keepalive: Some(task) })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.registrar.config.name
    }

    /// The current epoch (`None` while re-registering).
    pub fn epoch(&self) -> Option<LeaseId> {
        self.liveness.borrow().epoch
    }

    /// Whether registration resumed the persisted epoch (a restart within the lease).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The epoch and the latest answered keepalive, as they change.
    pub fn liveness(&self) -> watch::Receiver<Liveness> {
        self.liveness.clone()
    }

    /// The lease is valid at least until this instant ([`Liveness::valid_until`]).
    pub fn lease_valid_until(&self) -> Option<Instant> {
        self.liveness.borrow().valid_until()
    }

    /// Ends the keepalive loop without revoking the lease: the node's tasks keep running
    /// and a restart within the TTL resumes the same epoch.
    pub async fn stop(mut self) {
        if let Some(task) = self.keepalive.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Ends the keepalive loop and revokes the lease: `nodes/<n>/alive` and every key under
    /// the lease are deleted at once, and the persisted epoch is forgotten.
    pub async fn leave(mut self) -> Result<(), NodeError> {
        if let Some(task) = self.keepalive.take() {
            task.abort();
            let _ = task.await;
        }
        if let Some(epoch) = self.epoch() {
            self.registrar.store.revoke(epoch).await?;
        }
        if let Some(path) = self.registrar.epoch_file() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeError::EpochFile { path, message: e.to_string() }),
            }
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(task) = self.keepalive.take() {
            task.abort();
        }
    }
}

impl Registrar {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn epoch_file(&self) -> Option<PathBuf> {
        self.config.data_dir.as_ref().map(|d| d.join(EPOCH_FILE))
    }

    /// Registers once: the persisted epoch if its lease is alive, else a new one.
    async fn register(&self) -> Result<(Liveness, bool), NodeError> {
        if let Some(epoch) = self.persisted_epoch()? {
            let sent = Instant::now();
            match self.store.keep_alive(epoch).await {
                Ok(ttl) => {
                    self.claim(epoch).await?;
                    tracing::info!(node = %self.name(), epoch = epoch.0, "resumed the persisted epoch");
                    return Ok((Liveness { epoch: Some(epoch), last: Some(KeepAlive { sent, ttl }) }, true));
                }
                Err(ClusterError::LeaseNotFound(_)) => {
                    tracing::info!(node = %self.name(), epoch = epoch.0, "the persisted epoch's lease is gone: new epoch");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((self.register_new().await?, false))
    }

    /// Grants a new lease and claims the node name under it.
    async fn register_new(&self) -> Result<Liveness, NodeError> {
        let sent = Instant::now();
        let lease = self.store.grant(self.config.ttl).await?;
        if let Err(e) = self.claim(lease.id).await {
            // Best effort: the lease would expire by itself after its TTL.
            if let Err(revoke) = self.store.revoke(lease.id).await {
                tracing::warn!(node = %self.name(), "revoking the unused lease {}: {revoke}", lease.id.0);
            }
            return Err(e);
        }
        self.persist(lease.id)?;
        tracing::info!(node = %self.name(), epoch = lease.id.0, "registered");
        Ok(Liveness { epoch: Some(lease.id), last: Some(KeepAlive { sent, ttl: lease.ttl }) })
    }

    /// Writes `info` and creates `alive` under `epoch` unless it exists; an `alive` already
    /// under `epoch` (a resumed epoch) is kept as it is.
    async fn claim(&self, epoch: LeaseId) -> Result<(), NodeError> {
        let alive_key = self.keys.node_alive(self.name());
        let info = Op::put(self.keys.node_info(self.name()), records::encode(&self.config.info));
        let alive = NodeAlive { epoch, started_at: chrono::Utc::now(), address: self.config.address.clone() };
        let txn = Txn {
            compares: vec![Compare::absent(alive_key.clone())],
            success: vec![info.clone(), Op::put_leased(alive_key.clone(), records::encode(&alive), epoch)],
            failure: vec![Op::get(alive_key.clone())],
        };
        let result = self.store.txn(txn).await?;
        if result.succeeded {
            return Ok(());
        }
        let Some(Some(held)) = result.reads.into_iter().next() else {
            // Deleted between the compare and the read cannot be: the branch reads atomically.
            return Err(NodeError::Store(ClusterError::Refused(format!("{alive_key}: neither absent nor present"))));
        };
        if held.lease == Some(epoch) {
            // Our own: a resumed epoch. Refresh the info only, if the alive key is still ours.
            let txn = Txn {
                compares: vec![Compare { key: alive_key, op: CmpOp::Equal, target: Target::Lease(epoch.0) }],
                success: vec![info],
                failure: vec![],
            };
            self.store.txn(txn).await?;
            return Ok(());
        }
        let other: NodeAlive = records::decode(&held.key, &held.value)?;
        Err(NodeError::NameTaken { node: self.name().to_string(), epoch: other.epoch, started_at: other.started_at })
    }

    /// The persisted epoch of this cluster and node, if any.
    fn persisted_epoch(&self) -> Result<Option<LeaseId>, NodeError> {
        let Some(path) = self.epoch_file() else { return Ok(None) };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NodeError::EpochFile { path, message: e.to_string() }),
        };
        let persisted: PersistedEpoch =
            serde_json::from_slice(&bytes).map_err(|e| NodeError::EpochFile { path, message: e.to_string() })?;
        if persisted.cluster != self.keys.root() || persisted.node != self.name() {
            tracing::info!(node = %self.name(), "the persisted epoch is another cluster's or node's: not resumed");
            return Ok(None);
        }
        Ok(Some(persisted.epoch))
    }

    fn persist(&self, epoch: LeaseId) -> Result<(), NodeError> {
        let Some(path) = self.epoch_file() else { return Ok(()) };
        let record = PersistedEpoch { cluster: self.keys.root().to_string(), node: self.name().to_string(), epoch };
        write_epoch(&path, &record)
    }
}

fn write_epoch(path: &Path, record: &PersistedEpoch) -> Result<(), NodeError> {
    berth_store::files::write_atomically(path, &records::encode(record))
        .map_err(|e| NodeError::EpochFile { path: path.to_path_buf(), message: e.to_string() })
}

/// Renews the lease every `keepalive_every`; on "lease not found" registers again with a
/// new epoch (retrying until it can).
async fn keep_alive_loop(registrar: Arc<Registrar>, liveness: watch::Sender<Liveness>) {
    let every = registrar.config.keepalive_every.max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(every).await;
        let Some(epoch) = liveness.borrow().epoch else { continue };
        let sent = Instant::now();
        match registrar.store.keep_alive(epoch).await {
            Ok(ttl) => {
                liveness.send_modify(|l| {
                    if l.epoch == Some(epoch) {
                        l.last = Some(KeepAlive { sent, ttl });
                    }
                });
            }
            Err(ClusterError::LeaseNotFound(_)) => {
                tracing::warn!(node = %registrar.name(), epoch = epoch.0, "the node's lease expired: registering again");
                liveness.send_replace(Liveness::default());
                let mut backoff = Backoff::new();
                loop {
                    match registrar.register_new().await {
                        Ok(new) => {
                            liveness.send_replace(new);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(node = %registrar.name(), "registering again: {e}");
                            tokio::time::sleep(backoff.next()).await;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(node = %registrar.name(), epoch = epoch.0, "keepalive: {e}"),
        }
    }
}
