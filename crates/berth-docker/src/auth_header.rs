//! The `X-Registry-Auth` header as Docker reads it.
//!
//! Docker decodes the header (base64 of a JSON object with the registry credentials) with
//! Go's `base64.URLEncoding`, the URL-safe alphabet (`-` and `_`) with `=` padding. bollard
//! 0.21 writes it with the standard alphabet (`+` and `/`). For most credentials the two
//! agree; when the standard encoding has a `+` or a `/` (a password such as `a~b~c~` or
//! `s?s?s?` can do it), Docker fails to decode the header, silently pulls or pushes
//! without credentials, and the registry refuses with "no basic auth credentials".
//!
//! [`fix_registry_auth_header`] rewrites the header of an outgoing request from the
//! standard alphabet to the URL-safe one (padding kept); [`with_auth_header_fix`] installs
//! it on a [`Docker`] as its request modifier.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use bollard::{BollardRequest, Docker};
use http::HeaderValue;

/// The header that carries the credentials of one registry for a pull or a push.
pub const REGISTRY_AUTH_HEADER: &str = "x-registry-auth";

/// Rewrites the `X-Registry-Auth` header of `request`, if it has one, from standard base64
/// to base64url with padding, the encoding Docker decodes; the decoded bytes (the JSON of
/// the credentials) are the same. Everything else in the request is left as it is, and
/// so is a header that is not standard base64 (one already in base64url, say: applying
/// the rewrite twice changes nothing more) or whose encoding has no `+` nor `/`.
///
/// Its signature is that of bollard's request modifier ([`Docker::with_request_modifier`]).
pub fn fix_registry_auth_header(mut request: BollardRequest) -> BollardRequest {
    let fixed = request.headers().get(REGISTRY_AUTH_HEADER).and_then(|value| {
        let mut fixed = to_base64url(value.as_bytes())?;
        fixed.set_sensitive(value.is_sensitive());
        Some(fixed)
    });
    if let Some(fixed) = fixed {
        request.headers_mut().insert(REGISTRY_AUTH_HEADER, fixed);
    }
    request
}

/// `value` in base64url with padding, when `value` is standard base64 with a `+` or a `/`.
fn to_base64url(value: &[u8]) -> Option<HeaderValue> {
    if !value.iter().any(|byte| matches!(byte, b'+' | b'/')) {
        return None;
    }
    let decoded = STANDARD.decode(value).ok()?;
    HeaderValue::from_str(&URL_SAFE.encode(decoded)).ok()
}

