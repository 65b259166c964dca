//! The screens. Each handler is the screen's recipe: which parts, which are
//! critical, what to show when an optional one is missing. Budgets, breakers
//! and spans come from configuration and the shared crates, keyed by the
//! component names used here.

use axum::extract::State;
use bff_auth::Caller;
use bff_cache::{CacheKey, Segment, StaleFromCache};
use bff_compose::{Envelope, Plan};
use bff_error::ApiError;
use bff_server::Backbone;
use bff_server::extract::PathId;

use crate::view::{Availability, HomeVm, ProductPageVm};

pub mod commerce;

/// The home screen's response (named for the OpenAPI document).
pub type HomeEnvelope = Envelope<HomeVm>;
/// The product page's response (named for the OpenAPI document).
pub type ProductPageEnvelope = Envelope<ProductPageVm>;

/// `If-None-Match`: every screen answers a matching validator with `304`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatch {
    /// The `ETag` of the copy the app holds.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// `GET /v1/home`: the home screen.
///
/// | component | critical | when missing |
/// |---|---|---|
/// | `profile` | yes | 503/504 |
/// | `cart` | yes | 503/504 |
/// | `recommendations` | no | cached per segment: stale on failure, else empty (`fallback`) |
/// | `promotions` | no | cached per segment: stale on failure, else none (`fallback`) |
/// | `shipping` | no | no delivery banner (`error`, omitted) |
#[utoipa::path(
    get,
    path = "/v1/home",
    tag = "screens",
    operation_id = "home",
    summary = "The home screen",
    security(("bearer" = ["profile"])),
    params(IfNoneMatch),
    responses(
        (status = 200, description = "The home screen; `components` says which parts are missing.",
            body = HomeEnvelope, headers(("ETag" = String, description = "Weak validator of this body."))),
        (status = 304, description = "Unchanged since the `If-None-Match` validator."),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn home(
    State(state): State<Backbone>,
    caller: Caller,
    Segment(segment): Segment,
    plan: Plan,
) -> Result<Envelope<HomeVm>, ApiError> {
    let api = &state.api;
    let user = caller.subject.as_str();
    // Cached parts own what they use: a stale hit refreshes in the background.
    let (reco, promos, reco_segment, promo_segment) =
        (api.recommendations.clone(), api.promotions.clone(), segment.clone(), segment.clone());
    let (profile, cart, recommendations, promotions, shipping) = plan
        .run((
            plan.critical("profile", |cx| api.users.profile(cx, user)),
            plan.critical("cart", |cx| api.cart.cart(cx, user)),
            plan.optional("recommendations", move |cx| async move {
                reco.for_segment(cx, &reco_segment, "home", 6).await
            })
            .stale_from_cache(&state.cache, CacheKey::segment(&segment, "home")),
            plan.optional(
                "promotions",
                move |cx| async move { promos.for_segment(cx, &promo_segment).await },
            )
            .stale_from_cache(&state.cache, CacheKey::segment(&segment, "all")),
            plan.optional("shipping", |cx| api.shipping.estimate(cx, user)).omit(),
        ))
        .await?;
    Ok(plan.envelope(HomeVm::new(&profile, &cart, &recommendations, &promotions, shipping.as_ref())))
}

/// `GET /v1/product-page/{id}`: a product's page.
///
/// | component | critical | when missing |
/// |---|---|---|
/// | `product` | yes | cached (global): stale on failure; else 404 for an unknown id, 503/504 |
/// | `price` | yes | 503/504: never a page without a (valid) price |
/// | `availability` | no | "Limited stock" (`fallback`): never an exact count |
/// | `recommendations` | no | empty (`fallback`) |
/// | `reviews` | no | no rating (`error`, omitted) |
#[utoipa::path(
    get,
    path = "/v1/product-page/{id}",
    tag = "screens",
    operation_id = "productPage",
    summary = "A product's page",
    security(("bearer" = ["catalog"])),
    params(("id" = String, Path, description = "Product id, e.g. `p-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$"), IfNoneMatch),
    responses(
        (status = 200, description = "The product page; `components` says which parts are missing.",
            body = ProductPageEnvelope, headers(("ETag" = String, description = "Weak validator of this body."))),
        (status = 304, description = "Unchanged since the `If-None-Match` validator."),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn product_page(
    State(state): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(id): PathId,
) -> Result<Envelope<ProductPageVm>, ApiError> {
    let api = &state.api;
    let (catalog, owned_id) = (api.catalog.clone(), id.clone());
    let (id, user) = (id.as_str(), caller.subject.as_str());
    let context = format!("product:{id}");
    let (product, price, availability, recommendations, reviews) = plan
        .run((
            // A catalog snippet: cached for everyone, served stale if the catalog fails.
            plan.critical("product", move |cx| async move { catalog.product(cx, &owned_id).await })
                .stale_from_cache(&state.cache, CacheKey::global(id)),
            plan.critical("price", |cx| api.pricing.price(cx, id)),
            plan.optional("availability", |cx| async move {
                api.inventory.stock(cx, id).await.map(|stock| Availability::from(stock.level()))
            })
            .or(Availability::LimitedStock),
            plan.optional("recommendations", |cx| api.recommendations.for_user(cx, user, &context, 6))
                .or_default(),
            plan.optional("reviews", |cx| api.reviews.summary(cx, id)).omit(),
        ))
        .await?;
    Ok(plan.envelope(ProductPageVm::new(&product, &price, availability, &recommendations, reviews.as_ref())))
}
