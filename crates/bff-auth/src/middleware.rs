//! Authentication as middleware, so no handler can forget it and no
//! extractor order matters.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bff_error::{ApiError, ErrorCode};
use bff_resilience::Principal;

use crate::JwtVerifier;

/// Bearer-token authentication (`route_layer(from_fn_with_state(verifier,
/// require_bearer))`). On success the request carries a [`crate::Caller`]
/// and an `Arc<Principal>` (for token exchange); otherwise it is answered
/// `401 auth.invalid_token` with a `WWW-Authenticate` challenge.
pub async fn require_bearer(
    State(verifier): State<Arc<JwtVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return ApiError::new(ErrorCode::AuthInvalidToken)
            .with_detail("a bearer access token is required")
            .with_challenge("Bearer")
            .into_response();
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
    else {
        return ApiError::invalid_token("the Authorization header is not a bearer token").into_response();
    };
    match verifier.verify(&token).await {
        Ok(caller) => {
            let principal = Arc::new(Principal::new(caller.subject.clone(), token));
            request.extensions_mut().insert(caller);
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(reason = %error, "rejected access token");
            ApiError::invalid_token(error.public_description()).into_response()
        }
    }
}
