//! Partner routes. Field names and meanings are a versioned contract:
//! within `v1` fields are only ever added.

use axum::extract::State;
use bff_cache::{CacheKey, StaleFromCache};
use bff_compose::{Envelope, Plan};
use bff_downstream::model::{Money, StockLevel};
use bff_error::ApiError;
use bff_server::Backbone;
use bff_server::extract::PathId;
use serde::Serialize;

/// A price in a partner payload: minor units, no formatting (partners render
/// it their own way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceV1 {
    /// Minor units.
    #[schema(examples(1999))]
    pub amount_minor: i64,
    /// ISO 4217 code.
    #[schema(examples("EUR"))]
    pub currency: String,
}

impl From<&Money> for PriceV1 {
    fn from(money: &Money) -> Self {
        PriceV1 { amount_minor: money.amount_minor, currency: money.currency.clone() }
    }
}

/// Stock, coarse on purpose (exact counts are not part of the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityV1 {
    /// More than ten units.
    InStock,
    /// One to ten units.
    Limited,
    /// None.
    OutOfStock,
    /// Inventory did not answer; order and let checkout decide.
    Unknown,
}

impl From<StockLevel> for AvailabilityV1 {
    fn from(level: StockLevel) -> Self {
        match level {
            StockLevel::Plenty => AvailabilityV1::InStock,
            StockLevel::Few => AvailabilityV1::Limited,
            StockLevel::None => AvailabilityV1::OutOfStock,
        }
    }
}

/// The product's response (named for the OpenAPI document).
pub type ProductEnvelope = Envelope<ProductV1>;

/// `GET /partner/v1/products/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductV1 {
    /// Product id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Current price.
    pub price: PriceV1,
    /// Regular price when on sale.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub list_price: Option<PriceV1>,
    /// Availability.
    pub availability: AvailabilityV1,
}

/// `GET /partner/v1/products/{id}`: catalog and price are critical (no
/// product without a valid price), availability is optional (`unknown`).
#[utoipa::path(
    get,
    path = "/partner/v1/products/{id}",
    tag = "products",
    operation_id = "getProduct",
    summary = "A product with its price and availability",
    security(("bearer" = ["catalog"])),
    params(("id" = String, Path, description = "Product id, e.g. `p-1`.", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 200, description = "The product; `components.availability` says whether stock is known.",
            body = ProductEnvelope, headers(
                ("RateLimit-Policy" = String, description = "The partner's quota, e.g. `\"partner\";q=100;w=60`."),
                ("RateLimit" = String, description = "What is left of it, e.g. `\"partner\";r=99;t=1`."),
            )),
        (status = 400, response = bff_error::openapi::BadRequest),
        (status = 401, response = bff_error::openapi::Unauthenticated),
        (status = 403, response = bff_error::openapi::Forbidden),
        (status = 404, response = bff_error::openapi::NotFound),
        (status = 429, response = bff_error::openapi::RateLimited),
        (status = 503, response = bff_error::openapi::Unavailable),
        (status = 504, response = bff_error::openapi::Timeout),
    )
)]
pub async fn product(
    State(backbone): State<Backbone>,
    plan: Plan,
    PathId(id): PathId,
) -> Result<Envelope<ProductV1>, ApiError> {
    let (catalog, owned_id) = (backbone.api.catalog.clone(), id.clone());
    let (api, id) = (&backbone.api, id.as_str());
    let (product, price, availability) = plan
        .run((
            // A catalog snippet: cached for everyone, served stale if the catalog fails.
            plan.critical("product", move |cx| async move { catalog.product(cx, &owned_id).await })
                .stale_from_cache(&backbone.cache, CacheKey::global(id)),
            plan.critical("price", |cx| api.pricing.price(cx, id)),
            plan.optional("availability", |cx| async move {
                api.inventory.stock(cx, id).await.map(|stock| AvailabilityV1::from(stock.level()))
            })
            .or(AvailabilityV1::Unknown),
        ))
        .await?;
    Ok(plan.envelope(ProductV1 {
        id: product.id,
        name: product.name,
        brand: product.brand,
        price: PriceV1::from(&price.price),
        list_price: price.list_price.as_ref().map(PriceV1::from),
        availability,
    }))
}
