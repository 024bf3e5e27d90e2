//! The bearer token: over TCP, every call that is not a read (`GET`, `HEAD`) needs
//! `Authorization: Bearer <token>`. The unix socket's file mode is its access control.

use super::{Access, ApiError};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Let the request through, or answer 401.
pub async fn check(State(access): State<Access>, request: Request, next: Next) -> Response {
    let Access::Token(token) = &access else { return next.run(request).await };
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if same(given.trim().as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "the bearer token is wrong").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "calls that change anything over TCP need 'Authorization: Bearer <token>' (the token is in the data \
             directory's token file)",
        )
        .into_response(),
    }
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
}
