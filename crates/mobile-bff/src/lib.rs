//! mobile-bff: the Backend-for-Frontend of the mobile app.
//!
//! One call per screen, small UI-shaped payloads, `ETag`/`304` and gzip.
//! Callers authenticate with an OAuth bearer JWT (audience `mobile-bff`).
//! Screens:
//!
//! * `GET /v1/home`: [`routes::home`]
//! * `GET /v1/product-page/{id}`: [`routes::product_page`]
//! * `GET /openapi.json`: this API's OpenAPI document ([`openapi`]), public
//!
//! Everything operational (config, edge middleware, shutdown) comes from
//! `bff-server`; resilience, telemetry and composition from their crates.
//! This crate holds only screens: recipes and view models.

pub mod routes;
mod view;

use std::sync::Arc;

use axum::Router;
use bff_auth::AuthConfig;
use bff_cache::CacheConfig;
use bff_compose::ComposeConfig;
use bff_downstream::DownstreamConfig;
use bff_redis::RedisConfig;
use bff_server::config::Validate;
use bff_server::{Backbone, BffConfig, ServerConfig};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The environment prefix: `MOBILE_BFF__SERVER__PORT=9000`, and
/// `MOBILE_BFF_CONFIG=path.toml` for a file.
pub const ENV_PREFIX: &str = "MOBILE_BFF";

/// Everything mobile-bff can be configured with. Defaults run against the
/// local mocks; see `README.md` for the environment overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Caller authentication.
    pub auth: AuthConfig,
    /// Downstream services (the egress allow-list) and their guards.
    pub downstream: DownstreamConfig,
    /// Request deadline and per-component budgets.
    pub compose: ComposeConfig,
    /// Shared state across instances (optional: `$REDIS_URL`).
    pub redis: RedisConfig,
    /// Lifetimes and encryption of cached parts.
    pub cache: CacheConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::local(8081),
            auth: AuthConfig::local("mobile-bff"),
            downstream: DownstreamConfig::default(),
            // Parts run in parallel: the slowest default dependency timeout
            // (140 ms) plus headroom for our own work.
            compose: ComposeConfig { request_deadline_ms: 250, ..ComposeConfig::default() },
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

impl Validate for Config {
    fn problems(&self) -> Vec<String> {
        self.common_problems()
    }
}

bff_server::bff_config!(Config);

/// The screens, each routed together with its OpenAPI operation: a handler
/// cannot be served without being documented.
fn screens() -> OpenApiRouter<Backbone> {
    let doc = bff_server::openapi::document(
        "mobile-bff",
        env!("CARGO_PKG_VERSION"),
        "The BFF of the mobile app: one small, UI-shaped payload per screen, with `ETag`/`304` and gzip. \
         Composed screens answer with an envelope whose `components` say which optional parts are \
         missing; a missing critical part is a `503`/`504` problem.",
        [(
            "bearer",
            bff_server::openapi::bearer_jwt("An access token of the mobile app (audience `mobile-bff`)."),
        )],
    );
    OpenApiRouter::with_openapi(doc).routes(routes!(routes::home)).routes(routes!(routes::product_page))
}

/// mobile-bff's OpenAPI document, as served on `/openapi.json` and committed
/// as `openapi/mobile-bff.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    bff_server::openapi::finish(screens().into_openapi())
}

/// The complete app: screens behind authentication and the edge stack.
pub fn app(backbone: Backbone, server: &ServerConfig) -> Router {
    let readiness = backbone.readiness();
    let authenticate =
        axum::middleware::from_fn_with_state(Arc::clone(&backbone.verifier), bff_auth::require_bearer);
    let (screens, doc) = screens().split_for_parts();
    let routes = screens
        .route_layer(authenticate)
        // Phones pay for bytes: conditional GETs (ETag/304) on every screen.
        .route_layer(axum::middleware::from_fn(bff_server::conditional::conditional_get))
        .with_state(backbone)
        .merge(bff_server::openapi::route(&bff_server::openapi::finish(doc)));
    // ...and gzip when the app accepts it (outermost, after the ETag is taken).
    bff_server::edge(routes, server, readiness).layer(tower_http::compression::CompressionLayer::new())
}

/// Serves mobile-bff on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backbone = Backbone::new("mobile-bff", config.sections()).await?;
    let app = app(backbone, &config.server);
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
    bff_server::serve(listener, app, shutdown, grace).await?;
    Ok(())
}
