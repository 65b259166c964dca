//! The `session` authentication mode: the browser logs in through the BFF
//! and carries a sealed cookie, never a token (the web BFF's mode).
//!
//! The BFF runs the authorization-code flow with PKCE as a confidential
//! OAuth client (its registry name is its client id):
//!
//! 1. `GET /auth/login?return_to=/x` makes a `state` and a PKCE verifier,
//!    keeps both in a sealed `__Host-login` cookie and redirects to the
//!    identity provider with the S256 challenge.
//! 2. `GET /auth/callback?code&state` checks `state` against the cookie,
//!    redeems the code through [`bff_auth::IdentityProvider`] (the guarded
//!    egress to the identity provider), verifies the token, and sets the
//!    sealed `__Host-session` cookie.
//! 3. `GET /auth/session` tells the page who is logged in and the CSRF
//!    token writes must carry; `POST /auth/logout` (CSRF-checked) clears the
//!    cookie.
//!
//! Every other route is behind [`bff_auth::session::require_session`] and
//! [`bff_auth::session::require_csrf`]; CORS is an explicit allow-list with
//! credentials, wrapped around the whole edge so preflights are answered
//! before routing.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bff_auth::session::{
    CSRF_HEADER, LOGIN_COOKIE, LoginState, SESSION_COOKIE, Sealer, Session, pkce_challenge, random_token,
    set_cookie,
};
use bff_auth::{AuthError, Caller, IdentityProvider, JwtVerifier, Secret};
use bff_error::{ApiError, Classify as _, ErrorCode};

use crate::extract::Query;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The development cookie key. Public: anyone can read this repository.
/// Deployments set `<PREFIX>__SESSION__COOKIE_KEY` (64 random bytes,
/// base64; e.g. `openssl rand -base64 64`).
pub const DEV_COOKIE_KEY: &str =
    "UrQ03kXFDjAlvlRRfzlom13snX5Se+J7XHvN3wDmAX3Z4fRNu9FpmMDS2pTJLhr7qLyqjrpKIY8zJVMY1sAuEw==";

/// The scopes a login asks for.
const LOGIN_SCOPE: &str = "openid profile cart catalog orders";

/// Sessions, login and browser-facing settings (the `session` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Key sealing the cookies: base64 of at least 64 random bytes.
    pub cookie_key: Secret,
    /// Keys being rotated out: they still open cookies, never seal new
    /// ones. Drop one once the longest session it sealed has expired.
    pub previous_cookie_keys: Vec<Secret>,
    /// How browsers reach this BFF; the OAuth redirect URI is
    /// `<public_url>/auth/callback`.
    pub public_url: String,
    /// The identity provider's authorization endpoint, as browsers reach it.
    pub authorize_url: String,
    /// Origins allowed to make credentialed requests (CORS) and writes (CSRF).
    pub allowed_origins: Vec<String>,
    /// How long a login may take, in seconds.
    pub login_ttl_secs: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig::local(8080)
    }
}

impl SessionConfig {
    /// Local-development settings of a BFF on `port`.
    pub fn local(port: u16) -> Self {
        SessionConfig {
            cookie_key: Secret::new(DEV_COOKIE_KEY),
            previous_cookie_keys: Vec::new(),
            public_url: format!("http://127.0.0.1:{port}"),
            authorize_url: "http://localhost:7000/authorize".to_owned(),
            allowed_origins: vec![format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")],
            login_ttl_secs: 600,
        }
    }

    /// The cookie sealer: `cookie_key` seals, it and `previous_cookie_keys` open.
    pub fn sealer(&self) -> Result<Sealer, AuthError> {
        let previous: Vec<&str> = self.previous_cookie_keys.iter().map(Secret::expose).collect();
        Sealer::from_base64(self.cookie_key.expose())?.with_previous(&previous)
    }

    /// Problems that make this configuration unusable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(AuthError::Config(found)) = self.sealer() {
            problems.extend(found);
        }
        for (name, url) in [("public_url", &self.public_url), ("authorize_url", &self.authorize_url)] {
            if !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                problems.push(format!("{name} `{url}` is not an http(s) URL"));
            }
        }
        for origin in &self.allowed_origins {
            if origin == "*" || HeaderValue::from_str(origin).is_err() || !origin.starts_with("http") {
                problems.push(format!("allowed_origins: `{origin}` is not an origin (never `*`)"));
            }
        }
        problems
    }

    /// The registered redirect URI.
    fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.public_url.trim_end_matches('/'))
    }
}

