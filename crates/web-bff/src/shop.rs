//! The rest of the shop: a product page richer than mobile's, widgets for
//! pages that compose themselves, and the one public, cacheable endpoint.
//!
//! * `GET /v1/product-page/{id}`: the product and its price (critical),
//!   availability, twelve recommendations, the rating, the latest reviews
//!   and delivery (optional, each degrading on its own).
//! * `GET /v1/widgets/recommendations?context=&limit=` and
//!   `GET /v1/widgets/cart-summary`: one part each, for a page that
//!   renders its own layout (a CMS page, a campaign) and wants the BFF's
//!   budgets and fallbacks for it.
//! * `GET /v1/categories`: anonymous and the same for everyone, so it is
//!   `Cache-Control: public, max-age=300, stale-while-revalidate=600` with
//!   an `ETag` (a CDN holds it). It is a public screen of the shell: no
//!   session, the catalog called on the BFF's own behalf. Every other
//!   answer of this BFF is personal and the shell sends it `private`.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use bff_auth::Caller;
use bff_cache::{CacheKey, StaleFromCache};
use bff_compose::{CallCtx, Envelope, Plan};
use bff_downstream::model::{
    Price, Product, Recommendations, ReviewList, ReviewSummary, ShippingEstimate, Stock,
};
use bff_error::{ApiError, Classify as _};
use bff_server::Backbone;
use bff_server::extract::{PathId, Query};
use serde::{Deserialize, Serialize};

use crate::routes::{MiniCart, MoneyVm, ProductCard};

/// One review, as the page shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewVm {
    /// 1 to 5.
    pub rating: u8,
    /// Headline.
    pub title: String,
    /// Who wrote it.
    pub author: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// `GET /v1/product-page/{id}` (web).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebProductPageVm {
    /// Product id.
    pub id: String,
    /// Name.
    pub title: String,
    /// Brand.
    pub brand: String,
    /// Long description.
    pub description: String,
    /// Every image, best first (the desktop gallery).
    pub images: Vec<String>,
    /// What the customer pays.
    pub price: MoneyVm,
    /// The regular price when on sale.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub list_price: Option<MoneyVm>,
    /// `in_stock`, `limited_stock`, `out_of_stock` or `unknown` (never a count).
    #[schema(examples("in_stock"))]
    pub availability: String,
    /// Up to twelve suggestions (empty when unavailable).
    pub recommendations: Vec<ProductCard>,
    /// Mean rating and count; absent when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("4.3 (128 reviews)"))]
    pub rating: Option<String>,
    /// The latest reviews (empty when unavailable).
    pub reviews: Vec<ReviewVm>,
    /// Delivery options line; absent when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, examples("Standard delivery in 2–4 days · free over £40.00"))]
    pub delivery: Option<String>,
}

/// The web product page's response (named for the OpenAPI document).
pub type WebProductPageEnvelope = Envelope<WebProductPageVm>;

fn cards(recommendations: &Recommendations) -> Vec<ProductCard> {
    recommendations
        .items
        .iter()
        .map(|r| ProductCard {
            id: r.product_id.clone(),
            title: r.name.clone(),
            image_url: r.image_url.clone(),
            price: MoneyVm::from(&r.price),
        })
        .collect()
}

fn availability(stock: Option<&Stock>) -> &'static str {
    use bff_downstream::model::StockLevel;
    match stock.map(Stock::level) {
        Some(StockLevel::Plenty) => "in_stock",
        Some(StockLevel::Few) => "limited_stock",
        Some(StockLevel::None) => "out_of_stock",
        None => "unknown",
    }
}

