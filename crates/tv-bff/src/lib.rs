//! tv-bff: the Backend-for-Frontend of the TV app.
//!
//! A TV browses: few requests, large precomputed rails, a remote control
//! instead of a keyboard. Its callers log in with the OAuth 2.0 Device
//! Authorization Grant (RFC 8628: the TV shows a code, a person approves it
//! on their phone) and present the resulting bearer token, audience
//! `tv-bff` only: the shell's `device` mode, from its registry entry (which
//! `cargo xtask new-bff tv --port 8084 --auth device` wrote).
//!
//! * `GET /tv/v1/browse`: [`routes::browse`], every rail's first page;
//! * `GET /tv/v1/rails/{id}?cursor=..`: [`routes::rail`], one rail, deeper;
//! * `GET /openapi.json`: this API's OpenAPI document, public.
//!
//! The expensive rails (per category, on sale, per segment) are computed in
//! the background ([`rails`]) and served from the cache with their age; a
//! browse request makes one downstream call per user-specific rail and none
//! for the others. Its own section, [`RailsConfig`], says how often and
//! for which segments.

pub mod rails;
pub mod routes;

use axum::Extension;
use bff_cache::CachePolicy;
use bff_server::{Backbone, Bff, Section, ShellError, Wrap};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This BFF's registry entry: port 8084, device-grant tokens of `tv-app`.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("tv-bff");

/// The rails: the `rails` section (`TV_BFF__RAILS__REFRESH_SECS=30`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RailsConfig {
    /// How often the precomputed rails are rebuilt, in seconds. They count
    /// as stale once older than `cache.policies.catalog.ttl_secs` (and
    /// `segment`), three refreshes by default.
    pub refresh_secs: u64,
    /// The segments whose rails are precomputed; callers of another
    /// segment see the `all` ones.
    pub segments: Vec<String>,
    /// Items per precomputed rail (and per user rail), 1 to 50.
    pub per_rail: u8,
    /// Items per page of a rail, unless the request says, 1 to 24.
    pub page_size: usize,
}

impl Default for RailsConfig {
    fn default() -> Self {
        RailsConfig {
            refresh_secs: 60,
            segments: ["all", "frequent", "new", "dormant", "bargain"].map(str::to_owned).to_vec(),
            per_rail: 12,
            page_size: 6,
        }
    }
}

impl Section for RailsConfig {
    const KEY: &'static str = "rails";

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.refresh_secs == 0 {
            problems.push("refresh_secs must be greater than 0".to_owned());
        }
        if !self.segments.iter().any(|s| s == "all") {
            problems.push("segments must include `all` (what callers of other segments see)".to_owned());
        }
        if !(1..=50).contains(&self.per_rail) {
            problems.push("per_rail is 1 to 50".to_owned());
        }
        if !(1..=24).contains(&self.page_size) {
            problems.push("page_size is 1 to 24".to_owned());
        }
        problems
    }
}

/// The screens, each routed together with its OpenAPI operation.
fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new().routes(routes!(routes::browse)).routes(routes!(routes::rail))
}

/// tv-bff.
pub fn bff() -> Bff<RailsConfig> {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "The BFF of the TV app: a browse screen of rails (categories, on sale, popular in your \
             segment, deals, continue shopping, recommended for you), each a page at a time with an \
             opaque cursor. TVs log in with the device authorization grant (RFC 8628). Rails that \
             are the same for many callers are precomputed: each says how old it is, and `components` \
             says which are stale or missing.",
        )
        .deadline_ms(300)
        .cache()
        .tune(precomputed_lifetimes)
        .screens(screens)
        .inside_auth(share_config)
        .task(|config, backbone| Ok(Box::pin(rails::refresh_forever(config.clone(), backbone.clone()))))
}

/// Precomputed rails are fresh for three refreshes and kept for a day, to
/// be served (marked stale) while refreshes fail.
fn precomputed_lifetimes(config: &mut bff_server::Config<RailsConfig>) {
    let ttl_secs = config.own.refresh_secs * 3;
    let policy = CachePolicy { ttl_secs, swr_secs: 0, keep_secs: 86_400, jitter: 0.0 };
    for component in [rails::CATALOG, rails::SEGMENT] {
        config.cache.policies.insert(component.to_owned(), policy.into());
    }
}

/// The handlers read the rails settings from the request.
fn share_config(config: &RailsConfig, _: &Backbone) -> Result<Wrap, ShellError> {
    Ok(bff_server::route_layer(Extension(config.clone())))
}
