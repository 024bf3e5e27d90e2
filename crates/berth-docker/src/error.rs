//! Docker's errors, sorted into the classes berth acts on.

use std::fmt;

/// What kind of failure a Docker call met; decides retry versus give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No such container, image or volume (404).
    NotFound,
    /// A conflict (409): name in use, container running, ...
    Conflict,
    /// Already in the asked state (304): "already started", "already stopped".
    NotModified,
    /// Worth retrying: connection trouble, 5xx, a busy daemon.
    Transient,
    /// Retrying cannot help: bad reference, unauthorized, invalid settings.
    Permanent,
    /// The call did not answer in time; Docker may have done the work.
    Timeout,
    /// The request may have reached Docker but its answer was lost (connection reset,
    /// broken pipe, end of stream, a body error): Docker may have done the work, as with
    /// a timeout.
    Lost,
    /// Docker could not be reached at all (no socket, connection refused): the call did
    /// nothing.
    Unreachable,
}

/// A failed Docker call: what failed, on what, and its class. Never carries credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DockerError {
    /// The class.
    pub kind: ErrorKind,
    /// The call (`create container`, `pull image`, ...).
    pub operation: String,
    /// What it was called on (a name, an id, an image reference).
    pub target: String,
    /// Docker's message, or the transport's.
    pub message: String,
}

impl DockerError {
    /// An error of this kind for `operation` on `target`.
    pub fn new(
        kind: ErrorKind,
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DockerError { kind, operation: operation.into(), target: target.into(), message: message.into() }
    }

    /// Retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, ErrorKind::Permanent | ErrorKind::NotFound | ErrorKind::Conflict)
    }

    /// Docker could not be reached: the call did nothing.
    pub fn is_unreachable(&self) -> bool {
        self.kind == ErrorKind::Unreachable
    }

    /// The thing does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.operation, self.target, self.message)
    }
}
