//! Cluster mode (`docs/cluster.md`): beside the engine, this node's membership in the
//! cluster: its registration and lease ([`Node`], the epoch), the runner that hands this
//! node's assignments to the engine ([`Runner`]), the status writer ([`StatusWriter`]),
//! the scheduler every agent runs and one leads ([`Scheduler`]), and the client the API's
//! `/v1/cluster/...` routes use. Started after the engine, stopped before it; stopping
//! revokes nothing, so a berth restarted within its lease resumes its epoch and restarts
//! no container.

use crate::config::{AgentConfig, ConfigError};
use crate::policy;
use berth_cluster::client::ClusterClient;
use berth_cluster::keys::Keys;
use berth_cluster::node::{Node, NodeConfig, NodeError};
use berth_cluster::records::NodeInfo;
use berth_cluster::runner::{HostCheck, Runner, RunnerConfig};
use berth_cluster::scheduler::{Config as SchedulerConfig, Scheduler, SchedulerHandle};
use berth_cluster::status::{StatusConfig, StatusWriter};
use berth_cluster::store::LeaseId;
use berth_cluster::{ClusterError, ClusterStore};
use berth_engine::EngineHandle;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    /// The settings do not make a cluster member.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// etcd could not be reached.
    #[error("cluster store {endpoints}: {source}")]
    Store {
        /// The members tried.
        endpoints: String,
        /// Why.
        source: ClusterError,
    },
    /// The node could not register (its name is held by a live process, say).
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// This agent as a member of the cluster.
pub struct ClusterMember {
    node: Node,
    runner: Runner,
    status: StatusWriter,
    scheduler: SchedulerHandle,
    epochs: JoinHandle<()>,
    client: ClusterClient,
}

impl std::fmt::Debug for ClusterMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMember").field("node", &self.node.name()).finish_non_exhaustive()
    }
}

impl ClusterMember {
    /// Registers the node of `config` (capacity from `[resources]`, attributes from
    /// `node_attributes`) in `store`, then starts the runner, the status writer and the
    /// scheduler on `engine`. `address` is where the API answers on TCP, if it does.
    pub async fn start(
        config: &AgentConfig,
        store: Arc<dyn ClusterStore>,
        engine: EngineHandle,
        address: Option<String>,
    ) -> Result<ClusterMember, ClusterStartError> {
        let name = config.node.clone().ok_or_else(|| ConfigError::Invalid {
            origin: crate::config::Origin::Setting { key: "node".into() },
            reason: "cluster mode needs a node name (node, BERTH_NODE, --node)".into(),
        })?;
        let keys = Keys::new(&config.cluster).map_err(|reason| ConfigError::Invalid {
            origin: crate::config::Origin::Setting { key: "cluster".into() },
            reason,
        })?;
        let capacity = config.resources.capacity()?;
        let info = NodeInfo {
            cpu: capacity.cpu,
            memory_mib: capacity.memory_mib,
            reserved_ports: capacity.reserved_ports.iter().map(ToString::to_string).collect(),
            attributes: config.node_attributes.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let mut node_config = NodeConfig::new(&name, info, config.node_lease_ttl);
        node_config.address = address;
        node_config.data_dir = Some(config.data_dir.clone());
        let node = Node::register(Arc::clone(&store), keys.clone(), node_config).await?;
        tracing::info!(
            node = %name,
            cluster = %config.cluster,
            epoch = node.epoch().map(|e| e.0).unwrap_or_default(),
            resumed = node.resumed(),
            "registered in the cluster"
        );
        let host = config.host.clone();
        let host_check: HostCheck = Arc::new(move |accepted: &berth_model::input::Accepted| {
            let refused = policy::refusals(&accepted.task, &accepted.paths, &host);
            if refused.is_empty() {
                Ok(())
            } else {
                let text: Vec<String> = refused.iter().map(ToString::to_string).collect();
                Err(format!("refused by this node's host policy: {}", text.join("; ")))
            }
        });
        let mut runner_config = RunnerConfig::new(&name);
        runner_config.host_check = Some(host_check);
        let runner = Runner::start(Arc::clone(&store), keys.clone(), node.liveness(), engine.clone(), runner_config);
        let status = StatusWriter::start(
            Arc::clone(&store),
            keys.clone(),
            node.liveness(),
            engine.clone(),
            StatusConfig::new(&name),
        );
        // The scheduler campaigns under the node's lease: it follows the node's epoch.
        let mut liveness = node.liveness();
        let first = liveness.borrow().epoch.unwrap_or(LeaseId(0));
        let (epoch_tx, epoch_rx) = watch::channel(first);
        let epochs = tokio::spawn(async move {
            while liveness.changed().await.is_ok() {
                let epoch = liveness.borrow().epoch;
                if let Some(epoch) = epoch {
                    epoch_tx.send_if_modified(|current| std::mem::replace(current, epoch) != epoch);
                }
            }
        });
        let scheduler =
            Scheduler::start(Arc::clone(&store), keys.clone(), name.clone(), epoch_rx, SchedulerConfig::default());
        let client = ClusterClient::new(store, keys, name);
        Ok(ClusterMember { node, runner, status, scheduler, epochs, client })
    }

    /// The client the API uses.
    pub fn client(&self) -> &ClusterClient {
        &self.client
    }

    /// Whether this agent's scheduler leads now.
    pub fn leading(&self) -> bool {
        self.scheduler.state().leading
    }

    /// Stops the scheduler (resigning if it leads, so another takes over at once), the
    /// runner, the status writer and the keepalive. The lease is left to expire: a berth
    /// back within its TTL resumes with the same epoch.
    pub async fn stop(self) {
        let ClusterMember { node, runner, status, scheduler, epochs, .. } = self;
        scheduler.stop().await;
        runner.stop().await;
        status.stop().await;
        epochs.abort();
        node.stop().await;
    }
}
