//! The cluster store: what berth needs of etcd, as a trait, so the scheduler and the agent
//! loop run the same on etcd (`etcd`) and on the in-memory store (`memory`) unit and
//! property tests use.
//!
//! The semantics are etcd's (v3 API, as etcd 3.4 has it): one revision counter for the whole
//! store, bumped by every transaction that writes; keys with create, mod revision and
//! version; leases with a TTL that a keepalive renews and whose expiry deletes their keys;
//! transactions that compare, then apply one branch atomically; watches from a revision that
//! end with [`ClusterError::Compacted`] when that revision was compacted away; an election
//! whose leader key's create revision proves leadership inside a transaction.

pub mod etcd;
pub mod memory;

pub use etcd::EtcdStore;
pub use memory::MemoryStore;

use async_trait::async_trait;
use std::time::Duration;
use tokio::sync::mpsc;

/// A store revision (etcd's `int64`; 0 means "never").
pub type Revision = i64;

/// A lease's id. The id of a node's lease is the node's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct LeaseId(pub i64);

/// A lease as granted or renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Its id.
    pub id: LeaseId,
    /// The TTL the store granted (it may round up what was asked).
    pub ttl: Duration,
}

/// One key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value (berth's values are JSON).
    pub value: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of its last write.
    pub mod_revision: Revision,
    /// Writes since it was created (1 after the create).
    pub version: i64,
    /// The lease it is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// What a comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The key's create revision (0 when the key does not exist).
    CreateRevision(Revision),
    /// The key's mod revision (0 when the key does not exist).
    ModRevision(Revision),
    /// The key's value (an absent key never compares equal).
    Value(Vec<u8>),
    /// The key's lease (0 when it has none or does not exist).
    Lease(i64),
}

/// How a comparison compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// Stored value less than the given one.
    Less,
    /// Stored value greater than the given one.
    Greater,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// How.
    pub op: CmpOp,
    /// Against what.
    pub target: Target,
}

impl Compare {
    /// The key does not exist.
    pub fn absent(key: impl Into<String>) -> Compare {
        Compare { key: key.into(), op: CmpOp::Equal, target: Target::CreateRevision(0) }
    }
    /// The key was last written at `revision` (0: it does not exist).
    pub fn mod_revision(key: impl Into<String>, revision: Revision) -> Compare {
        Compare { key: key.into(), op: CmpOp::Equal, target: Target::ModRevision(revision) }
    }
    /// The key was created at `revision` (leadership: the leader key is still the one won).
    pub fn create_revision(key: impl Into<String>, revision: Revision) -> Compare {
        Compare { key: key.into(), op: CmpOp::Equal, target: Target::CreateRevision(revision) }
    }
}

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write `value` at `key`, attached to `lease` if given.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease the key is attached to (none: it lives until deleted).
        lease: Option<LeaseId>,
    },
    /// Delete `key` (nothing if absent).
    Delete {
        /// The key.
        key: String,
    },
    /// Read `key` (its result is in [`TxnResult::reads`], in order of the branch's gets).
    Get {
        /// The key.
        key: String,
    },
}

impl Op {
    /// A put without a lease.
    pub fn put(key: impl Into<String>, value: Vec<u8>) -> Op {
        Op::Put { key: key.into(), value, lease: None }
    }
    /// A put attached to `lease`.
    pub fn put_leased(key: impl Into<String>, value: Vec<u8>, lease: LeaseId) -> Op {
        Op::Put { key: key.into(), value, lease: Some(lease) }
    }
    /// A delete.
    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete { key: key.into() }
    }
    /// A read.
    pub fn get(key: impl Into<String>) -> Op {
        Op::Get { key: key.into() }
    }
}

/// A transaction: if every compare holds, `success` is applied, else `failure`; atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Every condition (all must hold).
    pub compares: Vec<Compare>,
    /// Applied when they hold.
    pub success: Vec<Op>,
    /// Applied when one does not.
    pub failure: Vec<Op>,
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held (the success branch ran).
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: Revision,
    /// One entry per `Get` of the branch that ran, in order (`None`: absent).
    pub reads: Vec<Option<KeyValue>>,
}

