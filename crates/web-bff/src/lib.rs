//! web-bff: the Backend-for-Frontend of the web front end.
//!
//! The browser never holds a token: it logs in through the BFF
//! ([`login`]), which keeps the user's access token in a sealed,
//! `__Host-`, `HttpOnly` cookie ([`session`]). Writes need an allowed
//! `Origin` and the session's CSRF token; CORS is an explicit allow-list
//! with credentials, never `*`.
//!
//! * `GET /auth/login`, `GET /auth/callback`, `GET /auth/session`, `POST /auth/logout`
//! * `GET /v1/home`: [`routes::home`], richer than mobile's.
//! * `POST /v1/cart/items`: [`routes::add_to_cart`], a write with an `Idempotency-Key`.
//! * `GET /openapi.json`: this API's OpenAPI document ([`openapi`]), public.

pub mod login;
pub mod routes;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware;
use bff_auth::{AuthConfig, ExchangeConfig, Secret};
use bff_cache::CacheConfig;
use bff_compose::ComposeConfig;
use bff_downstream::DownstreamConfig;
use bff_redis::RedisConfig;
use bff_server::config::Validate;
use bff_server::{Backbone, BffConfig, ServerConfig};
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::session::{CSRF_HEADER, Origins, Sealer, SessionAuth};

/// The environment prefix: `WEB_BFF__SESSION__COOKIE_KEY=...`.
pub const ENV_PREFIX: &str = "WEB_BFF";

/// The development cookie key. Public: anyone can read this repository.
/// Deployments set `WEB_BFF__SESSION__COOKIE_KEY` (64 random bytes, base64;
/// e.g. `openssl rand -base64 64`).
pub const DEV_COOKIE_KEY: &str =
    "UrQ03kXFDjAlvlRRfzlom13snX5Se+J7XHvN3wDmAX3Z4fRNu9FpmMDS2pTJLhr7qLyqjrpKIY8zJVMY1sAuEw==";

/// Sessions, login and browser-facing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Key sealing the cookies: base64 of at least 64 random bytes.
    pub cookie_key: Secret,
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
        SessionConfig {
            cookie_key: Secret::new(DEV_COOKIE_KEY),
            public_url: "http://127.0.0.1:8080".to_owned(),
            authorize_url: "http://localhost:7000/authorize".to_owned(),
            allowed_origins: vec!["http://127.0.0.1:8080".to_owned(), "http://localhost:8080".to_owned()],
            login_ttl_secs: 600,
        }
    }
}

impl SessionConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(problem) = Sealer::from_base64(self.cookie_key.expose()) {
            problems.push(format!("session.{problem}"));
        }
        for (name, url) in [("public_url", &self.public_url), ("authorize_url", &self.authorize_url)] {
            if !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                problems.push(format!("session.{name} `{url}` is not an http(s) URL"));
            }
        }
        for origin in &self.allowed_origins {
            if origin == "*" || HeaderValue::from_str(origin).is_err() || !origin.starts_with("http") {
                problems.push(format!("session.allowed_origins: `{origin}` is not an origin (never `*`)"));
            }
        }
        problems
    }
}

/// Everything web-bff can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Token verification and exchange (also the OAuth client of the login).
    pub auth: AuthConfig,
    /// Downstream services (the egress allow-list) and their guards.
    pub downstream: DownstreamConfig,
    /// Request deadline and per-component budgets.
    pub compose: ComposeConfig,
    /// Shared state across instances (optional: `$REDIS_URL`).
    pub redis: RedisConfig,
    /// Lifetimes and encryption of cached parts.
    pub cache: CacheConfig,
    /// Sessions and login.
    pub session: SessionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::local(8080),
            auth: AuthConfig::local("web-bff"),
            downstream: DownstreamConfig::default(),
            // A richer page: six parts in parallel, the slowest budget 140 ms.
            compose: ComposeConfig { request_deadline_ms: 350, ..ComposeConfig::default() },
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
            session: SessionConfig::default(),
        }
    }
}

impl Validate for Config {
    fn problems(&self) -> Vec<String> {
        let mut problems = self.common_problems();
        problems.extend(self.session.problems());
        problems
    }
}

bff_server::bff_config!(Config);

/// Handler state.
#[derive(Debug, Clone)]
pub struct WebState {
    /// Clients, verifier, composition settings.
    pub backbone: Backbone,
    /// Seals and opens cookies.
    pub sealer: Sealer,
    /// Session settings.
    pub session: Arc<SessionConfig>,
    /// The OAuth client settings (token endpoint, client id and secret).
    pub exchange: Arc<ExchangeConfig>,
    /// Client for the token endpoint.
    pub http: reqwest::Client,
}

