//! mobile-bff: the Backend-for-Frontend of the mobile app.
//!
//! One call per screen, small UI-shaped payloads, `ETag`/`304` and gzip.
//! Callers authenticate with an OAuth bearer JWT (audience `mobile-bff`).
//! Screens:
//!
//! * `GET /v1/home`: [`routes::home`]
//! * `GET /v1/product-page/{id}`: [`routes::product_page`]
//! * `GET /v1/cart`, `POST /v1/cart/items`, `PATCH`/`DELETE /v1/cart/items/{productId}`:
//!   the cart ([`routes::commerce`]); every write needs an `Idempotency-Key`
//! * `POST /v1/orders`, `GET /v1/orders`, `GET /v1/orders/{id}`: orders
//!   (placing one is idempotent by key; another user's order is a `404`)
//! * `GET /openapi.json`: this API's OpenAPI document, public
//!
//! Old app versions are refused or warned ([`versions`], `X-App-Version`).
//!
//! This crate holds only screens (recipes and view models) and says which
//! features of the shell it uses; configuration, authentication, egress,
//! the edge and serving come from `bff-server`'s [`Bff`].

pub mod routes;
pub mod versions;
mod view;

use bff_server::{Backbone, Bff};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
pub use versions::AppVersions;

/// This BFF's registry entry: port 8081, bearer tokens of `mobile-app`.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("mobile-bff");

/// The screens, each routed together with its OpenAPI operation: a handler
/// cannot be served without being documented.
fn screens() -> OpenApiRouter<Backbone> {
    use routes::commerce;
    OpenApiRouter::new()
        .routes(routes!(routes::home))
        .routes(routes!(routes::product_page))
        .routes(routes!(commerce::cart))
        .routes(routes!(commerce::add_to_cart))
        .routes(routes!(commerce::set_cart_quantity, commerce::remove_from_cart))
        .routes(routes!(commerce::place_order, commerce::orders))
        .routes(routes!(commerce::order))
}

/// mobile-bff.
pub fn bff() -> Bff<AppVersions> {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "The BFF of the mobile app: one small, UI-shaped payload per screen, with `ETag`/`304` and \
             gzip. Composed screens answer with an envelope whose `components` say which optional parts \
             are missing; a missing critical part is a `503`/`504` problem. The app sends its version as \
             `X-App-Version: MAJOR.MINOR.PATCH`: below the oldest version served every answer is \
             `426 client.upgrade_required`; a deprecated version is answered with `Deprecation`, `Sunset` \
             and a `Link` to the upgrade notes.",
        )
        // Parts run in parallel: the slowest default dependency timeout
        // (140 ms) plus headroom for our own work.
        .deadline_ms(250)
        .cache()
        // Phones pay for bytes: conditional GETs on every screen, and gzip.
        .conditional_get()
        .compression()
        .screens(screens)
        // Old app versions: told before anything else is looked at.
        .around_edge(versions::layer)
}