#[allow(clippy::too_many_arguments)]
fn product_page(
    product: Product,
    price: &Price,
    stock: Option<&Stock>,
    recommendations: &Recommendations,
    summary: Option<&ReviewSummary>,
    reviews: &ReviewList,
    shipping: Option<&ShippingEstimate>,
) -> WebProductPageVm {
    WebProductPageVm {
        id: product.id,
        title: product.name,
        brand: product.brand,
        description: product.description,
        images: product.images,
        price: MoneyVm::from(&price.price),
        list_price: price.list_price.as_ref().map(MoneyVm::from),
        availability: availability(stock).to_owned(),
        recommendations: cards(recommendations),
        rating: summary.map(|s| format!("{:.1} ({} reviews)", s.average_rating, s.count)),
        reviews: reviews
            .reviews
            .iter()
            .map(|r| ReviewVm {
                rating: r.rating,
                title: r.title.clone(),
                author: r.author.clone(),
                created_at: r.created_at.clone(),
            })
            .collect(),
        delivery: shipping.map(|s| match &s.free_shipping_over {
            Some(free) => format!(
                "Standard delivery in {}–{} days · free over {}",
                s.min_days,
                s.max_days,
                free.formatted()
            ),
            None => format!("Standard delivery in {}–{} days", s.min_days, s.max_days),
        }),
    }
}

/// `GET /v1/product-page/{id}`: a product's page on the web.
///
/// | component | critical | when missing |
/// |---|---|---|
/// | `product` | yes | cached (global): stale on failure; else 404 for an unknown id, 503/504 |
/// | `price` | yes | 503/504 |
/// | `availability` | no | `unknown` |
/// | `recommendations` | no | empty |
/// | `reviews` | no | no rating (omitted) |
/// | `reviewList` | no | empty |
/// | `shipping` | no | no delivery line (omitted) |
#[utoipa::path(
    get,
    path = "/v1/product-page/{id}",
    tag = "pages",
    operation_id = "productPage",
    summary = "A product's page",
    security(("session" = ["catalog"])),
    params(("id" = String, Path, description = "Product id, e.g. `p-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The product page; `components` says which parts are missing.", body = WebProductPageEnvelope),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn product(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    PathId(id): PathId,
) -> Result<Envelope<WebProductPageVm>, ApiError> {
    let api = &backbone.api;
    let (catalog, owned_id) = (api.catalog.clone(), id.clone());
    let (id, user) = (id.as_str(), caller.subject.as_str());
    let context = format!("product:{id}");
    let (product, price, stock, recommendations, summary, reviews, shipping) = plan
        .run((
            plan.critical("product", move |cx| async move { catalog.product(cx, &owned_id).await })
                .stale_from_cache(&backbone.cache, CacheKey::global(id)),
            plan.critical("price", |cx| api.pricing.price(cx, id)),
            plan.optional("availability", |cx| api.inventory.stock(cx, id)).omit(),
            plan.optional("recommendations", |cx| api.recommendations.for_user(cx, user, &context, 12))
                .or_default(),
            plan.optional("reviews", |cx| api.reviews.summary(cx, id)).omit(),
            plan.optional("reviewList", |cx| api.reviews.latest(cx, id, 5)).or_default(),
            plan.optional("shipping", |cx| api.shipping.estimate(cx, user)).omit(),
        ))
        .await?;
    Ok(plan.envelope(product_page(
        product,
        &price,
        stock.as_ref(),
        &recommendations,
        summary.as_ref(),
        &reviews,
        shipping.as_ref(),
    )))
}

/// Query of `GET /v1/widgets/recommendations`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendationsQuery {
    /// `home` (default) or `product:<id>`.
    #[param(pattern = "^(home|product:[A-Za-z0-9_-]{1,64})$")]
    pub context: Option<String>,
    /// 1 to 24 (default 6).
    #[param(minimum = 1, maximum = 24)]
    pub limit: Option<u8>,
}

/// The recommendations widget.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationsWidget {
    /// Suggestions (empty when unavailable: the widget hides itself).
    pub items: Vec<ProductCard>,
}

/// The recommendations widget's response (named for the OpenAPI document).
pub type RecommendationsWidgetEnvelope = Envelope<RecommendationsWidget>;

