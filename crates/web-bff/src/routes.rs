//! Web screens: richer than mobile's (a desktop page shows more), composed
//! the same way.
//!
//! The view models are the web team's own contract: where they look like
//! mobile's today (money, product cards) they are still separate types, so
//! one client's change never reshapes another client's payload. Shared
//! rules (money formatting, validation) live below, in `bff-downstream`.

use axum::extract::State;
use axum::http::StatusCode;
use bff_auth::Caller;
use bff_cache::{CacheKey, Segment, StaleFromCache};
use bff_compose::{Envelope, Plan};
use bff_downstream::DownstreamError;
use bff_downstream::model::{
    Cart, Money, Orders, Promotions, Recommendations, ShippingEstimate, UserProfile,
};
use bff_error::{ApiError, Classify as _, ErrorCode};
use bff_server::Backbone;
use bff_server::extract::{IdempotencyKey, Json, PathId};
use serde::{Deserialize, Serialize};

/// Money, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoneyVm {
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// E.g. `€59.97`.
    #[schema(examples("£59.97"))]
    pub formatted: String,
}

impl From<&Money> for MoneyVm {
    fn from(money: &Money) -> Self {
        MoneyVm {
            amount_minor: money.amount_minor,
            currency: money.currency.clone(),
            formatted: money.formatted(),
        }
    }
}

/// A product card.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductCard {
    /// Product id.
    pub id: String,
    /// Name.
    pub title: String,
    /// Image.
    pub image_url: String,
    /// Price.
    pub price: MoneyVm,
}

/// The mini-cart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MiniCart {
    /// Units in the cart.
    pub item_count: u32,
    /// Distinct lines.
    pub line_count: usize,
    /// The cart service's total.
    pub total: MoneyVm,
}

impl MiniCart {
    pub(crate) fn new(cart: &Cart) -> Self {
        MiniCart {
            item_count: cart.items.iter().map(|l| l.quantity).sum(),
            line_count: cart.items.len(),
            total: MoneyVm::from(&cart.total),
        }
    }
}

/// A recent order line.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentOrder {
    /// Order id.
    pub id: String,
    /// When.
    pub placed_at: String,
    /// Status.
    pub status: String,
    /// Total.
    pub total: MoneyVm,
}

/// A promotion banner.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Banner {
    /// Promotion id.
    pub id: String,
    /// Headline.
    pub title: String,
    /// Badge.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("-20%"))]
    pub badge: Option<String>,
}

/// The home page's response (named for the OpenAPI document).
pub type WebHomeEnvelope = Envelope<WebHomeVm>;

/// `GET /v1/home` (web).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebHomeVm {
    /// "Welcome back, Ada".
    #[schema(examples("Welcome back, Ada"))]
    pub greeting: String,
    /// Loyalty tier.
    pub tier: String,
    /// The mini-cart.
    pub cart: MiniCart,
    /// Up to twelve suggestions (empty when unavailable).
    pub recommendations: Vec<ProductCard>,
    /// Banners (empty when unavailable).
    pub promotions: Vec<Banner>,
    /// Delivery line; absent when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("Delivery in 2–4 days"))]
    pub delivery: Option<String>,
    /// The three latest orders; absent when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub recent_orders: Option<Vec<RecentOrder>>,
}

impl WebHomeVm {
    fn new(
        profile: &UserProfile,
        cart: &Cart,
        recommendations: &Recommendations,
        promotions: &Promotions,
        shipping: Option<&ShippingEstimate>,
        orders: Option<&Orders>,
    ) -> Self {
        let first = profile.display_name.split_whitespace().next().unwrap_or(&profile.display_name);
        WebHomeVm {
            greeting: format!("Welcome back, {first}"),
            tier: profile.tier.clone(),
            cart: MiniCart::new(cart),
            recommendations: recommendations
                .items
                .iter()
                .map(|r| ProductCard {
                    id: r.product_id.clone(),
                    title: r.name.clone(),
                    image_url: r.image_url.clone(),
                    price: MoneyVm::from(&r.price),
                })
                .collect(),
            promotions: promotions
                .promotions
                .iter()
                .map(|p| Banner { id: p.id.clone(), title: p.title.clone(), badge: p.badge.clone() })
                .collect(),
            delivery: shipping.map(|s| format!("Delivery in {}–{} days", s.min_days, s.max_days)),
            recent_orders: orders.map(|o| {
                // The service lists newest first.
                o.orders
                    .iter()
                    .take(3)
                    .map(|order| RecentOrder {
                        id: order.id.clone(),
                        placed_at: order.placed_at.clone(),
                        status: order.status.clone(),
                        total: MoneyVm::from(&order.total),
                    })
                    .collect()
            }),
        }
    }
}

