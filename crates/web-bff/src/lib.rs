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
//! * `GET /openapi.json`: this API's OpenAPI document, public.

pub mod orders;
pub mod routes;

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
}
