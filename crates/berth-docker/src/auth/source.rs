//! Where credentials come from, and the reading of each source's JSON.
//!
//! JSON is read as untyped values and walked by hand, so that an error can say where
//! and what was wrong without ever quoting a value (typed deserializers quote them).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::error::AuthError;
use super::secret::Secret;

/// The file name of Docker's client configuration in its directory.
pub const DOCKER_CONFIG_FILE: &str = "config.json";

/// The environment variable naming Docker's configuration directory.
pub const DOCKER_CONFIG_ENV: &str = "DOCKER_CONFIG";

/// Stored credentials for one registry key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthEntry {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
    /// An identity token (`identitytoken` in a Docker config).
    pub identity_token: Option<Secret>,
}

impl AuthEntry {
    /// An entry of a user and password.
    pub fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        AuthEntry { username: username.into(), password: password.into(), identity_token: None }
    }

    /// Whether the entry holds no credentials at all (Docker's `{}` placeholder).
    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identity_token.is_none()
    }
}

/// Where berth finds registry credentials (the seed's `dockerauth` sources, and the
/// user's Docker configuration). `{:?}` shows keys and users, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthSource {
    /// No credentials: every pull is anonymous.
    #[default]
    None,
    /// The `docker` type: a JSON map registry → `{username, password, email}`.
    Docker(BTreeMap<String, AuthEntry>),
    /// The `dockercfg` type: the legacy `.dockercfg` map registry → `{auth, email}`,
    /// or the newer `{"auths": {...}}`; `auth` is base64 `user:password`.
    Dockercfg(BTreeMap<String, AuthEntry>),
    /// A Docker client `config.json`, read at each lookup so that a `docker login`
    /// is seen without a restart: `auths`, `credsStore`, `credHelpers`. A missing file
    /// means no credentials.
    DockerConfig {
        /// The file.
        path: PathBuf,
    },
}

/// The origin named in errors about configured `docker` data.
const DOCKER_DATA: &str = "docker auth data";
/// The origin named in errors about configured `dockercfg` data.
const DOCKERCFG_DATA: &str = "dockercfg auth data";

impl AuthSource {
    /// The `docker` type from its JSON: `{"registry": {"username": ..., "password": ...,
    /// "email": ...}}` (an `auth` field is read as in the other formats).
    pub fn parse_docker(json: &str) -> Result<Self, AuthError> {
        let value = parse_json(DOCKER_DATA, json)?;
        let map = expect_object(&value, DOCKER_DATA, "$")?;
        Ok(AuthSource::Docker(parse_entries(map, DOCKER_DATA, "$")?))
    }

    /// The `dockercfg` type from its JSON, either shape: legacy
    /// `{"registry": {"auth": base64("user:pass"), "email": ...}}` or
    /// `{"auths": {"registry": {...}}}`.
    pub fn parse_dockercfg(json: &str) -> Result<Self, AuthError> {
        let value = parse_json(DOCKERCFG_DATA, json)?;
        let map = expect_object(&value, DOCKERCFG_DATA, "$")?;
        let entries = match map.get("auths") {
            Some(auths) => {
                let auths = expect_object(auths, DOCKERCFG_DATA, "$.auths")?;
                parse_entries(auths, DOCKERCFG_DATA, "$.auths")?
            }
            None => parse_entries(map, DOCKERCFG_DATA, "$")?,
        };
        Ok(AuthSource::Dockercfg(entries))
    }

    /// The user's Docker configuration, as the `docker` command finds it
    /// ([`docker_config_path`]); [`AuthSource::None`] when neither `DOCKER_CONFIG` nor
    /// a home directory is known.
    pub fn user_docker_config() -> Self {
        match docker_config_path() {
            Some(path) => AuthSource::DockerConfig { path },
            None => AuthSource::None,
        }
    }