impl WebState {
    /// The registered redirect URI.
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.session.public_url.trim_end_matches('/'))
    }
}

impl FromRef<WebState> for Backbone {
    fn from_ref(state: &WebState) -> Self {
        state.backbone.clone()
    }
}

impl FromRef<WebState> for Arc<ComposeConfig> {
    fn from_ref(state: &WebState) -> Self {
        Arc::clone(&state.backbone.compose)
    }
}

/// Routes without a session: the login flow.
fn public() -> OpenApiRouter<WebState> {
    OpenApiRouter::new().routes(routes!(login::login)).routes(routes!(login::callback))
}

/// Routes behind the session (and, for writes, the CSRF check), each routed
/// together with its OpenAPI operation.
fn private() -> OpenApiRouter<WebState> {
    OpenApiRouter::new()
        .routes(routes!(routes::home))
        .routes(routes!(routes::add_to_cart))
        .routes(routes!(login::session_info))
        .routes(routes!(login::logout))
}

/// The document's skeleton: info and the security schemes.
fn skeleton() -> utoipa::openapi::OpenApi {
    use bff_server::openapi::{cookie, document, header_key};
    document(
        "web-bff",
        env!("CARGO_PKG_VERSION"),
        "The BFF of the web front end. The browser never holds a token: it logs in through \
         `/auth/login` and carries a sealed `HttpOnly` session cookie; writes also need an allowed \
         `Origin` and the session's CSRF token (from `/auth/session`).",
        [
            ("session", cookie(session::SESSION_COOKIE, "The sealed session, set by `/auth/callback`.")),
            ("csrf", header_key("X-CSRF-Token", "The session's CSRF token, from `GET /auth/session`.")),
        ],
    )
}

/// web-bff's OpenAPI document, as served on `/openapi.json` and committed as
/// `openapi/web-bff.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let routes = OpenApiRouter::with_openapi(skeleton()).merge(public()).merge(private());
    bff_server::openapi::finish(routes.into_openapi())
}

/// The complete app.
pub fn app(state: WebState, server: &ServerConfig) -> Router {
    let readiness = state.backbone.readiness();
    let origins = Origins(Arc::new(state.session.allowed_origins.clone()));
    let session_auth =
        SessionAuth { sealer: state.sealer.clone(), verifier: Arc::clone(&state.backbone.verifier) };
    let allowed: Vec<HeaderValue> =
        state.session.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static(CSRF_HEADER),
            HeaderName::from_static(bff_server::extract::IdempotencyKey::HEADER),
            bff_telemetry_request_id(),
        ])
        .expose_headers([bff_telemetry_request_id()]);
    // The document is split off the routers that serve, as in every BFF.
    let (public, public_doc) = OpenApiRouter::with_openapi(skeleton()).merge(public()).split_for_parts();
    let (private, private_doc) = private().split_for_parts();
    let doc = bff_server::openapi::finish(public_doc.merge_from(private_doc));
    let private = private
        // Layers run bottom-up: the session first, then the CSRF check.
        .route_layer(middleware::from_fn_with_state(origins, session::require_csrf))
        .route_layer(middleware::from_fn_with_state(session_auth, session::require_session));
    let routes = public.merge(private).with_state(state).merge(bff_server::openapi::route(&doc));
    // CORS goes around the whole edge: preflights (OPTIONS) must be answered
    // before routing turns them into 405s.
    bff_server::edge(routes, server, readiness).layer(cors)
}

fn bff_telemetry_request_id() -> HeaderName {
    HeaderName::from_static("x-request-id")
}

/// Serves web-bff on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.session.cookie_key.expose() == DEV_COOKIE_KEY {
        tracing::warn!("sealing sessions with the public development key: set WEB_BFF__SESSION__COOKIE_KEY");
    }
    let backbone = Backbone::new("web-bff", config.sections()).await?;
    let sealer = Sealer::from_base64(config.session.cookie_key.expose()).map_err(anyhow::Error::msg)?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(config.auth.exchange.timeout_ms.max(1_000)))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let state = WebState {
        backbone,
        sealer,
        session: Arc::new(config.session.clone()),
        exchange: Arc::new(config.auth.exchange.clone()),
        http,
    };
    let app = app(state, &config.server);
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
    bff_server::serve(listener, app, shutdown, grace).await?;
    Ok(())
}
