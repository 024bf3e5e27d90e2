//! Status back to the cluster: the engine's change stream, folded per task, written to
//! `status/<id>/<node>` ([`StatusRecord`]) in batched transactions guarded by the node's
//! epoch.
//!
//! - **Batches.** The writer reads every change that is ready, folds each into its task's
//!   latest report (statuses only rise; exit codes, reasons and ports kept), and writes the
//!   tasks that changed in one transaction (up to [`StatusConfig::max_per_txn`] tasks; more
//!   are written in several). At most one transaction is in flight: what changes meanwhile
//!   is coalesced into the next one.
//! - **Guard.** Each transaction compares `nodes/<n>/alive`'s lease with the current epoch,
//!   so a node whose lease was lost writes nothing until it has a new epoch (the records
//!   then carry the new one). Writes are retried with backoff while the store is
//!   unavailable (a guarded put of the latest report is safe to repeat).
//! - **`seq` is a watermark.** A record's `seq` says: every change of this node's engine up
//!   to `seq` is reflected in this node's status keys. When a batch takes several
//!   transactions, all but the last carry the previous watermark. After a restart, the
//!   writer reads its own records back and resumes the change stream after the highest `seq`
//!   of its current epoch. Without such records (a new epoch, a new data directory), or when
//!   the change log no longer has that position (a gap), it writes every cluster task the
//!   engine holds from the engine's own state, then follows the stream.
//! - Only tasks with this cluster's arns ([`crate::runner::task_arn`]) are reported; the
//!   runner's [`crate::runner::HANDED_BACK`] records are left alone.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn berth_cluster::ClusterStore>,
//! #   engine: berth_engine::EngineHandle, node: &berth_cluster::node::Node) -> Result<(), Box<dyn std::error::Error>> {
//! use berth_cluster::keys::Keys;
//! use berth_cluster::status::{StatusConfig, StatusWriter};
//!
//! let writer = StatusWriter::start(store, Keys::new("prod")?, node.liveness(), engine, StatusConfig::new(node.name()));
//! let written = writer.written(); // the watermark, as it moves
//! # drop(written);
//! writer.stop().await;
//! # Ok(()) }
//! ```

use crate::backoff::Backoff;
use crate::keys::Keys;
use crate::node::Liveness;
use crate::records::{self, ContainerStatusRecord, StatusRecord};
use crate::runner::{HANDED_BACK, cluster_name, task_id};
use crate::store::{ClusterError, ClusterStore, CmpOp, Compare, LeaseId, Op, Target, Txn};
use berth_engine::{ChangeReader, EngineHandle, LogItem};
use berth_model::container::PortBinding;
use berth_model::{ContainerStatus, StateChange, Task, TaskStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the status writer writes.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// This node's name.
    pub node: String,
    /// Most tasks written by one transaction (etcd allows 128 operations by default).
    pub max_per_txn: usize,
}

impl StatusConfig {
    /// The writer of node `node`, 100 tasks a transaction.
    pub fn new(node: impl Into<String>) -> StatusConfig {
        StatusConfig { node: node.into(), max_per_txn: 100 }
    }
}

/// The running status writer; stopped by [`StatusWriter::stop`] or drop, and ends by
/// itself once the engine has stopped and its last changes are written.
#[derive(Debug)]
pub struct StatusWriter {
    task: Option<JoinHandle<()>>,
    written: watch::Receiver<u64>,
}

impl StatusWriter {
    /// Starts writing the statuses of `engine`'s cluster tasks; `liveness` is the node's
    /// ([`crate::node::Node::liveness`]), whose epoch guards every write.
    pub fn start(
        store: Arc<dyn ClusterStore>,
        keys: Keys,
        liveness: watch::Receiver<Liveness>,
        engine: EngineHandle,
        config: StatusConfig,
    ) -> StatusWriter {
        let (tx, written) = watch::channel(0);
        let writer = Writer {
            cluster: cluster_name(&keys),
            store,
            keys,
            liveness,
            engine,
            config,
            reports: BTreeMap::new(),
            dirty: BTreeSet::new(),
            folded: 0,
            written: tx,
        };
        StatusWriter { task: Some(tokio::spawn(writer.run())), written }
    }

    /// The watermark: every change of the engine up to it is in the store.
    pub fn written(&self) -> watch::Receiver<u64> {
        self.written.clone()
    }

