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

pub mod catalogue;
pub mod routes;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use bff_ratelimit::QuotaConfig;
use bff_server::deprecation::Notice;
use bff_server::{Backbone, Bff, Section, ShellError, Wrap};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This BFF's registry entry: port 8082, client-credentials tokens.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("partner-bff");

/// The API versions served and what retiring ones tell partners: the
/// `api_versions` section (`PARTNER_BFF__API_VERSIONS__V1__SUNSET=2027-09-30`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiVersions {
    /// `/partner/v1`'s deprecation, sent on every v1 answer (`Deprecation`,
    /// `Sunset`, `Link` to the migration notes); none while it is current.
    pub v1: Option<Notice>,
}

impl Default for ApiVersions {
    fn default() -> Self {
        ApiVersions {
            v1: Some(Notice {
                since: "2026-12-01".to_owned(),
                sunset: "2027-06-30".to_owned(),
                link: "https://developer.example.com/partner/v2-migration".to_owned(),
            }),
        }
    }
}

impl Section for ApiVersions {
    const KEY: &'static str = "api_versions";

    fn problems(&self) -> Vec<String> {
        self.v1
            .as_ref()
            .map(|notice| notice.problems().into_iter().map(|p| format!("v1.{p}")).collect())
            .unwrap_or_default()
    }
}

/// The partner routes, each routed together with its OpenAPI operation.
fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new()
        .routes(routes!(routes::product))
        .routes(routes!(catalogue::list_v1))
        .routes(routes!(catalogue::batch_get_v1))
        .routes(routes!(catalogue::product_v2))
        .routes(routes!(catalogue::list_v2))
}

/// partner-bff.
pub fn bff() -> Bff<ApiVersions> {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "The API of partner integrations. Partners authenticate with OAuth client credentials \
             (audience `partner-bff`); user tokens are refused. Within a version (`/partner/v1`, \
             `/partner/v2`) fields are only ever added. `v1` is deprecated: every v1 answer carries \
             `Deprecation`, `Sunset` and a `Link` to the migration notes. Every answer carries \
             `RateLimit-Policy` and `RateLimit`; over quota is `429` with `Retry-After`; a page costs 5 \
             requests of the quota, a batch 10, anything else 1.",
        )
        .deadline_ms(300)
        .cache()
        // Per-partner quotas (the shell's `rate_limit` section:
        // `PARTNER_BFF__RATE_LIMIT__DEFAULT__REQUESTS=100`), and what the
        // heavier operations cost against them.
        .quota("partner", QuotaConfig { requests: 120, window_secs: 60 })
        .quota_for("partner-globex", QuotaConfig { requests: 30, window_secs: 60 })
        .cost("GET /partner/v1/products", 5)
        .cost("GET /partner/v2/products", 5)
        .cost("POST /partner/v1/products:batchGet", 10)
        .screens(screens)
        .around_auth(v1_deprecation)
}

/// Every answer of a `/partner/v1` route, refusals too, carries v1's
/// deprecation (when configured).
fn v1_deprecation(versions: &ApiVersions, _: &Backbone) -> Result<Wrap, ShellError> {
    let headers = Arc::new(versions.v1.as_ref().map(Notice::headers).unwrap_or_default());
    Ok(bff_server::route_layer(middleware::from_fn_with_state(headers, deprecate_v1)))
}

async fn deprecate_v1(
    State(notice): State<Arc<Vec<(axum::http::HeaderName, axum::http::HeaderValue)>>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let v1 = matched.is_some_and(|m| m.as_str().starts_with("/partner/v1/"));
    let mut response = next.run(request).await;
    if v1 {
        for (name, value) in notice.iter() {
            // A page's `Link: rel="next"` stays beside the deprecation's.
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}