/// `GET /v1/widgets/recommendations`: suggestions for the shopper, for a
/// page that lays itself out. Never fails for want of suggestions: empty
/// (`fallback`) when the service is down.
#[utoipa::path(
    get,
    path = "/v1/widgets/recommendations",
    tag = "widgets",
    operation_id = "recommendationsWidget",
    summary = "The recommendations widget",
    security(("session" = ["profile"])),
    params(RecommendationsQuery),
    responses(
        (status = 200, description = "Suggestions; `components.recommendations` says whether they are real.", body = RecommendationsWidgetEnvelope),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
    )
)]
pub async fn recommendations_widget(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
    Query(query): Query<RecommendationsQuery>,
) -> Result<Envelope<RecommendationsWidget>, ApiError> {
    let context = query.context.unwrap_or_else(|| "home".to_owned());
    let valid = context == "home" || context.strip_prefix("product:").is_some_and(PathId::is_valid);
    let limit = query.limit.unwrap_or(6);
    if !valid || !(1..=24).contains(&limit) {
        return Err(ApiError::new(bff_error::ErrorCode::RequestInvalid)
            .with_detail("context is home or product:<id>; limit is 1 to 24"));
    }
    let (api, user) = (&backbone.api, caller.subject.as_str());
    let (items,) = plan
        .run((plan
            .optional("recommendations", |cx| api.recommendations.for_user(cx, user, &context, limit))
            .or_default(),))
        .await?;
    Ok(plan.envelope(RecommendationsWidget { items: cards(&items) }))
}

/// `GET /v1/widgets/cart-summary`: the mini-cart, for a page's header.
#[utoipa::path(
    get,
    path = "/v1/widgets/cart-summary",
    tag = "widgets",
    operation_id = "cartSummaryWidget",
    summary = "The cart-summary widget",
    security(("session" = ["cart"])),
    responses(
        (status = 200, description = "The mini-cart.", body = MiniCart),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn cart_summary_widget(
    State(backbone): State<Backbone>,
    caller: Caller,
    plan: Plan,
) -> Result<axum::Json<MiniCart>, ApiError> {
    let cart = backbone
        .api
        .cart
        .cart(plan.cx().clone(), &caller.subject)
        .await
        .map_err(|error| ApiError::from_failure(error.failure()))?;
    Ok(axum::Json(MiniCart::new(&cart)))
}

/// One category.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryVm {
    /// Category id, e.g. `shoes`.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// `GET /v1/categories`: the shop's categories, the same for everyone.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoriesVm {
    /// In catalog order.
    pub categories: Vec<CategoryVm>,
}

/// How long a CDN or browser may keep the categories, and serve them
/// stale while revalidating.
pub const CATEGORIES_CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=600";

/// `GET /v1/categories`: anonymous, public, cacheable.
#[utoipa::path(
    get,
    path = "/v1/categories",
    tag = "public",
    operation_id = "categories",
    summary = "The shop's categories (public, cacheable)",
    description = "The same for everyone: no session needed, and shared caches may keep it \
        (`Cache-Control: public, max-age=300, stale-while-revalidate=600`, `ETag`, `304`).",
    params(("If-None-Match" = Option<String>, Header, description = "The `ETag` of the copy held.")),
    responses(
        (status = 200, description = "The categories.", body = CategoriesVm, headers(
            ("ETag" = String, description = "Weak validator of this body."),
            ("Cache-Control" = String, description = "`public, max-age=300, stale-while-revalidate=600`."),
        )),
        (status = 304, description = "Unchanged since the `If-None-Match` validator."),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn categories(
    State(backbone): State<Backbone>,
    plan: Plan,
) -> Result<([(header::HeaderName, HeaderValue); 1], axum::Json<CategoriesVm>), ApiError> {
    // Nobody's: the catalog is asked on the BFF's own behalf.
    let cx = CallCtx::on_own_behalf(plan.cx().request().clone(), plan.cx().deadline());
    let categories =
        backbone.api.catalog.categories(cx).await.map_err(|error| ApiError::from_failure(error.failure()))?;
    let body = CategoriesVm {
        categories: categories
            .categories
            .into_iter()
            .map(|c| CategoryVm { id: c.id, name: c.name })
            .collect(),
    };
    Ok(([(header::CACHE_CONTROL, HeaderValue::from_static(CATEGORIES_CACHE_CONTROL))], axum::Json(body)))
}
