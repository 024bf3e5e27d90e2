//! The agent: one engine, its API listeners and the image cleanup, started together and
//! stopped together. Stopping leaves task containers running (a restarted agent picks them
//! up; stopping tasks is an explicit act) and every committed change durable.

use crate::api::access::{Followers, Policy};
use crate::api::{Access, ApiState, router};
use crate::cluster::{ClusterMember, ClusterStartError};
use crate::config::{AgentConfig, ConfigError};
use crate::docker::MeteredDocker;
use crate::images::{self, ImageLedger, LedgerError};
use crate::metadata::{self, MetadataState, stats::NetworkRates};
use crate::metrics::Metrics;
use crate::serve::{Limits, serve};
use crate::server::{self, ListenError};
use berth_docker::DockerClient;
use berth_engine::{Engine, EngineError, EngineHandle, MetadataEndpoint};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long shutdown waits for open API connections to finish.
const DRAIN: Duration = Duration::from_secs(10);

/// The most connections the unix socket serves at once: its own cap, apart from TCP's.
pub const UNIX_MAX_CONNECTIONS: usize = 1024;

/// Why the agent could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine failed (its data directory, its store, Docker).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A listener could not be set up.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The task metadata endpoint could not listen.
    #[error(transparent)]
    Metadata(#[from] metadata::BindError),
    /// The data directory is not safe to use.
    #[error(transparent)]
    UnsafeDataDir(#[from] berth_store::files::UnsafeDataDir),
    /// The image ledger cannot be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Cluster mode could not start (etcd unreachable, the node name held elsewhere).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterStartError),
    /// A file of the data directory could not be set up.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A running agent.
pub struct Agent {
    engine: EngineHandle,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    cleanup: JoinHandle<()>,
    socket: PathBuf,
    tcp: Option<SocketAddr>,
    token: Option<String>,
    metadata_endpoint: Option<MetadataEndpoint>,
    cluster: Option<ClusterMember>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("socket", &self.socket).field("tcp", &self.tcp).finish_non_exhaustive()
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::File { path: path.to_path_buf(), source }
}

impl Agent {
    /// Start: open the data directory and its state, resume every task, then listen. Docker
    /// need not answer yet: Docker calls wait until it does, then the state is reconciled.
    pub async fn start(config: &AgentConfig, docker: Arc<dyn DockerClient>) -> Result<Agent, AgentError> {
        Agent::start_with_store(config, docker, None).await
    }

    /// [`Agent::start`], in cluster mode on `store` when given (tests: the in-memory
    /// store); without one, cluster mode connects to the etcd members of
    /// `config.cluster_store`, and without those there is no cluster.
    pub async fn start_with_store(
        config: &AgentConfig,
        docker: Arc<dyn DockerClient>,
        store: Option<Arc<dyn berth_cluster::ClusterStore>>,
    ) -> Result<Agent, AgentError> {
        config.check_tcp()?;
        let data_dir = &config.data_dir;
        // Before anything is made in it: not a link, this user's, closed to others' writes.
        berth_store::files::check_data_dir(data_dir)?;
        berth_store::files::prepare_data_dir(data_dir).map_err(file_error(data_dir))?;
        // Only this user may enter: nothing can reach the socket between its bind and chmod.
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(file_error(data_dir))?;
        let socket = config.socket_path();
        if socket.as_os_str().len() > server::MAX_SOCKET_PATH {
            // Refuse before taking the data directory, with the message that says what to do.
            return Err(ListenError::PathTooLong { len: socket.as_os_str().len(), path: socket }.into());
        }
        let metrics = Metrics::new();
        let mut engine_config = config.engine_config()?;
        let ledger = ImageLedger::open(&data_dir.join("images.json"))?;
        let docker: Arc<dyn DockerClient> = Arc::new(MeteredDocker::new(docker, metrics.clone(), ledger.clone()));
        // Bound before the engine starts: its creates carry the endpoint's addresses.
        let metadata_bound = match config.metadata_port {
            Some(port) => Some(metadata::bind(&*docker, port).await?),
            None => None,
        };
        if let Some(bound) = &metadata_bound {
            engine_config.metadata_endpoint = bound.endpoint.clone();
        }
        // The API answers at once, from the loaded state, even while Docker does not.
        let engine = Engine::builder(engine_config, Arc::clone(&docker))
            .observer(metrics.clone())
            .wait_for_docker(false)
            .start()
            .await?;
        let instance = engine.instance_id().to_string();
        let cluster = match cluster_store(config, store).await {
            Ok(Some(store)) => {
                let address = config.tcp.map(|a| a.to_string());
                match ClusterMember::start(config, store, engine.clone(), address).await {
                    Ok(member) => Some(member),
                    Err(e) => {
                        engine.shutdown().await?;
                        return Err(e.into());
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                engine.shutdown().await?;
                return Err(e.into());
            }
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = Arc::new(ApiState {
            engine: engine.clone(),
            docker: Arc::clone(&docker),
            metrics: Arc::clone(&metrics),
            ledger: Arc::clone(&ledger),
            cluster: config.cluster.clone(),
            instance,
            host_policy: config.host.clone(),
            cluster_client: cluster.as_ref().map(|c| c.client().clone()),
            shutdown: shutdown_rx.clone(),
        });
        let mut servers = Vec::new();
        let policy = |access| Policy {
            access,
            open_introspection: config.tcp_open_introspection,
            allowed_hosts: config.tcp_allowed_hosts.clone().into(),
            followers: Followers::new(config.max_log_followers),
            request_timeout: config.request_timeout,
        };
        let unix = server::bind_unix(&socket)?;
        let app = router(Arc::clone(&state), policy(Access::Local), config.body_limit);
        let limits = Limits { max_connections: UNIX_MAX_CONNECTIONS, header_timeout: None, idle_timeout: None };
        servers.push(tokio::spawn(serve(unix, app, limits, metrics.connections("unix"), shutdown_rx.clone())));
        tracing::info!(socket = %socket.display(), "API listening on the unix socket");
        let (mut tcp, mut token) = (None, None);
        if let Some(addr) = config.tcp {
            let token_file = config.token_path();
            let secret = server::token(&token_file).map_err(file_error(&token_file))?;
            let listener = server::bind_tcp(addr).await?;
            let bound = listener.local_addr().map_err(|source| ListenError::Bind { what: addr.to_string(), source })?;
            let app = router(Arc::clone(&state), policy(Access::Token(secret.as_str().into())), config.body_limit);
            let limits = Limits {
                max_connections: config.tcp_max_connections,
                header_timeout: Some(config.tcp_header_timeout),
                idle_timeout: Some(config.tcp_idle_timeout),
            };
            servers.push(tokio::spawn(serve(listener, app, limits, metrics.connections("tcp"), shutdown_rx.clone())));
            tracing::info!(address = %bound, token_file = %token_file.display(), "API listening on TCP");
            if !bound.ip().is_loopback() {
                tracing::warn!(
                    address = %bound,
                    "the API listens on TCP beyond this host (tcp_allow_remote): the bearer token and task contents \
                     (environments, logs, events) travel in clear text; put TLS in front or keep the network private"
                );
            }
            tcp = Some(bound);
            token = Some(secret);
        }
        let mut metadata_endpoint = None;
        if let Some(bound) = metadata_bound {
            let state = Arc::new(MetadataState {
                engine: engine.clone(),
                docker: Arc::clone(&docker),
                cluster: config.cluster.clone(),
                rates: NetworkRates::default(),
            });
            let open = metrics.connections("metadata");
            servers.extend(metadata::serve_on(bound.listeners, state, open, shutdown_rx.clone()));
            metadata_endpoint = Some(bound.endpoint);
        }
        let cleanup =
            tokio::spawn(images::cleanup_loop(docker, ledger, config.image_cleanup.clone(), metrics, shutdown_rx));
        Ok(Agent { engine, shutdown, servers, cleanup, socket, tcp, token, metadata_endpoint, cluster })
    }

    /// The unix socket the API listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The TCP address the API listens on, if any (the bound one: a configured port 0 is
    /// replaced by the one the system chose).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// Where containers reach the task metadata endpoint, when it is on (bound ports: a
    /// configured port 0 is replaced by the one the system chose).
    pub fn metadata_endpoint(&self) -> Option<&MetadataEndpoint> {
        self.metadata_endpoint.as_ref()
    }

    /// The bearer token TCP calls need, when TCP is on.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// This agent's membership of the cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&ClusterMember> {
        self.cluster.as_ref()
    }

    /// The engine.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// Wait until the engine's loop ends by itself (a store commit failed: ENOSPC, EIO),
    /// and say why. The daemon watches this to log the cause and exit non-zero; the
    /// listeners are still open (call [`Agent::shutdown`]), and every change reader has
    /// ended already.
    pub async fn engine_stopped(&self) -> berth_engine::EngineExit {
        self.engine.stopped().await
    }

    /// Stop: no Docker call starts any more, no new API calls, following streams end, the
    /// engine's last commit becomes durable and its loop stops. Task containers keep
    /// running. A client that stopped reading holds shutdown up for at most the drain time
    /// (10 s), and never keeps the engine from its shutdown. An error says the engine had
    /// stopped because of a failure before.
    pub async fn shutdown(self) -> Result<(), AgentError> {
        let Agent { engine, shutdown, servers, cleanup, socket, cluster, .. } = self;
        // The cluster first: the scheduler resigns (another leads at once), the runner and
        // the status writer stop; the lease is left to expire, so a restart within its TTL
        // keeps every task where it is.
        if let Some(cluster) = cluster {
            cluster.stop().await;
        }
        // Calls decided from now on wait for the next start; commits go on, so the API
        // calls in flight get their answers.
        engine.begin_shutdown().await;
        shutdown.send_replace(true);
        for server in servers {
            let abort = server.abort_handle();
            match tokio::time::timeout(DRAIN, server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "API listener failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "API listener task failed"),
                Err(_) => {
                    tracing::warn!("API connections still open after {DRAIN:?}; closing them");
                    abort.abort();
                }
            }
        }
        let _ = cleanup.await;
        let _ = std::fs::remove_file(&socket);
        // Through the shared handle: a connection still being torn down may hold a clone of
        // it, and the engine gets its shutdown anyway.
        engine.shutdown().await?;
        tracing::info!("berth stopped; task containers keep running");
        Ok(())
    }
}

/// The store of cluster mode: the one given, else the etcd members of the settings, else
/// none (one host).
async fn cluster_store(
    config: &AgentConfig,
    given: Option<Arc<dyn berth_cluster::ClusterStore>>,
) -> Result<Option<Arc<dyn berth_cluster::ClusterStore>>, ClusterStartError> {
    if let Some(store) = given {
        return Ok(Some(store));
    }
    if config.cluster_store.is_empty() {
        return Ok(None);
    }
    let store = berth_cluster::store::etcd::EtcdStore::connect(&config.cluster_store, ETCD_REQUEST_TIMEOUT)
        .await
        .map_err(|source| ClusterStartError::Store { endpoints: config.cluster_store.join(","), source })?;
    Ok(Some(Arc::new(store)))
}

/// How long one etcd request may take before it counts as unavailable (and is retried
/// where that is safe).
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