/// What the login routes share.
#[derive(Debug, Clone)]
pub(crate) struct SessionState {
    pub(crate) sealer: Sealer,
    pub(crate) config: Arc<SessionConfig>,
    pub(crate) provider: Arc<IdentityProvider>,
    pub(crate) verifier: Arc<JwtVerifier>,
    /// Outside local development ([`crate::config::ServerConfig::is_deployed`]):
    /// the landing page then says nothing of local tooling.
    pub(crate) deployed: bool,
    /// The BFF's registry entry: the landing page names it and its home screen.
    pub(crate) entry: &'static bff_registry::Bff,
}

/// The login routes and the landing page (no session needed), each routed
/// with its OpenAPI operation.
pub(crate) fn public_routes() -> OpenApiRouter<SessionState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(callback)).routes(routes!(landing))
}

/// The session routes (behind the session; logout also behind CSRF).
pub(crate) fn private_routes() -> OpenApiRouter<SessionState> {
    OpenApiRouter::new().routes(routes!(session_info)).routes(routes!(logout))
}

/// The CORS layer of a session BFF: its allowed origins, with credentials.
pub(crate) fn cors(config: &SessionConfig) -> CorsLayer {
    let allowed: Vec<HeaderValue> =
        config.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let request_id = HeaderName::from_static("x-request-id");
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static(CSRF_HEADER),
            HeaderName::from_static(crate::extract::IdempotencyKey::HEADER),
            request_id.clone(),
        ])
        .expose_headers([request_id])
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Only local paths: an open redirect would let any site bounce users
/// through our login to a page of theirs.
fn local_path(return_to: Option<&str>) -> String {
    return_to.and_then(same_origin_path).unwrap_or_else(|| "/".to_owned())
}

/// The origin `return_to` is resolved against. Any would do: the check is
/// that resolving cannot leave it, and only the path is kept.
const PROBE_ORIGIN: &str = "https://bff.invalid/";