    /// A source from a type and its data, as configured (the seed's
    /// `ENGINE_AUTH_TYPE` / `ENGINE_AUTH_DATA`): `none` (or empty), `docker` and
    /// `dockercfg` with their JSON, `docker-config` with a file path (empty: the
    /// user's). The type is read without case.
    pub fn from_type_and_data(kind: &str, data: &str) -> Result<Self, AuthError> {
        match kind.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(AuthSource::None),
            "docker" => AuthSource::parse_docker(data),
            "dockercfg" => AuthSource::parse_dockercfg(data),
            "docker-config" => {
                let data = data.trim();
                if data.is_empty() {
                    Ok(AuthSource::user_docker_config())
                } else {
                    Ok(AuthSource::DockerConfig { path: PathBuf::from(data) })
                }
            }
            _ => Err(AuthError::UnknownType { kind: kind.to_owned() }),
        }
    }
}

/// Where the `docker` command reads its configuration: `$DOCKER_CONFIG/config.json`,
/// else `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    docker_config_path_from(std::env::var_os(DOCKER_CONFIG_ENV).as_deref(), home.as_deref())
}

/// [`docker_config_path`] from given values of `DOCKER_CONFIG` and the home directory
/// (empty values count as unset).
pub fn docker_config_path_from(docker_config: Option<&OsStr>, home: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = docker_config.filter(|d| !d.is_empty()) {
        return Some(Path::new(dir).join(DOCKER_CONFIG_FILE));
    }
    home.filter(|h| !h.as_os_str().is_empty()).map(|h| h.join(".docker").join(DOCKER_CONFIG_FILE))
}

/// A Docker client `config.json`, the parts berth reads.
#[derive(Debug, Default)]
pub(crate) struct DockerConfigFile {
    /// `auths`, placeholders (`{}`) left out.
    pub(crate) auths: BTreeMap<String, AuthEntry>,
    /// `credsStore`, when set and not empty.
    pub(crate) creds_store: Option<String>,
    /// `credHelpers`: registry → helper name.
    pub(crate) cred_helpers: BTreeMap<String, String>,
}

impl DockerConfigFile {
    /// Reads the file; `Ok(None)` when it does not exist.
    pub(crate) fn read(path: &Path) -> Result<Option<Self>, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&path.display().to_string(), &text).map(Some),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(AuthError::Read { path: path.to_owned(), error }),
        }
    }

    /// Parses the text of a config file; `origin` names it in errors.
    pub(crate) fn parse(origin: &str, text: &str) -> Result<Self, AuthError> {
        let value = parse_json(origin, text)?;
        let map = expect_object(&value, origin, "$")?;
        let mut file = DockerConfigFile::default();
        if let Some(auths) = non_null(map.get("auths")) {
            let auths = expect_object(auths, origin, "$.auths")?;
            file.auths = parse_entries(auths, origin, "$.auths")?;
        }
        if let Some(store) = non_null(map.get("credsStore")) {
            let store = expect_string(store, origin, "$.credsStore")?;
            if !store.is_empty() {
                file.creds_store = Some(store.to_owned());
            }
        }
        if let Some(helpers) = non_null(map.get("credHelpers")) {
            let helpers = expect_object(helpers, origin, "$.credHelpers")?;
            for (registry, helper) in helpers {
                let path = format!("$.credHelpers{}", key_path(registry));
                let helper = expect_string(helper, origin, &path)?;
                if !helper.is_empty() {
                    file.cred_helpers.insert(registry.clone(), helper.to_owned());
                }
            }
        }
        Ok(file)
    }
}

/// Parses JSON; a syntax error says what and where, never the text.
pub(crate) fn parse_json(origin: &str, text: &str) -> Result<Value, AuthError> {
    serde_json::from_str(text).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Eof => "unexpected end",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Data => "bad data",
        };
        AuthError::Json { origin: origin.to_owned(), reason: reason.to_owned(), line: e.line(), column: e.column() }
    })
}