    /// Stops the writer (what is not written yet is written by the next one, which resumes
    /// from the watermark).
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for StatusWriter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A task's latest report, as folded.
#[derive(Debug, Clone, Default, PartialEq)]
struct Report {
    status: TaskStatus,
    reason: Option<String>,
    containers: Vec<ContainerReport>,
}

#[derive(Debug, Clone, PartialEq)]
struct ContainerReport {
    name: String,
    status: ContainerStatus,
    exit_code: Option<i64>,
    reason: Option<String>,
    ports: Vec<String>,
}

/// A status string of a record as the status it names (an unknown one: the lowest).
fn parse_status<T: serde::de::DeserializeOwned + Default>(s: &str) -> T {
    serde_json::from_value(serde_json::Value::String(s.to_string())).unwrap_or_default()
}

fn port_text(b: &PortBinding) -> String {
    format!("{}->{}/{}", b.host_port, b.container_port, b.protocol.as_str())
}

/// The container names no state change shows (the awsvpc pause container, `~pause`).
fn hidden(name: &str) -> bool {
    name.starts_with('~')
}

impl Report {
    fn of_record(record: &StatusRecord) -> Report {
        Report {
            status: parse_status(&record.status),
            reason: record.reason.clone(),
            containers: record
                .containers
                .iter()
                .map(|c| ContainerReport {
                    name: c.name.clone(),
                    status: parse_status(&c.status),
                    exit_code: c.exit_code,
                    reason: c.reason.clone(),
                    ports: c.ports.clone(),
                })
                .collect(),
        }
    }

    /// The report of a task as the engine holds it.
    fn of_task(task: &Task) -> Report {
        Report {
            status: task.known_status,
            reason: task.stop_reason.clone(),
            containers: task
                .containers
                .iter()
                .filter(|c| !c.spec.internal)
                .map(|c| {
                    let stopped = c.known_status == ContainerStatus::Stopped;
                    ContainerReport {
                        name: c.spec.name.clone(),
                        status: c.known_status,
                        exit_code: if stopped { c.known_exit_code } else { None },
                        reason: if stopped { c.change_reason() } else { None },
                        ports: c.known_port_bindings.iter().map(port_text).collect(),
                    }
                })
                .collect(),
        }
    }

    /// Folds one change in; folding a change again changes nothing.
    fn fold(&mut self, change: &StateChange) {
        if change.task_status != TaskStatus::None {
            self.status = self.status.max(change.task_status);
        }
        if (change.task_desired_status == TaskStatus::Stopped || change.task_status == TaskStatus::Stopped)
            && self.reason.is_none()
        {
            self.reason.clone_from(&change.reason);
        }
        if hidden(&change.container_name) {
            return;
        }
        let index = match self.containers.iter().position(|c| c.name == change.container_name) {
            Some(i) => i,
            None => {
                self.containers.push(ContainerReport {
                    name: change.container_name.clone(),
                    status: ContainerStatus::None,
                    exit_code: None,
                    reason: None,
                    ports: Vec::new(),
                });
                self.containers.len() - 1
            }
        };
        let c = &mut self.containers[index];
        c.status = c.status.max(change.status);
        match change.status {
            ContainerStatus::Stopped => {
                c.exit_code = change.exit_code.or(c.exit_code);
                if change.reason.is_some() {
                    c.reason.clone_from(&change.reason);
                }
            }
            ContainerStatus::Running if !change.port_bindings.is_empty() => {
                c.ports = change.port_bindings.iter().map(port_text).collect();
            }
            _ => {}
        }
    }

