//! Registry credentials (the seed's `dockerauth`, SPEC section 8).
//!
//! An [`AuthSource`] says where credentials are: none, the `docker` map, `dockercfg`
//! data (legacy or `auths`), or the user's Docker `config.json` with its credential
//! helpers. [`DockerAuth`] finds the credentials for an image: the image's registry as
//! Docker resolves it ([`registry_of`]), then the key naming that registry
//! ([`key_matches`]), or the credential helper configured for it. The answer is a
//! [`RegistryAuth`], whose [`header_value`](RegistryAuth::header_value) is Docker's
//! `X-Registry-Auth`.
//!
//! Secrets are held in [`Secret`], which prints as `<redacted>` and cannot be
//! serialized; errors ([`AuthError`]) name sources, JSON paths, helpers and registries,
//! never a secret value.
//!
//! A lookup may run a credential helper (up to [`DEFAULT_HELPER_TIMEOUT`]) and reads
//! files: it blocks, so async callers run it on a blocking thread.

mod error;
mod helper;
mod registry;
mod secret;
mod source;

use std::ffi::OsString;
use std::time::Duration;

pub use error::AuthError;
pub use helper::{HELPER_PREFIX, search_path_with};
pub use registry::{
    DOCKER_HUB, DOCKER_HUB_ALIASES, DOCKER_HUB_SERVER, is_docker_hub, key_matches, registry_host, registry_of,
    server_address,
};
pub use secret::{REDACTED, RegistryAuth, Secret};
pub use source::{
    AuthEntry, AuthSource, DOCKER_CONFIG_ENV, DOCKER_CONFIG_FILE, docker_config_path, docker_config_path_from,
};

use std::collections::BTreeMap;

use helper::HelperCall;
use source::DockerConfigFile;

/// How long a credential helper may take before it is killed.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds registry credentials for images from an [`AuthSource`].
#[derive(Debug, Clone, Default)]
pub struct DockerAuth {
    source: AuthSource,
    helper_path: Option<OsString>,
    helper_timeout: Option<Duration>,
}

impl DockerAuth {
    /// Lookups in `source`; helpers found on the process's `PATH`, with
    /// [`DEFAULT_HELPER_TIMEOUT`].
    pub fn new(source: AuthSource) -> Self {
        DockerAuth { source, helper_path: None, helper_timeout: None }
    }

    /// The user's Docker configuration ([`AuthSource::user_docker_config`]), what
    /// `berth run` uses by default, as `docker` does.
    pub fn user_default() -> Self {
        DockerAuth::new(AuthSource::user_docker_config())
    }

    /// Looks for credential helpers on this search path (and gives it to them as
    /// `PATH`) instead of the process's `PATH`.
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// Gives credential helpers this long to answer.
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = Some(timeout);
        self
    }

    /// The source.
    pub fn source(&self) -> &AuthSource {
        &self.source
    }

    /// The credentials for pulling `image`, if the source has any for its registry.
    pub fn lookup(&self, image: &str) -> Result<Option<RegistryAuth>, AuthError> {
        self.lookup_registry(&registry_of(image))
    }

    /// The credentials for a registry (`docker.io`, `host[:port]`, or a key such as
    /// `https://index.docker.io/v1/`).
    ///
    /// From a Docker config, as `docker` does: the helper named in `credHelpers` for the
    /// registry, else the `credsStore` helper, else the `auths` entry. A helper that
    /// has no credentials gives `Ok(None)`; one that is missing or fails gives an error.
    pub fn lookup_registry(&self, registry: &str) -> Result<Option<RegistryAuth>, AuthError> {
        let registry = &registry_host(registry);
        match &self.source {
            AuthSource::None => Ok(None),
            AuthSource::Docker(entries) | AuthSource::Dockercfg(entries) => Ok(from_entries(entries, registry)),
            AuthSource::DockerConfig { path } => {
                let Some(file) = DockerConfigFile::read(path)? else { return Ok(None) };
                let helper = registry::best_key(file.cred_helpers.keys().map(String::as_str), registry)
                    .and_then(|key| file.cred_helpers.get(key))
                    .or(file.creds_store.as_ref());
                match helper {
                    Some(name) => helper::get(&HelperCall {
                        name,
                        registry,
                        server_url: &server_address(registry),
                        search_path: self.helper_path.as_deref(),
                        timeout: self.helper_timeout.unwrap_or(DEFAULT_HELPER_TIMEOUT),
                    }),
                    None => Ok(from_entries(&file.auths, registry)),
                }
            }
        }
    }
}

/// The entry whose key best names the registry, as credentials for it.
fn from_entries(entries: &BTreeMap<String, AuthEntry>, registry: &str) -> Option<RegistryAuth> {
    let key = registry::best_key(entries.keys().map(String::as_str), registry)?;
    let entry = entries.get(key)?;
    Some(RegistryAuth {
        username: entry.username.clone(),
        password: entry.password.clone(),
        server_address: server_address(registry),
        identity_token: entry.identity_token.clone(),
    })
}

#[cfg(test)]
mod tests;
