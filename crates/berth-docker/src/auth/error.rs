//! What can go wrong finding credentials. No message holds a secret: parse errors give
//! the source, the JSON path and what was expected, never a value; a helper's failure
//! gives the helper, the registry and the helper's own first line of output only when
//! it cannot be a credential answer.

use std::path::PathBuf;
use std::time::Duration;

/// A failure to read credentials, or to get them from a credential helper.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The credential data is not JSON. `origin` names the source (a file, or the kind
    /// of configured data); the position is given, never the text.
    #[error("{origin}: not valid JSON ({reason} at line {line} column {column})")]
    Json {
        /// The file or the kind of data.
        origin: String,
        /// The kind of syntax error.
        reason: String,
        /// The line of the error, from 1.
        line: usize,
        /// The column of the error, from 1.
        column: usize,
    },
    /// The credential data is JSON of the wrong shape.
    #[error("{origin}: {path}: {reason}")]
    Invalid {
        /// The file or the kind of data.
        origin: String,
        /// The JSON path of the bad value (`$.auths["gcr.io"].auth`).
        path: String,
        /// What was wrong with it, without the value.
        reason: String,
    },
    /// A Docker config file could not be read.
    #[error("cannot read Docker config {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// An auth type berth does not know.
    #[error("unknown registry auth type {kind:?} (expected none, docker, dockercfg or docker-config)")]
    UnknownType {
        /// The type asked for.
        kind: String,
    },
    /// A credential helper name that is not a plain name (it would name a path).
    #[error("credential helper name {helper:?} for {registry} is not a plain name")]
    HelperName {
        /// The name as configured.
        helper: String,
        /// The registry it was configured for.
        registry: String,
    },
    /// The credential helper program is not on the search path.
    #[error("credential helper {helper} for {registry} not found on PATH")]
    HelperNotFound {
        /// The program (`docker-credential-<name>`).
        helper: String,
        /// The registry credentials were asked for.
        registry: String,
    },
    /// The credential helper could not be started or talked to.
    #[error("credential helper {helper} for {registry} could not run: {error}")]
    HelperIo {
        /// The program.
        helper: String,
        /// The registry credentials were asked for.
        registry: String,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The credential helper did not answer in time and was killed.
    #[error("credential helper {helper} for {registry} did not answer within {timeout:?}")]
    HelperTimeout {
        /// The program.
        helper: String,
        /// The registry credentials were asked for.
        registry: String,
        /// The time it had.
        timeout: Duration,
    },
    /// The credential helper exited with a failure.
    #[error("credential helper {helper} for {registry} failed ({status}){}", message_suffix(message))]
    HelperFailed {
        /// The program.
        helper: String,
        /// The registry credentials were asked for.
        registry: String,
        /// How it exited.
        status: String,
        /// Its first line of output, shortened; empty when withheld.
        message: String,
    },
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

impl AuthError {
    /// Whether the error is a credential helper that is not installed: callers that
    /// would rather pull anonymously than fail can tell this case apart.
    pub fn is_helper_not_found(&self) -> bool {
        matches!(self, AuthError::HelperNotFound { .. })
    }
}
