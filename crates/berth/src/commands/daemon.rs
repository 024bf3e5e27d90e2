//! `berth daemon`: the long-running agent. Settings come from the defaults, a TOML file
//! (`--config`), `BERTH_*` variables and these flags, each overriding the one before (see
//! docs/daemon-config.md). It serves the HTTP API on `<data dir>/berth.sock` and, when
//! configured, on TCP. SIGTERM or SIGINT: stop accepting work, make state durable, exit;
//! task containers keep running and a restarted daemon picks them up.
//!
//! A state file berth cannot use stops the start with a message naming it; berth never
//! writes to it. When the engine stops by itself (a store commit failed: ENOSPC, EIO), the
//! daemon logs why, closes its listeners and exits with status 1, the cause in its last
//! message, so that a supervisor restarts it once the cause is fixed. `--reset-state` moves the state files aside first, and the daemon starts
//! empty (docs/damaged-state.md).

use anyhow::Context;
use berth_agent::config::{LogFormat, Overrides};
use berth_agent::{Agent, AgentConfig};
use berth_docker::LazyDocker;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `berth daemon`.
#[derive(Debug, clap::Args)]
pub struct Daemon {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE", env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: state, API socket, token.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also listen on TCP: `on` (127.0.0.1:51678), a port, an address, or `off`.
    #[arg(long, value_name = "ADDR")]
    tcp: Option<String>,
    /// Log lines for people (`human`) or one JSON object a line (`json`).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter: a level (`info`, `debug`) or tracing filter directives.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Cluster mode: the etcd members, `etcd://host:port[,host:port...]` (docs/cluster.md).
    #[arg(long, value_name = "ETCD")]
    cluster: Option<String>,
    /// The cluster's name (the `cluster` setting; `default`).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// This node's name in the cluster (required in cluster mode).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Start empty: first move the state files aside (`state.redb` becomes
    /// `state.redb.reset-<UTC time>`, the same for `state.json`; nothing is deleted, the
    /// instance id is kept). For a state file berth refuses to read.
    #[arg(long)]
    reset_state: bool,
}

impl Daemon {
    /// Run until SIGTERM or SIGINT.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let log_format =
            self.log_format.as_deref().map(str::parse::<LogFormat>).transpose().map_err(anyhow::Error::msg)?;
        let flags = Overrides {
            data_dir: self.data_dir,
            tcp: self.tcp,
            log_format,
            log_level: self.log_level,
            cluster_store: self.cluster,
            cluster_name: self.cluster_name,
            node: self.node,
        };
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let config = AgentConfig::load(self.config.as_deref(), &env, &flags)?;
        berth_agent::logging::init(&config).map_err(anyhow::Error::msg)?;
        for name in AgentConfig::unrecognized_env(&env) {
            tracing::warn!(variable = %name, "unknown BERTH_ variable, ignored");
        }
        if self.reset_state {
            reset_state(&config.data_dir, config.orphan_grace)?;
        }
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        runtime.block_on(serve(config))?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `--reset-state`: move the state files of `data_dir` aside, logging each move, and say
/// plainly what becomes of the old state's containers and how to keep them.
fn reset_state(data_dir: &Path, orphan_grace: Duration) -> anyhow::Result<()> {
    let moved = berth_store::DataDir::reset(data_dir)
        .with_context(|| format!("--reset-state: cannot reset the state in {}", data_dir.display()))?;
    if moved.is_empty() {
        tracing::info!(data_dir = %data_dir.display(), "--reset-state: no state files to move aside");
    }
    for (from, to) in &moved {
        tracing::warn!(
            file = %from.display(),
            moved_to = %to.display(),
            "--reset-state: state file moved aside; berth starts with an empty state"
        );
    }
    if !moved.is_empty() {
        let id_file = data_dir.join(berth_store::INSTANCE_ID_FILE);
        tracing::warn!(
            "--reset-state: the containers of the old state keep this berth's instance label, and no task owns \
             them now: they will be removed as orphans (stopped and removed) {grace} after berth reaches Docker \
             (orphan_grace). To keep them, start with a longer orphan_grace (BERTH_ORPHAN_GRACE=30d, or \
             orphan_grace in the configuration file), or stop berth within that time, move {id} aside and start \
             again: berth then gets a new instance id and never touches the old containers (list them with \
             `docker ps -a --filter label=berth.instance=<old id>`)",
            grace = humantime::format_duration(orphan_grace),
            id = id_file.display(),
        );
    }
    Ok(())
}

/// Start the agent (Docker need not answer yet), wait for a signal (or the engine's
/// death), stop.
async fn serve(config: AgentConfig) -> anyhow::Result<()> {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listening for SIGTERM")?;
    // Docker need not answer yet: the API serves at once, and the engine connects (and
    // reconciles) when Docker answers.
    let docker = LazyDocker::from_env();
    let agent = tokio::select! {
        agent = Agent::start(&config, Arc::new(docker)) => agent?,
        _ = terminate.recv() => return Ok(()),
        _ = tokio::signal::ctrl_c() => return Ok(()),
    };
    tracing::info!(data_dir = %config.data_dir.display(), "berth is running");
    let died = tokio::select! {
        _ = terminate.recv() => { tracing::info!("SIGTERM: stopping"); None }
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); None }
        exit = agent.engine_stopped() => Some(exit),
    };
    if let Some(exit) = died {
        // The engine stopped by itself: no more work is possible without durable state.
        tracing::error!(cause = %exit, "the engine stopped; berth exits so that it can be restarted");
        let _ = agent.shutdown().await;
        anyhow::bail!("{exit}; berth exits (status 1): fix the cause and start it again");
    }
    agent.shutdown().await?;
    Ok(())
}
