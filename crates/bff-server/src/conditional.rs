//! Conditional GETs: an `ETag` on every successful `GET`, and `304 Not
//! Modified` (no body) when the client already has that representation.
//! For clients that pay for every byte (mobile); opt in per BFF.
//!
//! The tag is a hash of the body, computed after the response is built, so
//! it needs no cooperation from handlers and is right by construction. It is
//! weak (`W/"..."`) because compression may sit outside this layer and change
//! the bytes, not the meaning. `Cache-Control: private, no-cache` makes
//! clients revalidate every time: responses are personal and short-lived.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bff_error::{ApiError, ErrorCode};
use sha2::{Digest, Sha256};

/// Bodies above this are passed through untagged rather than buffered.
const MAX_TAGGED_BYTES: usize = 1024 * 1024;

/// The middleware (`axum::middleware::from_fn(conditional_get)`).
pub async fn conditional_get(request: Request, next: Next) -> Response {
    tagged(request, next, Some("private, no-cache")).await
}

/// The same for a public, anonymous operation: the tag and `304`, and the
/// handler's own `Cache-Control` (`public, max-age=..`) kept, so a CDN can
/// hold and revalidate it.
pub async fn conditional_public(request: Request, next: Next) -> Response {
    tagged(request, next, None).await
}

/// Tags a `200` to a `GET`; `cache_control` replaces the handler's, if given.
async fn tagged(request: Request, next: Next, cache_control: Option<&'static str>) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_TAGGED_BYTES).await else {
        // Too large to tag (or a broken body): an error, said as every
        // error is (a problem body), rather than a guessed tag.
        tracing::error!(limit = MAX_TAGGED_BYTES, "response body too large to tag or unreadable");
        return ApiError::new(ErrorCode::Internal).into_response();
    };
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let etag = format!("W/\"{hex}\"");
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|candidate| weak_eq(candidate.trim(), &etag)));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        parts.headers.insert(header::ETAG, value);
    }
    if let Some(cache_control) = cache_control {
        parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    }
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// RFC 9110 weak comparison: `W/` prefixes are ignored; `*` matches.
fn weak_eq(candidate: &str, etag: &str) -> bool {
    candidate == "*" || candidate.trim_start_matches("W/") == etag.trim_start_matches("W/")
}

#[cfg(test)]
mod tests {
    use super::weak_eq;

    #[test]
    fn weak_comparison_ignores_the_weak_prefix() {
        assert!(weak_eq("W/\"abc\"", "W/\"abc\""));
        assert!(weak_eq("\"abc\"", "W/\"abc\""));
        assert!(weak_eq("*", "W/\"abc\""));
        assert!(!weak_eq("W/\"abd\"", "W/\"abc\""));
    }
}