/// `GET /v1/home`: profile and cart critical; recommendations and
/// promotions cached per segment (stale on failure, else empty); delivery
/// and recent orders are omitted when missing.
#[utoipa::path(
    get,
    path = "/v1/home",
    tag = "pages",
    operation_id = "home",
    summary = "The home page",
    security(("session" = ["profile"])),
    responses(
        (status = 200, description = "The home page; `components` says which parts are missing.", body = WebHomeEnvelope),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn home(
    State(backbone): State<Backbone>,
    caller: Caller,
    Segment(segment): Segment,
    plan: Plan,
) -> Result<Envelope<WebHomeVm>, ApiError> {
    let (api, user) = (&backbone.api, caller.subject.as_str());
    // Cached parts own what they use: a stale hit refreshes in the background.
    let (reco, promos, reco_segment, promo_segment) =
        (api.recommendations.clone(), api.promotions.clone(), segment.clone(), segment.clone());
    let (profile, cart, recommendations, promotions, shipping, orders) = plan
        .run((
            plan.critical("profile", |cx| api.users.profile(cx, user)),
            plan.critical("cart", |cx| api.cart.cart(cx, user)),
            plan.optional("recommendations", move |cx| async move {
                reco.for_segment(cx, &reco_segment, "home", 12).await
            })
            .stale_from_cache(&backbone.cache, CacheKey::segment(&segment, "home-web")),
            plan.optional(
                "promotions",
                move |cx| async move { promos.for_segment(cx, &promo_segment).await },
            )
            .stale_from_cache(&backbone.cache, CacheKey::segment(&segment, "all")),
            plan.optional("shipping", |cx| api.shipping.estimate(cx, user)).omit(),
            plan.optional("orders", |cx| api.orders.for_user(cx, user)).omit(),
        ))
        .await?;
    Ok(plan.envelope(WebHomeVm::new(
        &profile,
        &cart,
        &recommendations,
        &promotions,
        shipping.as_ref(),
        orders.as_ref(),
    )))
}

/// Body of `POST /v1/cart/items`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddToCart {
    /// The product to add.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", examples("p-1"))]
    pub product_id: String,
    /// How many, 1 to 99.
    // `22.0` counts: the schema's `integer` allows it (JSON Schema).
    #[schema(minimum = 1, maximum = 99, examples(1))]
    #[serde(deserialize_with = "bff_server::extract::whole_number")]
    pub quantity: u32,
}

/// `POST /v1/cart/items`: adds a line to the caller's cart and answers the
/// mini-cart. A write: it needs the session's CSRF token and an
/// `Idempotency-Key`, which the shell enforces (a retry gets the first
/// answer) and the cart service keeps too; the BFF never retries it itself.
#[utoipa::path(
    post,
    path = "/v1/cart/items",
    tag = "cart",
    operation_id = "addToCart",
    summary = "Add a product to the cart",
    security(("session" = ["cart"], "csrf" = [])),
    params(IdempotencyKey),
    request_body(content = AddToCart, content_type = "application/json"),
    responses(
        (status = 201, description = "Added: the mini-cart after the write.", body = MiniCart),
        (status = 400, response = bff_error::openapi::BadWrite),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 413, response = bff_error::openapi::TooLarge),
        (status = 409, response = bff_error::openapi::InFlight),
        (status = 422, response = bff_error::openapi::KeyReused),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::WriteTimeout),
    )
)]
pub async fn add_to_cart(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<AddToCart>,
) -> Result<(StatusCode, axum::Json<MiniCart>), ApiError> {
    if !PathId::is_valid(&body.product_id) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("productId is not a product id"));
    }
    if !(1..=99).contains(&body.quantity) {
        return Err(ApiError::new(ErrorCode::RequestInvalid).with_detail("quantity is 1 to 99"));
    }
    let cart = backbone
        .api
        .cart
        .add_item(plan.cx().clone(), &caller.subject, &body.product_id, body.quantity, &key)
        .await
        .map_err(|error| match error {
            DownstreamError::NotFound { .. } => {
                ApiError::new(ErrorCode::NotFound).with_detail("no such product")
            }
            // A reused key is the cart service's refusal (`KeyReused`), which
            // the taxonomy answers as `idempotency.key_reused`.
            other => ApiError::from_failure(other.failure()),
        })?;
    Ok((StatusCode::CREATED, axum::Json(MiniCart::new(&cart))))
}