/// `raw` (already decoded once from the query) as a path on our own origin,
/// or `None`. A browser drops tabs and newlines while parsing and reads `\`
/// as `/`, so `/\t/evil.example` lands on `//evil.example`: a path with a
/// control character, a backslash or a leading `//` is refused, and so is
/// one that would be after one more decoding (`/%09/evil`, `/%2F%2Fevil`) or
/// that hides a separator in an encoding (`%2F`, `%5C`). What passes is
/// resolved as a browser would (WHATWG URL parsing) and kept only if the
/// origin is still ours; the answer is the parser's own serialization of the
/// path, query and fragment, never the caller's bytes.
fn same_origin_path(raw: &str) -> Option<String> {
    if raw.len() > 512 {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
    let unsafe_path = |path: &str| {
        !path.starts_with('/') || path.starts_with("//") || path.chars().any(|c| c == '\\' || c.is_control())
    };
    if unsafe_path(raw) || unsafe_path(&decoded) || decoded.matches('/').count() != raw.matches('/').count() {
        return None;
    }
    let origin = reqwest::Url::parse(PROBE_ORIGIN).ok()?;
    let resolved = origin.join(raw).ok()?;
    if resolved.origin() != origin.origin() {
        return None;
    }
    let path = &resolved[url::Position::BeforePath..];
    // Dot segments can collapse to `//` (`/.//evil`): a protocol-relative
    // reference on the way out.
    if path.starts_with("//") {
        return None;
    }
    Some(path.to_owned())
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
pub(crate) async fn login(State(web): State<SessionState>, Query(query): Query<LoginQuery>) -> Response {
    let login = LoginState {
        state: random_token(),
        verifier: random_token(),
        return_to: local_path(query.return_to.as_deref()),
    };
    let challenge = pkce_challenge(&login.verifier);
    let Ok(mut url) = reqwest::Url::parse(&web.config.authorize_url) else {
        return ApiError::new(ErrorCode::Internal).into_response();
    };
    {
        let mut pairs = url.query_pairs_mut();
        pairs
            .append_pair("response_type", "code")
            .append_pair("client_id", web.provider.client_id())
            .append_pair("redirect_uri", &web.config.redirect_uri())
            .append_pair("scope", LOGIN_SCOPE)
            .append_pair("state", &login.state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = query.login_hint.as_deref().filter(|h| h.len() <= 64) {
            pairs.append_pair("login_hint", hint);
        }
    }
    let sealed = web.sealer.seal(LOGIN_COOKIE, &login);
    redirect(url.as_str(), &[set_cookie(LOGIN_COOKIE, &sealed, web.config.login_ttl_secs)])
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

/// `GET /auth/callback`: finish the flow and open the session.
#[utoipa::path(
    get,
    path = "/auth/callback",
    tag = "session",
    operation_id = "loginCallback",
    summary = "Finish a login and open the session",
    params(
        CallbackQuery,
        ("__Host-login" = String, Cookie,
            description = "The sealed login state that `GET /auth/login` set in this browser: only a login \
                started here, within `login_ttl_secs`, can finish here. Without it, or with one this BFF \
                did not seal, the answer is `400 request.invalid`."),
    ),
    responses(
        (status = 303, description = "Back to `return_to`; sets the sealed `__Host-session` cookie.",
            headers(("Location" = String), ("Set-Cookie" = String))),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
    )
)]
pub(crate) async fn callback(
    State(web): State<SessionState>,
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
    let issued = match web.provider.redeem_code(&code, &web.config.redirect_uri(), &login.verifier).await {
        Ok(issued) => issued,
        Err(AuthError::GrantRefused { .. }) => {
            return invalid("the login code was refused: start again at /auth/login");
        }
        Err(error) => {
            tracing::warn!(%error, "could not redeem the login code");
            return ApiError::from_failure(error.failure()).into_response();
        }
    };
    if let Err(error) = web.verifier.verify(&issued.access_token).await {
        tracing::warn!(%error, "the identity provider issued a token we cannot verify");
        return ApiError::new(ErrorCode::AuthInvalidToken).into_response();
    }
    let lifetime = issued.expires_in.unwrap_or(0);
    let session =
        Session { token: issued.access_token, csrf: random_token(), expires_at: now_secs() + lifetime };
    let sealed = web.sealer.seal(SESSION_COOKIE, &session);
    redirect(
        &login.return_to,
        &[set_cookie(SESSION_COOKIE, &sealed, lifetime), set_cookie(LOGIN_COOKIE, "", 0)],
    )
}

/// `GET /`: where a login without `return_to` lands. A session BFF serves
/// JSON to its front end, which a deployment serves from its own origin or
/// routes `/` to; without one (local development) a login must still land
/// on a page, not on a `404` problem. Rendered here, with no script: who is
/// signed in (the session cookie, opened and its token verified as any
/// request's), the screens to try, and, in local development, the dev
/// console of `cargo xtask dev`.
#[utoipa::path(
    get,
    path = "/",
    tag = "session",
    operation_id = "landing",
    summary = "The page a login lands on: who is signed in, and where to go next",
    responses(
        (status = 200, description = "A small HTML page (never cached: it names the signed-in user).",
            content_type = "text/html", body = String),
    )
)]
pub(crate) async fn landing(State(web): State<SessionState>, headers: HeaderMap) -> Response {
    let mut subject = None;
    if let Some(session) = web.sealer.open::<Session>(&headers, SESSION_COOKIE)
        && session.expires_at > now_secs()
    {
        subject = web.verifier.verify(&session.token).await.ok().map(|caller| caller.subject);
    }
    let mut body = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed in</title>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>\n",
    );
    match &subject {
        Some(subject) => {
            body += &format!(
                "<h1>Signed in as <span id=\"subject\">{}</span></h1>\n\
                 <p>{name} answers its front end's screens in JSON: \
                 <a href=\"{home}\">{home}</a>, <a href=\"/auth/session\">/auth/session</a> \
                 (the CSRF token your writes send), <a href=\"/openapi.json\">/openapi.json</a> (every route).</p>\n\
                 <p>Sign out with <code>POST /auth/logout</code> (with the CSRF token).</p>\n",
                html_escape(subject),
                name = web.entry.name,
                // Its registry smoke request: the screen a signed-in caller sees first.
                home = web.entry.smoke.path,
            );
        }
        None => {
            body += "<h1>Not signed in</h1>\n<p><a id=\"login\" href=\"/auth/login\">Sign in</a> \
                     (the identity provider sends you back here).</p>\n";
        }
    }
    if !web.deployed {
        let console = format!("http://127.0.0.1:{}", bff_registry::DEV_CONSOLE_PORT);
        body += &format!(
            "<p>Local development: the dev console of <code>cargo xtask dev</code>, \
             <a href=\"{console}/?client={client}\">{console}</a>, shows every screen as tiles and flips \
             the mocks' faults.</p>\n",
            client = web.entry.short_name(),
        );
    }
    body += "</body></html>\n";
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    response
}

