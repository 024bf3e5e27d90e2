//! Registry credentials and secrets: the auth type and data checked as they are loaded,
//! the credential source built from them (reading the auth data file), and the local
//! secrets file. No error quotes a credential or a secret.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use berth_docker::auth::{AuthSource, DOCKER_CONFIG_ENV, Secret, docker_config_path_from};
use serde_json::Value as JsonValue;

use super::layering::{Sources, setting_origin};
use super::{AgentConfig, ConfigError};

impl AgentConfig {
    /// Checks the credentials that are given inline, and finds the Docker
    /// configuration for `docker-config` without a path in the given environment.
    pub(super) fn check_auth(&mut self, env: &BTreeMap<String, String>, sources: &Sources) -> Result<(), ConfigError> {
        if self.auth_data_file.is_some() {
            return Ok(());
        }
        match self.auth_type.as_str() {
            "docker" | "dockercfg" => {
                if self.auth_data.expose().trim().is_empty() {
                    return Err(ConfigError::Invalid {
                        origin: sources.origin("auth_type"),
                        reason: format!("auth type {} needs auth_data or auth_data_file", self.auth_type),
                    });
                }
                AuthSource::from_type_and_data(&self.auth_type, self.auth_data.expose()).map_err(|error| {
                    ConfigError::Auth { origin: sources.origin("auth_data"), error: Box::new(error) }
                })?;
            }
            "docker-config" if self.auth_data.expose().trim().is_empty() => {
                let docker_config = env.get(DOCKER_CONFIG_ENV).map(OsStr::new);
                let home = env.get("HOME").map(Path::new);
                if let Some(path) = docker_config_path_from(docker_config, home) {
                    self.auth_data = Secret::new(path.to_string_lossy());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The registry credential source: `auth_type` with `auth_data`, or the content of
    /// `auth_data_file` (read here). `docker-config` without a path means no
    /// credentials ([`AgentConfig::load`] has put the path in from the environment
    /// when there was one).
    pub fn auth_source(&self) -> Result<AuthSource, ConfigError> {
        let kind = normalize_auth_type(&self.auth_type)
            .map_err(|reason| ConfigError::Invalid { origin: setting_origin("auth_type"), reason })?;
        let (data, file) = match &self.auth_data_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    what: "auth data file",
                    path: path.clone(),
                    error,
                })?;
                (Secret::new(text), Some(path))
            }
            None => (self.auth_data.clone(), None),
        };
        if kind == "docker-config" && data.expose().trim().is_empty() {
            return Ok(AuthSource::None);
        }
        AuthSource::from_type_and_data(&kind, data.expose()).map_err(|error| match file {
            Some(path) => ConfigError::AuthDataFile { path: path.clone(), error: Box::new(error) },
            None => ConfigError::Auth { origin: setting_origin("auth_data"), error: Box::new(error) },
        })
    }

    /// The secrets of `secrets_file` (read here; none without one): a JSON object of
    /// strings.
    pub fn secrets(&self) -> Result<BTreeMap<String, String>, ConfigError> {
        match &self.secrets_file {
            Some(path) => read_secrets(path),
            None => Ok(BTreeMap::new()),
        }
    }
}

/// The auth type as stored: lower case, `none` for empty.
pub(super) fn normalize_auth_type(kind: &str) -> Result<String, String> {
    match kind.trim().to_ascii_lowercase().as_str() {
        "" | "none" => Ok("none".to_owned()),
        k @ ("docker" | "dockercfg" | "docker-config") => Ok(k.to_owned()),
        _ => Err(format!("unknown registry auth type {kind:?} (expected none, docker, dockercfg or docker-config)")),
    }
}

/// A JSON object of strings, walked by hand so that no error quotes a value (a typed
/// deserializer would).
pub(super) fn read_secrets(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read(path).map_err(|error| ConfigError::Read {
        what: "secrets file",
        path: path.to_owned(),
        error,
    })?;
    let invalid = |reason: String| ConfigError::Secrets { path: path.to_owned(), reason };
    let value: JsonValue = serde_json::from_slice(&text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Eof => "unexpected end",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Data => "bad data",
        };
        invalid(format!("not valid JSON ({kind} at line {} column {})", e.line(), e.column()))
    })?;
    let JsonValue::Object(map) = value else {
        return Err(invalid("expected a JSON object of strings".to_owned()));
    };
    map.into_iter()
        .map(|(name, value)| match value {
            JsonValue::String(s) => Ok((name, s)),
            _ => Err(invalid(format!("secret {name:?}: expected a string"))),
        })
        .collect()
}
