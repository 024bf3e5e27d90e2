//! The engine's errors.

use berth_docker::DockerError;
use berth_model::graph::{GraphError, GraphErrors};
use berth_store::StoreError;
use std::sync::Arc;

/// A task or container the engine does not have (the seed's `ContainerNotFound`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no container \"{container}\" in task {task_arn}")]
pub struct ContainerNotFound {
    /// The task asked for.
    pub task_arn: String,
    /// The container asked for.
    pub container: String,
}

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine has shut down (or, through `compat`, has not been initialized yet).
    #[error("the engine is not running (call init first)")]
    NotRunning,
    /// The engine was already initialized.
    #[error("the engine is already initialized")]
    AlreadyInitialized,
    /// No such task.
    #[error("no task {0}")]
    TaskNotFound(String),
    /// No such container.
    #[error(transparent)]
    ContainerNotFound(#[from] ContainerNotFound),
    /// The container has an operation in flight already.
    #[error("container \"{container}\" of task {task_arn} is busy with another operation")]
    Busy {
        /// The task.
        task_arn: String,
        /// The container.
        container: String,
    },
    /// A task's containers refer to each other in a way that cannot run (a dangling
    /// reference, a cycle): every reason.
    #[error("{}", GraphErrors(.0))]
    InvalidGraph(Vec<GraphError>),
    /// A Docker call failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An operation asked for directly failed.
    #[error("{0}")]
    Operation(String),
    /// A task with this client token is held already (under another arn).
    #[error("client token {token:?} was used for task {arn}")]
    ClientTokenUsed {
        /// The token.
        token: String,
        /// The task that has it.
        arn: String,
    },
    /// Another live berth holds this instance id on the Docker daemon (a data directory
    /// restored onto a second berth): this one does not start, and touches nothing.
    #[error(
        "berth instance {instance} is held by another running berth ({holder}); a data directory copied from \
         another berth must get an instance id of its own: stop this berth, move its instance-id file aside and \
         start again"
    )]
    InstanceHeld {
        /// The instance id.
        instance: String,
        /// Who holds it.
        holder: String,
    },
    /// The task would not fit this host's capacity even with nothing else running: it is
    /// refused, since under strict FIFO it would block every task behind it forever.
    #[error(transparent)]
    NeverFits(#[from] berth_model::admission::NeverFits),
    /// Imported state is not valid.
    #[error("invalid engine state: {0}")]
    InvalidState(String),
    /// The engine's loop stopped because of this failure (a store commit that failed): it
    /// takes no more work, and makes no more Docker calls.
    #[error("the engine has stopped: {0}")]
    Stopped(Arc<EngineError>),
}

/// How the engine's loop ended ([`crate::DockerTaskEngine::exit`]).
#[derive(Debug, Clone)]
pub enum EngineExit {
    /// It was shut down.
    Shutdown,
    /// A failure stopped it (a store commit failed: ENOSPC, EIO, ...); without durable
    /// state berth makes no more Docker calls. The embedder should say why and exit.
    Failed(Arc<EngineError>),
}

impl std::fmt::Display for EngineExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineExit::Shutdown => f.write_str("the engine was shut down"),
            EngineExit::Failed(e) => write!(f, "the engine stopped: {e}"),
        }
    }
}
