//! Authentication as middleware, so no handler can forget it and no
//! extractor order matters.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AuthError, Caller, JwtVerifier, Principal};

/// The bearer token of an `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::MissingCredentials)?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(AuthError::NotBearer)
}

/// Verifies the request's bearer token: the caller and its principal (for
/// token exchange). For middleware that adds its own policy on top.
pub async fn authenticate(
    verifier: &JwtVerifier,
    headers: &HeaderMap,
) -> Result<(Caller, Arc<Principal>), AuthError> {
    let token = bearer_token(headers)?;
    let caller = verifier.verify(token).await?;
    let principal = Arc::new(Principal::new(caller.subject.clone(), token));
    Ok((caller, principal))
}

/// Bearer-token authentication (`route_layer(from_fn_with_state(verifier,
/// require_bearer))`). On success the request carries a [`Caller`] and an
/// `Arc<Principal>` (for token exchange); otherwise it is answered
/// `401 auth.invalid_token` with a `WWW-Authenticate` challenge.
pub async fn require_bearer(
    State(verifier): State<Arc<JwtVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticate(&verifier, request.headers()).await {
        Ok((caller, principal)) => {
            request.extensions_mut().insert(caller);
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(rejection) => rejection.rejection().into_response(),
    }
}
