//! The daemon's configuration (`berth daemon`, SPEC 7 and 9).
//!
//! Four layers, each overriding the one before: the defaults ([`AgentConfig::default`],
//! with the data directory taken from the environment), the TOML file, the `BERTH_*`
//! environment variables, and the command line ([`Overrides`]). See
//! `docs/daemon-config.md` for every setting.
//!
//! The module is pure apart from reading files it is pointed at: [`AgentConfig::load`]
//! reads the configuration file only, and the environment is passed in, never read from
//! the process, so the same inputs always give the same configuration.
//! [`AgentConfig::engine_config`] reads the secrets file and the auth data file.
//!
//! Every error names where the bad value came from (`<file>: key timeouts.pull`,
//! `BERTH_TIMEOUTS_PULL`, `--tcp`). Registry credentials (`auth_data`) are kept in a
//! [`Secret`](berth_docker::auth::Secret) and never appear in an error or in `{:?}`.
//!
//! By concern: the settings types (`settings.rs`), the layering (`layering.rs`), the
//! value parsers (`values.rs`), registry credentials and secrets (`auth.rs`) and the
//! errors (`error.rs`); everything public is re-exported here.

mod auth;
mod error;
mod layering;
mod settings;
mod values;

pub use error::{ConfigError, Origin};
pub use layering::{env_var, setting_keys, state_home};
pub use settings::{
    AgentConfig, DEFAULT_LOG_MAX_FILE, DEFAULT_LOG_MAX_SIZE, DEFAULT_PIDS_LIMIT, DEFAULT_RESERVED_MEMORY_MIB,
    DEFAULT_RESERVED_PORTS, HostPolicy, ImageCleanup, LogFormat, Overrides, Resources, default_ulimit_max,
};
pub use values::{parse_cluster_store, parse_pull_behavior, parse_tcp};

/// The TCP port of the API when TCP is switched on without a port (the ECS
/// introspection API's).
pub const DEFAULT_TCP_PORT: u16 = 51678;

/// The data directory when neither `XDG_STATE_HOME` nor `HOME` is set (a system
/// service).
pub const SYSTEM_DATA_DIR: &str = "/var/lib/berth";

/// The largest request body the API accepts by default: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The prefix of every environment variable the daemon reads.
pub const ENV_PREFIX: &str = "BERTH_";

/// `BERTH_*` variables that are not settings of this module: the clients' (`BERTH_HOST`,
/// `BERTH_TOKEN`), the daemon's `--config` (`BERTH_CONFIG`) and the crash-point hook of
/// test builds (`BERTH_CRASH_AT`: only a binary built with berth-store's `crash-points`
/// feature reads it; other builds ignore it). The daemon does not warn about them.
pub const CLIENT_ENV: &[&str] = &["BERTH_HOST", "BERTH_TOKEN", "BERTH_CONFIG", "BERTH_CRASH_AT"];

/// The name of the token file in the data directory when `token_file` is not set.
pub const TOKEN_FILE_NAME: &str = "token";

/// The name of the API's unix socket in the data directory.
pub const SOCKET_FILE_NAME: &str = "berth.sock";
