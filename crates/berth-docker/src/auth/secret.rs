//! Secrets that never print, and the credentials handed to Docker.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;

/// What a [`Secret`] shows in `{}` and `{:?}`.
pub const REDACTED: &str = "<redacted>";

/// A password or token. `{}` and `{:?}` show [`REDACTED`], never the value; the value
/// is read only through [`Secret::expose`]. It has no `Serialize`, so it cannot reach
/// the state store or an API answer by accident.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Call it only where the value leaves for Docker.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Credentials for one registry, as Docker takes them in `X-Registry-Auth`.
///
/// `{:?}` shows the user and server with the password and token redacted; `{}` shows
/// `user@server` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The user name (empty when an identity token is used).
    pub username: String,
    /// The password (empty when an identity token is used).
    pub password: Secret,
    /// The registry the credentials are for, as Docker names it
    /// (`https://index.docker.io/v1/` for Docker Hub, `host[:port]` otherwise).
    pub server_address: String,
    /// An identity (refresh) token, from `identitytoken` in a Docker config or a
    /// credential helper answering with user `<token>`.
    pub identity_token: Option<Secret>,
}

impl RegistryAuth {
    /// Credentials of a user and password for a server.
    pub fn new(username: impl Into<String>, password: impl Into<Secret>, server_address: impl Into<String>) -> Self {
        RegistryAuth {
            username: username.into(),
            password: password.into(),
            server_address: server_address.into(),
            identity_token: None,
        }
    }

    /// The JSON Docker reads from `X-Registry-Auth`: `username`, `password`,
    /// `serveraddress`, and `identitytoken` when there is one. It holds the secret:
    /// send it, never log it.
    pub fn header_json(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert("username".into(), self.username.clone().into());
        map.insert("password".into(), self.password.expose().into());
        map.insert("serveraddress".into(), self.server_address.clone().into());
        if let Some(token) = &self.identity_token {
            map.insert("identitytoken".into(), token.expose().into());
        }
        serde_json::Value::Object(map).to_string()
    }

    /// The value of the `X-Registry-Auth` header: [`RegistryAuth::header_json`] in
    /// base64url (RFC 4648 section 5, padded), the alphabet Docker decodes it with.
    /// Standard base64 (`+`, `/`) is silently dropped by Docker for some credentials.
    pub fn header_value(&self) -> String {
        URL_SAFE.encode(self.header_json())
    }

    /// The same credentials as bollard's type.
    ///
    /// Beware: bollard 0.21.1 encodes `X-Registry-Auth` with *standard* base64, which
    /// Docker decodes as base64url and ignores on failure, so give these only to a
    /// client fixed by [`crate::auth_header::with_auth_header_fix`]. bollard's type
    /// also prints its password in `{:?}`: never log it.
    pub fn to_docker_credentials(&self) -> bollard::auth::DockerCredentials {
        let non_empty = |s: &str| if s.is_empty() { None } else { Some(s.to_owned()) };
        bollard::auth::DockerCredentials {
            username: non_empty(&self.username),
            password: non_empty(self.password.expose()),
            serveraddress: non_empty(&self.server_address),
            identitytoken: self.identity_token.as_ref().map(|t| t.expose().to_owned()),
            ..Default::default()
        }
    }
}

impl fmt::Display for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.username.is_empty() && self.identity_token.is_some() {
            write!(f, "identity token for {}", self.server_address)
        } else {
            write!(f, "{}@{}", self.username, self.server_address)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const PASSWORD: &str = "p>>>?q??>r~~~s>?>t";

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{secret:#?}"), REDACTED);
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn registry_auth_never_prints_its_secrets() {
        let mut auth = RegistryAuth::new("alice", PASSWORD, "gcr.io");
        auth.identity_token = Some(Secret::new("tok-SECRET-123"));
        for shown in [format!("{auth}"), format!("{auth:?}"), format!("{auth:#?}")] {
            assert!(!shown.contains(PASSWORD), "{shown}");
            assert!(!shown.contains("tok-SECRET-123"), "{shown}");
        }
        assert!(format!("{auth:?}").contains("alice"));
        assert_eq!(format!("{auth}"), "alice@gcr.io");
    }

    #[test]
    fn header_is_base64url_of_the_json_docker_reads() {
        let auth = RegistryAuth::new("alice", PASSWORD, "registry.example.com:5000");
        let json = auth.header_json();
        let standard = STANDARD.encode(&json);
        assert!(standard.contains('+') || standard.contains('/'), "the test password must need the url-safe alphabet");

        let header = auth.header_value();
        assert!(!header.contains('+') && !header.contains('/'), "{header}");
        assert!(header.contains('-') || header.contains('_'), "{header}");
        assert_eq!(header, standard.replace('+', "-").replace('/', "_"));

        let decoded = URL_SAFE.decode(&header).expect("decodes as base64url");
        let value: serde_json::Value = serde_json::from_slice(&decoded).expect("json");
        assert_eq!(value["username"], "alice");
        assert_eq!(value["password"], PASSWORD);
        assert_eq!(value["serveraddress"], "registry.example.com:5000");
        assert!(value.get("identitytoken").is_none());
    }

    #[test]
    fn header_carries_an_identity_token() {
        let auth = RegistryAuth {
            username: String::new(),
            password: Secret::default(),
            server_address: "myacr.azurecr.io".into(),
            identity_token: Some(Secret::new("refresh-token")),
        };
        let decoded = URL_SAFE.decode(auth.header_value()).expect("decodes");
        let value: serde_json::Value = serde_json::from_slice(&decoded).expect("json");
        assert_eq!(value["identitytoken"], "refresh-token");
        assert_eq!(format!("{auth}"), "identity token for myacr.azurecr.io");
    }

    #[test]
    fn bollard_credentials_carry_the_same_fields() {
        let creds = RegistryAuth::new("alice", "pw", "gcr.io").to_docker_credentials();
        assert_eq!(creds.username.as_deref(), Some("alice"));
        assert_eq!(creds.password.as_deref(), Some("pw"));
        assert_eq!(creds.serveraddress.as_deref(), Some("gcr.io"));
        assert_eq!(creds.identitytoken, None);
    }
}
