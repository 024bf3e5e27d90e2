//! Where a value came from, and why a configuration could not be loaded.

use std::fmt;
use std::path::PathBuf;

use berth_docker::auth::AuthError;

/// Where a value came from, as errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A key of the configuration file (`<file>: key timeouts.pull`).
    File {
        /// The file.
        path: PathBuf,
        /// The key, tables joined with `.`.
        key: String,
    },
    /// An environment variable (`BERTH_TIMEOUTS_PULL`).
    Env {
        /// Its name.
        var: String,
    },
    /// A command-line flag (`--tcp`).
    Flag {
        /// The flag.
        flag: String,
    },
    /// A setting whose source is not known (a configuration built in code, or a
    /// default).
    Setting {
        /// The key.
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, key } => write!(f, "{}: key {key}", path.display()),
            Origin::Env { var } => f.write_str(var),
            Origin::Flag { flag } => f.write_str(flag),
            Origin::Setting { key } => f.write_str(key),
        }
    }
}

/// Why the configuration could not be loaded. No message holds registry credentials
/// or a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {error}", path.display())]
    Read {
        /// Which file: `config file`, `auth data file`, `secrets file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The configuration file is not valid TOML. The position is given, never the text.
    #[error("{}: not valid TOML (line {line}, column {column}): {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The column (in characters), from 1.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// The configuration file has a key that is not a setting.
    #[error("{}: unknown key {key}", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, tables joined with `.`.
        key: String,
    },
    /// A value is not valid for its setting.
    #[error("{origin}: {reason}")]
    Invalid {
        /// Where the value came from.
        origin: Origin,
        /// What is wrong with it (quoting the value unless it is a credential).
        reason: String,
    },
    /// Two settings that exclude each other were given in the same layer.
    #[error("{first} and {second} are both set; give one or the other")]
    Conflict {
        /// The one.
        first: Origin,
        /// The other.
        second: Origin,
    },
    /// The registry credentials do not parse (the error names a JSON path, never a value).
    #[error("{origin}: {error}")]
    Auth {
        /// Where the auth data (or type) came from.
        origin: Origin,
        /// What is wrong.
        #[source]
        error: Box<AuthError>,
    },
    /// The auth data file's credentials do not parse.
    #[error("auth data file {}: {error}", path.display())]
    AuthDataFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        error: Box<AuthError>,
    },
    /// The secrets file is not a JSON object of strings (never quoting a value).
    #[error("secrets file {}: {reason}", path.display())]
    Secrets {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
