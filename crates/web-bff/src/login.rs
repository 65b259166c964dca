//! The login flow: authorization code with PKCE, run by the BFF on the
//! browser's behalf (the BFF is a confidential OAuth client; the browser
//! only ever holds sealed cookies).
//!
//! 1. `GET /auth/login?return_to=/x` makes a `state` and a PKCE verifier,
//!    keeps both in a sealed `__Host-login` cookie and redirects to the
//!    identity provider with the S256 challenge.
//! 2. `GET /auth/callback?code&state` checks `state` against the cookie,
//!    redeems the code with the verifier and the client secret, verifies the
//!    token, and sets the sealed `__Host-session` cookie.
//! 3. `POST /auth/logout` (CSRF-checked) clears it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_auth::Caller;
use bff_error::{ApiError, ErrorCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::WebState;
use crate::session::{LOGIN_COOKIE, LoginState, SESSION_COOKIE, Session, random_token, set_cookie};

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Only local paths: an open redirect would let any site bounce users
/// through our login to a page of theirs.
fn local_path(return_to: Option<&str>) -> String {
    match return_to {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.len() <= 512 =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Query of `/auth/login`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// A local path to land on after the login (anything else lands on `/`).
    return_to: Option<String>,
    /// Passed to the identity provider (the mock logs in that seeded user).
    login_hint: Option<String>,
}

/// `GET /auth/login`: start the flow.
#[utoipa::path(
    get,
    path = "/auth/login",
    tag = "session",
    operation_id = "login",
    summary = "Start a login (authorization code + PKCE, run by the BFF)",
    params(LoginQuery),
    responses(
        (status = 303, description = "To the identity provider; sets the short-lived `__Host-login` cookie.",
            headers(("Location" = String), ("Set-Cookie" = String))),
    )
)]
pub async fn login(State(web): State<WebState>, Query(query): Query<LoginQuery>) -> Response {
    let login = LoginState {
        state: random_token(),
        verifier: random_token(),
        return_to: local_path(query.return_to.as_deref()),
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(login.verifier.as_bytes()));
    let Ok(mut url) = reqwest::Url::parse(&web.session.authorize_url) else {
        return ApiError::new(ErrorCode::Internal).into_response();
    };
    {
        let mut pairs = url.query_pairs_mut();
        pairs
            .append_pair("response_type", "code")
            .append_pair("client_id", &web.exchange.client_id)
            .append_pair("redirect_uri", &web.redirect_uri())
            .append_pair("scope", "openid profile cart catalog orders")
            .append_pair("state", &login.state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = query.login_hint.as_deref().filter(|h| h.len() <= 64) {
            pairs.append_pair("login_hint", hint);
        }
    }
    let sealed = web.sealer.seal(LOGIN_COOKIE, &login);
    redirect(url.as_str(), &[set_cookie(LOGIN_COOKIE, &sealed, web.session.login_ttl_secs)])
}

/// A `303 See Other` with cookies.
fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Query of `/auth/callback`, as sent by the identity provider.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// Must match the login's state.
    state: Option<String>,
    /// Set when the identity provider refused the login.
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// `GET /auth/callback`: finish the flow and open the session.
#[utoipa::path(
    get,
    path = "/auth/callback",
    tag = "session",
    operation_id = "loginCallback",
    summary = "Finish a login and open the session",
    params(CallbackQuery),
    responses(
        (status = 303, description = "Back to `return_to`; sets the sealed `__Host-session` cookie.",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
    )
)]
pub async fn callback(
    State(web): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let invalid =
        |detail: &'static str| ApiError::new(ErrorCode::RequestInvalid).with_detail(detail).into_response();
    let Some(login) = web.sealer.open::<LoginState>(&headers, LOGIN_COOKIE) else {
        return invalid("the login expired or was not started here: start again at /auth/login");
    };
    if query.state.as_deref() != Some(login.state.as_str()) {
        return invalid("the login state does not match: start again at /auth/login");
    }
    if let Some(error) = query.error {
        tracing::info!(%error, "identity provider refused the login");
        return invalid("the identity provider refused the login");
    }
    let Some(code) = query.code else { return invalid("the callback carries no code") };
    let response = web
        .http
        .post(&web.exchange.token_url)
        .basic_auth(&web.exchange.client_id, Some(web.exchange.client_secret.expose()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", web.redirect_uri().as_str()),
            ("code_verifier", login.verifier.as_str()),
        ])
        .send()
        .await;
    let tokens: TokenResponse = match response {
        Ok(response) if response.status().is_success() => match response.json().await {
            Ok(tokens) => tokens,
            Err(error) => {
                tracing::warn!(%error, "unreadable token response");
                return ApiError::new(ErrorCode::DependencyUnavailable).into_response();
            }
        },
        Ok(response) if response.status() == StatusCode::BAD_REQUEST => {
            return invalid("the login code was refused: start again at /auth/login");
        }
        Ok(response) => {
            tracing::warn!(status = %response.status(), "token endpoint failed");
            return ApiError::new(ErrorCode::DependencyUnavailable).into_response();
        }
        Err(error) => {
            tracing::warn!(%error, "token endpoint unreachable");
            return ApiError::new(ErrorCode::DependencyUnavailable)
                .with_retry_after(Duration::from_secs(1))
                .into_response();
        }
    };
    if let Err(error) = web.backbone.verifier.verify(&tokens.access_token).await {
        tracing::warn!(%error, "the identity provider issued a token we cannot verify");
        return ApiError::new(ErrorCode::AuthInvalidToken).into_response();
    }
    let session = Session {
        token: tokens.access_token,
        csrf: random_token(),
        expires_at: now_secs() + tokens.expires_in,
    };
    let sealed = web.sealer.seal(SESSION_COOKIE, &session);
    redirect(
        &login.return_to,
        &[set_cookie(SESSION_COOKIE, &sealed, tokens.expires_in), set_cookie(LOGIN_COOKIE, "", 0)],
    )
}

/// `GET /auth/session`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionVm {
    /// The logged-in user.
    #[schema(examples("u-2"))]
    pub subject: String,
    /// Send it as `X-CSRF-Token` on every write.
    pub csrf_token: String,
    /// When the session ends (Unix seconds).
    pub expires_at: u64,
}

/// `GET /auth/session`: who is logged in, and the CSRF token the page must
/// send on writes.
#[utoipa::path(
    get,
    path = "/auth/session",
    tag = "session",
    operation_id = "session",
    summary = "The current session and its CSRF token",
    security(("session" = [])),
    responses(
        (status = 200, description = "The session.", body = SessionVm),
        (status = 401, response = bff_error::openapi::Unauthenticated),
    )
)]
pub async fn session_info(caller: Caller, session: axum::Extension<Session>) -> Response {
    let vm = SessionVm {
        subject: caller.subject,
        csrf_token: session.csrf.clone(),
        expires_at: session.expires_at,
    };
    let mut response = Json(vm).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /auth/logout`: clears the session cookie.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "session",
    operation_id = "logout",
    summary = "End the session",
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 204, description = "The session cookie is cleared.", headers(("Set-Cookie" = String))),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
    )
)]
pub async fn logout() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_return_paths_are_kept() {
        assert_eq!(local_path(Some("/orders?page=2")), "/orders?page=2");
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "evil"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }
}