/// Text as HTML text.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
pub(crate) async fn session_info(caller: Caller, session: axum::Extension<Session>) -> Response {
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
pub(crate) async fn logout() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_return_paths_are_kept() {
        assert_eq!(local_path(Some("/orders?page=2")), "/orders?page=2");
        assert_eq!(local_path(Some("/orders?page=2#top")), "/orders?page=2#top");
        assert_eq!(
            local_path(Some("/a b/c")),
            "/a%20b/c",
            "the parser's serialization, not the caller's bytes"
        );
        assert_eq!(local_path(Some("/shop/../account")), "/account");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            // What the attacker's run found: `/%09/evil.example` in the query.
            "/\t/evil.example",
            "/\r\nLocation: https://evil.example",
            // One more decoding away from the same.
            "/%09/evil.example",
            "/%2F/evil.example",
            "/%5Cevil.example",
            "/%2f%2fevil.example",
            // Dot segments that collapse into `//`.
            "/.//evil.example",
            "/x/..//evil.example",
            "",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    /// Pieces an attacker combines: separators, encodings of them, controls,
    /// dot segments, scheme and authority characters.
    fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pieces = prop::sample::select(vec![
            "/",
            "//",
            "\\",
            "\t",
            "\r",
            "\n",
            "\0",
            " ",
            ".",
            "..",
            "%",
            "%2F",
            "%2f",
            "%5C",
            "%09",
            "%0A",
            "%0d",
            "%00",
            "%25",
            "%2e",
            ":",
            "@",
            "?",
            "#",
            "evil.example",
            "http:",
            "https:",
            "javascript:",
            "a",
            "\u{3000}",
            "\u{feff}",
            "\u{85}",
            "\u{2028}",
            "ﬀ",
            "％２Ｆ",
        ]);
        prop::collection::vec(pieces, 0..10).prop_map(|parts| parts.concat())
    }

    /// A leading `/` (what gets past the first check) and a few pieces from a
    /// small alphabet, so that short dangerous sequences (`/.//evil`,
    /// `/x/..//evil`, `/%2F/evil`) come up thousands of times per run.
    fn almost_local() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pieces =
            prop::sample::select(vec!["/", ".", "..", "x", "evil.example", "%2F", "\\", "\t", "%09", "@"]);
        prop::collection::vec(pieces, 1..7).prop_map(|parts| format!("/{}", parts.concat()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// Whatever comes in, the redirect resolved by a real URL parser
        /// against our origin stays on our origin.
        #[test]
        fn a_return_path_never_changes_the_origin(raw in proptest::prop_oneof![almost_local(), hostile(), ".*"]) {
            let origin = reqwest::Url::parse("https://web.example/").expect("origin");
            let path = local_path(Some(&raw));
            let landed = origin.join(&path).expect("a kept path resolves");
            proptest::prop_assert_eq!(landed.origin(), origin.origin(), "{:?} became {:?}", raw, path);
            proptest::prop_assert!(path.starts_with('/') && !path.starts_with("//"), "{:?}", path);
            proptest::prop_assert!(!path.chars().any(|c| c == '\\' || c.is_control()), "{:?}", path);
            proptest::prop_assert!(axum::http::HeaderValue::from_str(&path).is_ok(), "{:?}", path);
        }
    }

    #[test]
    fn local_defaults_follow_the_port_and_are_valid() {
        let config = SessionConfig::local(9090);
        assert_eq!(config.redirect_uri(), "http://127.0.0.1:9090/auth/callback");
        assert_eq!(config.problems(), Vec::<String>::new());
        let bad = SessionConfig { allowed_origins: vec!["*".to_owned()], ..config };
        assert_eq!(bad.problems().len(), 1, "{:?}", bad.problems());
    }
}
