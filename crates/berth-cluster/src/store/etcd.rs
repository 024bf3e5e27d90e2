//! [`EtcdStore`]: the cluster store on etcd (v3 API, only what etcd 3.4 has) through the
//! `etcd-client` crate.
//!
//! Two clients on the same endpoints (`CLUSTER.md`, facts checked on this machine): the
//! crate's request timeout applies to every call on a client, streams and long campaigns
//! included, so unary calls go through one with the timeout, and watches and campaigns
//! through one without it. Both send `require_leader`, so a member cut off from the quorum
//! answers (and ends watches) with "no leader" instead of hanging; both keep their HTTP/2
//! connections checked with pings, so a dead member is noticed.
//!
//! Errors: no answer, a timeout, "no leader" → [`ClusterError::Unavailable`]; "lease not
//! found" → [`ClusterError::LeaseNotFound`]; a compacted revision →
//! [`ClusterError::Compacted`]; anything the server refuses on its merits → [`ClusterError::Refused`].

use super::{
    ClusterError, ClusterStore, CmpOp, Compare, EventKind, KeyValue, Leadership, Lease, LeaseId, Listing, Op, Revision,
    Target, Txn, TxnResult, WatchBatch, WatchEvent, WatchStream,
};
use async_trait::async_trait;
use etcd_client as etcd;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Batches a watch may have in flight before it stops reading from etcd.
const WATCH_BUFFER: usize = 16;
/// A request that never left (its member's connection refused) is sent again this many
/// times per endpoint: the balanced channel keeps picking members that are down now and then.
const UNSENT_RETRIES_PER_ENDPOINT: usize = 3;
const UNSENT_PAUSE: Duration = Duration::from_millis(20);
/// HTTP/2 pings on idle connections: how often, and how long an answer may take.
const PING_INTERVAL: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(3);

// gRPC status codes (numbers, so tonic need not be a dependency of its own).
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const DEADLINE_EXCEEDED: i32 = 4;
const RESOURCE_EXHAUSTED: i32 = 8;
const ABORTED: i32 = 10;
const UNAVAILABLE: i32 = 14;

/// The cluster store on etcd. Cloning is cheap (the clients share their connections).
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Clients>,
}

struct Clients {
    /// With the request timeout: every unary call.
    unary: etcd::Client,
    /// Without one: watches and campaigns, which last.
    streams: etcd::Client,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("endpoints", &self.inner.endpoints).finish()
    }
}

/// What an error from etcd means for berth. `lease`: the lease the call was about.
fn map_err(e: etcd::Error, lease: Option<LeaseId>) -> ClusterError {
    match e {
        etcd::Error::GRpcStatus(status) => {
            let code: i32 = status.code().into();
            let message = status.message();
            if message.contains("compacted") {
                // etcd does not say which revision in this answer.
                ClusterError::Compacted { compact_revision: 0 }
            } else if message.contains("lease not found") {
                match lease {
                    Some(lease) => ClusterError::LeaseNotFound(lease),
                    None => ClusterError::Refused(format!("etcd: {message}")),
                }
            } else if matches!(
                code,
                CANCELLED | UNKNOWN | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED | UNAVAILABLE
            ) || message.contains("no leader")
                || message.contains("leader changed")
                || message.contains("timed out")
            {
                ClusterError::Unavailable(format!("etcd: {message} (grpc code {code})"))
            } else {
                ClusterError::Refused(format!("etcd: {message} (grpc code {code})"))
            }
        }
        etcd::Error::LeaseKeepAliveError(message) if message.contains("not found") => match lease {
            Some(lease) => ClusterError::LeaseNotFound(lease),
            None => ClusterError::Refused(format!("etcd: {message}")),
        },
        etcd::Error::InvalidArgs(_) | etcd::Error::InvalidUri(_) | etcd::Error::Utf8Error(_) => {
            ClusterError::Refused(format!("etcd: {e}"))
        }
        // Transport, I/O, a stream that broke: the outcome is unknown.
        other => ClusterError::Unavailable(format!("etcd: {other}")),
    }
}