    fn record(&self, epoch: LeaseId, seq: u64) -> StatusRecord {
        StatusRecord {
            epoch,
            seq,
            status: self.status.as_str().to_string(),
            reason: self.reason.clone(),
            containers: self
                .containers
                .iter()
                .map(|c| ContainerStatusRecord {
                    name: c.name.clone(),
                    status: c.status.as_str().to_string(),
                    exit_code: c.exit_code,
                    reason: c.reason.clone(),
                    ports: c.ports.clone(),
                })
                .collect(),
            updated_at: chrono::Utc::now(),
        }
    }
}

/// The writer's loop and what it owns.
struct Writer {
    cluster: String,
    store: Arc<dyn ClusterStore>,
    keys: Keys,
    liveness: watch::Receiver<Liveness>,
    engine: EngineHandle,
    config: StatusConfig,
    /// Each task's latest report, by cluster task id.
    reports: BTreeMap<String, Report>,
    /// Tasks whose report changed since it was last written.
    dirty: BTreeSet<String>,
    /// The last change folded in.
    folded: u64,
    /// The watermark written.
    written: watch::Sender<u64>,
}

impl Writer {
    async fn run(mut self) {
        let Some(mut reader) = self.resume().await else { return };
        let max = self.config.max_per_txn.max(1);
        loop {
            if self.dirty.is_empty() {
                match reader.next().await {
                    Some(item) => self.fold(item).await,
                    None => return,
                }
            }
            while self.dirty.len() < max {
                match reader.try_next() {
                    Some(item) => self.fold(item).await,
                    None => break,
                }
            }
            if !self.write().await {
                return;
            }
        }
    }

    /// The current epoch, waiting while there is none; `None` once the node is gone.
    async fn epoch(&self) -> Option<LeaseId> {
        let mut liveness = self.liveness.clone();
        liveness.wait_for(|l| l.epoch.is_some()).await.map(|l| l.epoch).ok().flatten()
    }