/// The JSON path of a key under `parent` (`["gcr.io"]`). Keys are registry names and
/// field names, never secrets.
pub(crate) fn key_path(key: &str) -> String {
    format!("[{key:?}]")
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(origin: &str, path: &str, reason: impl Into<String>) -> AuthError {
    AuthError::Invalid { origin: origin.to_owned(), path: path.to_owned(), reason: reason.into() }
}

pub(crate) fn expect_object<'v>(
    value: &'v Value,
    origin: &str,
    path: &str,
) -> Result<&'v Map<String, Value>, AuthError> {
    value.as_object().ok_or_else(|| invalid(origin, path, format!("expected an object, found {}", type_name(value))))
}

pub(crate) fn expect_string<'v>(value: &'v Value, origin: &str, path: &str) -> Result<&'v str, AuthError> {
    value.as_str().ok_or_else(|| invalid(origin, path, format!("expected a string, found {}", type_name(value))))
}

fn non_null(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

/// A string field of an object: absent or null → empty.
pub(crate) fn string_field<'v>(
    map: &'v Map<String, Value>,
    field: &str,
    origin: &str,
    path: &str,
) -> Result<&'v str, AuthError> {
    match non_null(map.get(field)) {
        Some(value) => expect_string(value, origin, &format!("{path}.{field}")),
        None => Ok(""),
    }
}

/// Entries of a map registry → entry; entries without credentials are left out.
fn parse_entries(map: &Map<String, Value>, origin: &str, path: &str) -> Result<BTreeMap<String, AuthEntry>, AuthError> {
    let mut entries = BTreeMap::new();
    for (registry, value) in map {
        let entry_path = format!("{path}{}", key_path(registry));
        let entry = parse_entry(value, origin, &entry_path)?;
        if !entry.is_empty() {
            entries.insert(registry.clone(), entry);
        }
    }
    Ok(entries)
}

