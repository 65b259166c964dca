//! partner-bff: the Backend-for-Frontend of partner integrations.
//!
//! Partners are machines: they authenticate with OAuth client credentials
//! (audience `partner-bff`), and the partner's identity is its client id,
//! which later issues use for per-partner rate limits. A user's token,
//! even one minted for this audience, is refused (`403`): partner routes
//! act for partners, not people. The contract is versioned in the path
//! (`/partner/v1/...`) and only ever grows within a version.
//!
//! * `GET /partner/v1/products/{id}`: [`routes::product`]

pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bff_auth::{AuthConfig, Caller};
use bff_compose::ComposeConfig;
use bff_downstream::DownstreamConfig;
use bff_error::{ApiError, ErrorCode};
use bff_server::config::Validate;
use bff_server::{Backbone, ServerConfig};
use serde::{Deserialize, Serialize};

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::local(8082),
            auth: AuthConfig::local("partner-bff"),
            downstream: DownstreamConfig::default(),
            compose: ComposeConfig { request_deadline_ms: 300, ..ComposeConfig::default() },
        }
    }
}

impl Validate for Config {
    fn problems(&self) -> Vec<String> {
        bff_server::common_problems(&self.server, &self.auth, &self.downstream, &self.compose)
    }
}

impl bff_server::BffConfig for Config {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

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

/// The complete app: partner routes behind authentication and the edge stack.
pub fn app(backbone: Backbone, server: &ServerConfig) -> Router {
    let readiness = backbone.readiness();
    let authenticate =
        middleware::from_fn_with_state(Arc::clone(&backbone.verifier), bff_auth::require_bearer);
    let routes = Router::new()
        .route("/partner/v1/products/{id}", get(routes::product))
        // Layers run bottom-up: authenticate first, then check the caller kind.
        .route_layer(middleware::from_fn(only_partners))
        .route_layer(authenticate)
        .with_state(backbone);
    bff_server::edge(routes, server, readiness)
}

/// Serves partner-bff on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backbone = Backbone::new("partner-bff", &config.auth, &config.downstream, &config.compose).await?;
    let app = app(backbone, &config.server);
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
    bff_server::serve(listener, app, shutdown, grace).await?;
    Ok(())
}
