//! partner-bff: the Backend-for-Frontend of partner integrations.
//!
//! Partners are machines: they authenticate with OAuth client credentials
//! (audience `partner-bff`), and the partner's identity is its client id,
//! which later issues use for per-partner rate limits. A user's token,
//! even one minted for this audience, is refused (`403`): partner routes
//! act for partners, not people. The contract is versioned in the path
//! (`/partner/v1/...`) and only ever grows within a version.
//!
//! Each partner has a strict quota, shared by every instance through Redis
//! (`bff-ratelimit`): every answer carries `RateLimit-Policy` and
//! `RateLimit`; over quota is `429 rate_limited` with `Retry-After`.
//!
//! * `GET /partner/v1/products/{id}`: [`routes::product`]
//! * `GET /openapi.json`: this API's OpenAPI document ([`openapi`]), public

pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bff_auth::{AuthConfig, Caller};
use bff_cache::CacheConfig;
use bff_compose::ComposeConfig;
use bff_downstream::DownstreamConfig;
use bff_error::{ApiError, ErrorCode};
use bff_ratelimit::{Limiter, QuotaConfig, RateLimitConfig};
use bff_redis::RedisConfig;
use bff_server::config::Validate;
use bff_server::{Backbone, BffConfig, ServerConfig};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The environment prefix: `PARTNER_BFF__SERVER__PORT=9000`.
pub const ENV_PREFIX: &str = "PARTNER_BFF";

/// Everything partner-bff can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Caller authentication and token exchange.
    pub auth: AuthConfig,
    /// Downstream services (the egress allow-list) and their guards.
    pub downstream: DownstreamConfig,
    /// Request deadline and per-component budgets.
    pub compose: ComposeConfig,
    /// Shared state across instances (rate-limit counters).
    pub redis: RedisConfig,
    /// Lifetimes and encryption of cached parts.
    pub cache: CacheConfig,
    /// Per-partner quotas.
    pub rate_limit: RateLimitConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::local(8082),
            auth: AuthConfig::local("partner-bff"),
            downstream: DownstreamConfig::default(),
            compose: ComposeConfig { request_deadline_ms: 300, ..ComposeConfig::default() },
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
            rate_limit: RateLimitConfig {
                policy: "partner".to_owned(),
                default: QuotaConfig { requests: 120, window_secs: 60 },
                overrides: [("partner-globex".to_owned(), QuotaConfig { requests: 30, window_secs: 60 })]
                    .into(),
            },
        }
    }
}

impl Validate for Config {
    fn problems(&self) -> Vec<String> {
        let mut problems = self.common_problems();
        problems.extend(self.rate_limit.problems().into_iter().map(|p| format!("rate_limit.{p}")));
        problems
    }
}

bff_server::bff_config!(Config);

/// Lets through only client-credentials callers (the subject is the client).
async fn only_partners(caller: Caller, request: Request, next: Next) -> Response {
    if caller.is_client() {
        next.run(request).await
    } else {
        tracing::info!(subject = %caller.subject, "user token on a partner route");
        ApiError::new(ErrorCode::AuthForbidden)
            .with_detail("partner routes accept client-credentials tokens only")
            .into_response()
    }
}

/// Counts the request against the partner's quota; adds the `RateLimit`
/// headers to every answer and refuses over-quota requests with `429`.
async fn rate_limit(
    State(limiter): State<Arc<Limiter>>,
    caller: Caller,
    request: Request,
    next: Next,
) -> Response {
    let decision = limiter.check(&caller.subject).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        tracing::info!(partner = %caller.subject, "over quota");
        ApiError::new(ErrorCode::RateLimited)
            .with_detail("the partner's request quota is used up")
            .into_response()
    };
    for (name, value) in decision.headers() {
        response.headers_mut().insert(name, value);
    }
    response
}

/// The partner routes, each routed together with its OpenAPI operation.
fn partner_routes() -> OpenApiRouter<Backbone> {
    let doc = bff_server::openapi::document(
        "partner-bff",
        env!("CARGO_PKG_VERSION"),
        "The API of partner integrations. Partners authenticate with OAuth client credentials \
         (audience `partner-bff`); user tokens are refused. Within `/partner/v1` fields are only ever \
         added. Every answer carries `RateLimit-Policy` and `RateLimit`; over quota is `429` with \
         `Retry-After`.",
        [(
            "bearer",
            bff_server::openapi::bearer_jwt("A client-credentials access token (audience `partner-bff`)."),
        )],
    );
    OpenApiRouter::with_openapi(doc).routes(routes!(routes::product))
}

/// partner-bff's OpenAPI document, as served on `/openapi.json` and
/// committed as `openapi/partner-bff.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    bff_server::openapi::finish(partner_routes().into_openapi())
}

/// The complete app: partner routes behind authentication, the partner
/// check, the rate limit and the edge stack.
pub fn app(backbone: Backbone, limiter: Arc<Limiter>, server: &ServerConfig) -> Router {
    let readiness = backbone.readiness();
    let authenticate =
        middleware::from_fn_with_state(Arc::clone(&backbone.verifier), bff_auth::require_bearer);
    let (routes, doc) = partner_routes().split_for_parts();
    let routes = routes
        // Layers run bottom-up: authenticate, check the caller kind, count.
        .route_layer(middleware::from_fn_with_state(limiter, rate_limit))
        .route_layer(middleware::from_fn(only_partners))
        .route_layer(authenticate)
        .with_state(backbone)
        .merge(bff_server::openapi::route(&bff_server::openapi::finish(doc)));
    bff_server::edge(routes, server, readiness)
}

/// Serves partner-bff on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backbone = Backbone::new("partner-bff", config.sections()).await?;
    let limiter = Arc::new(Limiter::new(config.rate_limit.clone(), backbone.redis.clone()));
    let app = app(backbone, limiter, &config.server);
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
    bff_server::serve(listener, app, shutdown, grace).await?;
    Ok(())
}