/// Whether the request never left: no connection to the member the channel picked (one that
/// is down). Sending it again is safe whatever it was.
fn not_sent(e: &etcd::Error) -> bool {
    match e {
        etcd::Error::GRpcStatus(status) => status.message().contains("tcp connect error"),
        etcd::Error::TransportError(t) => t.to_string().contains("connect"),
        _ => false,
    }
}

fn key_value(kv: &etcd::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    }
}

fn header_revision(header: Option<&etcd::ResponseHeader>) -> Result<Revision, ClusterError> {
    header.map(|h| h.revision()).ok_or_else(|| ClusterError::Unavailable("etcd: an answer without a header".into()))
}

fn compare(c: &Compare) -> etcd::Compare {
    let op = match c.op {
        CmpOp::Equal => etcd::CompareOp::Equal,
        CmpOp::NotEqual => etcd::CompareOp::NotEqual,
        CmpOp::Less => etcd::CompareOp::Less,
        CmpOp::Greater => etcd::CompareOp::Greater,
    };
    let key = c.key.as_bytes();
    match &c.target {
        Target::CreateRevision(r) => etcd::Compare::create_revision(key, op, *r),
        Target::ModRevision(r) => etcd::Compare::mod_revision(key, op, *r),
        Target::Value(v) => etcd::Compare::value(key, op, v.clone()),
        Target::Lease(l) => etcd::Compare::lease(key, op, *l),
    }
}

fn txn_op(op: &Op) -> etcd::TxnOp {
    match op {
        Op::Put { key, value, lease } => {
            let options = lease.map(|l| etcd::PutOptions::new().with_lease(l.0));
            etcd::TxnOp::put(key.as_bytes(), value.clone(), options)
        }
        Op::Delete { key } => etcd::TxnOp::delete(key.as_bytes(), None),
        Op::Get { key } => etcd::TxnOp::get(key.as_bytes(), None),
    }
}

/// The first lease a transaction puts under, for an error's sake.
fn lease_of(ops: &[Op]) -> Option<LeaseId> {
    ops.iter().find_map(|op| match op {
        Op::Put { lease, .. } => *lease,
        _ => None,
    })
}

impl EtcdStore {
    /// Clients on `endpoints` (`host:port` or `http://host:port`); unary calls give up after
    /// `request_timeout`. Connecting is lazy: an unreachable etcd shows at the first call.
    pub async fn connect(endpoints: &[String], request_timeout: Duration) -> Result<EtcdStore, ClusterError> {
        if endpoints.is_empty() {
            return Err(ClusterError::Refused("etcd: no endpoint given".into()));
        }
        let base = || {
            etcd::ConnectOptions::new()
                .with_require_leader(true)
                .with_connect_timeout(request_timeout)
                .with_keep_alive(PING_INTERVAL, PING_TIMEOUT)
                .with_keep_alive_while_idle(true)
        };
        let unary = etcd::Client::connect(endpoints, Some(base().with_timeout(request_timeout)))
            .await
            .map_err(|e| map_err(e, None))?;
        let streams = etcd::Client::connect(endpoints, Some(base())).await.map_err(|e| map_err(e, None))?;
        Ok(EtcdStore { inner: Arc::new(Clients { unary, streams, endpoints: endpoints.to_vec() }) })
    }

