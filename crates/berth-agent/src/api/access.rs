//! What every request goes through on its listener, in this order:
//!
//! 1. over TCP, the `Host` header: an IP literal, `localhost` or a name of
//!    `tcp_allowed_hosts` (or none at all); anything else is refused (DNS rebinding);
//! 2. over TCP, `Authorization: Bearer <token>` on every call but `/healthz` (and the ECS
//!    introspection endpoints when `tcp_open_introspection` says so). The unix socket's
//!    file mode (0600, in a 0700 directory) is its access control;
//! 3. the listener's cap on following streams, handed to the handlers that follow;
//! 4. `request_timeout` on the time to the answer's headers (a followed stream's body goes
//!    on after them).

use super::{Access, ApiError};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What one listener allows.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The unix socket or TCP with its token.
    pub access: Access,
    /// Over TCP: `GET /`, `/v1/metadata`, `/v1/tasks` need no token.
    pub open_introspection: bool,
    /// Over TCP: the host names accepted in `Host` besides IP literals and `localhost`
    /// (lower case, without a final dot).
    pub allowed_hosts: Arc<[String]>,
    /// The following streams of this listener.
    pub followers: Followers,
    /// How long a request may take to its answer's headers.
    pub request_timeout: Duration,
}

/// The places for following streams on one listener.
#[derive(Debug, Clone)]
pub struct Followers {
    places: Arc<Semaphore>,
    max: usize,
}

impl Followers {
    /// At most `max` at once.
    pub fn new(max: usize) -> Followers {
        Followers { places: Arc::new(Semaphore::new(max)), max }
    }

    /// A place for one more following stream (kept as long as the stream), or the 429
    /// that says the listener has `max` already.
    pub fn take(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.places).try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyFollowers",
                format!(
                    "{} following streams are open on this listener already (max_log_followers); close one or \
                     read without following",
                    self.max
                ),
            )
        })
    }
}

/// Let the request through (within the request timeout), or answer why not.
pub async fn check(State(policy): State<Arc<Policy>>, mut request: Request, next: Next) -> Response {
    if let Access::Token(token) = &policy.access {
        if let Err(refused) = host_allowed(&request, &policy.allowed_hosts) {
            return refused.into_response();
        }
        if needs_token(&request, policy.open_introspection)
            && let Err(refused) = bearer(&request, token)
        {
            return refused.into_response();
        }
    }
    request.extensions_mut().insert(policy.followers.clone());
    match tokio::time::timeout(policy.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Timeout",
            format!(
                "no answer within {} (request_timeout); a submit or stop may still take effect: look at the task",
                humantime::format_duration(policy.request_timeout)
            ),
        )
        .into_response(),
    }
}

/// Whether a TCP request needs the token: all but `/healthz`, and the introspection
/// reads when they are open.
fn needs_token(request: &Request, open_introspection: bool) -> bool {
    let path = request.uri().path();
    if path == "/healthz" {
        return false;
    }
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    !(open_introspection && read && matches!(path, "/" | "/v1/metadata" | "/v1/tasks"))
}

/// The bearer token check.
fn bearer(request: &Request, token: &str) -> Result<(), ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if same(given.trim().as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "the bearer token is wrong")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "calls over TCP need 'Authorization: Bearer <token>' (the token is in the data directory's token file; \
             only /healthz answers without it)",
        )),
    }
}

/// The `Host` check of TCP requests.
fn host_allowed(request: &Request, allowed: &[String]) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(header::HOST) else { return Ok(()) };
    let host = value.to_str().unwrap_or_default();
    if host_is_allowed(host, allowed) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "ForbiddenHost",
        format!(
            "Host {host:?} is not an IP address, localhost, or a name in tcp_allowed_hosts: refused, as a web page \
             could reach berth through a name it controls (DNS rebinding); add the name to tcp_allowed_hosts \
             (BERTH_TCP_ALLOWED_HOSTS) to allow it"
        ),
    ))
}

/// Whether `host` (a `Host` header: a name or address, with or without a port) is an IP
/// literal, `localhost`, or one of `allowed`.
pub(crate) fn host_is_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let port_ok = |port: &str| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').is_some_and(|(ip, tail)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok() && (tail.is_empty() || tail.strip_prefix(':').is_some_and(port_ok))
        });
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port_ok(port) => name,
        Some(_) => return false,
        None => host,
    };
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    !name.is_empty() && (name == "localhost" || allowed.contains(&name))
}

/// Equality in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"ab"));
        assert!(!super::same(b"", b"a"));
    }

    #[test]
    fn hosts_ip_literals_localhost_and_configured_names_pass() {
        let allowed = ["berth.example.com".to_string()];
        for ok in [
            "127.0.0.1",
            "127.0.0.1:51678",
            "10.1.2.3:80",
            "[::1]",
            "[::1]:9000",
            "::1",
            "localhost",
            "LOCALHOST:51678",
            "localhost.",
            "berth.example.com",
            "Berth.Example.COM:443",
        ] {
            assert!(super::host_is_allowed(ok, &allowed), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:51678",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::1]x",
            "[nope]:80",
            "localhost:port",
            "",
            ":80",
            "berth.example.com.evil",
        ] {
            assert!(!super::host_is_allowed(refused, &allowed), "{refused}");
        }
    }
}