    /// Reads this node's records back and opens the change stream after the highest `seq`
    /// of the current epoch; without one, reports every cluster task the engine holds.
    async fn resume(&mut self) -> Option<ChangeReader> {
        let epoch = self.epoch().await?;
        let prefix = self.keys.statuses();
        let mut backoff = Backoff::new();
        let listing = loop {
            match self.store.list(&prefix, None).await {
                Ok(listing) => break listing,
                Err(e) => {
                    tracing::warn!(node = %self.config.node, "reading this node's statuses back: {e}");
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        };
        let mut highest = 0;
        for kv in listing.kvs {
            let Some((id, node)) = kv.key.strip_prefix(&prefix).and_then(|rest| rest.split_once('/')) else {
                continue;
            };
            if node != self.config.node {
                continue;
            }
            match records::decode::<StatusRecord>(&kv.key, &kv.value) {
                Ok(record) if record.status == HANDED_BACK => {}
                Ok(record) => {
                    if record.epoch == epoch {
                        highest = highest.max(record.seq);
                    }
                    self.reports.insert(id.to_string(), Report::of_record(&record));
                }
                Err(e) => tracing::warn!(node = %self.config.node, "{e}: rewritten from the engine"),
            }
        }
        let head = self.engine.task_events();
        if highest > 0 && highest < head.position() {
            self.folded = highest;
            self.written.send_replace(highest);
            return Some(self.engine.task_events_from(highest + 1));
        }
        self.folded = head.position().saturating_sub(1);
        self.snapshot().await?;
        Some(head)
    }

    /// Every cluster task the engine holds, reported from its state; `None` once the engine
    /// is gone.
    async fn snapshot(&mut self) -> Option<()> {
        let tasks = self.engine.list_tasks().await.ok()?;
        for task in &tasks {
            if let Some(id) = task_id(&self.cluster, &task.arn) {
                self.reports.insert(id.to_string(), Report::of_task(task));
                self.dirty.insert(id.to_string());
            }
        }
        Some(())
    }

    async fn fold(&mut self, item: LogItem) {
        match item {
            LogItem::Change(change) => {
                self.folded = self.folded.max(change.seq);
                if let Some(id) = task_id(&self.cluster, &change.task_arn) {
                    self.reports.entry(id.to_string()).or_default().fold(&change);
                    self.dirty.insert(id.to_string());
                }
            }
            LogItem::Gap { from, to } => {
                tracing::warn!(node = %self.config.node, "changes {from}..{to} are gone: reporting from the engine's state");
                self.folded = self.folded.max(to.saturating_sub(1));
                // An engine gone ends the reader next.
                let _ = self.snapshot().await;
            }
        }
    }

    /// Writes every dirty report; false once the node is gone.
    async fn write(&mut self) -> bool {
        let ids: Vec<String> = std::mem::take(&mut self.dirty).into_iter().collect();
        let chunks: Vec<&[String]> = ids.chunks(self.config.max_per_txn.max(1)).collect();
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.into_iter().enumerate() {
            let seq = if i == last { self.folded } else { *self.written.borrow() };
            if !self.write_chunk(chunk, seq).await {
                return false;
            }
        }
        self.written.send_replace(self.folded);
        true
    }

    /// One guarded transaction, retried until it is applied.
    async fn write_chunk(&self, ids: &[String], seq: u64) -> bool {
        let alive = self.keys.node_alive(&self.config.node);
        let mut backoff = Backoff::new();
        loop {
            let Some(epoch) = self.epoch().await else { return false };
            let success = ids
                .iter()
                .filter_map(|id| {
                    let report = self.reports.get(id)?;
                    Some(Op::put(self.keys.status(id, &self.config.node), records::encode(&report.record(epoch, seq))))
                })
                .collect();
            let txn = Txn {
                compares: vec![Compare { key: alive.clone(), op: CmpOp::Equal, target: Target::Lease(epoch.0) }],
                success,
                failure: vec![],
            };
            match self.store.txn(txn).await {
                Ok(result) if result.succeeded => return true,
                Ok(_) => {
                    tracing::info!(node = %self.config.node, epoch = epoch.0,
                        "statuses not written: the epoch is no longer the node's; waiting for the next");
                    let mut liveness = self.liveness.clone();
                    tokio::select! {
                        _ = liveness.wait_for(|l| l.epoch != Some(epoch)) => {}
                        () = tokio::time::sleep(backoff.next()) => {}
                    }
                }
                Err(ClusterError::Unavailable(why)) => {
                    tracing::warn!(node = %self.config.node, "writing statuses: {why}");
                    tokio::time::sleep(backoff.next()).await;
                }
                Err(e) => {
                    // Refused (too large, a bad key): not worth a retry.
                    tracing::error!(node = %self.config.node, "writing statuses: {e}; left out");
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::container::Protocol;

    fn change(container: &str, status: ContainerStatus) -> StateChange {
        StateChange {
            seq: 1,
            time: chrono::Utc::now(),
            task_arn: "arn:berth:cluster/c/task/t".into(),
            container_name: container.into(),
            status,
            reason: None,
            exit_code: None,
            port_bindings: Vec::new(),
            task_status: TaskStatus::None,
            task_desired_status: TaskStatus::None,
        }
    }

    #[test]
    fn folding_keeps_the_highest_status_exit_code_and_ports_and_is_idempotent() {
        let mut running = change("web", ContainerStatus::Running);
        running.task_status = TaskStatus::Running;
        running.port_bindings = vec![PortBinding {
            container_port: 80,
            host_port: 8080,
            bind_ip: "0.0.0.0".into(),
            protocol: Protocol::Tcp,
        }];
        let mut stopped = change("web", ContainerStatus::Stopped);
        stopped.exit_code = Some(3);
        stopped.reason = Some("Essential container exited".into());
        stopped.task_status = TaskStatus::Stopped;
        stopped.task_desired_status = TaskStatus::Stopped;
        let mut report = Report::default();
        for c in [&running, &stopped] {
            report.fold(c);
        }
        let once = report.clone();
        // Folded again (a resume re-reads some changes), and an older change late.
        report.fold(&stopped);
        report.fold(&running);
        assert_eq!(report, once);
        assert_eq!(report.status, TaskStatus::Stopped);
        assert_eq!(report.reason.as_deref(), Some("Essential container exited"));
        let web = &report.containers[0];
        assert_eq!((web.status, web.exit_code), (ContainerStatus::Stopped, Some(3)));
        assert_eq!(web.ports, vec!["8080->80/tcp".to_string()]);
    }

    #[test]
    fn a_hidden_container_moves_the_task_but_is_not_listed() {
        let mut pause = change("~pause", ContainerStatus::Stopped);
        pause.task_status = TaskStatus::Stopped;
        let mut report = Report::default();
        report.fold(&pause);
        assert_eq!(report.status, TaskStatus::Stopped);
        assert!(report.containers.is_empty());
    }

    #[test]
    fn a_record_read_back_is_the_report_written() {
        let mut report = Report::default();
        let mut running = change("web", ContainerStatus::Running);
        running.task_status = TaskStatus::Running;
        report.fold(&running);
        let record = report.record(LeaseId(7), 12);
        assert_eq!((record.epoch, record.seq, record.status.as_str()), (LeaseId(7), 12, "RUNNING"));
        assert_eq!(Report::of_record(&record), report);
    }
}