/// base64 as Docker writes `auth` (standard alphabet), padding optional.
const AUTH_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One entry: `username`/`password`, or `auth` (base64 `user:password`, which wins as
/// in Docker), and `identitytoken`. `email` and unknown fields are ignored.
fn parse_entry(value: &Value, origin: &str, path: &str) -> Result<AuthEntry, AuthError> {
    let map = expect_object(value, origin, path)?;
    let mut entry = AuthEntry {
        username: string_field(map, "username", origin, path)?.to_owned(),
        password: Secret::new(string_field(map, "password", origin, path)?),
        identity_token: None,
    };
    let auth = string_field(map, "auth", origin, path)?.trim();
    if !auth.is_empty() {
        let auth_path = format!("{path}.auth");
        let decoded = AUTH_BASE64.decode(auth).map_err(|_| invalid(origin, &auth_path, "not valid base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid(origin, &auth_path, "not UTF-8 once decoded"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| invalid(origin, &auth_path, "not of the form user:password once decoded"))?;
        entry.username = user.to_owned();
        // Docker trims NUL padding some tools leave after the password.
        entry.password = Secret::new(password.trim_matches('\0'));
    }
    let token = string_field(map, "identitytoken", origin, path)?;
    if !token.is_empty() {
        entry.identity_token = Some(Secret::new(token));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn entries(source: &AuthSource) -> &BTreeMap<String, AuthEntry> {
        match source {
            AuthSource::Docker(map) | AuthSource::Dockercfg(map) => map,
            other => panic!("no entries in {other:?}"),
        }
    }

    #[test]
    fn docker_type() {
        let source = AuthSource::parse_docker(
            r#"{"https://index.docker.io/v1/": {"username": "alice", "password": "s3cret", "email": "a@example.com"},
                "gcr.io": {"username": "_json_key", "password": "{\"key\": 1}"}}"#,
        )
        .unwrap();
        assert!(matches!(source, AuthSource::Docker(_)));
        let map = entries(&source);
        assert_eq!(map["https://index.docker.io/v1/"], AuthEntry::new("alice", "s3cret"));
        assert_eq!(map["gcr.io"].password.expose(), "{\"key\": 1}");
    }

    #[test]
    fn dockercfg_legacy_shape() {
        let json = format!(r#"{{"quay.io": {{"auth": "{}", "email": "a@example.com"}}}}"#, b64("bob:pa:ss"));
        let source = AuthSource::parse_dockercfg(&json).unwrap();
        assert!(matches!(source, AuthSource::Dockercfg(_)));
        // The password is everything after the first colon.
        assert_eq!(entries(&source)["quay.io"], AuthEntry::new("bob", "pa:ss"));
    }

    #[test]
    fn dockercfg_auths_shape() {
        let json = format!(
            r#"{{"auths": {{"localhost:5000": {{"auth": "{}"}}, "https://index.docker.io/v1/": {{}}}}}}"#,
            b64("carol:pw")
        );
        let source = AuthSource::parse_dockercfg(&json).unwrap();
        let map = entries(&source);
        assert_eq!(map["localhost:5000"], AuthEntry::new("carol", "pw"));
        // An empty placeholder holds no credentials.
        assert!(!map.contains_key("https://index.docker.io/v1/"));
    }

    #[test]
    fn auth_field_without_padding_and_with_nul_padding() {
        let unpadded = b64("dan:x").trim_end_matches('=').to_owned();
        let json = format!(r#"{{"a.io": {{"auth": "{unpadded}"}}, "b.io": {{"auth": "{}"}}}}"#, b64("dan:y\0\0"));
        let source = AuthSource::parse_dockercfg(&json).unwrap();
        assert_eq!(entries(&source)["a.io"], AuthEntry::new("dan", "x"));
        assert_eq!(entries(&source)["b.io"], AuthEntry::new("dan", "y"));
    }

    #[test]
    fn auth_wins_over_username_and_password() {
        let json = format!(r#"{{"a.io": {{"username": "old", "password": "old", "auth": "{}"}}}}"#, b64("new:pw"));
        let source = AuthSource::parse_docker(&json).unwrap();
        assert_eq!(entries(&source)["a.io"], AuthEntry::new("new", "pw"));
    }

    #[test]
    fn errors_name_the_source_and_path_and_never_the_secret() {
        let cases = [
            (AuthSource::parse_dockercfg(r#"{"a.io": {"auth": "!!!s3cretvalue!!!"}}"#), r#"$["a.io"].auth"#, "base64"),
            (
                AuthSource::parse_dockercfg(&format!(
                    r#"{{"auths": {{"a.io": {{"auth": "{}"}}}}}}"#,
                    b64("s3cretvalue")
                )),
                r#"$.auths["a.io"].auth"#,
                "user:password",
            ),
            (
                AuthSource::parse_docker(r#"{"a.io": {"username": "u", "password": 1234567}}"#),
                r#"$["a.io"].password"#,
                "a number",
            ),
            (
                AuthSource::parse_docker(r#"{"a.io": "s3cretvalue"}"#),
                r#"$["a.io"]"#,
                "expected an object, found a string",
            ),
            (AuthSource::parse_dockercfg(r#"{"auths": ["s3cretvalue"]}"#), "$.auths", "found an array"),
            (AuthSource::parse_docker(r#"["s3cretvalue"]"#), "$", "found an array"),
        ];
        for (result, path, reason) in cases {
            let message = result.unwrap_err().to_string();
            assert!(message.contains(path), "{message}");
            assert!(message.contains(reason), "{message}");
            assert!(message.contains("auth data"), "{message}");
            assert!(!message.contains("s3cretvalue") && !message.contains("1234567"), "{message}");
        }
    }

    #[test]
    fn syntax_errors_give_a_position_not_the_text() {
        let error = AuthSource::parse_docker(r#"{"a.io": {"password": "s3cretvalue" "#).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, AuthError::Json { line: 1, .. }), "{message}");
        assert!(message.starts_with("docker auth data: not valid JSON"), "{message}");
        assert!(!message.contains("s3cretvalue"), "{message}");
        let message = AuthSource::parse_dockercfg(r#"{"a.io": s3cretvalue}"#).unwrap_err().to_string();
        assert!(!message.contains("s3cretvalue"), "{message}");
    }

    #[test]
    fn sources_never_print_secrets() {
        let docker = AuthSource::parse_docker(r#"{"a.io": {"username": "u", "password": "s3cretvalue"}}"#).unwrap();
        let dockercfg =
            AuthSource::parse_dockercfg(&format!(r#"{{"b.io": {{"auth": "{}"}}}}"#, b64("v:s3cretvalue"))).unwrap();
        let token = AuthEntry { identity_token: Some(Secret::new("s3cretvalue")), ..AuthEntry::default() };
        for shown in [format!("{docker:?}"), format!("{dockercfg:#?}"), format!("{token:?}")] {
            assert!(!shown.contains("s3cretvalue"), "{shown}");
        }
        assert!(format!("{docker:?}").contains("a.io"));
    }

    #[test]
    fn config_file_parts() {
        let text = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{}}, "gcr.io": {{"auth": "{}"}},
                 "tok.io": {{"identitytoken": "tkn"}}, "up.io": {{"username": "u", "password": "p"}}}},
               "credsStore": "desktop", "credHelpers": {{"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"}},
               "psFormat": "table", "proxies": {{}}}}"#,
            b64("erin:pw")
        );
        let file = DockerConfigFile::parse("config.json", &text).unwrap();
        assert_eq!(file.auths.len(), 3);
        assert_eq!(file.auths["gcr.io"], AuthEntry::new("erin", "pw"));
        assert_eq!(file.auths["up.io"], AuthEntry::new("u", "p"));
        assert_eq!(file.auths["tok.io"].identity_token.as_ref().map(Secret::expose), Some("tkn"));
        assert_eq!(file.creds_store.as_deref(), Some("desktop"));
        assert_eq!(file.cred_helpers["123.dkr.ecr.us-east-1.amazonaws.com"], "ecr-login");

        let empty = DockerConfigFile::parse("config.json", r#"{"credsStore": "", "auths": null}"#).unwrap();
        assert!(empty.creds_store.is_none() && empty.auths.is_empty());

        let message = DockerConfigFile::parse("/home/u/.docker/config.json", r#"{"credHelpers": {"gcr.io": 7}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            r#"/home/u/.docker/config.json: $.credHelpers["gcr.io"]: expected a string, found a number"#
        );
    }

    #[test]
    fn config_paths() {
        let home = Path::new("/home/u");
        assert_eq!(
            docker_config_path_from(Some(OsStr::new("/etc/dock")), Some(home)),
            Some(PathBuf::from("/etc/dock/config.json"))
        );
        assert_eq!(
            docker_config_path_from(Some(OsStr::new("")), Some(home)),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(docker_config_path_from(None, Some(home)), Some(PathBuf::from("/home/u/.docker/config.json")));
        assert_eq!(docker_config_path_from(None, None), None);
        assert_eq!(docker_config_path_from(None, Some(Path::new(""))), None);
    }

    #[test]
    fn types_and_data() {
        assert_eq!(AuthSource::from_type_and_data("", "").unwrap(), AuthSource::None);
        assert_eq!(AuthSource::from_type_and_data("None", "ignored").unwrap(), AuthSource::None);
        assert!(matches!(
            AuthSource::from_type_and_data("docker", r#"{"a.io": {"username": "u", "password": "p"}}"#).unwrap(),
            AuthSource::Docker(_)
        ));
        assert!(matches!(
            AuthSource::from_type_and_data("DockerCfg", r#"{"auths": {}}"#).unwrap(),
            AuthSource::Dockercfg(_)
        ));
        assert_eq!(
            AuthSource::from_type_and_data("docker-config", "/x/config.json").unwrap(),
            AuthSource::DockerConfig { path: PathBuf::from("/x/config.json") }
        );
        let message = AuthSource::from_type_and_data("ecr", "s3cretvalue").unwrap_err().to_string();
        assert!(message.contains("\"ecr\"") && !message.contains("s3cretvalue"), "{message}");
    }
}