    /// Runs `call` on `client`, again while it was not sent (see [`not_sent`]).
    async fn call<T, F, Fut>(&self, client: &etcd::Client, mut call: F) -> Result<T, etcd::Error>
    where
        F: FnMut(etcd::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd::Error>>,
    {
        let mut left = UNSENT_RETRIES_PER_ENDPOINT * self.inner.endpoints.len();
        loop {
            match call(client.clone()).await {
                Err(e) if left > 0 && not_sent(&e) => {
                    left -= 1;
                    tokio::time::sleep(UNSENT_PAUSE).await;
                }
                result => return result,
            }
        }
    }

    /// The endpoints it was given.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// Compacts etcd's history before `revision` (waiting until it is applied): lists and
    /// watches at an older revision then fail with `Compacted`. Tests and operators use it;
    /// production etcd compacts itself (`--auto-compaction-retention`).
    pub async fn compact(&self, revision: Revision) -> Result<(), ClusterError> {
        let options = etcd::CompactionOptions::new().with_physical();
        let compact = |mut c: etcd::Client| {
            let options = options.clone();
            async move { c.compact(revision, Some(options)).await }
        };
        self.call(&self.inner.unary, compact).await.map_err(|e| map_err(e, None))?;
        Ok(())
    }

    /// The current revision (one small read).
    pub async fn revision(&self) -> Result<Revision, ClusterError> {
        let options = etcd::GetOptions::new().with_keys_only().with_limit(1);
        let get = |mut c: etcd::Client| {
            let options = options.clone();
            async move { c.get("\0", Some(options)).await }
        };
        let resp = self.call(&self.inner.unary, get).await.map_err(|e| map_err(e, None))?;
        header_revision(resp.header())
    }
}

#[async_trait]
impl ClusterStore for EtcdStore {
    async fn grant(&self, ttl: Duration) -> Result<Lease, ClusterError> {
        let seconds = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let grant = |mut c: etcd::Client| async move { c.lease_grant(seconds, None).await };
        let resp = self.call(&self.inner.unary, grant).await.map_err(|e| map_err(e, None))?;
        if !resp.error().is_empty() {
            return Err(ClusterError::Refused(format!("etcd: lease grant: {}", resp.error())));
        }
        Ok(Lease { id: LeaseId(resp.id()), ttl: Duration::from_secs(resp.ttl().max(0) as u64) })
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, ClusterError> {
        // Opening the stream sends one keepalive and reads its answer (the crate turns a TTL
        // of 0, a lease not found, into an error) but does not hand out the TTL: a second
        // keepalive on the same stream reads it. Both renew; the first was sent first, so a
        // caller's send time stays a lower bound of the server's.
        let open = |mut c: etcd::Client| async move { c.lease_keep_alive(lease.0).await };
        let (mut keeper, mut answers) =
            self.call(&self.inner.unary, open).await.map_err(|e| map_err(e, Some(lease)))?;
        keeper.keep_alive().await.map_err(|e| map_err(e, Some(lease)))?;
        match answers.message().await.map_err(|e| map_err(e, Some(lease)))? {
            Some(answer) if answer.ttl() > 0 => Ok(Duration::from_secs(answer.ttl() as u64)),
            Some(_) => Err(ClusterError::LeaseNotFound(lease)),
            None => Err(ClusterError::Unavailable(format!("etcd: keepalive stream of lease {lease:?} ended"))),
        }
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), ClusterError> {
        let revoke = |mut c: etcd::Client| async move { c.lease_revoke(lease.0).await };
        match self.call(&self.inner.unary, revoke).await.map_err(|e| map_err(e, Some(lease))) {
            Ok(_) | Err(ClusterError::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, ClusterError> {
        let get = |mut c: etcd::Client| async move { c.get(key, None).await };
        let resp = self.call(&self.inner.unary, get).await.map_err(|e| map_err(e, None))?;
        Ok(resp.kvs().first().map(key_value))
    }

    async fn list(&self, prefix: &str, revision: Option<Revision>) -> Result<Listing, ClusterError> {
        let mut options = etcd::GetOptions::new().with_prefix();
        if let Some(revision) = revision {
            options = options.with_revision(revision);
        }
        let get = |mut c: etcd::Client| {
            let options = options.clone();
            async move { c.get(prefix, Some(options)).await }
        };
        let resp = self.call(&self.inner.unary, get).await.map_err(|e| map_err(e, None))?;
        // The header has the current revision; a read at a past one is as of that one.
        let at = match revision {
            Some(r) if r > 0 => r,
            _ => header_revision(resp.header())?,
        };
        Ok(Listing { kvs: resp.kvs().iter().map(key_value).collect(), revision: at })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult, ClusterError> {
        let lease = lease_of(&txn.success).or_else(|| lease_of(&txn.failure));
        let request = etcd::Txn::new()
            .when(txn.compares.iter().map(compare).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(txn_op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(txn_op).collect::<Vec<_>>());
        let send = |mut c: etcd::Client| {
            let request = request.clone();
            async move { c.txn(request).await }
        };
        let resp = self.call(&self.inner.unary, send).await.map_err(|e| map_err(e, lease))?;
        let reads = resp
            .op_responses()
            .into_iter()
            .filter_map(|r| match r {
                etcd::TxnOpResponse::Get(get) => Some(get.kvs().first().map(key_value)),
                _ => None,
            })
            .collect();
        Ok(TxnResult { succeeded: resp.succeeded(), revision: header_revision(resp.header())?, reads })
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream, ClusterError> {
        let mut options = etcd::WatchOptions::new().with_prefix().with_prev_key().with_progress_notify();
        if start > 0 {
            options = options.with_start_revision(start);
        }
        let open = |mut c: etcd::Client| {
            let options = options.clone();
            async move { c.watch(prefix, Some(options)).await }
        };
        let stream = self.call(&self.inner.streams, open).await.map_err(|e| map_err(e, None))?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(forward_watch(stream, tx));
        Ok(WatchStream::new(rx))
    }

    async fn campaign(&self, election: &str, value: Vec<u8>, lease: LeaseId) -> Result<Leadership, ClusterError> {
        let campaign = |mut c: etcd::Client| {
            let value = value.clone();
            async move { c.campaign(election, value, lease.0).await }
        };
        let mut resp = self.call(&self.inner.streams, campaign).await.map_err(|e| map_err(e, Some(lease)))?;
        let leader = resp
            .take_leader()
            .ok_or_else(|| ClusterError::Unavailable("etcd: campaign answered without a leader key".into()))?;
        Ok(Leadership {
            election: election.to_string(),
            key: String::from_utf8_lossy(leader.key()).into_owned(),
            revision: leader.rev(),
            lease: LeaseId(leader.lease()),
        })
    }

    async fn resign(&self, leadership: &Leadership) -> Result<(), ClusterError> {
        // etcd's Resign: delete the key if its create revision is still the one won.
        let txn = Txn {
            compares: vec![Compare::create_revision(&leadership.key, leadership.revision)],
            success: vec![Op::delete(&leadership.key)],
            failure: vec![],
        };
        self.txn(txn).await.map(|_| ())
    }

    async fn leader(&self, election: &str) -> Result<Option<KeyValue>, ClusterError> {
        // etcd's Leader: the key under `<election>/` with the lowest create revision.
        let options = etcd::GetOptions::new()
            .with_prefix()
            .with_sort(etcd::SortTarget::Create, etcd::SortOrder::Ascend)
            .with_limit(1);
        let get = |mut c: etcd::Client| {
            let options = options.clone();
            async move { c.get(format!("{election}/"), Some(options)).await }
        };
        let resp = self.call(&self.inner.unary, get).await.map_err(|e| map_err(e, None))?;
        Ok(resp.kvs().first().map(key_value))
    }
}

/// Forwards one etcd watch to a [`WatchStream`] until it ends, is cancelled, or the reader
/// goes away (dropping the etcd stream cancels the watch).
async fn forward_watch(mut stream: etcd::WatchStream, tx: mpsc::Sender<Result<WatchBatch, ClusterError>>) {
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            () = tx.closed() => return,
        };
        let resp = match message {
            Ok(Some(resp)) => resp,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(map_err(e, None))).await;
                return;
            }
        };
        if resp.canceled() {
            let error = if resp.compact_revision() > 0 {
                ClusterError::Compacted { compact_revision: resp.compact_revision() }
            } else {
                ClusterError::Unavailable(format!("etcd: watch cancelled: {}", resp.cancel_reason()))
            };
            let _ = tx.send(Err(error)).await;
            return;
        }
        if resp.events().is_empty() {
            // Created, or a progress notification.
            continue;
        }
        let revision = match header_revision(resp.header()) {
            Ok(revision) => revision,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let events = resp
            .events()
            .iter()
            .filter_map(|event| {
                let kv = key_value(event.kv()?);
                let kind = match event.event_type() {
                    etcd::EventType::Put => EventKind::Put,
                    etcd::EventType::Delete => EventKind::Delete,
                };
                Some(WatchEvent { kind, kv, prev: event.prev_kv().map(key_value) })
            })
            .collect();
        if tx.send(Ok(WatchBatch { revision, events })).await.is_err() {
            return;
        }
    }
}
