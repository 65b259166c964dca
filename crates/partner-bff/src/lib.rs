//! partner-bff: the Backend-for-Frontend of partner integrations.
//!
//! Partners are machines: they authenticate with OAuth client credentials
//! (audience `partner-bff`), and the partner's identity is its client id.
//! A user's token, even one minted for this audience, is refused (`403`):
//! partner routes act for partners, not people. Both are the shell's
//! `client-credentials` mode. The contract is versioned in the path
//! (`/partner/v1/...`) and only ever grows within a version.
//!
//! Each partner has a strict quota, shared by every instance through Redis
//! (`bff-ratelimit`): every answer carries `RateLimit-Policy` and
//! `RateLimit`; over quota is `429 rate_limited` with `Retry-After`. The
//! quotas are this BFF's own configuration section, [`Quotas`].
//!
//! * `GET /partner/v1/products/{id}`: [`routes::product`]
//! * `GET /openapi.json`: this API's OpenAPI document, public

pub mod routes;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bff_auth::Caller;
use bff_error::{ApiError, ErrorCode};
use bff_ratelimit::{Limiter, QuotaConfig, RateLimitConfig};
use bff_server::{Backbone, Bff, Section, ShellError, Wrap};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This BFF's registry entry: port 8082, client-credentials tokens.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("partner-bff");

/// Per-partner quotas: the `rate_limit` section
/// (`PARTNER_BFF__RATE_LIMIT__DEFAULT__REQUESTS=100`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quotas(pub RateLimitConfig);

impl Default for Quotas {
    fn default() -> Self {
        Quotas(RateLimitConfig {
            policy: "partner".to_owned(),
            default: QuotaConfig { requests: 120, window_secs: 60 },
            overrides: [("partner-globex".to_owned(), QuotaConfig { requests: 30, window_secs: 60 })].into(),
        })
    }
}

impl Section for Quotas {
    const KEY: &'static str = "rate_limit";

    fn problems(&self) -> Vec<String> {
        self.0.problems()
    }
}

/// The partner routes, each routed together with its OpenAPI operation.
fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new().routes(routes!(routes::product))
}

/// partner-bff.
pub fn bff() -> Bff<Quotas> {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "The API of partner integrations. Partners authenticate with OAuth client credentials \
             (audience `partner-bff`); user tokens are refused. Within `/partner/v1` fields are only ever \
             added. Every answer carries `RateLimit-Policy` and `RateLimit`; over quota is `429` with \
             `Retry-After`.",
        )
        .deadline_ms(300)
        .cache()
        .screens(screens)
        .inside_auth(rate_limit_layer)
}

/// Counts every authenticated request against its partner's quota.
fn rate_limit_layer(quotas: &Quotas, backbone: &Backbone) -> Result<Wrap, ShellError> {
    let limiter = Arc::new(Limiter::new(quotas.0.clone(), backbone.redis.clone()));
    Ok(bff_server::route_layer(middleware::from_fn_with_state(limiter, rate_limit)))
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
