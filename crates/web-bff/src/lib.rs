//! web-bff: the Backend-for-Frontend of the web front end.
//!
//! The browser never holds a token: it logs in through the BFF and carries
//! a sealed, `__Host-`, `HttpOnly` session cookie; writes need an allowed
//! `Origin` and the session's CSRF token; CORS is an explicit allow-list
//! with credentials, never `*`. All of that is the shell's `session` mode
//! (`bff_server::session`), chosen by this BFF's registry entry.
//!
//! * `GET /auth/login`, `GET /auth/callback`, `GET /auth/session`,
//!   `POST /auth/logout`: the session mode's routes.
//! * `GET /v1/home`: [`routes::home`], richer than mobile's.
//! * `POST /v1/cart/items`: [`routes::add_to_cart`], a write with an `Idempotency-Key`.
//! * `POST /v1/orders`, `GET /v1/orders`, `GET /v1/orders/{id}`: [`orders`]
//!   (placing one is idempotent by key; another user's order is a `404`).
//! * `GET /v1/product-page/{id}`, `GET /v1/widgets/recommendations`,
//!   `GET /v1/widgets/cart-summary`: [`shop`].
//! * `GET /v1/categories`: public and cacheable ([`shop::categories`]).
//! * `GET /openapi.json`: this API's OpenAPI document, public.

pub mod orders;
pub mod routes;
pub mod shop;

use bff_server::{Backbone, Bff};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// This BFF's registry entry: port 8080, session cookies.
pub const ENTRY: &bff_registry::Bff = bff_registry::entry("web-bff");

/// The pages, each routed together with its OpenAPI operation.
fn screens() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new()
        .routes(routes!(routes::home))
        .routes(routes!(routes::add_to_cart))
        .routes(routes!(orders::place_order, orders::orders))
        .routes(routes!(orders::order))
        .routes(routes!(shop::product))
        .routes(routes!(shop::recommendations_widget))
        .routes(routes!(shop::cart_summary_widget))
}

/// The anonymous, public operations: the same for everyone, cacheable by a CDN.
fn public() -> OpenApiRouter<Backbone> {
    OpenApiRouter::new().routes(routes!(shop::categories))
}

/// web-bff.
pub fn bff() -> Bff {
    Bff::new(ENTRY, env!("CARGO_PKG_VERSION"))
        .describe(
            "The BFF of the web front end. The browser never holds a token: it logs in through \
             `/auth/login` and carries a sealed `HttpOnly` session cookie; writes also need an allowed \
             `Origin` and the session's CSRF token (from `/auth/session`).",
        )
        // A richer page: six parts in parallel, the slowest budget 140 ms.
        .deadline_ms(350)
        .cache()
        .screens(screens)
        .public_screens(public)
}
