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
//! quotas are the shell's `rate_limit` section, with this BFF's defaults.
//!
//! * `GET /partner/v1/products/{id}`: [`routes::product`]
//! * `GET /openapi.json`: this API's OpenAPI document, public

pub mod routes;

use bff_ratelimit::QuotaConfig;
use bff_server::{Backbone, Bff};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This BFF's registry entry: port 8082, client-credentials tokens.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("partner-bff");

/// The partner routes, each routed together with its OpenAPI operation.
fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new().routes(routes!(routes::product))
}

/// partner-bff.
pub fn bff() -> Bff {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "The API of partner integrations. Partners authenticate with OAuth client credentials \
             (audience `partner-bff`); user tokens are refused. Within `/partner/v1` fields are only ever \
             added. Every answer carries `RateLimit-Policy` and `RateLimit`; over quota is `429` with \
             `Retry-After`.",
        )
        .deadline_ms(300)
        .cache()
        // Per-partner quotas (the shell's `rate_limit` section:
        // `PARTNER_BFF__RATE_LIMIT__DEFAULT__REQUESTS=100`).
        .quota("partner", QuotaConfig { requests: 120, window_secs: 60 })
        .quota_for("partner-globex", QuotaConfig { requests: 30, window_secs: 60 })
        .screens(screens)
}