/// `docker` with [`fix_registry_auth_header`] as its request modifier, so that the
/// credentials given to `create_image`, `push_image` and the like reach Docker whatever
/// their encoding. bollard keeps one modifier: this one replaces any set before.
pub fn with_auth_header_fix(docker: Docker) -> Docker {
    docker.with_request_modifier(fix_registry_auth_header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::auth::DockerCredentials;
    use bytes::Bytes;
    use http::Method;

    /// The header value bollard 0.21 writes for these credentials: the JSON of
    /// `DockerCredentials` (every field, `null` when unset) in standard base64.
    fn bollard_header(username: &str, password: &str) -> (String, String) {
        let credentials = DockerCredentials {
            username: Some(username.to_string()),
            password: Some(password.to_string()),
            serveraddress: Some("127.0.0.1:51671".to_string()),
            ..Default::default()
        };
        let json = serde_json::to_string(&credentials).expect("credentials serialize");
        (json.clone(), STANDARD.encode(json))
    }

    fn request_with(headers: &[(&str, &str)]) -> BollardRequest {
        let mut builder = http::Request::builder().method(Method::POST).uri("/images/create?fromImage=x");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(bollard::body_full(Bytes::from_static(b"body"))).expect("request builds")
    }

    fn header(request: &BollardRequest) -> String {
        let value = request.headers().get("X-Registry-Auth").expect("the header is there");
        value.to_str().expect("ascii").to_string()
    }

    #[test]
    fn plus_becomes_minus_and_decodes_to_the_same_json() {
        let (json, standard) = bollard_header("berth-plus", "a~b~c~");
        assert!(standard.contains('+'), "{standard} should have a +");
        let fixed = header(&fix_registry_auth_header(request_with(&[("X-Registry-Auth", &standard)])));
        assert!(!fixed.contains('+') && !fixed.contains('/'), "{fixed}");
        assert_eq!(fixed, standard.replace('+', "-").replace('/', "_"));
        let decoded = URL_SAFE.decode(&fixed).expect("base64url with padding");
        assert_eq!(String::from_utf8(decoded).expect("utf-8"), json);
        assert_eq!(
            fixed,
            "eyJ1c2VybmFtZSI6ImJlcnRoLXBsdXMiLCJwYXNzd29yZCI6ImF-Yn5jfiIsImF1dGgiOm51bGwsImVtYWlsIjpudWxsLCJzZXJ2ZXJh\
             ZGRyZXNzIjoiMTI3LjAuMC4xOjUxNjcxIiwiaWRlbnRpdHl0b2tlbiI6bnVsbCwicmVnaXN0cnl0b2tlbiI6bnVsbH0="
        );
    }

    #[test]
    fn slash_becomes_underscore_and_decodes_to_the_same_json() {
        let (json, standard) = bollard_header("berth-slash", "s?s?s?");
        assert!(standard.contains('/'), "{standard} should have a /");
        let fixed = header(&fix_registry_auth_header(request_with(&[("X-Registry-Auth", &standard)])));
        assert!(!fixed.contains('+') && !fixed.contains('/'), "{fixed}");
        assert!(fixed.contains('_'), "{fixed}");
        assert_eq!(fixed, standard.replace('/', "_"));
        assert_eq!(URL_SAFE.decode(&fixed).expect("base64url"), json.as_bytes());
    }

    #[test]
    fn padding_is_kept() {
        // 1 and 2 bytes past a multiple of 3: two and one `=`.
        for (json, padding) in [(r#"{"password":"?>?>"}"#, "=="), (r#"{"password":"?>"}"#, "=")] {
            let standard = STANDARD.encode(json);
            assert!(standard.contains('+') && standard.ends_with(padding), "{standard}");
            let fixed = header(&fix_registry_auth_header(request_with(&[("X-Registry-Auth", &standard)])));
            assert_eq!(fixed, standard.replace('+', "-").replace('/', "_"));
            assert!(fixed.ends_with(padding) && !fixed.ends_with(&format!("={padding}")), "{fixed}");
            assert_eq!(URL_SAFE.decode(&fixed).expect("base64url"), json.as_bytes());
        }
    }

    #[test]
    fn a_header_without_plus_or_slash_is_left_as_it_is() {
        let (_, standard) = bollard_header("berth", "s?wordfish");
        assert!(!standard.contains('+') && !standard.contains('/'), "{standard}");
        let fixed = header(&fix_registry_auth_header(request_with(&[("X-Registry-Auth", &standard)])));
        assert_eq!(fixed, standard);
    }

    #[test]
    fn a_request_without_the_header_is_untouched() {
        let before = request_with(&[("Content-Type", "application/json"), ("X-Registry-Config", "a+b/")]);
        let after = fix_registry_auth_header(request_with(&[
            ("Content-Type", "application/json"),
            ("X-Registry-Config", "a+b/"),
        ]));
        assert_eq!(after.method(), before.method());
        assert_eq!(after.uri(), before.uri());
        assert_eq!(after.version(), before.version());
        assert_eq!(after.headers(), before.headers());
    }

    #[test]
    fn other_headers_method_and_uri_are_kept() {
        let (_, standard) = bollard_header("berth-plus", "a~b~c~");
        let request = fix_registry_auth_header(request_with(&[
            ("Content-Type", "application/json"),
            ("X-Registry-Auth", &standard),
            ("User-Agent", "berth-test"),
        ]));
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/images/create?fromImage=x");
        assert_eq!(request.headers().len(), 3);
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.headers()["user-agent"], "berth-test");
        assert_ne!(header(&request), standard);
    }

    #[test]
    fn a_base64url_or_malformed_header_is_left_as_it_is() {
        let (_, standard) = bollard_header("berth-plus", "a~b~c~");
        let once = header(&fix_registry_auth_header(request_with(&[("X-Registry-Auth", &standard)])));
        let twice = header(&fix_registry_auth_header(request_with(&[("X-Registry-Auth", &once)])));
        assert_eq!(twice, once);
        for malformed in ["a+b", "not base64 at all +/", "ab+/=="] {
            let value = header(&fix_registry_auth_header(request_with(&[("X-Registry-Auth", malformed)])));
            assert_eq!(value, malformed);
        }
    }

    #[test]
    fn sensitivity_is_kept() {
        let (_, standard) = bollard_header("berth-slash", "s?s?s?");
        let mut request = request_with(&[]);
        let mut value = HeaderValue::from_str(&standard).expect("ascii");
        value.set_sensitive(true);
        request.headers_mut().insert(REGISTRY_AUTH_HEADER, value);
        let request = fix_registry_auth_header(request);
        assert!(request.headers()[REGISTRY_AUTH_HEADER].is_sensitive());
    }
}