/// Keys under a prefix, as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision they were read at: watch from `revision + 1` to miss nothing.
    pub revision: Revision,
}

/// Whether a watched key was written or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted (by a delete, or by its lease's expiry or revocation).
    Delete,
}

/// One change to a watched key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete: the key, and `mod_revision` the deletion's).
    pub kv: KeyValue,
    /// The key before the change, when the store still had it.
    pub prev: Option<KeyValue>,
}

/// The changes of one or more revisions, in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    /// The store's revision when the batch was sent (at least that of its last event).
    pub revision: Revision,
    /// The changes.
    pub events: Vec<WatchEvent>,
}

/// A watch: batches in revision order, until an error ends it. The watch is cancelled when
/// this is dropped. It does not reconnect by itself: keep the last revision seen, watch
/// again from the next one, and list again on [`ClusterError::Compacted`].
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchBatch, ClusterError>>,
}

impl WatchStream {
    /// A stream fed by `rx` (the implementations' side).
    pub fn new(rx: mpsc::Receiver<Result<WatchBatch, ClusterError>>) -> WatchStream {
        WatchStream { rx }
    }

    /// The next batch; `None` once the store ended the watch without an error (treat as
    /// [`ClusterError::Unavailable`]: watch again).
    pub async fn next(&mut self) -> Option<Result<WatchBatch, ClusterError>> {
        self.rx.recv().await
    }
}

/// Leadership won in an election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The election's name.
    pub election: String,
    /// The leader key (held under the campaign's lease).
    pub key: String,
    /// Its create revision: a transaction that compares it ([`Compare::create_revision`])
    /// fails once leadership is lost.
    pub revision: Revision,
    /// The lease the key is held under.
    pub lease: LeaseId,
}

/// What can go wrong talking to the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The store did not answer, or answered that it has no leader: the outcome of a write
    /// is unknown (a write guarded by a compare is safe to retry).
    #[error("cluster store unavailable: {0}")]
    Unavailable(String),
    /// The lease does not exist (expired or revoked).
    #[error("lease {0:?} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// The revision asked for was compacted away: list again.
    #[error("revision compacted (the store keeps revisions from {compact_revision})")]
    Compacted {
        /// The oldest revision the store still has.
        compact_revision: Revision,
    },
    /// The store refused the request itself (too large, bad key): not worth a retry.
    #[error("cluster store refused the request: {0}")]
    Refused(String),
}

/// What berth needs of etcd. Every method is one request (or one stream); none retries by
/// itself: callers decide, since only a write guarded by a compare is safe to repeat.
#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// Grants a lease of `ttl`.
    async fn grant(&self, ttl: Duration) -> Result<Lease, ClusterError>;
    /// Renews `lease` once; returns the TTL granted from now. `LeaseNotFound` once expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, ClusterError>;
    /// Revokes `lease` (its keys are deleted); a lease already gone is not an error.
    async fn revoke(&self, lease: LeaseId) -> Result<(), ClusterError>;
    /// Reads one key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, ClusterError>;
    /// Every key under `prefix`, at `revision` (None: the current one).
    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<Listing, ClusterError>;
    /// Runs a transaction.
    async fn txn(&self, txn: Txn) -> Result<TxnResult, ClusterError>;
    /// Watches every key under `prefix` from revision `start` (inclusive), with the
    /// previous key-values. A `start` already compacted ends the stream at once with
    /// [`ClusterError::Compacted`].
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream, ClusterError>;
    /// Campaigns in `election` under `lease` with `value`; resolves once this campaigner
    /// leads (it may wait as long as another leader holds its lease).
    async fn campaign(&self, election: &str, value: Vec<u8>, lease: LeaseId) -> Result<Leadership, ClusterError>;
    /// Gives up leadership (its key is deleted); a leadership already lost is not an error.
    async fn resign(&self, leadership: &Leadership) -> Result<(), ClusterError>;
    /// The current leader's key and value, if any.
    async fn leader(&self, election: &str) -> Result<Option<KeyValue>, ClusterError>;
}
