//! Authentication as middleware, so no handler can forget it and no
//! extractor order matters.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bff_error::{ApiError, ErrorCode};
use bff_resilience::Principal;

use crate::{AuthError, Caller, JwtVerifier};

/// Why a request could not be authenticated.
#[derive(Debug)]
pub enum Unauthenticated {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// A bearer token that failed verification.
    Invalid(AuthError),
}

impl Unauthenticated {
    /// The `401 auth.invalid_token` response, with an RFC 6750 challenge.
    pub fn into_api_error(self) -> ApiError {
        match self {
            Unauthenticated::Missing => ApiError::new(ErrorCode::AuthInvalidToken)
                .with_detail("a bearer access token is required")
                .with_challenge("Bearer"),
            Unauthenticated::NotBearer => {
                ApiError::invalid_token("the Authorization header is not a bearer token")
            }
            Unauthenticated::Invalid(error) => {
                tracing::info!(reason = %error, "rejected access token");
                ApiError::invalid_token(error.public_description())
            }
        }
    }
}

/// Verifies the request's bearer token: the caller and its principal (for
/// token exchange). For middleware that adds its own policy on top.
pub async fn authenticate(
    verifier: &JwtVerifier,
    headers: &HeaderMap,
) -> Result<(Caller, Arc<Principal>), Unauthenticated> {
    let value = headers.get(header::AUTHORIZATION).ok_or(Unauthenticated::Missing)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .ok_or(Unauthenticated::NotBearer)?;
    let caller = verifier.verify(&token).await.map_err(Unauthenticated::Invalid)?;
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
        Err(rejection) => rejection.into_api_error().into_response(),
    }
}
